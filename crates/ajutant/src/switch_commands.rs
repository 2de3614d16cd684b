//! `ajutant kill | revive TARGET --reason TEXT` and `ajutant switches`: the kill switches of a
//! running Ajutant, through its API like `ajutant ingest`, so the server that enforces a switch
//! is also the one that decides who may throw it and records who did and why. Exit code 0 when
//! done, 2 for a usage problem, 3 when the server cannot be used or refuses.

use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The server refuses longer reasons; checking here too turns that into a usage error.
const MAX_REASON_CHARS: usize = 1000;

/// What `kill` or `revive` switches.
#[derive(Debug, Subcommand)]
pub enum Target {
    /// One assistant, by id.
    Assistant {
        /// The assistant's id.
        id: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// One model deployment, by name.
    Deployment {
        /// The deployment's name, as in the configuration.
        name: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// The whole platform: every assistant and the model gateway.
    Platform {
        #[command(flatten)]
        change: ChangeArgs,
    },
}

#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// Why, kept with the switch and in the audit trail (1 to 1000 characters).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The running server's base URL.
    #[arg(long, env = "AJUTANT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A platform API key (`ajutant apikey create`) whose groups may switch the target.
    #[arg(long, env = "AJUTANT_API_KEY", hide_env_values = true)]
    api_key: String,
}

/// Which way `change` throws the switch.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    Kill,
    Revive,
}

impl Direction {
    fn state(self) -> &'static str {
        match self {
            Self::Kill => "killed",
            Self::Revive => "active",
        }
    }
}

/// What went wrong, for the exit code.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Server(String),
}

#[derive(Debug, Serialize)]
struct ChangeRequest<'a> {
    target: &'a str,
    id: Option<&'a str>,
    state: &'a str,
    reason: &'a str,
}

/// One switch as the server reports it.
#[derive(Debug, Deserialize)]
struct SwitchView {
    target: String,
    id: Option<String>,
    state: String,
    reason: String,
    changed_by: String,
    #[serde(default)]
    changed_by_name: String,
    changed_at: String,
}

#[derive(Debug, Deserialize)]
struct SwitchList {
    switches: Vec<SwitchView>,
}

/// Throws the switch; on success, the one line to print.
pub async fn change(target: Target, direction: Direction) -> Result<String, SwitchError> {
    let (kind, id, args) = match &target {
        Target::Assistant { id, change } => ("assistant", Some(id.as_str()), change),
        Target::Deployment { name, change } => ("deployment", Some(name.as_str()), change),
        Target::Platform { change } => ("platform", None, change),
    };
    let label = match id {
        Some(id) => format!("{kind} {id}"),
        None => kind.to_owned(),
    };
    if id.is_some_and(|id| id.trim().is_empty()) {
        return Err(SwitchError::Usage(format!("the {kind} to switch is empty")));
    }
    check_reason(&args.reason)?;
    let request = ChangeRequest {
        target: kind,
        id,
        state: direction.state(),
        reason: &args.reason,
    };
    let url = format!("{}/api/v1/kill-switches", base(&args.server.server));
    let (status, text) = exchange(
        client()?
            .post(&url)
            .bearer_auth(&args.server.api_key)
            .json(&request),
        &url,
    )
    .await?;
    if !status.is_success() {
        // The server answers 404 both for an unknown target and for one this key may not
        // switch, so as not to reveal what exists; the message has to cover both.
        let hint = match (status, id) {
            (StatusCode::NOT_FOUND, Some(_)) => {
                format!("no such {kind}, or this API key may not switch it")
            }
            (StatusCode::NOT_FOUND, None) => "this API key may not switch the platform".to_owned(),
            _ => String::new(),
        };
        return Err(SwitchError::Server(format!(
            "{label}: {}",
            refusal(status, &text, &hint)
        )));
    }
    let switch: SwitchView = serde_json::from_str(&text).map_err(|e| {
        SwitchError::Server(format!("the server's answer is not a kill switch: {e}"))
    })?;
    Ok(format!("{}\n", describe(&switch)))
}

/// Every switch the server knows, as an aligned table or as the server's JSON.
pub async fn list(args: ListArgs) -> Result<String, SwitchError> {
    let url = format!("{}/api/v1/kill-switches", base(&args.server.server));
    let (status, text) =
        exchange(client()?.get(&url).bearer_auth(&args.server.api_key), &url).await?;
    if !status.is_success() {
        let hint = if status == StatusCode::NOT_FOUND {
            "this API key may not see the kill switches"
        } else {
            ""
        };
        return Err(SwitchError::Server(refusal(status, &text, hint)));
    }
    // Parsed even for --json, so a wrong --server fails here rather than in someone's script.
    let list: SwitchList = serde_json::from_str(&text).map_err(|e| {
        SwitchError::Server(format!(
            "the server's answer is not a list of kill switches: {e}"
        ))
    })?;
    if args.json {
        return Ok(format!("{}\n", text.trim_end()));
    }
    Ok(table(&list.switches))
}

fn check_reason(reason: &str) -> Result<(), SwitchError> {
    if reason.trim().is_empty() {
        return Err(SwitchError::Usage(
            "--reason must say why (1 to 1000 characters)".to_owned(),
        ));
    }
    let length = reason.chars().count();
    if length > MAX_REASON_CHARS {
        return Err(SwitchError::Usage(format!(
            "--reason has {length} characters; at most {MAX_REASON_CHARS}"
        )));
    }
    Ok(())
}

fn base(server: &str) -> &str {
    server.trim_end_matches('/')
}

fn client() -> Result<reqwest::Client, SwitchError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| SwitchError::Server(format!("{:#}", anyhow::Error::new(e))))
}

