//! Anthropic's request: system text hoisted, turns merged to alternate, tool calls and results
//! as content blocks, images as base64 blocks, and what Anthropic cannot do refused plainly.

use ajutant_core::model::{
    ChatMessage, ChatRequest, Content, MessageRole, ProviderError, Tool, ToolCall, ToolChoice,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::DEFAULT_MAX_TOKENS;

#[derive(Debug, Serialize)]
pub(super) struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Debug, Serialize)]
struct WireMessage {
    role: &'static str,
    content: Vec<Block>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<Block>,
    },
}

#[derive(Debug, Serialize)]
struct ImageSource {
    #[serde(rename = "type")]
    kind: &'static str,
    media_type: String,
    data: String,
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: Value,
}

pub(super) fn wire_request<'a>(
    request: &'a ChatRequest,
    deployment_model: &'a str,
    stream: bool,
) -> Result<WireRequest<'a>, ProviderError> {
    check_response_format(request.response_format.as_ref())?;
    let (system, messages) = wire_messages(&request.messages)?;
    let model = if request.model.is_empty() {
        deployment_model
    } else {
        &request.model
    };
    let tools: Vec<WireTool<'a>> = request.tools.iter().map(wire_tool).collect();
    // Anthropic rejects a tool_choice that comes without tools.
    let tool_choice = if tools.is_empty() {
        None
    } else {
        request.tool_choice.as_ref().map(wire_tool_choice)
    };
    Ok(WireRequest {
        model,
        max_tokens: request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        system,
        messages,
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: &request.stop,
        tools,
        tool_choice,
        stream,
    })
}

/// Anthropic has no JSON mode; silently answering in prose would break a caller that parses.
fn check_response_format(format: Option<&Value>) -> Result<(), ProviderError> {
    let kind = format.and_then(|f| f.get("type")).and_then(Value::as_str);
    match kind {
        None | Some("text") => Ok(()),
        Some(kind) => Err(ProviderError::Unsupported(format!(
            "Anthropic has no response_format {kind}: ask for JSON in the prompt, or have the \
             model call a tool whose parameters are the schema"
        ))),
    }
}

fn wire_tool(tool: &Tool) -> WireTool<'_> {
    // Anthropic requires a schema even for a tool without arguments.
    let input_schema = if tool.parameters.is_null() {
        json!({"type": "object", "properties": {}})
    } else {
        tool.parameters.clone()
    };
    WireTool {
        name: &tool.name,
        description: tool.description.as_deref(),
        input_schema,
    }
}

fn wire_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Function(name) => json!({"type": "tool", "name": name}),
    }
}

/// The top-level `system` text and the conversation. Anthropic wants system text apart and
/// strictly alternating user/assistant turns, so system messages are hoisted wherever they
/// stand, tool results become user turns, and neighbouring turns of one role are merged.
fn wire_messages(
    messages: &[ChatMessage],
) -> Result<(Option<String>, Vec<WireMessage>), ProviderError> {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<WireMessage> = Vec::new();
    for message in messages {
        let (role, blocks) = match message.role {
            MessageRole::System => {
                let text = message
                    .content
                    .as_ref()
                    .map(Content::text)
                    .unwrap_or_default();
                if !text.trim().is_empty() {
                    system.push(text);
                }
                continue;
            }
            MessageRole::User => ("user", content_blocks(message.content.as_ref())?),
            MessageRole::Assistant => {
                let mut blocks = content_blocks(message.content.as_ref())?;
                for call in &message.tool_calls {
                    blocks.push(tool_use_block(call)?);
                }
                ("assistant", blocks)
            }
            MessageRole::Tool => {
                let tool_use_id = message.tool_call_id.clone().ok_or_else(|| {
                    ProviderError::Unsupported(
                        "a tool message without tool_call_id cannot be sent to Anthropic"
                            .to_owned(),
                    )
                })?;
                let content = content_blocks(message.content.as_ref())?;
                (
                    "user",
                    vec![Block::ToolResult {
                        tool_use_id,
                        content,
                    }],
                )
            }
        };
        // Anthropic rejects turns without content; dropping them keeps the rest valid.
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(WireMessage {
                role,
                content: blocks,
            }),
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    Ok((system, turns))
}

fn tool_use_block(call: &ToolCall) -> Result<Block, ProviderError> {
    // OpenAI clients send "" for a call without arguments.
    let input = if call.arguments.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str::<Value>(&call.arguments).map_err(|error| {
            ProviderError::Unsupported(format!(
                "the arguments of tool call {} are not valid JSON ({error})",
                call.id
            ))
        })?
    };
    if !input.is_object() {
        return Err(ProviderError::Unsupported(format!(
            "the arguments of tool call {} are not a JSON object, which Anthropic requires",
            call.id
        )));
    }
    Ok(Block::ToolUse {
        id: call.id.clone(),
        name: call.name.clone(),
        input,
    })
}

