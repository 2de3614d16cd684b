//! The notification outbox as IT operations see it: what was sent, what is waiting, and the
//! dead letters (sends that failed every attempt), which can be put back in the queue once the
//! receiver is fixed.

use ajutant_core::audit::Outcome;
use ajutant_core::policy::Action;
use ajutant_store::Notification;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::identity::Caller;
use crate::identity::access::authorize;
use crate::paging;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// Also the `webhook-id` receivers see.
    pub id: String,
    pub target: String,
    pub event: String,
    /// The incident it announces.
    pub subject: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub next_attempt_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<OffsetDateTime>,
}

fn view(n: Notification) -> NotificationView {
    NotificationView {
        id: n.id,
        target: n.target,
        event: n.event,
        subject: n.subject,
        status: n.status,
        attempts: n.attempts,
        last_error: n.last_error,
        next_attempt_at: n.next_attempt_at,
        created_at: n.created_at,
        finished_at: n.finished_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub notifications: Vec<NotificationView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    /// `pending`, `delivered` or `dead` (dead letters).
    pub status: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 100, default 50.
    pub limit: Option<i64>,
}

/// Notifications to IT operations' webhooks, newest first.
#[utoipa::path(operation_id = "list_notifications", get, path = "/api/v1/ops/notifications", tag = "operations",
    params(NotificationParams),
    responses((status = 200, description = "A page of notifications", body = NotificationPage),
        (status = 400, description = "Bad filter, cursor or limit", body = Problem),
        (status = 404, description = "Not for the caller", body = Problem)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Query(params): Query<NotificationParams>,
) -> Result<Json<NotificationPage>, ApiError> {
    authorize(
        &state,
        &context,
        &caller,
        Action::HandleIncidents,
        "notifications",
    )
    .await?;
    if let Some(status) = params.status.as_deref()
        && !["pending", "delivered", "dead"].contains(&status)
    {
        return Err(ApiError::BadRequest(
            "status must be pending, delivered or dead".to_owned(),
        ));
    }
    let (before, limit) = paging::window(params.cursor.as_deref(), params.limit)?;
    let rows = state
        .store
        .notifications(params.status.as_deref(), before, limit + 1)
        .await?;
    let (rows, next_cursor) = paging::page(rows, limit, |n: &Notification| {
        (n.created_at, n.id.as_str())
    });
    Ok(Json(NotificationPage {
        notifications: rows.into_iter().map(view).collect(),
        next_cursor,
    }))
}

/// Puts a dead letter back in the queue, with a fresh set of attempts.
#[utoipa::path(operation_id = "retry_notification", post, path = "/api/v1/ops/notifications/{id}/retry", tag = "operations",
    params(("id" = String, Path, description = "The notification's id")),
    responses((status = 200, description = "Queued again", body = NotificationView),
        (status = 404, description = "Not found, or not for the caller", body = Problem),
        (status = 409, description = "Not a dead letter", body = Problem)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<NotificationView>, ApiError> {
    let resource = format!("notification/{id}");
    authorize(
        &state,
        &context,
        &caller,
        Action::HandleIncidents,
        &resource,
    )
    .await?;
    if !state
        .store
        .requeue_notification(&id, OffsetDateTime::now_utc())
        .await?
    {
        return Err(match state.store.notification(&id).await? {
            None => ApiError::NotFound(format!("no notification {id}")),
            Some(n) => ApiError::Conflict(format!("the notification is {}, not dead", n.status)),
        });
    }
    state.notifier.poke();
    state
        .record(
            caller
                .event(&context, "notification.retry", resource, Outcome::Allowed)
                .with_details(json!({})),
        )
        .await?;
    let queued = state
        .store
        .notification(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no notification {id}")))?;
    Ok(Json(view(queued)))
}
