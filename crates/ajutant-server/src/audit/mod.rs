//! The audit trail over HTTP, for those who may read it: search (paged), export as JSON Lines
//! or CSV (streamed, with the search's filters) and verification of the hash chain.

use ajutant_core::audit::AuditRecord;
use ajutant_core::audit_export::{COLUMNS, ExportedRecord};
use ajutant_store::{AuditQuery, ChainStatus};
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod checkpoints;
pub(crate) mod service;

use crate::AppState;
use crate::access::Guard;
use crate::identity::Caller;
use crate::identity::routes::rfc3339;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;
use service::AuditFilters;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(audit_list))
        .routes(routes!(audit_export))
        .routes(routes!(audit_verify))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Exact action, or a prefix ending in `.` (e.g. `auth.`).
    pub(crate) action: Option<String>,
    /// Exact actor id.
    pub(crate) actor: Option<String>,
    /// `allowed`, `denied` or `failed`.
    pub(crate) outcome: Option<String>,
    /// Exact resource.
    pub(crate) resource: Option<String>,
    /// RFC 3339; records at or after.
    pub(crate) since: Option<String>,
    /// RFC 3339; records before.
    pub(crate) until: Option<String>,
    /// The `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// 1 to 500; default 50.
    pub(crate) limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub id: String,
    pub occurred_at: String,
    pub actor_id: String,
    pub actor_name: String,
    pub actor_kind: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub client_addr: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub hash: String,
}