fn content_blocks(content: Option<&Content>) -> Result<Vec<Block>, ProviderError> {
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(text)) => Ok(text_block(text).into_iter().collect()),
        Some(Content::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                blocks.extend(part_block(part)?);
            }
            Ok(blocks)
        }
    }
}

/// Anthropic rejects empty text blocks, so empty text yields none.
fn text_block(text: &str) -> Option<Block> {
    (!text.is_empty()).then(|| Block::Text {
        text: text.to_owned(),
    })
}

/// One OpenAI content part as an Anthropic block.
fn part_block(part: &Value) -> Result<Option<Block>, ProviderError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => Ok(part
            .get("text")
            .and_then(Value::as_str)
            .and_then(text_block)),
        Some("image_url") => {
            let url = part
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .unwrap_or_default();
            image_block(url).map(Some)
        }
        Some(other) => Err(ProviderError::Unsupported(format!(
            "Anthropic cannot be sent {other} content parts"
        ))),
        None => Err(ProviderError::Unsupported(
            "a content part without a type cannot be sent to Anthropic".to_owned(),
        )),
    }
}

/// A `data:<media type>;base64,<data>` URL as a base64 image block.
fn image_block(url: &str) -> Result<Block, ProviderError> {
    let parsed = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)));
    match parsed {
        Some((media_type, data)) if !media_type.is_empty() => Ok(Block::Image {
            source: ImageSource {
                kind: "base64",
                media_type: media_type.to_owned(),
                data: data.to_owned(),
            },
        }),
        _ => Err(ProviderError::Unsupported(
            "images can be sent to Anthropic only as base64 data: URLs".to_owned(),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::tests::{MODEL, ask, unsupported, weather_tool};
    use super::*;

    #[test]
    fn tool_choices_map_to_anthropics_names() {
        let cases = [
            (ToolChoice::Auto, json!({"type": "auto"})),
            (ToolChoice::Required, json!({"type": "any"})),
            (ToolChoice::None, json!({"type": "none"})),
            (
                ToolChoice::Function("lookup".to_owned()),
                json!({"type": "tool", "name": "lookup"}),
            ),
        ];
        for (choice, expected) in cases {
            assert_eq!(wire_tool_choice(&choice), expected, "{choice:?}");
        }
    }

    #[test]
    fn a_tool_choice_without_tools_is_left_out_and_max_tokens_is_kept() {
        let request = ChatRequest {
            tool_choice: Some(ToolChoice::Required),
            max_tokens: Some(100),
            ..ask("hi")
        };
        let wire = serde_json::to_value(wire_request(&request, MODEL, true).unwrap()).unwrap();
        assert_eq!(wire.get("tool_choice"), None);
        assert_eq!(wire["max_tokens"], json!(100));
        assert_eq!(wire["stream"], json!(true));
    }

    #[test]
    fn a_tool_without_a_schema_gets_an_empty_object_schema() {
        let tool = Tool {
            parameters: Value::Null,
            description: None,
            ..weather_tool()
        };
        let wire = serde_json::to_value(wire_tool(&tool)).unwrap();
        assert_eq!(
            wire,
            json!({"name": "get_weather", "input_schema": {"type": "object", "properties": {}}})
        );
    }

    #[test]
    fn data_url_images_become_base64_blocks_and_other_parts_are_refused() {
        let parts = Content::Parts(vec![
            json!({"type": "text", "text": "What is this?"}),
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}),
        ]);
        let blocks = serde_json::to_value(content_blocks(Some(&parts)).unwrap()).unwrap();
        assert_eq!(
            blocks,
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "iVBORw0KGgo="}}
            ])
        );

        let remote =
            json!({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}});
        let audio = json!({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}});
        for part in [remote, audio] {
            let message = unsupported(content_blocks(Some(&Content::Parts(vec![part]))));
            assert!(!message.is_empty());
        }
    }
}
