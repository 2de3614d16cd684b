//! OpenAI's chat completions and embeddings wire format, spoken by three kinds of upstream:
//! OpenAI itself (bearer key, `max_completion_tokens`), Azure OpenAI (the deployment in the
//! path, `api-version`, an `api-key` header), and any OpenAI-compatible server such as vLLM,
//! Ollama or llama.cpp (bearer key if any, `max_tokens`).

use ajutant_core::config::{Credential, DeploymentConfig, ProviderKind, Timeouts};
use ajutant_core::model::{
    ChatEvent, ChatRequest, ChatResponse, ChatStream, Content, EmbeddingsRequest,
    EmbeddingsResponse, FinishReason, ModelProvider, ProviderError, ToolCall, ToolCallDelta,
    ToolChoice, Usage,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use url::Url;

use crate::azure_token::AzureToken;
use crate::http::{self, Deadlines};

const OPENAI_BASE: &str = "https://api.openai.com/v1";

#[derive(Debug)]
pub(crate) struct OpenAi {
    kind: ProviderKind,
    base: String,
    model: String,
    api_version: Option<String>,
    credential: Credential,
    timeouts: Timeouts,
    http: reqwest::Client,
    /// For Azure OpenAI with a managed or workload identity instead of a key.
    entra: Option<AzureToken>,
}

impl OpenAi {
    pub(crate) fn new(
        deployment: &DeploymentConfig,
        http: reqwest::Client,
    ) -> Result<Self, ProviderError> {
        let base = deployment
            .endpoint
            .as_ref()
            .map_or(OPENAI_BASE.to_owned(), Url::to_string);
        let entra = AzureToken::for_credential(&deployment.credential, http.clone())?;
        Ok(Self {
            kind: deployment.provider,
            base: base.trim_end_matches('/').to_owned(),
            model: deployment.model.clone(),
            api_version: deployment.api_version.clone(),
            credential: deployment.credential.clone(),
            timeouts: deployment.timeouts.clone(),
            http,
            entra,
        })
    }

    fn url(&self, operation: &str) -> String {
        match self.kind {
            ProviderKind::AzureOpenAi => format!(
                "{}/openai/deployments/{}/{operation}?api-version={}",
                self.base,
                self.model,
                self.api_version.as_deref().unwrap_or_default()
            ),
            _ => format!("{}/{operation}", self.base),
        }
    }

    async fn post(
        &self,
        operation: &str,
        body: &Value,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut request = self.http.post(self.url(operation)).json(body);
        if let Some(entra) = &self.entra {
            return Ok(request.bearer_auth(entra.token().await?.expose()));
        }
        if let Some(key) = http::api_key(&self.credential)? {
            request = match self.kind {
                ProviderKind::AzureOpenAi => request.header("api-key", key.expose()),
                _ => request.bearer_auth(key.expose()),
            };
        }
        Ok(request)
    }

    fn chat_body(&self, request: &ChatRequest, stream: bool) -> Result<Value, ProviderError> {
        // Callers' extra parameters first, so nothing below can be overridden by them.
        let mut body: Map<String, Value> = request.extra.clone();
        body.insert("model".to_owned(), json!(request.model));
        body.insert(
            "messages".to_owned(),
            Value::Array(request.messages.iter().map(message_json).collect()),
        );
        if let Some(max) = request.max_tokens {
            // OpenAI's newer models refuse `max_tokens`; compatible servers only know it.
            let field = match self.kind {
                ProviderKind::OpenAiCompatible => "max_tokens",
                _ => "max_completion_tokens",
            };
            body.insert(field.to_owned(), json!(max));
        }
        if let Some(t) = request.temperature {
            body.insert("temperature".to_owned(), json!(t));
        }
        if let Some(p) = request.top_p {
            body.insert("top_p".to_owned(), json!(p));
        }
        if !request.stop.is_empty() {
            body.insert("stop".to_owned(), json!(request.stop));
        }
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|tool| {
                    let mut function = json!({ "name": tool.name, "parameters": tool.parameters });
                    if let Some(description) = &tool.description {
                        function["description"] = json!(description);
                    }
                    json!({ "type": "function", "function": function })
                })
                .collect();
            body.insert("tools".to_owned(), Value::Array(tools));
        }
        if let Some(choice) = &request.tool_choice {
            let choice = match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Function(name) => {
                    json!({ "type": "function", "function": { "name": name } })
                }
            };
            body.insert("tool_choice".to_owned(), choice);
        }
        if let Some(format) = &request.response_format {
            body.insert("response_format".to_owned(), format.clone());
        }
        body.insert("stream".to_owned(), json!(stream));
        if stream {
            body.insert(
                "stream_options".to_owned(),
                json!({ "include_usage": true }),
            );
        } else {
            body.remove("stream_options");
        }
        Ok(Value::Object(body))
    }
}

fn message_json(message: &ajutant_core::model::ChatMessage) -> Value {
    let mut out = json!({ "role": message.role.as_str() });
    out["content"] = match &message.content {
        Some(Content::Text(text)) => json!(text),
        Some(Content::Parts(parts)) => Value::Array(parts.clone()),
        None => Value::Null,
    };
    if let Some(name) = &message.name {
        out["name"] = json!(name);
    }
    if !message.tool_calls.is_empty() {
        out["tool_calls"] = Value::Array(
            message
                .tool_calls
                .iter()
                .map(|call| {
                    json!({
                        "id": call.id,
                        "type": "function",
                        "function": { "name": call.name, "arguments": call.arguments },
                    })
                })
                .collect(),
        );
    }
    if let Some(id) = &message.tool_call_id {
        out["tool_call_id"] = json!(id);
    }
    out
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl From<WireUsage> for Usage {
    fn from(usage: WireUsage) -> Self {
        Usage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        }
    }
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: WireDelta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCallDelta>,
}

