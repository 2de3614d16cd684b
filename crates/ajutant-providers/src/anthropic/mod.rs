//! Anthropic's Messages API (`POST /v1/messages`): translates the vendor-neutral chat request
//! into Anthropic's wire format and its answers, whole or streamed, back again.
//!
//! `request.rs` builds Anthropic's request, `response.rs` reads a whole answer and `stream.rs` a
//! streamed one; the wire types of each stay private to it.

mod request;
mod response;
mod stream;

use ajutant_core::config::{Credential, DeploymentConfig, Timeouts};
use ajutant_core::model::{
    ChatRequest, ChatResponse, ChatStream, EmbeddingsRequest, EmbeddingsResponse, ModelProvider,
    ProviderError,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::HeaderValue;

use crate::http::{self, Deadlines};
use request::wire_request;
use response::WireResponse;
use stream::chat_events;

const DEFAULT_ENDPOINT: &str = "https://api.anthropic.com";
/// The API version this adapter's wire types follow; Anthropic requires the header.
const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; OpenAI callers often leave it out.
const DEFAULT_MAX_TOKENS: u32 = 4096;

/// A deployment served by Anthropic. The API key is read from the credential at each call and
/// never stored, so `Debug` shows only where it comes from.
#[derive(Debug)]
pub(crate) struct Anthropic {
    http: reqwest::Client,
    url: String,
    model: String,
    credential: Credential,
    timeouts: Timeouts,
}

impl Anthropic {
    pub(crate) fn new(deployment: &DeploymentConfig, http: reqwest::Client) -> Self {
        Self {
            http,
            url: messages_url(deployment.endpoint.as_ref()),
            model: deployment.model.clone(),
            credential: deployment.credential.clone(),
            timeouts: deployment.timeouts.clone(),
        }
    }

    async fn post(
        &self,
        request: &ChatRequest,
        stream: bool,
        deadlines: &Deadlines,
    ) -> Result<reqwest::Response, ProviderError> {
        let body = wire_request(request, &self.model, stream)?;
        let mut builder = self
            .http
            .post(&self.url)
            .header("anthropic-version", API_VERSION)
            .json(&body);
        if let Some(key) = http::api_key(&self.credential)? {
            let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
                ProviderError::Credentials(
                    "the API key holds characters a header cannot carry".to_owned(),
                )
            })?;
            // Keeps the key out of reqwest's own debug output.
            value.set_sensitive(true);
            builder = builder.header("x-api-key", value);
        }
        http::send(builder, deadlines).await
    }
}

/// `{endpoint}/v1/messages`, whether or not the configured endpoint ends with a slash.
fn messages_url(endpoint: Option<&url::Url>) -> String {
    let base = endpoint.map_or(DEFAULT_ENDPOINT, url::Url::as_str);
    format!("{}/v1/messages", base.trim_end_matches('/'))
}

