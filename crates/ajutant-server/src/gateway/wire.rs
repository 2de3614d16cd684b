//! OpenAI's wire format at the gateway's edge: reading a caller's chat completions and
//! embeddings requests into `ajutant_core::model` types (keeping unknown model parameters,
//! dropping anything about transport), writing answers, stream chunks and errors back in the
//! shapes the official SDKs parse.

use ajutant_core::model::{
    ChatMessage, ChatRequest, ChatResponse, Content, EmbeddingsRequest, EmbeddingsResponse,
    MessageRole, Tool, ToolCall, ToolCallDelta, ToolChoice, Usage,
};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Request fields the gateway reads itself; everything else that is not on the deny list is
/// passed to OpenAI-shaped upstreams as a model parameter.
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "stream",
    "stream_options",
    "n",
    "functions",
    "function_call",
];

/// Fields that would change where or how the upstream is called, or whose bill it is: never
/// forwarded, whatever the caller sends.
const NEVER_FORWARDED: &[&str] = &[
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "api_type",
    "organization",
    "headers",
    "extra_headers",
    "timeout",
    "request_timeout",
    "user",
];

/// An error in OpenAI's shape, with the status the SDKs map to their exception types
/// (400 BadRequestError, 401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError,
/// 429 RateLimitError, 5xx InternalServerError).
#[derive(Debug)]
pub(crate) struct OpenAiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<&'static str>,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl OpenAiError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: None,
            param,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            code: None,
            param: None,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// The body of an SSE `error` event and of a JSON error response.
    pub fn body(&self) -> Value {
        json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// A chat completions request, read: the neutral request, the deployment named, and whether
/// to stream (and include usage in the stream).
pub(crate) struct ChatCall {
    pub deployment: String,
    pub request: ChatRequest,
    pub stream: bool,
    pub include_usage: bool,
}

fn field_error(param: &'static str, what: &str) -> OpenAiError {
    OpenAiError::invalid(format!("'{param}' {what}"), Some(param))
}

pub(crate) fn read_chat(body: Value) -> Result<ChatCall, OpenAiError> {
    let Value::Object(mut object) = body else {
        return Err(OpenAiError::invalid("the body must be a JSON object", None));
    };
    let deployment = match object.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.clone(),
        _ => return Err(field_error("model", "is required")),
    };
    if object
        .get("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n != 1)
    {
        return Err(field_error("n", "must be 1: one answer per call"));
    }
    if object.contains_key("functions") || object.contains_key("function_call") {
        return Err(OpenAiError::invalid(
            "'functions' is deprecated; send 'tools' instead",
            Some("functions"),
        ));
    }
    let messages = match object.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages
            .iter()
            .map(read_message)
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(field_error("messages", "must be a non-empty array")),
    };
    let max_tokens = match object
        .get("max_completion_tokens")
        .or_else(|| object.get("max_tokens"))
    {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .ok_or_else(|| field_error("max_tokens", "must be a positive integer"))?,
        ),
    };
    let number = |name: &'static str| -> Result<Option<f64>, OpenAiError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_f64()
                .map(Some)
                .ok_or_else(|| field_error(name, "must be a number")),
        }
    };
    let temperature = number("temperature")?;
    let top_p = number("top_p")?;
    let stop = match object.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| field_error("stop", "must be a string or an array of strings"))?,
        Some(_) => {
            return Err(field_error(
                "stop",
                "must be a string or an array of strings",
            ));
        }
    };
    let tools = match object.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tools)) => tools.iter().map(read_tool).collect::<Result<_, _>>()?,
        Some(_) => return Err(field_error("tools", "must be an array")),
    };
    let tool_choice = match object.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(choice)) => Some(match choice.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => return Err(field_error("tool_choice", "must be auto, none or required")),
        }),
        Some(value) => Some(ToolChoice::Function(
            value
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| field_error("tool_choice", "must name a function"))?
                .to_owned(),
        )),
    };
    let response_format = object
        .get("response_format")
        .filter(|v| !v.is_null())
        .cloned();
    if let Some(format) = &response_format {
        let kind = format.get("type").and_then(Value::as_str);
        if !matches!(kind, Some("text" | "json_object" | "json_schema")) {
            return Err(field_error(
                "response_format",
                "type must be text, json_object or json_schema",
            ));
        }
    }
    let stream = object
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let include_usage = object
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);

    object.retain(|key, _| {
        !KNOWN.contains(&key.as_str()) && !NEVER_FORWARDED.contains(&key.as_str())
    });
    Ok(ChatCall {
        deployment,
        request: ChatRequest {
            model: String::new(),
            messages,
            max_tokens,
            temperature,
            top_p,
            stop,
            tools,
            tool_choice,
            response_format,
            extra: object,
            grounding: Vec::new(),
        },
        stream,
        include_usage,
    })
}