/// Sends the request; the status and the body as the server sent it.
async fn exchange(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<(StatusCode, String), SwitchError> {
    let response = request.send().await.map_err(|e| {
        SwitchError::Server(format!("cannot reach {url}: {:#}", anyhow::Error::new(e)))
    })?;
    let status = response.status();
    let text = response.text().await.map_err(|e| {
        SwitchError::Server(format!(
            "cannot read the answer from {url}: {:#}",
            anyhow::Error::new(e)
        ))
    })?;
    Ok((status, text))
}

/// The status and the problem's detail (or title), after `hint` when there is one. A body
/// that is not a problem (a proxy's error page) still yields the status.
fn refusal(status: StatusCode, body: &str, hint: &str) -> String {
    let problem: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let said = problem["detail"]
        .as_str()
        .or_else(|| problem["title"].as_str())
        .filter(|said| !said.is_empty());
    let hint = if hint.is_empty() && status == StatusCode::UNAUTHORIZED {
        "check --api-key or AJUTANT_API_KEY"
    } else {
        hint
    };
    match (hint.is_empty(), said) {
        (true, Some(said)) => format!("the server answered {status}: {said}"),
        (true, None) => format!("the server answered {status}"),
        (false, Some(said)) => format!("the server answered {status}: {hint} ({said})"),
        (false, None) => format!("the server answered {status}: {hint}"),
    }
}

fn describe(switch: &SwitchView) -> String {
    let label = match &switch.id {
        Some(id) => format!("{} {id}", switch.target),
        None => switch.target.clone(),
    };
    let done = match switch.state.as_str() {
        "active" => "revived",
        other => other,
    };
    one_line(&format!(
        "{label}: {done} by {} at {} (reason: {})",
        changed_by(switch),
        switch.changed_at,
        switch.reason
    ))
}

fn changed_by(switch: &SwitchView) -> &str {
    if switch.changed_by_name.is_empty() {
        &switch.changed_by
    } else {
        &switch.changed_by_name
    }
}

fn table(switches: &[SwitchView]) -> String {
    let header = ["TARGET", "ID", "STATE", "CHANGED AT", "BY", "REASON"].map(str::to_owned);
    let rows: Vec<[String; 6]> = std::iter::once(header)
        .chain(switches.iter().map(|switch| {
            [
                switch.target.as_str(),
                switch.id.as_deref().unwrap_or("-"),
                switch.state.as_str(),
                switch.changed_at.as_str(),
                changed_by(switch),
                switch.reason.as_str(),
            ]
            .map(one_line)
        }))
        .collect();
    let mut widths = [0; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A reason is free text from whoever threw the switch: a line break would break the line or
/// the table, and an escape sequence would reach the operator's terminal.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn switch(target: &str, id: Option<&str>, state: &str, reason: &str) -> SwitchView {
        SwitchView {
            target: target.to_owned(),
            id: id.map(str::to_owned),
            state: state.to_owned(),
            reason: reason.to_owned(),
            changed_by: "user:ivy".to_owned(),
            changed_by_name: "Ivy Ops".to_owned(),
            changed_at: "2026-11-29T03:30:00Z".to_owned(),
        }
    }

    #[test]
    fn a_change_is_one_line_naming_who_when_and_why() {
        let killed = switch("assistant", Some("helpdesk"), "killed", "leaks\nsalaries");
        assert_eq!(
            describe(&killed),
            "assistant helpdesk: killed by Ivy Ops at 2026-11-29T03:30:00Z (reason: leaks salaries)"
        );
        let mut revived = switch("platform", None, "active", "drill over");
        revived.changed_by_name = String::new();
        assert_eq!(
            describe(&revived),
            "platform: revived by user:ivy at 2026-11-29T03:30:00Z (reason: drill over)"
        );
    }

    #[test]
    fn the_table_is_aligned_and_the_last_column_unpadded() {
        let text = table(&[
            switch("platform", None, "killed", "drill"),
            switch("deployment", Some("gpt-4o"), "active", "fixed"),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("TARGET      ID      STATE   CHANGED AT"));
        assert!(lines[1].starts_with("platform    -       killed  2026-11-29T03:30:00Z"));
        assert!(lines[2].starts_with("deployment  gpt-4o  active  "));
        let column = lines[0].find("REASON").unwrap();
        assert_eq!(lines[1].find("drill"), Some(column));
        assert!(lines.iter().all(|line| !line.ends_with(' ')));
    }

    #[test]
    fn a_refusal_names_the_status_and_what_the_server_said() {
        let problem = r#"{ "title": "Not found", "detail": "no assistant x" }"#;
        assert_eq!(
            refusal(
                StatusCode::NOT_FOUND,
                problem,
                "no such assistant, or this API key may not switch it"
            ),
            "the server answered 404 Not Found: no such assistant, or this API key may not switch it (no assistant x)"
        );
        assert_eq!(
            refusal(
                StatusCode::UNAUTHORIZED,
                r#"{ "title": "Unauthorized" }"#,
                ""
            ),
            "the server answered 401 Unauthorized: check --api-key or AJUTANT_API_KEY (Unauthorized)"
        );
        assert_eq!(
            refusal(StatusCode::BAD_GATEWAY, "<html>Bad gateway</html>", ""),
            "the server answered 502 Bad Gateway"
        );
    }

    #[test]
    fn a_reason_must_say_something_and_not_too_much() {
        assert!(check_reason("drill").is_ok());
        assert!(matches!(check_reason("  "), Err(SwitchError::Usage(_))));
        assert!(check_reason(&"é".repeat(1000)).is_ok());
        assert!(matches!(
            check_reason(&"x".repeat(1001)),
            Err(SwitchError::Usage(_))
        ));
    }
}
