//! Incidents (opened by escalated feedback) and IT operations' live feed. An incident moves
//! open → acknowledged → resolved (and may be reopened); every change, assignment, note and
//! action taken is kept on its timeline. The feed is Server-Sent Events of the operations bus,
//! so it shows what happens on any instance.

use std::convert::Infallible;
use std::time::Duration;

use ajutant_store::{Incident, IncidentEvent};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

pub(crate) mod service;

use super::bus::OpsEvent;
use super::switches::switch_view;
use crate::AppState;
use crate::access::Guard;
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

/// A comment line sent on an idle feed, so proxies and clients keep the connection.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The longest one connection to the feed stays open; the browser's EventSource reconnects.
const FEED_LIFETIME: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentView {
    pub id: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    pub assignee: Option<String>,
    pub assistant_id: String,
    pub assistant_version: i64,
    pub deployment: Option<String>,
    pub message_id: String,
    pub conversation_id: String,
    pub trace_id: Option<String>,
    pub categories: Vec<String>,
    /// The reporter ticked "serious".
    pub serious: bool,
    /// The reporter's principal id and name, to follow up with them.
    pub reported_by: String,
    pub reported_by_name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub opened_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub acknowledged_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub resolved_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

pub(crate) fn incident_view(incident: Incident) -> IncidentView {
    IncidentView {
        categories: serde_json::from_str(&incident.categories).unwrap_or_default(),
        id: incident.id,
        status: incident.status.as_str().to_owned(),
        assignee: incident.assignee,
        assistant_id: incident.assistant_id,
        assistant_version: incident.assistant_version,
        deployment: incident.deployment,
        message_id: incident.message_id,
        conversation_id: incident.conversation_id,
        trace_id: incident.trace_id,
        serious: incident.serious,
        reported_by: incident.reported_by,
        reported_by_name: incident.reported_by_name,
        opened_at: incident.opened_at,
        acknowledged_at: incident.acknowledged_at,
        resolved_at: incident.resolved_at,
        updated_at: incident.updated_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// `opened`, `acknowledged`, `resolved`, `reopened`, `assigned`, `note`, `action` or
    /// `feedback_changed`.
    pub kind: String,
    pub text: Option<String>,
    pub actor_id: String,
    pub actor_name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
}

fn timeline_entry(event: IncidentEvent) -> TimelineEntry {
    TimelineEntry {
        kind: event.kind.as_str().to_owned(),
        text: event.text,
        actor_id: event.actor_id,
        actor_name: event.actor_name,
        at: event.created_at,
    }
}

/// What the reporter said and what they judged.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportedFeedback {
    pub helpful: Option<bool>,
    pub time_saved_minutes: Option<i64>,
    pub categories: Vec<String>,
    pub comment: Option<String>,
    pub question: String,
    pub answer: String,
    #[schema(value_type = Vec<Object>)]
    pub citations: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: IncidentView,
    pub feedback: Option<ReportedFeedback>,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentPage {
    pub incidents: Vec<IncidentView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentParams {
    /// `open`, `acknowledged` or `resolved`.
    pub status: Option<String>,
    pub assistant: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 100, default 50.
    pub limit: Option<i64>,
}

/// Incidents, newest first.
#[utoipa::path(operation_id = "list_incidents", get, path = "/api/v1/ops/incidents", tag = "operations",
    params(IncidentParams),
    responses((status = 200, description = "A page of incidents", body = IncidentPage),
        (status = 400, description = "Bad filter, cursor or limit", body = Problem),
        (status = 404, description = "Not for the caller", body = Problem)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Query(params): Query<IncidentParams>,
) -> Result<Json<IncidentPage>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let filter = service::Filter {
        status: params.status.as_deref(),
        assistant: params.assistant.as_deref(),
        cursor: params.cursor.as_deref(),
        limit: params.limit,
    };
    let (rows, next_cursor) = service::list(&guard, filter).await?;
    Ok(Json(IncidentPage {
        incidents: rows.into_iter().map(incident_view).collect(),
        next_cursor,
    }))
}

pub(crate) fn detail_view(detail: service::Detail) -> IncidentDetail {
    let feedback = detail.feedback.map(|f| ReportedFeedback {
        categories: f.category_list(),
        helpful: f.helpful,
        time_saved_minutes: f.time_saved_minutes,
        comment: f.comment,
        question: f.question,
        answer: f.answer,
        citations: serde_json::from_str(&f.citations).unwrap_or(Value::Array(Vec::new())),
    });
    IncidentDetail {
        incident: incident_view(detail.incident),
        feedback,
        timeline: detail.timeline.into_iter().map(timeline_entry).collect(),
    }
}

/// One incident with the feedback that opened it and its timeline.
#[utoipa::path(operation_id = "get_incident", get, path = "/api/v1/ops/incidents/{id}", tag = "operations",
    params(("id" = String, Path, description = "The incident's id")),
    responses((status = 200, description = "The incident", body = IncidentDetail),
        (status = 404, description = "Not found, or not for the caller", body = Problem)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    Ok(Json(detail_view(service::get(&guard, &id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    /// `acknowledged`, `resolved`, or `open` to reopen.
    pub status: Option<String>,
    /// Who handles it; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    pub assignee: Option<Option<String>>,
    /// A note for the timeline.
    pub note: Option<String>,
    /// An action taken, for the timeline (e.g. "assistant killed", "source withdrawn").
    pub action: Option<String>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Acknowledge, resolve or reopen an incident, assign it, or add a note or an action taken.
#[utoipa::path(operation_id = "change_incident", patch, path = "/api/v1/ops/incidents/{id}", tag = "operations",
    params(("id" = String, Path, description = "The incident's id")),
    request_body = ChangeBody,
    responses((status = 200, description = "The incident after the change", body = IncidentDetail),
        (status = 400, description = "Invalid", body = Problem),
        (status = 404, description = "Not found, or not for the caller", body = Problem),
        (status = 409, description = "Not allowed from its current status", body = Problem)))]
pub(crate) async fn change(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ChangeBody>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let asked = service::Change {
        status: body.status.as_deref(),
        assignee: body.assignee.as_ref().map(Option::as_deref),
        note: body.note.as_deref(),
        action: body.action.as_deref(),
    };
    Ok(Json(detail_view(
        service::change(&guard, &id, asked).await?,
    )))
}

use crate::sse::event as sse;

/// The live feed for IT operations, as Server-Sent Events: `ready` once subscribed, then
/// `escalation` (an incident opened, with the incident), `incident` (one changed) and `switch`
/// (a kill switch flipped), from every instance; `lagged` when this client fell behind and
/// should reload the lists; `ended` (with `reason`: `signed_out`, `not_allowed`, `lifetime`)
/// when the caller may no longer follow it, checked every second, or after an hour.
#[utoipa::path(operation_id = "escalation_stream", get, path = "/api/v1/ops/escalations/stream", tag = "operations",
    responses((status = 200, description = "text/event-stream"),
        (status = 404, description = "Not for the caller", body = Problem)))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    service::follow(&Guard::new(&state, &context, &caller)).await?;
    let still_allowed =
        crate::identity::still_allowed(&state, &context, &headers, &caller, Some(service::FOLLOW));
    let events = state.bus.subscribe();
    let ready = sse("ready", &json!({ "trace_id": context.trace_id }));
    let body = futures::stream::once(async move { Ok::<_, Infallible>(ready) }).chain(
        futures::stream::unfold((state, events), |(state, mut events)| async move {
            loop {
                let next = tokio::time::timeout(KEEP_ALIVE, events.recv()).await;
                let text = match next {
                    Err(_) => Some(": keep-alive\n\n".to_owned()),
                    Ok(Ok(event)) => render(&state, &event).await,
                    Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                        Some(sse("lagged", &json!({ "missed": missed })))
                    }
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                };
                if let Some(text) = text {
                    return Some((Ok(text), (state, events)));
                }
            }
        }),
    );
    Ok(crate::sse::response(crate::sse::guarded(
        body,
        still_allowed,
        FEED_LIFETIME,
        crate::sse::ended,
    )))
}

/// An operations event as the feed shows it: the incident or switch as it is now.
async fn render(state: &AppState, event: &OpsEvent) -> Option<String> {
    let rendered = match event.kind.as_str() {
        "escalation" | "incident" => state
            .store
            .incident(&event.subject)
            .await
            .map(|found| found.map(|i| sse(&event.kind, &incident_view(i)))),
        "switch" => {
            let (target, id) = event
                .subject
                .split_once('/')
                .unwrap_or((&event.subject, ""));
            state
                .store
                .kill_switch(target, id)
                .await
                .map(|found| found.map(|s| sse("switch", &switch_view(s))))
        }
        _ => Ok(None),
    };
    rendered.unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot read what an operations event is about");
        None
    })
}
