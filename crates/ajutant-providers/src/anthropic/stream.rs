//! A streamed answer: Anthropic's server-sent events turned into chat events, with tool-use
//! blocks numbered as tool calls and a stream cut off before `message_stop` reported as such.

use std::collections::VecDeque;

use ajutant_core::model::{ChatEvent, ChatStream, ProviderError, ToolCallDelta, Usage};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;

use super::response::{ResponseBlock, WireUsage, finish_reason};
use crate::http::SseEvent;

/// One streamed event, by its `type`. Event kinds added later are skipped, as Anthropic asks
/// clients to do.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: ResponseBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: WireUsage,
    },
    MessageStop,
    Error {
        error: WireError,
    },
    /// `ping`, `content_block_stop` and anything newer.
    #[serde(other)]
    Ignored,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    id: String,
    model: String,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// Thinking, signatures, citations: nothing the gateway forwards.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageDelta {
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireError {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

/// Where a stream stands between two upstream events.
struct StreamState {
    events: BoxStream<'static, Result<SseEvent, ProviderError>>,
    /// Events decoded but not yet handed out (`message_delta` makes two).
    ready: VecDeque<ChatEvent>,
    /// The content block index of each tool call, in call order: a call's position here is
    /// the `index` its deltas carry.
    tool_blocks: Vec<u32>,
    input_tokens: u32,
    /// Nothing more is read once the message stopped or failed.
    ended: bool,
}

pub(super) fn chat_events(
    events: BoxStream<'static, Result<SseEvent, ProviderError>>,
) -> ChatStream {
    let state = StreamState {
        events,
        ready: VecDeque::new(),
        tool_blocks: Vec::new(),
        input_tokens: 0,
        ended: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.ready.pop_front() {
                return Some((Ok(event), state));
            }
            if state.ended {
                return None;
            }
            let failure = match state.events.next().await {
                // The connection closed before `message_stop`: the answer may be cut short.
                None => ProviderError::Truncated,
                Some(Err(error)) => error,
                Some(Ok(event)) => match state.handle(&event) {
                    Ok(()) => continue,
                    Err(error) => error,
                },
            };
            state.ended = true;
            return Some((Err(failure), state));
        }
    })
    .boxed()
}

impl StreamState {
    /// Decodes one upstream event into zero or more chat events.
    fn handle(&mut self, event: &SseEvent) -> Result<(), ProviderError> {
        if event.data.trim().is_empty() {
            return Ok(());
        }
        let decoded: StreamEvent = serde_json::from_str(&event.data).map_err(|error| {
            ProviderError::Malformed(format!(
                "a streamed event is not the expected JSON ({error})"
            ))
        })?;
        match decoded {
            StreamEvent::MessageStart { message } => {
                self.input_tokens = message.usage.input_tokens.unwrap_or(0);
                self.ready.push_back(ChatEvent::Start {
                    id: message.id,
                    model: message.model,
                });
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ResponseBlock::Text { text } if !text.is_empty() => {
                    self.ready.push_back(ChatEvent::Text(text));
                }
                ResponseBlock::ToolUse { id, name, .. } => {
                    self.tool_blocks.push(index);
                    self.ready.push_back(ChatEvent::ToolCall(ToolCallDelta {
                        index: self.tool_index(index)?,
                        id: Some(id),
                        name: Some(name),
                        arguments: None,
                    }));
                }
                ResponseBlock::Text { .. } | ResponseBlock::Other => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => {
                    self.ready.push_back(ChatEvent::Text(text));
                }
                BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    self.ready.push_back(ChatEvent::ToolCall(ToolCallDelta {
                        index: self.tool_index(index)?,
                        id: None,
                        name: None,
                        arguments: Some(partial_json),
                    }));
                }
                BlockDelta::TextDelta { .. }
                | BlockDelta::InputJsonDelta { .. }
                | BlockDelta::Other => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                self.ready.push_back(ChatEvent::Finish(finish_reason(
                    delta.stop_reason.as_deref(),
                )));
                self.ready.push_back(ChatEvent::Usage(Usage {
                    // Newer API versions repeat the input count here; older ones leave it out.
                    input_tokens: usage.input_tokens.unwrap_or(self.input_tokens),
                    output_tokens: usage.output_tokens.unwrap_or(0),
                }));
            }
            StreamEvent::MessageStop => self.ended = true,
            StreamEvent::Error { error } => {
                // Anthropic's HTTP status for overload is 529; anything else failed upstream
                // after the 200 was sent, which the gateway reports as a bad gateway.
                let status = if error.kind == "overloaded_error" {
                    529
                } else {
                    502
                };
                return Err(ProviderError::Status {
                    status,
                    message: error.message,
                    retry_after: None,
                });
            }
            StreamEvent::Ignored => {}
        }
        Ok(())
    }

    /// The `index` of the tool call in content block `block`: its position among the calls.
    fn tool_index(&self, block: u32) -> Result<u32, ProviderError> {
        let position = self.tool_blocks.iter().position(|b| *b == block);
        position.and_then(|p| u32::try_from(p).ok()).ok_or_else(|| {
            ProviderError::Malformed(format!(
                "tool arguments arrived for content block {block}, which is not a tool call"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn other_stream_errors_are_a_bad_gateway() {
        let mut state = StreamState {
            events: futures::stream::empty().boxed(),
            ready: VecDeque::new(),
            tool_blocks: Vec::new(),
            input_tokens: 0,
            ended: false,
        };
        let event = SseEvent {
            event: Some("error".to_owned()),
            data: json!({"type": "error", "error": {"type": "api_error", "message": "boom"}})
                .to_string(),
        };
        assert!(matches!(
            state.handle(&event),
            Err(ProviderError::Status { status: 502, .. })
        ));
    }
}
