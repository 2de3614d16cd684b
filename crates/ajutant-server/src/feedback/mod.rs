//! Feedback on answers. The conversation's owner gives it (one per answer, editable); it is
//! stored with what was judged (question, answer, citations, assistant version, deployment,
//! trace id) and goes to the assistant's owners' inbox. Feedback that the `[feedback]` rules
//! call serious also escalates: an incident, the operations feed and one outbox row per
//! webhook, written in the same transaction as the feedback. Nothing here is sent to a model.

pub(crate) mod analytics;
mod service;

use ajutant_store::Feedback;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::access::Guard;
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(give, mine))
        .routes(routes!(inbox))
        .routes(routes!(figures))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    /// Was the answer helpful?
    pub helpful: Option<bool>,
    /// Minutes the answer saved, 0 to 1440.
    pub time_saved_minutes: Option<i64>,
    /// What went wrong: inaccurate, incomplete, outdated_source, unhelpful, factual_error,
    /// ethical_concern, harmful_content, explainability, privacy.
    #[serde(default)]
    pub categories: Vec<String>,
    pub comment: Option<String>,
    /// "Report a serious issue": escalates to IT operations.
    #[serde(default)]
    pub serious: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackView {
    pub id: String,
    pub message_id: String,
    pub assistant_id: String,
    pub assistant_version: i64,
    pub helpful: Option<bool>,
    pub time_saved_minutes: Option<i64>,
    pub categories: Vec<String>,
    pub comment: Option<String>,
    pub serious: bool,
    /// Sent to IT operations; `incident_id` names the incident.
    pub escalated: bool,
    pub incident_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

fn view(feedback: Feedback, incident_id: Option<String>) -> FeedbackView {
    FeedbackView {
        categories: feedback.category_list(),
        id: feedback.id,
        message_id: feedback.message_id,
        assistant_id: feedback.assistant_id,
        assistant_version: feedback.assistant_version,
        helpful: feedback.helpful,
        time_saved_minutes: feedback.time_saved_minutes,
        comment: feedback.comment,
        serious: feedback.serious,
        escalated: feedback.escalated,
        incident_id,
        created_at: feedback.created_at,
        updated_at: feedback.updated_at,
    }
}

/// Give (or change) feedback on an answer in one of the caller's conversations. Feedback
/// flagged serious, or naming a category the organisation treats as serious, also escalates
/// to IT operations: the answer says so with the incident's id.
#[allow(
    clippy::too_many_arguments,
    reason = "an axum handler: one argument per extractor"
)]
#[utoipa::path(operation_id = "give_feedback", post, path = "/api/v1/messages/{id}/feedback", tag = "feedback",
    params(("id" = String, Path, description = "The answer's message id")),
    request_body = FeedbackBody,
    responses((status = 201, description = "Given", body = FeedbackView),
        (status = 200, description = "Changed: it replaced the caller's earlier feedback", body = FeedbackView),
        (status = 400, description = "Invalid, or not an answer", body = Problem),
        (status = 404, description = "Not found, or not the caller's", body = Problem)))]
async fn give(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<FeedbackBody>,
) -> Result<(StatusCode, Json<FeedbackView>), ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let verdict = service::Verdict {
        helpful: body.helpful,
        time_saved_minutes: body.time_saved_minutes,
        categories: &body.categories,
        comment: body.comment.as_deref(),
        serious: body.serious,
    };
    let given = service::give(&guard, &id, verdict).await?;
    let status = if given.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(given.feedback, given.incident_id))))
}

/// The caller's own feedback on an answer.
#[utoipa::path(operation_id = "get_my_feedback", get, path = "/api/v1/messages/{id}/feedback", tag = "feedback",
    params(("id" = String, Path, description = "The answer's message id")),
    responses((status = 200, description = "The caller's feedback", body = FeedbackView),
        (status = 404, description = "None given, or not the caller's answer", body = Problem)))]