#[derive(Deserialize)]
struct WireToolCallDelta {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunctionDelta>,
}

#[derive(Deserialize)]
struct WireFunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireEmbeddings {
    data: Vec<WireEmbedding>,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    #[serde(default)]
    index: usize,
    embedding: Vec<f32>,
}

/// Where a stream stands: what is still owed before it may end.
struct StreamState {
    events: futures::stream::BoxStream<'static, Result<http::SseEvent, ProviderError>>,
    started: bool,
    finished: bool,
    done: bool,
    pending: std::collections::VecDeque<ChatEvent>,
}

impl ModelProvider for OpenAi {
    fn system(&self) -> &'static str {
        match self.kind {
            ProviderKind::AzureOpenAi => "az.ai.openai",
            ProviderKind::OpenAi => "openai",
            _ => "openai_compatible",
        }
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(async move {
            let deadlines = Deadlines::start(&self.timeouts);
            let body = self.chat_body(request, false)?;
            let response =
                http::send(self.post("chat/completions", &body).await?, &deadlines).await?;
            let bytes = http::read_body(response, &deadlines).await?;
            let wire: WireResponse = http::parse_json(&bytes)?;
            let choice =
                wire.choices.into_iter().next().ok_or_else(|| {
                    ProviderError::Malformed("no choices in the answer".to_owned())
                })?;
            Ok(ChatResponse {
                id: wire.id,
                model: wire.model,
                content: choice.message.content,
                tool_calls: choice
                    .message
                    .tool_calls
                    .into_iter()
                    .map(|call| ToolCall {
                        id: call.id,
                        name: call.function.name,
                        arguments: call.function.arguments,
                    })
                    .collect(),
                finish_reason: FinishReason::parse(
                    choice.finish_reason.as_deref().unwrap_or("stop"),
                ),
                usage: wire.usage.map(Usage::from).unwrap_or_default(),
            })
        })
    }

    fn chat_stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatStream, ProviderError>> {
        Box::pin(async move {
            let deadlines = Deadlines::start(&self.timeouts);
            let body = self.chat_body(request, true)?;
            let response =
                http::send(self.post("chat/completions", &body).await?, &deadlines).await?;
            let state = StreamState {
                events: http::sse_events(response, deadlines),
                started: false,
                finished: false,
                done: false,
                pending: std::collections::VecDeque::new(),
            };
            Ok(futures::stream::unfold(state, next_event).boxed())
        })
    }

    fn embed<'a>(
        &'a self,
        request: &'a EmbeddingsRequest,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>> {
        Box::pin(async move {
            let deadlines = Deadlines::start(&self.timeouts);
            let mut body = json!({ "model": request.model, "input": request.input });
            if let Some(dimensions) = request.dimensions {
                body["dimensions"] = json!(dimensions);
            }
            let response = http::send(self.post("embeddings", &body).await?, &deadlines).await?;
            let bytes = http::read_body(response, &deadlines).await?;
            let mut wire: WireEmbeddings = http::parse_json(&bytes)?;
            if wire.data.len() != request.input.len() {
                return Err(ProviderError::Malformed(format!(
                    "{} embeddings for {} inputs",
                    wire.data.len(),
                    request.input.len()
                )));
            }
            wire.data.sort_by_key(|e| e.index);
            Ok(EmbeddingsResponse {
                model: wire.model,
                vectors: wire.data.into_iter().map(|e| e.embedding).collect(),
                usage: wire.usage.map(Usage::from).unwrap_or_default(),
            })
        })
    }
}

/// The next event of a stream. It ends after `[DONE]` (or the body's end once a finish reason
/// was seen: some compatible servers omit `[DONE]`); any other end is [`ProviderError::Truncated`].
async fn next_event(
    mut state: StreamState,
) -> Option<(Result<ChatEvent, ProviderError>, StreamState)> {
    loop {
        if let Some(event) = state.pending.pop_front() {
            return Some((Ok(event), state));
        }
        if state.done {
            return None;
        }
        let Some(event) = state.events.next().await else {
            state.done = true;
            if state.finished {
                return None;
            }
            return Some((Err(ProviderError::Truncated), state));
        };
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                state.done = true;
                return Some((Err(error), state));
            }
        };
        if event.data.trim() == "[DONE]" {
            state.done = true;
            if !state.finished {
                return Some((Err(ProviderError::Truncated), state));
            }
            continue;
        }
        let chunk: WireChunk = match serde_json::from_str(&event.data) {
            Ok(chunk) => chunk,
            Err(error) => {
                state.done = true;
                let error =
                    ProviderError::Malformed(format!("a stream chunk is not JSON ({error})"));
                return Some((Err(error), state));
            }
        };
        if !state.started && !chunk.id.is_empty() {
            state.started = true;
            state.pending.push_back(ChatEvent::Start {
                id: chunk.id.clone(),
                model: chunk.model.clone(),
            });
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                state.pending.push_back(ChatEvent::Text(text));
            }
            for call in choice.delta.tool_calls {
                let (name, arguments) = match call.function {
                    Some(f) => (f.name, f.arguments),
                    None => (None, None),
                };
                state.pending.push_back(ChatEvent::ToolCall(ToolCallDelta {
                    index: call.index,
                    id: call.id,
                    name,
                    arguments,
                }));
            }
            if let Some(reason) = choice.finish_reason {
                state.finished = true;
                state
                    .pending
                    .push_back(ChatEvent::Finish(FinishReason::parse(&reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            state.pending.push_back(ChatEvent::Usage(usage.into()));
        }
    }
}