fn read_message(value: &Value) -> Result<ChatMessage, OpenAiError> {
    let role = value
        .get("role")
        .and_then(Value::as_str)
        .and_then(MessageRole::parse)
        .ok_or_else(|| {
            field_error(
                "messages",
                "each needs a role: system, developer, user, assistant or tool",
            )
        })?;
    let content = match value.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(Content::Text(text.clone())),
        Some(Value::Array(parts)) => Some(Content::Parts(parts.clone())),
        Some(_) => {
            return Err(field_error(
                "messages",
                "content must be a string or an array",
            ));
        }
    };
    let tool_calls = match value.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => calls
            .iter()
            .map(|call| {
                Some(ToolCall {
                    id: call.get("id")?.as_str()?.to_owned(),
                    name: call.pointer("/function/name")?.as_str()?.to_owned(),
                    arguments: call
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("{}")
                        .to_owned(),
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| field_error("messages", "tool_calls need id and function.name"))?,
        Some(_) => return Err(field_error("messages", "tool_calls must be an array")),
    };
    let tool_call_id = value
        .get("tool_call_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if role == MessageRole::Tool && tool_call_id.is_none() {
        return Err(field_error("messages", "a tool message needs tool_call_id"));
    }
    Ok(ChatMessage {
        role,
        content,
        name: value.get("name").and_then(Value::as_str).map(str::to_owned),
        tool_calls,
        tool_call_id,
    })
}

fn read_tool(value: &Value) -> Result<Tool, OpenAiError> {
    if value.get("type").and_then(Value::as_str) != Some("function") {
        return Err(field_error("tools", "only function tools are supported"));
    }
    let function = value
        .get("function")
        .ok_or_else(|| field_error("tools", "each needs a function"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| field_error("tools", "each function needs a name"))?;
    Ok(Tool {
        name: name.to_owned(),
        description: function
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters: function
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
    })
}

pub(crate) struct EmbeddingsCall {
    pub deployment: String,
    pub request: EmbeddingsRequest,
    /// Vectors as base64 of little-endian `f32`s (what the official SDKs ask for by default)
    /// rather than JSON numbers.
    pub base64: bool,
}

pub(crate) fn read_embeddings(body: Value) -> Result<EmbeddingsCall, OpenAiError> {
    let deployment = match body.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.clone(),
        _ => return Err(field_error("model", "is required")),
    };
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(format)) if format == "float" => false,
        Some(Value::String(format)) if format == "base64" => true,
        Some(_) => return Err(field_error("encoding_format", "must be float or base64")),
    };
    let input = match body.get("input") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) if !many.is_empty() => many
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| field_error("input", "must be a string or an array of strings"))?,
        _ => {
            return Err(field_error(
                "input",
                "must be a string or a non-empty array of strings",
            ));
        }
    };
    let dimensions = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .and_then(|d| u32::try_from(d).ok());
    Ok(EmbeddingsCall {
        deployment,
        request: EmbeddingsRequest {
            model: String::new(),
            input,
            dimensions,
        },
        base64,
    })
}

fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    })
}

fn tool_calls_json(calls: &[ToolCall]) -> Value {
    Value::Array(
        calls
            .iter()
            .map(|c| {
                json!({ "id": c.id, "type": "function",
                        "function": { "name": c.name, "arguments": c.arguments } })
            })
            .collect(),
    )
}

/// A whole answer as `chat.completion`. `model` is the deployment's name: callers see the
/// logical model they asked for, not the vendor's.
pub(crate) fn chat_completion(id: &str, model: &str, created: i64, answer: &ChatResponse) -> Value {
    let mut message = json!({ "role": "assistant", "content": answer.content });
    if !answer.tool_calls.is_empty() {
        message["tool_calls"] = tool_calls_json(&answer.tool_calls);
    }
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{ "index": 0, "message": message, "finish_reason": answer.finish_reason.as_str() }],
        "usage": usage_json(answer.usage),
    })
}

/// One `chat.completion.chunk`.
pub(crate) fn chunk(
    id: &str,
    model: &str,
    created: i64,
    delta: Value,
    finish: Option<&str>,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    })
}

pub(crate) fn tool_call_delta(delta: &ToolCallDelta) -> Value {
    let mut call = json!({ "index": delta.index });
    if let Some(id) = &delta.id {
        call["id"] = json!(id);
        call["type"] = json!("function");
    }
    let mut function = Map::new();
    if let Some(name) = &delta.name {
        function.insert("name".to_owned(), json!(name));
    }
    if let Some(arguments) = &delta.arguments {
        function.insert("arguments".to_owned(), json!(arguments));
    }
    call["function"] = Value::Object(function);
    json!({ "tool_calls": [call] })
}

/// The final usage-only chunk, sent when the caller asked for `include_usage`.
pub(crate) fn usage_chunk(id: &str, model: &str, created: i64, usage: Usage) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_json(usage),
    })
}

pub(crate) fn embeddings(model: &str, response: &EmbeddingsResponse, base64: bool) -> Value {
    use base64::Engine;
    let encode = |vector: &Vec<f32>| -> Value {
        if base64 {
            let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
            json!(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            json!(vector)
        }
    };
    json!({
        "object": "list",
        "model": model,
        "data": response.vectors.iter().enumerate().map(|(index, vector)| {
            json!({ "object": "embedding", "index": index, "embedding": encode(vector) })
        }).collect::<Vec<_>>(),
        "usage": { "prompt_tokens": response.usage.input_tokens,
                   "total_tokens": response.usage.input_tokens },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_fields_are_never_forwarded_but_model_parameters_are() {
        let call = read_chat(json!({
            "model": "gpt", "messages": [{ "role": "user", "content": "hi" }],
            "api_base": "http://evil.example", "extra_headers": { "x": "y" }, "user": "u",
            "seed": 7, "presence_penalty": 0.5,
        }))
        .unwrap();
        assert_eq!(call.deployment, "gpt");
        let extra: Vec<&str> = call.request.extra.keys().map(String::as_str).collect();
        assert_eq!(extra, ["presence_penalty", "seed"]);
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        let missing = read_chat(json!({ "messages": [] })).err().unwrap();
        assert_eq!(missing.param, Some("model"));
        let bad_role = read_chat(json!({ "model": "m", "messages": [{ "role": "wizard" }] }))
            .err()
            .unwrap();
        assert_eq!(bad_role.param, Some("messages"));
        let n = read_chat(
            json!({ "model": "m", "n": 2, "messages": [{ "role": "user", "content": "x" }] }),
        )
        .err()
        .unwrap();
        assert_eq!(n.param, Some("n"));
    }
}
