//! A turn's answer as it streams: the model's stream opened through the gateway (a refusal
//! stores a failed answer and becomes the response's error), then pumped into the response
//! channel until it ends, fails, times out, is switched off, or the client goes away.

use std::time::Duration;

use ajutant_core::chat::MessageStatus;
use ajutant_core::model::{ChatEvent, ChatRequest, Usage};
use axum::http::StatusCode;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::persist::{Answer, Turn};
use super::sse;
use crate::AppState;
use crate::chat::message_view;
use crate::gateway::runtime::{Call, CallIds, OpenedStream, RuntimeCallError};
use crate::problem::ApiError;

/// Opens the model's stream for `turn`; on a refusal the failed answer is stored first.
pub(super) async fn open(
    state: &AppState,
    turn: &Turn,
    request: ChatRequest,
    ids: &CallIds,
) -> Result<OpenedStream, ApiError> {
    let opened = state
        .gateway
        .open_chat_stream(
            Call {
                state,
                principal: &turn.caller.principal,
                deployment: &turn.deployment,
                ids,
            },
            request,
        )
        .await;
    match opened {
        Ok(opened) => Ok(opened),
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
            Err(match error {
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
            })
        }
    }
}

/// Reads the model's stream into the response channel until it ends, fails, times out, or the
/// client goes away; then stores and audits the answer.
pub(super) async fn pump(
    turn: Turn,
    opened: OpenedStream,
    events: mpsc::Sender<String>,
    done: oneshot::Sender<Result<ajutant_store::Message, ApiError>>,
    timeout: Duration,
) {
    let OpenedStream {
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
