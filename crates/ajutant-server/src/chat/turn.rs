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

use std::time::{Duration, Instant};

use ajutant_core::audit::{AuditEvent, Outcome};
use ajutant_core::model::{ChatEvent, ChatRequest, Passage as PromptPassage, Usage};
use ajutant_store::{Collection, Conversation, NewMessage};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

use super::{MessageView, message_view, own, prompt};
use crate::AppState;
use ajutant_core::chat::{MessageRole, MessageStatus};
use ajutant_store::Assistant;

use crate::assistants;
use crate::gateway::runtime::{Call, CallIds, RuntimeCallError};
use crate::grounding::retrieval::{self, Mode};
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

/// Longest question accepted, in characters.
const MAX_QUESTION_CHARS: usize = 32_000;
/// Characters of a cited passage kept with the citation.
const QUOTE_CHARS: usize = 400;

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
    let question = body.content.trim().to_owned();
    if question.is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::BadRequest(format!(
            "content must be 1 to {MAX_QUESTION_CHARS} characters"
        )));
    }
    let conversation = own(&state, &context, &caller, &id).await?;
    let assistant = authorize_turn(&state, &context, &caller, &conversation).await?;
    let started = Instant::now();
    let history = state.store.messages(&conversation.id).await?;
    let ids = CallIds {
        request_id: Some(context.request_id.clone()),
        trace_id: Some(context.trace_id.clone()),
    };
    let version = assistant.current_version;
    let user_message = state
        .store
        .append_message(
            &conversation.id,
            &NewMessage {
                role: MessageRole::User,
                content: question.clone(),
                status: MessageStatus::Complete,
                citations: "[]".to_owned(),
                assistant_version: Some(version),
                trace_id: Some(context.trace_id.clone()),
                request_id: Some(context.request_id.clone()),
                ..NewMessage::default()
            },
            OffsetDateTime::now_utc(),
        )
        .await?;

    let mut collections: Vec<Collection> = Vec::new();
    for collection_id in &assistant.definition.collections {
        if let Some(collection) = state.store.collection(collection_id).await? {
            collections.push(collection);
        }
    }
    let top_k = assistant
        .definition
        .top_k
        .unwrap_or(state.config.chat.default_top_k);
    let retrieved = if collections.is_empty() {
        None
    } else {
        Some(
            retrieval::retrieve(
                &state,
                &caller.principal,
                &collections,
                retrieval::Search {
                    query: &question,
                    mode: Mode::Hybrid,
                    limit: top_k,
                },
                ids.clone(),
            )
            .await?,
        )
    };
    let mode = retrieved.as_ref().map(|r| r.mode);
    let hits = retrieved.map(|r| r.hits).unwrap_or_default();
    let sources: Vec<Citation> = hits
        .iter()
        .enumerate()
        .map(|(i, hit)| Citation {
            index: i + 1,
            chunk_id: hit.passage.chunk_id,
            document_id: hit.passage.document_id.clone(),
            collection_id: hit.passage.collection_id.clone(),
            title: hit.passage.title.clone(),
            source_key: hit.passage.source_key.clone(),
            url: hit.passage.url.clone(),
            location: retrieval::location(&hit.passage),
            quote: hit.passage.text.chars().take(QUOTE_CHARS).collect(),
        })
        .collect();
    let passages: Vec<PromptPassage> = hits
        .iter()
        .enumerate()
        .map(|(i, hit)| PromptPassage {
            citation: (i + 1).to_string(),
            title: match retrieval::location(&hit.passage) {
                Some(location) => format!("{} ({location})", hit.passage.title),
                None => hit.passage.title.clone(),
            },
            text: hit.passage.text.clone(),
        })
        .collect();
    let generation = &assistant.definition.generation;
    let request = ChatRequest {
        messages: prompt::compose(
            &assistant.definition.instructions,
            &passages,
            &history,
            &question,
            state.config.chat.history_tokens,
        ),
        max_tokens: generation.max_tokens,
        temperature: generation.temperature,
        top_p: generation.top_p,
        grounding: passages,
        ..ChatRequest::default()
    };
    let turn = Turn {
        state: state.clone(),
        conversation: conversation.clone(),
        assistant_id: assistant.id.clone(),
        version,
        deployment: assistant.definition.deployment.clone(),
        sources,
        mode,
        caller: caller.clone(),
        context: context.clone(),
        started,
    };
    let opened = state
        .gateway
        .open_chat_stream(
            Call {
                state: &state,
                principal: &caller.principal,
                deployment: &assistant.definition.deployment,
                ids: &ids,
            },
            request,
        )
        .await;
    let opened = match opened {
        Ok(opened) => opened,
        Err(error) => {
            let message = error.to_string();
            turn.finish(Answer {
                text: String::new(),
                usage: Usage::default(),
                served_by: None,
                status: MessageStatus::Failed,
                error: Some(message),
            })
            .await?;
            return Err(match error {
                RuntimeCallError::Refused {
                    status,
                    message,
                    retry_after,
                } if status == StatusCode::TOO_MANY_REQUESTS => ApiError::TooManyRequests {
                    message,
                    retry_after,
                },
                RuntimeCallError::Refused { message, .. } => ApiError::Unavailable(message),
                RuntimeCallError::Upstream(error) => {
                    ApiError::Unavailable(format!("the model cannot answer now: {error}"))
                }
            });
        }
    };

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
    state.tasks.spawn(pump(turn, opened, events, done, timeout));

    if wants_stream(&headers) {
        let body = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver
                .recv()
                .await
                .map(|event| (Ok::<_, std::convert::Infallible>(event), receiver))
        });
        let response = crate::sse::response(body);
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

