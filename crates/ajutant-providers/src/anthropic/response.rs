//! A whole (non-streamed) answer: Anthropic's message, its content blocks and usage, read into
//! the vendor-neutral response.

use ajutant_core::model::{ChatResponse, FinishReason, ToolCall, Usage};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub(super) struct WireResponse {
    id: String,
    model: String,
    content: Vec<ResponseBlock>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

/// A content block of the answer, whole or as a streamed block starts (text then empty, input
/// then `{}`). Blocks the gateway has no place for (thinking, server tools) are dropped.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ResponseBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub(super) input_tokens: Option<u32>,
    #[serde(default)]
    pub(super) output_tokens: Option<u32>,
}

impl WireResponse {
    pub(super) fn into_response(self) -> ChatResponse {
        let mut text: Option<String> = None;
        let mut tool_calls = Vec::new();
        for block in self.content {
            match block {
                // Anthropic splits one answer into several text blocks (around citations, for
                // instance); they read as one text only when joined as they are.
                ResponseBlock::Text { text: piece } => {
                    text.get_or_insert_default().push_str(&piece)
                }
                ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments: input.to_string(),
                }),
                ResponseBlock::Other => {}
            }
        }
        ChatResponse {
            id: self.id,
            model: self.model,
            content: text,
            tool_calls,
            finish_reason: finish_reason(self.stop_reason.as_deref()),
            usage: Usage {
                input_tokens: self.usage.input_tokens.unwrap_or(0),
                output_tokens: self.usage.output_tokens.unwrap_or(0),
            },
        }
    }
}

pub(super) fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
        None => FinishReason::Other("unknown".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        let cases = [
            (Some("end_turn"), FinishReason::Stop),
            (Some("stop_sequence"), FinishReason::Stop),
            (Some("max_tokens"), FinishReason::Length),
            (Some("tool_use"), FinishReason::ToolCalls),
            (Some("refusal"), FinishReason::ContentFilter),
            (
                Some("pause_turn"),
                FinishReason::Other("pause_turn".to_owned()),
            ),
            (None, FinishReason::Other("unknown".to_owned())),
        ];
        for (stop_reason, expected) in cases {
            assert_eq!(finish_reason(stop_reason), expected, "{stop_reason:?}");
        }
    }
}
