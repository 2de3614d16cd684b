//! The audit trail for auditors, IT operations and admins: search and page through the records
//! with the JSON API's filters, export what the search finds, and check the hash chain (the
//! check runs in the browser through `/api/v1/audit/verify`, `static/audit.js`).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::AppState;
use crate::access::Guard;
use crate::audit::service::AuditFilters;
use crate::audit::{self, AuditEntry};
use crate::problem::ApiError;
use crate::request::RequestContext;
use crate::web::page::{Layout, PageError, Section, Viewer, render, require};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/console/audit", get(audit))
}

/// The search form's fields, as the browser sends them (empty fields included).
#[derive(Debug, Default, Deserialize)]
struct Search {
    action: Option<String>,
    actor: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
}

/// The filters as the API takes them, each present only when given.
#[derive(Debug, Clone, Default)]
struct Filters {
    action: Option<String>,
    actor: Option<String>,
    outcome: Option<String>,
    /// RFC 3339.
    since: Option<String>,
}

impl Filters {
    fn of(search: &Search) -> Self {
        let given = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty() && *v != "any")
                .map(str::to_owned)
        };
        Self {
            action: given(&search.action),
            actor: given(&search.actor),
            outcome: given(&search.outcome),
            since: given(&search.since).map(|since| rfc3339_since(&since)),
        }
    }

    /// The filters as query pairs, for the pager and the export links.
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("action", &self.action),
            ("actor", &self.actor),
            ("outcome", &self.outcome),
            ("since", &self.since),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }

    fn link(&self, path: &str, extra: &[(&str, &str)]) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in extra.iter().copied().chain(self.pairs()) {
            query.append_pair(name, value);
        }
        let query = query.finish();
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        }
    }
}

/// `Since` as the API wants it. The form's date field gives a day (taken as midnight UTC), a
/// date-time field a local time without zone (taken as UTC); RFC 3339 passes as it is, and
/// anything else goes to the API unchanged for it to refuse with its own message.
fn rfc3339_since(text: &str) -> String {
    if OffsetDateTime::parse(text, &Rfc3339).is_ok() {
        return text.to_owned();
    }
    let day = format_description!("[year]-[month]-[day]");
    let minute = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let second = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let at = Date::parse(text, day)
        .map(Date::midnight)
        .or_else(|_| PrimitiveDateTime::parse(text, minute))
        .or_else(|_| PrimitiveDateTime::parse(text, second));
    match at.ok().and_then(|at| at.assume_utc().format(&Rfc3339).ok()) {
        Some(rfc3339) => rfc3339,
        None => text.to_owned(),
    }
}

/// One record as the table shows it.
struct Row {
    entry: AuditEntry,
    /// The details JSON, indented for reading.
    details: String,
}

impl Row {
    fn badge(&self) -> &'static str {
        match self.entry.outcome.as_str() {
            "allowed" => "ok",
            "denied" => "serious",
            _ => "failed",
        }
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    /// The form's values as typed, to show them again.
    action: String,
    actor: String,
    outcome: String,
    since: String,
    /// A filter the API refused, instead of results.
    error: Option<String>,
    rows: Vec<Row>,
    next_page: Option<String>,
    first_page: Option<String>,
    export_jsonl: String,
    export_csv: String,
}

impl AuditPage {
    fn outcome_is(&self, value: &str) -> bool {
        self.outcome == value
    }
}

/// `/console/audit`: the newest records matching the filters, a page at a time.
async fn audit(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
    Query(search): Query<Search>,
) -> Result<Response, PageError> {
    require(&viewer, Section::Audit)?;
    let filters = Filters::of(&search);
    let cursor = search.cursor.clone().filter(|c| !c.is_empty());
    let query = AuditFilters {
        action: filters.action.clone(),
        actor: filters.actor.clone(),
        outcome: filters.outcome.clone(),
        resource: None,
        since: filters.since.clone(),
        until: None,
    };
    let guard = Guard::new(&state, &context, &viewer.caller);
    let found = audit::service::search(&guard, query, cursor.as_deref(), None).await;
    // A filter the API refuses is shown beside the form, not as an error page.
    let (rows, next_cursor, error) = match found {
        Ok((records, next_cursor)) => {
            let rows = records
                .into_iter()
                .map(AuditEntry::from)
                .map(|entry| Row {
                    details: serde_json::to_string_pretty(&entry.details).unwrap_or_default(),
                    entry,
                })
                .collect();
            (rows, next_cursor, None)
        }
        Err(ApiError::BadRequest(message)) => (Vec::new(), None, Some(message)),
        Err(other) => return Err(other.into()),
    };
    let page = AuditPage {
        layout: Layout::new(&viewer, Section::Audit.title(), Section::Audit.path()),
        action: search.action.unwrap_or_default(),
        actor: search.actor.unwrap_or_default(),
        outcome: filters.outcome.clone().unwrap_or_default(),
        since: search.since.unwrap_or_default(),
        next_page: next_cursor.map(|c| filters.link(Section::Audit.path(), &[("cursor", &c)])),
        first_page: cursor.map(|_| filters.link(Section::Audit.path(), &[])),
        export_jsonl: filters.link("/api/v1/audit/export", &[("format", "jsonl")]),
        export_csv: filters.link("/api/v1/audit/export", &[("format", "csv")]),
        rows,
        error,
    };
    if page.error.is_some() {
        return Ok((StatusCode::BAD_REQUEST, render(&page)).into_response());
    }
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_day_a_local_time_or_rfc3339() {
        assert_eq!(rfc3339_since("2026-05-01"), "2026-05-01T00:00:00Z");
        assert_eq!(rfc3339_since("2026-05-01T12:30"), "2026-05-01T12:30:00Z");
        assert_eq!(rfc3339_since("2026-05-01T12:30:15"), "2026-05-01T12:30:15Z");
        assert_eq!(
            rfc3339_since("2026-05-01T12:30:00+02:00"),
            "2026-05-01T12:30:00+02:00"
        );
        assert_eq!(rfc3339_since("yesterday"), "yesterday");
    }

    #[test]
    fn links_keep_the_filters_and_leave_out_empty_ones() {
        let filters = Filters::of(&Search {
            action: Some("auth.".to_owned()),
            actor: Some(String::new()),
            outcome: Some("any".to_owned()),
            since: Some("2026-05-01".to_owned()),
            cursor: None,
        });
        assert_eq!(
            filters.link("/console/audit", &[("cursor", "42")]),
            "/console/audit?cursor=42&action=auth.&since=2026-05-01T00%3A00%3A00Z"
        );
        assert_eq!(Filters::default().link("/x", &[]), "/x");
    }
}