impl From<AuditRecord> for AuditEntry {
    fn from(record: AuditRecord) -> Self {
        Self {
            seq: record.seq,
            id: record.id.to_string(),
            occurred_at: rfc3339(record.occurred_at),
            actor_id: record.actor.id,
            actor_name: record.actor.display_name,
            actor_kind: record.actor.kind.as_str().to_owned(),
            action: record.action,
            resource: record.resource,
            outcome: record.outcome.as_str().to_owned(),
            request_id: record.origin.request_id,
            trace_id: record.origin.trace_id,
            client_addr: record.origin.client_addr,
            details: serde_json::from_str(&record.details).unwrap_or(serde_json::Value::Null),
            hash: record.hash.to_hex(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Search the audit trail, newest first, with cursor pagination. For auditors, IT operations and
/// platform admins.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, description = "A page of records, newest first", body = AuditPage), (status = 400, description = "The request is invalid", body = Problem),
        (status = 401, description = "No valid credential", body = Problem), (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn audit_list(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let filters = AuditFilters {
        action: params.action,
        actor: params.actor,
        outcome: params.outcome,
        resource: params.resource,
        since: params.since,
        until: params.until,
    };
    let (records, next_cursor) =
        service::search(&guard, filters, params.cursor.as_deref(), params.limit).await?;
    Ok(Json(AuditPage {
        items: records.into_iter().map(AuditEntry::from).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditExportParams {
    /// `jsonl` (JSON Lines, the default) or `csv`.
    format: Option<String>,
    /// Exact action, or a prefix ending in `.` (e.g. `auth.`).
    action: Option<String>,
    /// Exact actor id.
    actor: Option<String>,
    /// `allowed`, `denied` or `failed`.
    outcome: Option<String>,
    /// Exact resource.
    resource: Option<String>,
    /// RFC 3339; records at or after.
    since: Option<String>,
    /// RFC 3339; records before.
    until: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum ExportFormat {
    Jsonl,
    Csv,
}

impl ExportFormat {
    fn line(self, record: AuditRecord) -> Result<String, axum::BoxError> {
        let row = ExportedRecord::from(record);
        match self {
            Self::Jsonl => {
                let mut line = serde_json::to_string(&row)?;
                line.push('\n');
                Ok(line)
            }
            Self::Csv => Ok(csv_record(&row.csv_cells())),
        }
    }
}

fn csv_record(cells: &[impl AsRef<str>]) -> String {
    let mut line = cells
        .iter()
        .map(|cell| {
            let cell = cell.as_ref();
            if cell.contains([',', '"', '\r', '\n']) {
                format!("\"{}\"", cell.replace('"', "\"\""))
            } else {
                cell.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// Download the records the search's filters match, newest first, as JSON Lines or CSV with
/// the columns of `ajutant audit export`. The file is streamed a page of records at a time, so
/// an export of any size runs in bounded memory; records written after it started are not in
/// it. For auditors, IT operations and platform admins.
#[utoipa::path(operation_id = "export_audit", get, path = "/api/v1/audit/export", tag = "audit",
    params(AuditExportParams),
    responses((status = 200, description = "The records as a download (Content-Disposition: attachment)",
            content((String = "application/x-ndjson"), (String = "text/csv"))),
        (status = 400, description = "The request is invalid", body = Problem),
        (status = 401, description = "No valid credential", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn audit_export(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Query(params): Query<AuditExportParams>,
) -> Result<Response, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let (format, content_type, extension) = match params.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => (ExportFormat::Jsonl, "application/x-ndjson", "jsonl"),
        "csv" => (ExportFormat::Csv, "text/csv; charset=utf-8", "csv"),
        _ => {
            return Err(ApiError::BadRequest(
                "format must be jsonl or csv".to_owned(),
            ));
        }
    };
    let filters = AuditFilters {
        action: params.action,
        actor: params.actor,
        outcome: params.outcome,
        resource: params.resource,
        since: params.since,
        until: params.until,
    };
    let first = service::export(&guard, filters).await?;
    let store = state.store.clone();
    // Pages go from the newest record down, so appends during the export cannot shift them.
    let pages = futures::stream::try_unfold(Some(first), move |next| {
        let store = store.clone();
        async move {
            let Some(query) = next else {
                return Ok::<_, axum::BoxError>(None);
            };
            let records = store.audit_search(&query).await?;
            let Some(oldest) = records.last().map(|r| r.seq) else {
                return Ok(None);
            };
            let next = (records.len() as i64 == query.limit).then(|| AuditQuery {
                before_seq: Some(oldest),
                ..query.clone()
            });
            let mut chunk = String::new();
            for record in records {
                chunk.push_str(&format.line(record)?);
            }
            Ok(Some((chunk, next)))
        }
    })
    .inspect_err(|error| tracing::error!(%error, "an audit export stopped"));
    // The header goes first so an export with no records is still a valid CSV.
    let header = match format {
        ExportFormat::Csv => Some(Ok(csv_record(&COLUMNS))),
        ExportFormat::Jsonl => None,
    };
    let body = futures::stream::iter(header).chain(pages);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let today = OffsetDateTime::now_utc().date();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"ajutant-audit-{today}.{extension}\""
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerification {
    /// `intact` or `broken`.
    pub status: String,
    /// Records verified (for a broken chain, those before the break).
    pub records: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// Signed checkpoints found in place; `null` when the server holds no checkpoint key, so a
    /// rewritten and re-sealed chain could not be told apart.
    pub checkpoints: Option<usize>,
    /// For a broken chain: the first record that does not fit, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Check the audit trail's hash chain from the first record to the last.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, description = "The chain's state", body = AuditVerification), (status = 401, description = "No valid credential", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn audit_verify(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
) -> Result<Json<AuditVerification>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let status = service::verify(&guard).await?;
    let signed = state.checkpoint_key.is_some();
    Ok(Json(match status {
        ChainStatus::Intact {
            records,
            head,
            checkpoints,
        } => AuditVerification {
            status: "intact".to_owned(),
            records,
            head: Some(head.to_hex()),
            checkpoints: signed.then_some(checkpoints),
            broken_at: None,
            reason: None,
        },
        ChainStatus::Broken(broken) => AuditVerification {
            status: "broken".to_owned(),
            records: broken.seq - 1,
            head: None,
            checkpoints: None,
            broken_at: Some(broken.seq),
            reason: Some(broken.reason.to_string()),
        },
    }))
}
