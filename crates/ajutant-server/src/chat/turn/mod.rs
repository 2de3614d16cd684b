//! One turn of a conversation: authorize (the conversation is the caller's, the assistant's
//! scope still includes them, it and the platform are switched on) → store the question →
//! retrieve passages the caller may read → compose the prompt → stream the deployment's
//! answer → store the answer with its citations, usage, latency, assistant version and trace
//! id → audit.
//!
//! The answer is produced by a task of its own that feeds the response through a channel. When
//! the client goes away the channel closes, the task drops the model stream (which cancels the
//! upstream call) and stores what was written so far, marked `partial`. A caller that does not
//! ask for `text/event-stream` gets the finished message as JSON.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

mod persist;
mod prepare;
mod stream;

use super::{MessageView, message_view};
use crate::AppState;
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnBody {
    pub content: String,
}

/// A source as a turn cites it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Citation {
    /// The number the answer cites it by: `[1]`.
    pub index: usize,
    pub chunk_id: i64,
    pub document_id: String,
    pub collection_id: String,
    pub title: String,
    pub source_key: String,
    pub url: Option<String>,
    /// Page or section, when known.
    pub location: Option<String>,
    /// The start of the passage.
    pub quote: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TurnResult {
    pub user_message: MessageView,
    pub message: MessageView,
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// Ask the conversation's assistant a question. With `Accept: text/event-stream` the answer
/// streams as Server-Sent Events: `start` (ids and the assistant version), `citations` (the
/// retrieved sources, numbered), `delta` (text), then `done` (the stored message) or `error`.
/// Otherwise the stored messages come back as JSON once the answer is complete.
#[allow(
    clippy::too_many_arguments,
    reason = "an axum handler: one argument per extractor"
)]
#[utoipa::path(operation_id = "post_message", post, path = "/api/v1/conversations/{id}/messages", tag = "chat",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = TurnBody,
    responses((status = 200, description = "The answer: an SSE stream, or the stored messages", body = TurnResult),
        (status = 400, description = "Empty or too long", body = Problem),
        (status = 404, description = "Not found, or not the caller's", body = Problem),
        (status = 429, description = "Over the caller's model limits", body = Problem),
        (status = 503, description = "The assistant or the platform is switched off, or the model cannot answer", body = Problem)))]
pub(crate) async fn post_message(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<TurnBody>,
) -> Result<Response, ApiError> {
    let prepare::Prepared {
        turn,
        request,
        user_message,
        ids,
    } = prepare::prepare(&state, &context, &caller, &id, &body.content).await?;
    let opened = stream::open(&state, &turn, request, &ids).await?;
    let conversation = &turn.conversation;
    let version = turn.version;
    let mode = turn.mode;
    let (events, receiver) = mpsc::channel::<String>(64);
    let (done, finished) = oneshot::channel();
    let start = json!({
        "conversation_id": conversation.id,
        "user_message_id": user_message.id,
        "assistant_id": turn.assistant_id,
        "assistant_version": version,
        "deployment": opened.served_by,
        "retrieval": mode,
        "trace_id": context.trace_id,
    });
    let citations = json!({ "citations": turn.sources });
    let _ = events.try_send(sse("start", &start));
    let _ = events.try_send(sse("citations", &citations));
    let timeout = Duration::from_secs(state.config.chat.turn_timeout_secs);
    state
        .tasks
        .spawn(stream::pump(turn, opened, events, done, timeout));

    if wants_stream(&headers) {
        let body = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver
                .recv()
                .await
                .map(|event| (Ok::<_, std::convert::Infallible>(event), receiver))
        });
        // The answer is stored whatever happens to the stream; the stream itself ends when the
        // caller's credential does (and a little after the turn's own time limit).
        let check = crate::identity::still_allowed(&state, &context, &headers, &caller, None);
        let lifetime = timeout + Duration::from_secs(30);
        let response = crate::sse::response(crate::sse::guarded(
            body,
            check,
            lifetime,
            crate::sse::ended,
        ));
        return Ok(response);
    }
    // Not streaming: keep the channel drained so the answer is not cut short, then answer
    // with the stored messages.
    let drain = state.tasks.spawn(async move {
        let mut receiver = receiver;
        while receiver.recv().await.is_some() {}
    });
    let stored = finished
        .await
        .map_err(|_| ApiError::Internal("the turn ended without an answer".to_owned()))??;
    drain.abort();
    Ok(Json(TurnResult {
        user_message: message_view(user_message),
        message: message_view(stored),
    })
    .into_response())
}

fn sse(event: &str, data: &Value) -> String {
    crate::sse::event(event, data)
}
