//! The notification outbox as IT operations see it: what was sent, what is waiting, and the
//! dead letters (sends that failed every attempt), which can be put back in the queue once the
//! receiver is fixed.

use ajutant_store::Notification;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

pub(crate) mod service;

use crate::AppState;
use crate::access::Guard;
use crate::identity::Caller;
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

pub(crate) fn view(n: Notification) -> NotificationView {
    NotificationView {
        id: n.id,
        target: n.target,
        event: n.event,
        subject: n.subject,
        status: n.status.as_str().to_owned(),
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
    let guard = Guard::new(&state, &context, &caller);
    let (rows, next_cursor) = service::list(
        &guard,
        params.status.as_deref(),
        params.cursor.as_deref(),
        params.limit,
    )
    .await?;
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
    let guard = Guard::new(&state, &context, &caller);
    Ok(Json(view(service::retry(&guard, &id).await?)))
}
