//! `/api/v1/conversations`: a user's conversations with assistants. A conversation belongs to
//! one user and one assistant; nobody else sees it (404, and the attempt is audited). A turn
//! (`POST .../messages`, `turn.rs`) streams its answer over Server-Sent Events.

mod prompt;
pub(crate) mod turn;

use ajutant_core::chat::{MessageRole, MessageStatus};
use ajutant_store::{Conversation, Message};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) mod service;

use crate::AppState;
use crate::access::Guard;
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, rename, delete))
        .routes(routes!(export))
        .routes(routes!(turn::post_message))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: String,
    pub assistant_id: String,
    pub title: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

fn view(c: Conversation) -> ConversationView {
    ConversationView {
        id: c.id,
        assistant_id: c.assistant_id,
        title: c.title,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub seq: i64,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    /// `complete`, `partial` (the stream was cut: the caller left or the model stopped) or
    /// `failed`.
    pub status: String,
    pub error: Option<String>,
    /// The passages the answer cites, numbered as in the text.
    #[schema(value_type = Vec<Object>)]
    pub citations: Value,
    pub assistant_version: Option<i64>,
    pub deployment: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub trace_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
}

pub(crate) fn message_view(m: Message) -> MessageView {
    MessageView {
        citations: serde_json::from_str(&m.citations).unwrap_or_else(|_| json!([])),
        id: m.id,
        seq: m.seq,
        role: m.role.as_str().to_owned(),
        content: m.content,
        status: m.status.as_str().to_owned(),
        error: m.error,
        assistant_version: m.assistant_version,
        deployment: m.deployment,
        input_tokens: m.input_tokens,
        output_tokens: m.output_tokens,
        latency_ms: m.latency_ms,
        trace_id: m.trace_id,
        created_at: m.created_at,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 100, default 50.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    pub conversations: Vec<ConversationView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The caller's conversations, most recently active first.
#[utoipa::path(operation_id = "list_conversations", get, path = "/api/v1/conversations", tag = "chat", params(ListParams),
    responses((status = 200, description = "A page of conversations", body = ConversationPage),
        (status = 400, description = "Bad cursor or limit", body = Problem)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<ConversationPage>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let (page, next_cursor) = service::list(&guard, params.cursor.as_deref(), params.limit).await?;
    Ok(Json(ConversationPage {
        conversations: page.into_iter().map(view).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pub assistant_id: String,
    pub title: Option<String>,
}

/// Start a conversation with an assistant the caller may use.
#[utoipa::path(operation_id = "create_conversation", post, path = "/api/v1/conversations", tag = "chat", request_body = CreateBody,
    responses((status = 201, description = "Created", body = ConversationView),
        (status = 404, description = "No such assistant, or not usable by the caller", body = Problem)))]
async fn create(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<ConversationView>), ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let conversation = service::start(&guard, &body.assistant_id, body.title.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(view(conversation))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ConversationView,
    pub messages: Vec<MessageView>,
}

/// One of the caller's conversations with its messages.
#[utoipa::path(operation_id = "get_conversation", get, path = "/api/v1/conversations/{id}", tag = "chat",
    params(("id" = String, Path, description = "The conversation's id")),
    responses((status = 200, description = "The conversation", body = ConversationDetail),
        (status = 404, description = "Not found, or not the caller's", body = Problem)))]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let (conversation, messages) = service::read(&guard, &id).await?;
    Ok(Json(ConversationDetail {
        conversation: view(conversation),
        messages: messages.into_iter().map(message_view).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameBody {
    pub title: String,
}

/// Rename a conversation.
#[utoipa::path(operation_id = "rename_conversation", patch, path = "/api/v1/conversations/{id}", tag = "chat",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = RenameBody,
    responses((status = 200, description = "Renamed", body = ConversationView),
        (status = 404, description = "Not found, or not the caller's", body = Problem)))]
async fn rename(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<RenameBody>,
) -> Result<Json<ConversationView>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    Ok(Json(view(service::rename(&guard, &id, &body.title).await?)))
}

/// Delete a conversation and its messages.
#[utoipa::path(operation_id = "delete_conversation", delete, path = "/api/v1/conversations/{id}", tag = "chat",
    params(("id" = String, Path, description = "The conversation's id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "Not found, or not the caller's", body = Problem)))]
async fn delete(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    service::delete(&guard, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `json` (default) or `markdown`.
    pub format: Option<String>,
}

/// Export a conversation as JSON or Markdown, with its citations.
#[utoipa::path(operation_id = "export_conversation", get, path = "/api/v1/conversations/{id}/export", tag = "chat",
    params(("id" = String, Path, description = "The conversation's id"), ExportParams),
    responses((status = 200, description = "The export, as a download"),
        (status = 400, description = "Unknown format", body = Problem),
        (status = 404, description = "Not found, or not the caller's", body = Problem)))]
async fn export(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let format = params.format.as_deref().unwrap_or("json");
    if format != "json" && format != "markdown" {
        return Err(ApiError::BadRequest(
            "format must be json or markdown".to_owned(),
        ));
    }
    let guard = Guard::new(&state, &context, &caller);
    let (conversation, messages) = service::read(&guard, &id).await?;
    let messages: Vec<MessageView> = messages.into_iter().map(message_view).collect();
    let (body, content_type, extension) = if format == "json" {
        let detail = ConversationDetail {
            conversation: view(conversation),
            messages,
        };
        (
            serde_json::to_string_pretty(&detail).map_err(|e| ApiError::Internal(e.to_string()))?,
            "application/json",
            "json",
        )
    } else {
        (
            markdown(&conversation, &messages),
            "text/markdown; charset=utf-8",
            "md",
        )
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"conversation-{id}.{extension}\""
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

fn markdown(conversation: &Conversation, messages: &[MessageView]) -> String {
    let mut out = format!(
        "# {}\n\nAssistant: `{}`. Started {}.\n",
        conversation.title,
        conversation.assistant_id,
        conversation
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    for message in messages {
        let who = if message.role == MessageRole::User.as_str() {
            "You"
        } else {
            "Assistant"
        };
        out.push_str(&format!("\n## {who}\n\n{}\n", message.content.trim()));
        if message.status != MessageStatus::Complete.as_str() {
            out.push_str(&format!("\n_({})_\n", message.status));
        }
        if let Some(citations) = message.citations.as_array()
            && !citations.is_empty()
        {
            out.push_str("\nSources:\n");
            for citation in citations {
                let index = citation["index"].as_u64().unwrap_or(0);
                let title = citation["title"].as_str().unwrap_or("");
                let location = citation["location"]
                    .as_str()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default();
                out.push_str(&format!("- [{index}] {title}{location}\n"));
            }
        }
    }
    out
}
