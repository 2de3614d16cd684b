//! `ajutant ingest PATH --collection NAME`: uploads a file or a folder's files to a collection
//! of a running Ajutant through its API (so the server's own workers ingest them, and its
//! in-memory indexes stay current), then follows the ingestion jobs with a progress bar on
//! standard error. Exit code 0 when every document went in, 1 when some failed (each is listed
//! with its reason), 2 for a usage problem, 3 when the server cannot be used.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

/// Files per upload request (each request is one job), and bytes at most per request.
const FILES_PER_UPLOAD: usize = 32;
const BYTES_PER_UPLOAD: u64 = 64 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// A file, or a folder whose files (recursively, hidden ones skipped) are uploaded.
    path: PathBuf,
    /// The collection's name (or id).
    #[arg(long)]
    collection: String,
    /// The running server's base URL.
    #[arg(long, env = "AJUTANT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A platform API key (`ajutant apikey create`) whose groups may manage the collection.
    #[arg(long, env = "AJUTANT_API_KEY", hide_env_values = true)]
    api_key: String,
}

/// What went wrong, for the exit code.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Server(String),
    #[error("{failed} of {total} documents failed")]
    SomeFailed { failed: u64, total: u64 },
}

pub async fn run(args: IngestArgs) -> Result<(), IngestError> {
    let files = collect(&args.path).map_err(|e| IngestError::Usage(format!("{e:#}")))?;
    if files.is_empty() {
        return Err(IngestError::Usage(format!(
            "{} has no files to ingest",
            args.path.display()
        )));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| IngestError::Server(e.to_string()))?;
    let server = args.server.trim_end_matches('/').to_owned();
    let collection = find_collection(&client, &server, &args.api_key, &args.collection)
        .await
        .map_err(|e| IngestError::Server(format!("{e:#}")))?;
    let mut jobs = Vec::new();
    for batch in batches(&files) {
        let job = upload(&client, &server, &args.api_key, &collection, batch)
            .await
            .map_err(|e| IngestError::Server(format!("{e:#}")))?;
        jobs.push(job);
    }
    let total = files.len() as u64;
    let mut progress = Progress::new(total);
    let finished = loop {
        let mut states = Vec::new();
        for job in &jobs {
            let state = get(
                &client,
                &format!("{server}/api/v1/ingestion-jobs/{job}"),
                &args.api_key,
            )
            .await
            .map_err(|e| IngestError::Server(format!("{e:#}")))?;
            states.push(state);
        }
        let count = |key: &str| {
            states
                .iter()
                .map(|s| s[key].as_u64().unwrap_or(0))
                .sum::<u64>()
        };
        progress.show(count("processed"), count("failed"), count("chunks"));
        if states
            .iter()
            .all(|s| s["status"] == "succeeded" || s["status"] == "failed")
        {
            break states;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    progress.done();
    let mut stderr = std::io::stderr().lock();
    let mut failed = 0;
    for state in &finished {
        if let Some(error) = state["error"].as_str() {
            let _ = writeln!(
                stderr,
                "job {}: {error}",
                state["id"].as_str().unwrap_or("")
            );
        }
        for item in state["items"].as_array().into_iter().flatten() {
            if item["status"] == "failed" {
                failed += 1;
                let _ = writeln!(
                    stderr,
                    "failed: {} ({}): {}",
                    item["name"].as_str().unwrap_or(""),
                    item["error_code"].as_str().unwrap_or(""),
                    item["error"].as_str().unwrap_or("")
                );
            }
        }
    }
    let count = |key: &str| {
        finished
            .iter()
            .map(|s| s[key].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let _ = writeln!(
        stderr,
        "{} added, {} updated, {} unchanged, {} failed; {} passages",
        count("added"),
        count("updated"),
        count("unchanged"),
        failed,
        count("chunks")
    );
    if failed > 0 || finished.iter().any(|s| s["status"] == "failed") {
        return Err(IngestError::SomeFailed { failed, total });
    }
    Ok(())
}

/// The files under `path` (or `path` itself), sorted, hidden ones and symbolic links skipped.
fn collect(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("{} cannot be read", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !meta.is_dir() {
        bail!("{} is neither a file nor a folder", path.display());
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)
            .with_context(|| format!("{} cannot be read", folder.display()))?
        {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

fn batches(files: &[PathBuf]) -> Vec<Vec<PathBuf>> {
    let mut out: Vec<Vec<PathBuf>> = Vec::new();
    let mut bytes = 0;
    for file in files {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let full = out
            .last()
            .is_none_or(|b| b.len() >= FILES_PER_UPLOAD || bytes + size > BYTES_PER_UPLOAD);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(batch) = out.last_mut() {
            batch.push(file.clone());
        }
    }
    out
}

async fn get(client: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<Value> {
    let response = client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    answer(response).await
}

/// The JSON body of a successful answer, or the problem's detail as the error.
async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        bail!(
            "the server answered {status}: {}",
            body["detail"].as_str().unwrap_or("(no detail)")
        )
    }
}

async fn find_collection(
    client: &reqwest::Client,
    server: &str,
    key: &str,
    wanted: &str,
) -> anyhow::Result<String> {
    let collections = get(client, &format!("{server}/api/v1/collections"), key).await?;
    collections
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == wanted || c["id"] == wanted)
        .and_then(|c| c["id"].as_str().map(str::to_owned))
        .with_context(|| format!("no collection named {wanted:?} that this key can see"))
}

async fn upload(
    client: &reqwest::Client,
    server: &str,
    key: &str,
    collection: &str,
    files: Vec<PathBuf>,
) -> anyhow::Result<String> {
    let mut form = reqwest::multipart::Form::new();
    for file in &files {
        let bytes = tokio::fs::read(file)
            .await
            .with_context(|| format!("{} cannot be read", file.display()))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
    }
    let response = client
        .post(format!(
            "{server}/api/v1/collections/{collection}/documents"
        ))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .with_context(|| format!("cannot reach {server}"))?;
    let job = answer(response).await?;
    job["id"]
        .as_str()
        .map(str::to_owned)
        .context("the server's answer names no job")
}

/// A one-line progress bar on standard error, redrawn in place on a terminal and printed at
/// most every few seconds otherwise (logs).
struct Progress {
    total: u64,
    terminal: bool,
    last: Option<(u64, u64)>,
}

impl Progress {
    fn new(total: u64) -> Self {
        Self {
            total,
            terminal: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, processed: u64, failed: u64, chunks: u64) {
        if self.last == Some((processed, failed)) {
            return;
        }
        self.last = Some((processed, failed));
        let width = 30;
        let filled = (processed.min(self.total) * width / self.total.max(1)) as usize;
        let bar = format!(
            "[{}{}] {processed}/{} documents, {failed} failed, {chunks} passages",
            "#".repeat(filled),
            "-".repeat(width as usize - filled),
            self.total
        );
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(stderr, "\r{bar}");
        } else {
            let _ = writeln!(stderr, "{bar}");
        }
        let _ = stderr.flush();
    }

    fn done(&self) {
        if self.terminal {
            let _ = writeln!(std::io::stderr());
        }
    }
}
