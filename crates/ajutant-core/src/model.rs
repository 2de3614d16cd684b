//! Model calls, independent of any vendor: the request a workload makes of a deployment, what
//! comes back (whole or streamed), and the one trait every provider adapter implements
//! (`ajutant-providers`). The shapes follow OpenAI's chat completions, the lingua franca the
//! gateway speaks; adapters translate to and from their vendor's wire format privately.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::{Map, Value};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRole {
    System,
    User,
    Assistant,
    /// A tool's result, answering the assistant's tool call `tool_call_id`.
    Tool,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }

    /// OpenAI's `developer` role is a system message by another name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "system" | "developer" => Some(Self::System),
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            "tool" => Some(Self::Tool),
            _ => None,
        }
    }
}

/// A message's content: plain text, or OpenAI content parts kept as they came (images, files),
/// which only adapters that understand them forward.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Parts(Vec<Value>),
}

impl Content {
    /// The text of the content: the text itself, or the `text` parts joined.
    pub fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Parts(parts) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// A call the assistant asked for; `arguments` is JSON text, as OpenAI sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: MessageRole,
    pub content: Option<Content>,
    pub name: Option<String>,
    /// Assistant messages: the tools it called.
    pub tool_calls: Vec<ToolCall>,
    /// Tool messages: which call this answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn text(role: MessageRole, text: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(Content::Text(text.into())),
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Some tool must be called.
    Required,
    /// This tool must be called.
    Function(String),
}

/// A passage the answer must be grounded in, given by the chat runtime. Vendor adapters ignore
/// it (the runtime has already put the passages into the prompt); the offline provider answers
/// from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// How the answer cites it, e.g. `1`.
    pub citation: String,
    pub title: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The upstream model name (the deployment's), never the caller's.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// OpenAI's `response_format`, kept as given.
    pub response_format: Option<Value>,
    /// Other OpenAI parameters (`seed`, `presence_penalty`, ...), forwarded only to
    /// OpenAI-shaped upstreams. Never transport settings: the gateway strips those.
    pub extra: Map<String, Value>,
    pub grounding: Vec<Passage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    Other(String),
}

impl FinishReason {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
            Self::Other(other) => other,
        }
    }

    pub fn parse(value: &str) -> Self {
        match value {
            "stop" => Self::Stop,
            "length" => Self::Length,
            "tool_calls" | "function_call" => Self::ToolCalls,
            "content_filter" => Self::ContentFilter,
            other => Self::Other(other.to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The upstream's response id.
    pub id: String,
    /// The model that answered, as the upstream names it.
    pub model: String,
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
}

/// A piece of a tool call as it streams: the first piece names it, later ones add arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallDelta {
    pub index: u32,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: Option<String>,
}

/// One event of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// The first event: who is answering.
    Start {
        id: String,
        model: String,
    },
    Text(String),
    ToolCall(ToolCallDelta),
    Finish(FinishReason),
    /// Token counts, usually last.
    Usage(Usage),
}

pub type ChatStream = BoxStream<'static, Result<ChatEvent, ProviderError>>;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: Vec<String>,
    pub dimensions: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsResponse {
    pub model: String,
    /// One vector per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    pub usage: Usage,
}

/// Which timeout struck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    Connect,
    FirstByte,
    /// Between two streamed chunks.
    Idle,
    Total,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connecting",
            Self::FirstByte => "waiting for the first byte",
            Self::Idle => "waiting between streamed chunks",
            Self::Total => "for the whole call",
        })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("the model provider cannot be reached: {0}")]
    Connect(String),
    #[error("the model provider timed out {0}")]
    Timeout(TimeoutKind),
    #[error("the model provider answered {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// From `Retry-After`, when the upstream said.
        retry_after: Option<Duration>,
    },
    #[error("the model provider's answer cannot be read: {0}")]
    Malformed(String),
    #[error("the stream ended before the answer was complete")]
    Truncated,
    #[error("{0}")]
    Unsupported(String),
    #[error("the deployment's credentials are not usable: {0}")]
    Credentials(String),
}

impl ProviderError {
    /// Whether trying again (after a pause) may succeed: rate limits, server errors, and
    /// failures to connect or to hear back in time.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Timeout(kind) => *kind != TimeoutKind::Total,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Malformed(_) | Self::Truncated | Self::Unsupported(_) | Self::Credentials(_) => {
                false
            }
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A model provider behind a deployment. Implementations live in `ajutant-providers`, one
/// module per vendor; all pass the same conformance suite.
pub trait ModelProvider: Send + Sync + fmt::Debug {
    /// The vendor, for traces (`gen_ai.system`): `openai`, `az.ai.openai`, `anthropic`, ...
    fn system(&self) -> &'static str;

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>>;

    /// Streams the answer. The stream ends after `Finish` (and `Usage` when known); a stream
    /// that stops early yields [`ProviderError::Truncated`], never a silent end.
    fn chat_stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatStream, ProviderError>>;

    fn embed<'a>(
        &'a self,
        request: &'a EmbeddingsRequest,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>>;
}