pub(crate) async fn mine(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<FeedbackView>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let (feedback, incident_id) = service::mine(&guard, &id).await?;
    Ok(Json(view(feedback, incident_id)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    pub helpful: Option<bool>,
    /// Only feedback naming this category.
    pub category: Option<String>,
    pub serious: Option<bool>,
    /// Only feedback that went (or did not go) to IT operations.
    pub escalated: Option<bool>,
    /// Only feedback on answers from this assistant version.
    pub version: Option<i64>,
    /// First day, `YYYY-MM-DD` (UTC).
    pub from: Option<String>,
    /// Last day, inclusive.
    pub to: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 100, default 50.
    pub limit: Option<i64>,
}

/// Feedback as an assistant's owners see it: what was judged and what was said, without who
/// said it (people speak more freely when their name is not attached; IT operations see the
/// reporter of an escalation on its incident).
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxItem {
    pub id: String,
    pub message_id: String,
    pub assistant_version: i64,
    pub deployment: Option<String>,
    pub trace_id: Option<String>,
    pub question: String,
    /// Empty when withheld (see `answer_withheld`).
    pub answer: String,
    /// Only the cited documents the viewer may read.
    #[schema(value_type = Vec<Object>)]
    pub citations: Value,
    /// The answer cites documents the viewer may not read (or that are gone), so neither it
    /// nor those citations are shown.
    pub answer_withheld: bool,
    /// How many citations were left out.
    pub withheld_citations: usize,
    pub helpful: Option<bool>,
    pub time_saved_minutes: Option<i64>,
    pub categories: Vec<String>,
    pub comment: Option<String>,
    pub serious: bool,
    pub escalated: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    pub next_cursor: Option<String>,
}

/// An assistant's feedback inbox, newest first. For its owners and platform admins.
#[utoipa::path(operation_id = "assistant_feedback_inbox", get, path = "/api/v1/assistants/{id}/feedback", tag = "feedback",
    params(("id" = String, Path, description = "The assistant's id"), InboxParams),
    responses((status = 200, description = "A page of feedback", body = InboxPage),
        (status = 400, description = "Bad filter, cursor or limit", body = Problem),
        (status = 404, description = "Not found, or not the caller's to read", body = Problem)))]
pub(crate) async fn inbox(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<InboxParams>,
) -> Result<Json<InboxPage>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    Ok(Json(inbox_page(&guard, &id, &params).await?))
}

/// A page of the assistant's inbox, as the API and the console show it.
pub(crate) async fn inbox_page(
    guard: &Guard<'_>,
    id: &str,
    params: &InboxParams,
) -> Result<InboxPage, ApiError> {
    let filter = service::InboxFilter {
        helpful: params.helpful,
        category: params.category.as_deref(),
        serious: params.serious,
        escalated: params.escalated,
        version: params.version,
        from: params.from.as_deref(),
        to: params.to.as_deref(),
        cursor: params.cursor.as_deref(),
        limit: params.limit,
    };
    let (rows, next_cursor) = service::inbox(guard, id, filter).await?;
    Ok(InboxPage {
        items: rows.into_iter().map(inbox_item).collect(),
        next_cursor,
    })
}

fn inbox_item(entry: service::InboxEntry) -> InboxItem {
    let f = entry.feedback;
    InboxItem {
        answer_withheld: entry.withheld_citations > 0,
        withheld_citations: entry.withheld_citations,
        categories: f.category_list(),
        citations: serde_json::from_str(&f.citations).unwrap_or(Value::Array(Vec::new())),
        id: f.id,
        message_id: f.message_id,
        assistant_version: f.assistant_version,
        deployment: f.deployment,
        trace_id: f.trace_id,
        question: f.question,
        answer: f.answer,
        helpful: f.helpful,
        time_saved_minutes: f.time_saved_minutes,
        comment: f.comment,
        serious: f.serious,
        escalated: f.escalated,
        created_at: f.created_at,
        updated_at: f.updated_at,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsParams {
    /// First day, `YYYY-MM-DD` (UTC); default: 30 days before `to`.
    pub from: Option<String>,
    /// Last day, inclusive; default: today.
    pub to: Option<String>,
    /// `day` (default) or `week`.
    pub bucket: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Analytics {
    pub assistant_id: String,
    pub from: String,
    pub to: String,
    pub bucket: String,
    #[serde(flatten)]
    pub breakdown: analytics::Breakdown,
}

/// An assistant's feedback figures: helpful rate, time saved (total and median), counts per
/// category, by version and over time. For its owners and platform admins.
#[utoipa::path(operation_id = "assistant_feedback_analytics", get, path = "/api/v1/assistants/{id}/feedback/analytics", tag = "feedback",
    params(("id" = String, Path, description = "The assistant's id"), AnalyticsParams),
    responses((status = 200, description = "The figures", body = Analytics),
        (status = 400, description = "Bad dates or bucket", body = Problem),
        (status = 404, description = "Not found, or not the caller's to read", body = Problem)))]
pub(crate) async fn figures(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<AnalyticsParams>,
) -> Result<Json<Analytics>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    Ok(Json(analytics_view(&guard, id, &params).await?))
}

/// The assistant's figures, as the API and the console show them.
pub(crate) async fn analytics_view(
    guard: &Guard<'_>,
    id: String,
    params: &AnalyticsParams,
) -> Result<Analytics, ApiError> {
    let period = service::Period {
        from: params.from.as_deref(),
        to: params.to.as_deref(),
        bucket: params.bucket.as_deref(),
    };
    let figures = service::figures(guard, &id, period).await?;
    Ok(Analytics {
        assistant_id: id,
        from: figures.from.to_string(),
        to: figures.to.to_string(),
        bucket: figures.bucket.to_owned(),
        breakdown: figures.breakdown,
    })
}