/// The assistant of a conversation, if the caller may still use it and it is switched on.
async fn authorize_turn(
    state: &AppState,
    context: &RequestContext,
    caller: &Caller,
    conversation: &Conversation,
) -> Result<Assistant, ApiError> {
    let assistant = assistants::service::load(state, &conversation.assistant_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no resource at {}", context.path)))?;
    if !assistant.definition.access.admits(&caller.principal) {
        // Their groups changed since the conversation began.
        state
            .record(
                caller
                    .event(
                        context,
                        "chat.turn",
                        format!("assistant/{}", assistant.id),
                        Outcome::Denied,
                    )
                    .with_details(json!({ "reason": "outside the assistant's access scope" })),
            )
            .await?;
        return Err(ApiError::NotFound(format!(
            "no resource at {}",
            context.path
        )));
    }
    let switches = state.switches.current();
    if let Some(disabled) =
        switches.blocks(Some(&assistant.id), Some(&assistant.definition.deployment))
    {
        return Err(ApiError::Unavailable(disabled.message));
    }
    Ok(assistant)
}

fn sse(event: &str, data: &Value) -> String {
    crate::sse::event(event, data)
}

/// An answer as the stream left it.
struct Answer {
    text: String,
    usage: Usage,
    served_by: Option<String>,
    status: MessageStatus,
    error: Option<String>,
}

/// What a turn needs to store and audit its answer, however the stream ends.
struct Turn {
    state: AppState,
    conversation: Conversation,
    assistant_id: String,
    version: i64,
    deployment: String,
    sources: Vec<Citation>,
    mode: Option<Mode>,
    caller: Caller,
    context: RequestContext,
    started: Instant,
}

impl Turn {
    /// Stores the answer (whatever there is of it) and audits the turn.
    async fn finish(&self, answer: Answer) -> Result<ajutant_store::Message, ApiError> {
        let Answer {
            text,
            usage,
            served_by,
            status,
            error,
        } = answer;
        let cited: Vec<&Citation> = prompt::cited(&text, self.sources.len())
            .into_iter()
            .filter_map(|n| self.sources.get(n - 1))
            .collect();
        let citations =
            serde_json::to_string(&cited).map_err(|e| ApiError::Internal(e.to_string()))?;
        let latency = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let message = self
            .state
            .store
            .append_message(
                &self.conversation.id,
                &NewMessage {
                    role: MessageRole::Assistant,
                    content: text,
                    status,
                    error: error.clone(),
                    citations,
                    assistant_version: Some(self.version),
                    deployment: Some(served_by.unwrap_or_else(|| self.deployment.clone())),
                    input_tokens: Some(i64::from(usage.input_tokens)),
                    output_tokens: Some(i64::from(usage.output_tokens)),
                    latency_ms: Some(latency),
                    trace_id: Some(self.context.trace_id.clone()),
                    request_id: Some(self.context.request_id.clone()),
                },
                OffsetDateTime::now_utc(),
            )
            .await?;
        let outcome = if status == MessageStatus::Failed {
            Outcome::Failed
        } else {
            Outcome::Allowed
        };
        self.state
            .record(
                AuditEvent::new(
                    self.caller.principal.actor(),
                    "chat.turn",
                    format!("conversation/{}", self.conversation.id),
                    outcome,
                )
                .with_origin(self.context.origin())
                .with_details(json!({
                    "assistant": self.assistant_id,
                    "assistant_version": self.version,
                    "deployment": message.deployment,
                    "message": message.id,
                    "status": status.as_str(),
                    "error": error,
                    "retrieval": self.mode,
                    "retrieved": self.sources.len(),
                    "cited": cited.iter().map(|c| c.chunk_id).collect::<Vec<_>>(),
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "latency_ms": latency,
                })),
            )
            .await?;
        Ok(message)
    }
}

/// Reads the model's stream into the response channel until it ends, fails, times out, or the
/// client goes away; then stores and audits the answer.
async fn pump(
    turn: Turn,
    opened: crate::gateway::runtime::OpenedStream,
    events: mpsc::Sender<String>,
    done: oneshot::Sender<Result<ajutant_store::Message, ApiError>>,
    timeout: Duration,
) {
    let crate::gateway::runtime::OpenedStream {
        served_by,
        mut stream,
        mut meter,
    } = opened;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let disabled = turn
        .state
        .switches
        .disabled(Some(turn.assistant_id.clone()), Some(served_by.clone()));
    tokio::pin!(disabled);
    // Set when a kill switch ended the answer: `assistant_disabled`, ...
    let mut code: Option<&'static str> = None;
    let mut text = String::new();
    let mut usage = Usage::default();
    let (status, error): (MessageStatus, Option<String>) = loop {
        tokio::select! {
            biased;
            () = events.closed() => break (MessageStatus::Partial, Some("the client went away".to_owned())),
            () = &mut deadline => break (MessageStatus::Partial, Some(format!("the answer took longer than {} s", timeout.as_secs()))),
            // A kill switch ends a running answer: the user is told, the text so far is kept.
            off = &mut disabled => {
                code = Some(off.code);
                break (MessageStatus::cut_short(&text), Some(off.message));
            }
            event = stream.next() => match event {
                None => break (MessageStatus::Complete, None),
                Some(Ok(ChatEvent::Text(delta))) => {
                    text.push_str(&delta);
                    // A full channel means a slow reader: wait for room, or notice it left.
                    if events.send(sse("delta", &json!({ "text": delta }))).await.is_err() {
                        break (MessageStatus::Partial, Some("the client went away".to_owned()));
                    }
                }
                Some(Ok(ChatEvent::Usage(counted))) => {
                    usage = counted;
                    meter.add_usage(counted);
                }
                Some(Ok(_)) => {}
                Some(Err(failure)) => {
                    break (MessageStatus::cut_short(&text), Some(format!("the model stopped: {failure}")));
                }
            },
        }
    };
    // Dropping the stream cancels the upstream call when it has not ended by itself.
    drop(stream);
    meter.end(match status {
        MessageStatus::Complete => "ok",
        MessageStatus::Failed => "failed",
        MessageStatus::Partial => "cancelled",
    });
    metrics::counter!("ajutant_chat_turns_total", "status" => status.as_str()).increment(1);
    let stored = turn
        .finish(Answer {
            text,
            usage,
            served_by: Some(served_by),
            status,
            error: error.clone(),
        })
        .await;
    match &stored {
        Ok(message) => {
            let view = message_view(message.clone());
            let event = if status == MessageStatus::Complete {
                sse("done", &json!({ "message": view }))
            } else {
                sse(
                    "error",
                    &json!({
                        "message": error,
                        "status": status.as_str(),
                        "code": code,
                        "message_id": message.id,
                    }),
                )
            };
            let _ = events.send(event).await;
        }
        Err(failure) => {
            tracing::error!(error = %failure, "cannot store a turn's answer");
            let _ = events
                .send(sse(
                    "error",
                    &json!({ "message": "the answer could not be stored", "status": "failed" }),
                ))
                .await;
        }
    }
    let _ = done.send(stored);
}