impl ModelProvider for Anthropic {
    fn system(&self) -> &'static str {
        "anthropic"
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        async move {
            let deadlines = Deadlines::start(&self.timeouts);
            let response = self.post(request, false, &deadlines).await?;
            let body = http::read_body(response, &deadlines).await?;
            let message: WireResponse = http::parse_json(&body)?;
            Ok(message.into_response())
        }
        .boxed()
    }

    fn chat_stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatStream, ProviderError>> {
        async move {
            let deadlines = Deadlines::start(&self.timeouts);
            let response = self.post(request, true, &deadlines).await?;
            Ok(chat_events(http::sse_events(response, deadlines)))
        }
        .boxed()
    }

    fn embed<'a>(
        &'a self,
        _request: &'a EmbeddingsRequest,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>> {
        async {
            Err(ProviderError::Unsupported(
                "Anthropic offers no embeddings API".to_owned(),
            ))
        }
        .boxed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use ajutant_core::config::{Capability, ProviderKind};
    use ajutant_core::model::{
        ChatEvent, ChatMessage, FinishReason, MessageRole, Tool, ToolCall, ToolChoice, Usage,
    };
    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use futures::StreamExt;
    use serde_json::{Value, json};

    use super::*;

    const KEY: &str = "sk-ant-test-key";
    pub(super) const MODEL: &str = "claude-test-1";

    /// How the fake upstream answers.
    #[derive(Debug, Clone, Copy)]
    enum Upstream {
        Plain,
        ToolUse,
        RateLimited,
        OverloadedMidStream,
        CutOff,
        Garbage,
    }

    #[derive(Clone)]
    struct Fake {
        mode: Upstream,
        received: Arc<Mutex<Vec<Value>>>,
    }

    /// A running fake and an adapter pointed at it; dropping it stops the server and removes
    /// the key file.
    struct Harness {
        provider: Anthropic,
        received: Arc<Mutex<Vec<Value>>>,
        server: tokio::task::JoinHandle<()>,
        key_file: PathBuf,
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.server.abort();
            let _ = std::fs::remove_file(&self.key_file);
        }
    }

    impl Harness {
        fn received(&self) -> Vec<Value> {
            self.received.lock().unwrap().clone()
        }
    }

    async fn spawn(mode: Upstream) -> Harness {
        spawn_with(mode, true).await
    }

    async fn spawn_with(mode: Upstream, with_key: bool) -> Harness {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let received = Arc::new(Mutex::new(Vec::new()));
        let fake = Fake {
            mode,
            received: received.clone(),
        };
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        #[allow(
            clippy::disallowed_methods,
            reason = "a test peer that ends with the test"
        )]
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });

        let key_file = std::env::temp_dir().join(format!(
            "ajutant-anthropic-key-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
        let credential = if with_key {
            Credential::ApiKeyFile {
                path: key_file.clone(),
            }
        } else {
            Credential::None
        };
        // A bare host URL always ends with '/', which the adapter must not double.
        let endpoint = url::Url::parse(&format!("http://{address}")).unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Harness {
            provider: Anthropic::new(&deployment(endpoint, credential), http),
            received,
            server,
            key_file,
        }
    }

    fn deployment(endpoint: url::Url, credential: Credential) -> DeploymentConfig {
        DeploymentConfig {
            name: "claude".to_owned(),
            provider: ProviderKind::Anthropic,
            endpoint: Some(endpoint),
            model: MODEL.to_owned(),
            api_version: None,
            capabilities: vec![Capability::Chat],
            credential,
            timeouts: Timeouts {
                connect_ms: 2_000,
                first_byte_ms: 5_000,
                idle_ms: 5_000,
                total_ms: 10_000,
            },
            retries: 0,
            fallbacks: Vec::new(),
            price_input_per_1k: 0.0,
            price_output_per_1k: 0.0,
            groups: Vec::new(),
            enabled: true,
            audit_content: false,
        }
    }

    // --- The fake upstream, in Anthropic's wire format ---------------------------------------

    async fn messages(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        if get("x-api-key") != KEY
            || get("anthropic-version") != "2023-06-01"
            || !get("content-type").starts_with("application/json")
        {
            return anthropic_error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "bad headers",
            );
        }
        let request: Value = serde_json::from_str(&body).unwrap();
        fake.received.lock().unwrap().push(request.clone());
        let streaming = request["stream"] == json!(true);
        match (fake.mode, streaming) {
            (Upstream::Plain, false) => json_answer(plain_message()),
            (Upstream::Plain, true) => sse_answer(&plain_events()),
            (Upstream::ToolUse, false) => json_answer(tool_message()),
            (Upstream::ToolUse, true) => sse_answer(&tool_events()),
            (Upstream::RateLimited, _) => {
                let mut response = anthropic_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "Number of request tokens has exceeded your per-minute rate limit",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, "3".parse().unwrap());
                response
            }
            (Upstream::OverloadedMidStream, _) => {
                let mut events = plain_events()[..3].to_vec();
                events.push(("content_block_delta", text_delta(0, "Hel")));
                events.push((
                    "error",
                    json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                ));
                sse_answer(&events)
            }
            (Upstream::CutOff, _) => {
                let mut events = plain_events()[..3].to_vec();
                events.push(("content_block_delta", text_delta(0, "Hel")));
                sse_answer(&events)
            }
            (Upstream::Garbage, false) => "<html>surprise</html>".into_response(),
            (Upstream::Garbage, true) => (
                [(header::CONTENT_TYPE, "text/event-stream")],
                "event: message_start\ndata: <html>surprise</html>\n\n",
            )
                .into_response(),
        }
    }

    fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response {
        let body = json!({"type": "error", "error": {"type": kind, "message": message}});
        (status, axum::Json(body)).into_response()
    }

    fn json_answer(body: Value) -> Response {
        axum::Json(body).into_response()
    }

    fn sse_answer(events: &[(&str, Value)]) -> Response {
        let body: String = events
            .iter()
            .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
            .collect();
        ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
    }

    fn message_start(id: &str, input_tokens: u32) -> Value {
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": MODEL, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}
        }})
    }

    fn text_delta(index: u32, text: &str) -> Value {
        json!({"type": "content_block_delta", "index": index,
               "delta": {"type": "text_delta", "text": text}})
    }

    fn json_delta(index: u32, partial: &str) -> Value {
        json!({"type": "content_block_delta", "index": index,
               "delta": {"type": "input_json_delta", "partial_json": partial}})
    }

    fn block_stop(index: u32) -> (&'static str, Value) {
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        )
    }

    fn message_end(stop_reason: &str, output_tokens: u32) -> [(&'static str, Value); 2] {
        [
            (
                "message_delta",
                json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": output_tokens}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ]
    }

    fn plain_message() -> Value {
        json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": MODEL,
            "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there."}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 5}
        })
    }

    fn plain_events() -> Vec<(&'static str, Value)> {
        let mut events = vec![
            ("message_start", message_start("msg_01", 12)),
            ("ping", json!({"type": "ping"})),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
            ),
            ("content_block_delta", text_delta(0, "Hello")),
            ("content_block_delta", text_delta(0, " there.")),
            block_stop(0),
        ];
        events.extend(message_end("end_turn", 5));
        events
    }

    fn paris() -> Value {
        json!({"city": "Paris", "units": "celsius"})
    }

    fn oslo() -> Value {
        json!({"city": "Oslo"})
    }

    fn tool_message() -> Value {
        json!({
            "id": "msg_02", "type": "message", "role": "assistant", "model": MODEL,
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": paris()},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": oslo()}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 30, "output_tokens": 40}
        })
    }

    fn tool_start(index: u32, id: &str) -> (&'static str, Value) {
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": id, "name": "get_weather", "input": {}}}),
        )
    }

    fn tool_events() -> Vec<(&'static str, Value)> {
        let mut events = vec![
            ("message_start", message_start("msg_02", 30)),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
            ),
            ("content_block_delta", text_delta(0, "Let me check.")),
            block_stop(0),
            tool_start(1, "toolu_1"),
            ("content_block_delta", json_delta(1, "")),
            ("content_block_delta", json_delta(1, "{\"city\": \"Pa")),
            (
                "content_block_delta",
                json_delta(1, "ris\", \"units\": \"cel"),
            ),
            ("content_block_delta", json_delta(1, "sius\"}")),
            block_stop(1),
            tool_start(2, "toolu_2"),
            ("content_block_delta", json_delta(2, "{\"city\":")),
            ("content_block_delta", json_delta(2, " \"Oslo\"}")),
            block_stop(2),
        ];
        events.extend(message_end("tool_use", 40));
        events
    }

    // --- Helpers -----------------------------------------------------------------------------

    pub(super) fn ask(text: &str) -> ChatRequest {
        ChatRequest {
            model: MODEL.to_owned(),
            messages: vec![ChatMessage::text(MessageRole::User, text)],
            ..ChatRequest::default()
        }
    }

    pub(super) fn weather_tool() -> Tool {
        Tool {
            name: "get_weather".to_owned(),
            description: Some("Current weather for a city".to_owned()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]}),
        }
    }

    async fn stream_all(
        provider: &Anthropic,
        request: &ChatRequest,
    ) -> Vec<Result<ChatEvent, ProviderError>> {
        provider.chat_stream(request).await.unwrap().collect().await
    }

    pub(super) fn unsupported(result: Result<impl std::fmt::Debug, ProviderError>) -> String {
        match result {
            Err(ProviderError::Unsupported(message)) => message,
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    // --- Requests ----------------------------------------------------------------------------

    #[tokio::test]
    async fn requests_hoist_system_text_merge_turns_and_carry_tool_results() {
        let harness = spawn(Upstream::Plain).await;
        let mut extra = serde_json::Map::new();
        extra.insert("seed".to_owned(), json!(7));
        let request = ChatRequest {
            model: MODEL.to_owned(),
            messages: vec![
                ChatMessage::text(MessageRole::System, "Be brief."),
                ChatMessage::text(MessageRole::User, "What's the weather?"),
                ChatMessage::text(MessageRole::System, "Use metric units."),
                ChatMessage::text(MessageRole::User, "In Paris, please."),
                ChatMessage {
                    tool_calls: vec![ToolCall {
                        id: "call_1".to_owned(),
                        name: "get_weather".to_owned(),
                        arguments: r#"{"city":"Paris"}"#.to_owned(),
                    }],
                    ..ChatMessage::text(MessageRole::Assistant, "Checking.")
                },
                ChatMessage {
                    tool_call_id: Some("call_1".to_owned()),
                    ..ChatMessage::text(MessageRole::Tool, "18 C, sunny")
                },
                ChatMessage::text(MessageRole::User, "Thanks!"),
            ],
            temperature: Some(0.2),
            stop: vec!["END".to_owned()],
            tools: vec![weather_tool()],
            tool_choice: Some(ToolChoice::Function("get_weather".to_owned())),
            response_format: Some(json!({"type": "text"})),
            extra,
            ..ChatRequest::default()
        };
        harness.provider.chat(&request).await.unwrap();

        let expected = json!({
            "model": MODEL,
            "max_tokens": 4096,
            "system": "Be brief.\n\nUse metric units.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What's the weather?"},
                    {"type": "text", "text": "In Paris, please."}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather",
                     "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1",
                     "content": [{"type": "text", "text": "18 C, sunny"}]},
                    {"type": "text", "text": "Thanks!"}
                ]}
            ],
            "temperature": 0.2,
            "stop_sequences": ["END"],
            "tools": [{"name": "get_weather", "description": "Current weather for a city",
                       "input_schema": weather_tool().parameters}],
            "tool_choice": {"type": "tool", "name": "get_weather"}
        });
        assert_eq!(harness.received(), vec![expected]);
    }

    #[tokio::test]
    async fn invalid_tool_call_arguments_are_refused_before_sending() {
        let harness = spawn(Upstream::Plain).await;
        let mut request = ask("hi");
        request.messages.push(ChatMessage {
            tool_calls: vec![ToolCall {
                id: "call_9".to_owned(),
                name: "get_weather".to_owned(),
                arguments: "{not json".to_owned(),
            }],
            ..ChatMessage::text(MessageRole::Assistant, "")
        });
        let message = unsupported(harness.provider.chat(&request).await);
        assert!(
            message.contains("call_9") && message.contains("not valid JSON"),
            "{message}"
        );
        assert!(harness.received().is_empty());
    }

    #[tokio::test]
    async fn a_json_schema_response_format_is_refused_plainly() {
        let harness = spawn(Upstream::Plain).await;
        let request = ChatRequest {
            response_format: Some(json!({"type": "json_schema", "json_schema": {"name": "x"}})),
            ..ask("hi")
        };
        let message = unsupported(harness.provider.chat(&request).await);
        assert!(message.contains("json_schema"), "{message}");
        let message = unsupported(harness.provider.chat_stream(&request).await.map(|_| ()));
        assert!(message.contains("json_schema"), "{message}");
        assert!(harness.received().is_empty());
    }

    #[test]
    fn the_endpoint_may_or_may_not_end_with_a_slash() {
        let with = url::Url::parse("https://gateway.example/anthropic/").unwrap();
        let without = url::Url::parse("https://gateway.example/anthropic").unwrap();
        assert_eq!(
            messages_url(Some(&with)),
            "https://gateway.example/anthropic/v1/messages"
        );
        assert_eq!(
            messages_url(Some(&without)),
            "https://gateway.example/anthropic/v1/messages"
        );
        assert_eq!(messages_url(None), "https://api.anthropic.com/v1/messages");
    }

    #[tokio::test]
    async fn a_deployment_without_a_credential_sends_no_key() {
        let harness = spawn_with(Upstream::Plain, false).await;
        let error = harness.provider.chat(&ask("hi")).await.unwrap_err();
        assert!(
            matches!(error, ProviderError::Status { status: 401, .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn debug_output_never_shows_the_key() {
        let harness = spawn(Upstream::Plain).await;
        assert!(!format!("{:?}", harness.provider).contains(KEY));
    }

    // --- Answers -----------------------------------------------------------------------------

    #[tokio::test]
    async fn a_plain_answer_comes_back_with_its_usage() {
        let harness = spawn(Upstream::Plain).await;
        let response = harness.provider.chat(&ask("hi")).await.unwrap();
        assert_eq!(
            response,
            ChatResponse {
                id: "msg_01".to_owned(),
                model: MODEL.to_owned(),
                content: Some("Hello there.".to_owned()),
                tool_calls: Vec::new(),
                finish_reason: FinishReason::Stop,
                usage: Usage {
                    input_tokens: 12,
                    output_tokens: 5
                },
            }
        );
    }

    #[tokio::test]
    async fn a_plain_answer_streams_start_text_finish_and_usage() {
        let harness = spawn(Upstream::Plain).await;
        let events = stream_all(&harness.provider, &ask("hi")).await;
        let events: Vec<ChatEvent> = events.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            events,
            vec![
                ChatEvent::Start {
                    id: "msg_01".to_owned(),
                    model: MODEL.to_owned()
                },
                ChatEvent::Text("Hello".to_owned()),
                ChatEvent::Text(" there.".to_owned()),
                ChatEvent::Finish(FinishReason::Stop),
                ChatEvent::Usage(Usage {
                    input_tokens: 12,
                    output_tokens: 5
                }),
            ]
        );
        assert_eq!(harness.received()[0]["stream"], json!(true));
    }

    #[tokio::test]
    async fn tool_calls_come_back_with_their_arguments_as_json_text() {
        let harness = spawn(Upstream::ToolUse).await;
        let request = ChatRequest {
            tools: vec![weather_tool()],
            ..ask("Weather in Paris and Oslo?")
        };
        let response = harness.provider.chat(&request).await.unwrap();
        assert_eq!(response.content.as_deref(), Some("Let me check."));
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        let calls: Vec<(String, String, Value)> = response
            .tool_calls
            .iter()
            .map(|c| {
                let arguments = serde_json::from_str(&c.arguments).unwrap();
                (c.id.clone(), c.name.clone(), arguments)
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                ("toolu_1".to_owned(), "get_weather".to_owned(), paris()),
                ("toolu_2".to_owned(), "get_weather".to_owned(), oslo()),
            ]
        );
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 30,
                output_tokens: 40
            }
        );
    }

    #[tokio::test]
    async fn streamed_tool_calls_are_numbered_and_their_arguments_reassemble() {
        let harness = spawn(Upstream::ToolUse).await;
        let request = ChatRequest {
            tools: vec![weather_tool()],
            ..ask("Weather in Paris and Oslo?")
        };
        let events = stream_all(&harness.provider, &request).await;
        let events: Vec<ChatEvent> = events.into_iter().map(Result::unwrap).collect();

        // index -> (id, name, arguments so far)
        let mut calls: BTreeMap<u32, (Option<String>, Option<String>, String)> = BTreeMap::new();
        let mut text = String::new();
        for event in &events {
            match event {
                ChatEvent::Text(piece) => text.push_str(piece),
                ChatEvent::ToolCall(delta) => {
                    let call = calls.entry(delta.index).or_default();
                    if delta.id.is_some() {
                        assert!(call.0.is_none(), "a call is named once");
                        call.0 = delta.id.clone();
                        call.1 = delta.name.clone();
                    }
                    call.2
                        .push_str(delta.arguments.as_deref().unwrap_or_default());
                }
                _ => {}
            }
        }
        assert_eq!(text, "Let me check.");
        let calls: Vec<(u32, String, String, Value)> = calls
            .into_iter()
            .map(|(index, (id, name, arguments))| {
                let arguments = serde_json::from_str(&arguments).unwrap();
                (index, id.unwrap(), name.unwrap(), arguments)
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                (0, "toolu_1".to_owned(), "get_weather".to_owned(), paris()),
                (1, "toolu_2".to_owned(), "get_weather".to_owned(), oslo()),
            ]
        );
        assert_eq!(
            events[events.len() - 2..],
            [
                ChatEvent::Finish(FinishReason::ToolCalls),
                ChatEvent::Usage(Usage {
                    input_tokens: 30,
                    output_tokens: 40
                }),
            ]
        );
    }

    // --- Failures ----------------------------------------------------------------------------

    #[tokio::test]
    async fn a_rate_limit_is_a_retryable_status_with_its_retry_after() {
        let harness = spawn(Upstream::RateLimited).await;
        for error in [
            harness.provider.chat(&ask("hi")).await.unwrap_err(),
            harness
                .provider
                .chat_stream(&ask("hi"))
                .await
                .err()
                .unwrap(),
        ] {
            match &error {
                ProviderError::Status {
                    status,
                    message,
                    retry_after,
                } => {
                    assert_eq!(*status, 429);
                    assert!(message.contains("rate limit"), "{message}");
                    assert_eq!(*retry_after, Some(Duration::from_secs(3)));
                }
                other => panic!("expected a status, got {other:?}"),
            }
            assert!(error.is_retryable());
        }
    }

    #[tokio::test]
    async fn an_overloaded_error_mid_stream_ends_it_with_a_retryable_529() {
        let harness = spawn(Upstream::OverloadedMidStream).await;
        let events = stream_all(&harness.provider, &ask("hi")).await;
        let (last, before) = events.split_last().unwrap();
        assert_eq!(
            last,
            &Err(ProviderError::Status {
                status: 529,
                message: "Overloaded".to_owned(),
                retry_after: None
            })
        );
        assert!(last.as_ref().unwrap_err().is_retryable());
        assert!(
            before
                .iter()
                .all(|e| !matches!(e, Ok(ChatEvent::Finish(_)) | Err(_))),
            "{before:?}"
        );
        assert!(before.contains(&Ok(ChatEvent::Text("Hel".to_owned()))));
    }

    #[tokio::test]
    async fn a_stream_cut_off_before_message_stop_is_truncated_not_finished() {
        let harness = spawn(Upstream::CutOff).await;
        let events = stream_all(&harness.provider, &ask("hi")).await;
        let (last, before) = events.split_last().unwrap();
        assert_eq!(last, &Err(ProviderError::Truncated));
        assert!(
            before
                .iter()
                .all(|e| !matches!(e, Ok(ChatEvent::Finish(_)) | Err(_))),
            "{before:?}"
        );
    }

    #[tokio::test]
    async fn garbage_bodies_are_malformed() {
        let harness = spawn(Upstream::Garbage).await;
        let error = harness.provider.chat(&ask("hi")).await.unwrap_err();
        assert!(matches!(error, ProviderError::Malformed(_)), "{error:?}");

        let events = stream_all(&harness.provider, &ask("hi")).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(
            matches!(events[0], Err(ProviderError::Malformed(_))),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn embeddings_are_unsupported() {
        let harness = spawn(Upstream::Plain).await;
        let message = unsupported(harness.provider.embed(&EmbeddingsRequest::default()).await);
        assert_eq!(message, "Anthropic offers no embeddings API");
    }
}
