//! The conformance suite every adapter passes: one fake upstream on 127.0.0.1:0 that speaks each
//! vendor's wire format (OpenAI, Azure OpenAI, OpenAI-compatible, Anthropic), and the same
//! scenarios run against every adapter through `ajutant_core::model::ModelProvider`: a plain
//! answer, the same answer streamed, a tool call both ways, embeddings, a rate limit with
//! `Retry-After`, a stream cut short, garbage, and a stalled stream.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ajutant_core::config::{Capability, Credential, DeploymentConfig, ProviderKind, Timeouts};
use ajutant_core::model::{
    ChatEvent, ChatMessage, ChatRequest, EmbeddingsRequest, FinishReason, MessageRole,
    ModelProvider, ProviderError, TimeoutKind, Tool, ToolChoice,
};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use serde_json::{Value, json};

const ANSWER: &str = "Hello there, general.";
const API_KEY: &str = "sk-test-conformance";
const KEY_FILE_PREFIX: &str = "ajutant-conformance-key";

/// What the fake upstream does with the next requests; the test sets it per scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Play {
    Answer,
    ToolCall,
    RateLimited,
    CutShort,
    Garbage,
    Stall,
}

#[derive(Clone)]
struct Fake {
    play: Arc<Mutex<Play>>,
    seen: Arc<Mutex<Vec<(String, HeaderMap, Value)>>>,
    tokens_issued: Arc<Mutex<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vendor {
    OpenAi,
    Anthropic,
}

async fn start_fake() -> (SocketAddr, Fake) {
    let fake = Fake {
        play: Arc::new(Mutex::new(Play::Answer)),
        seen: Arc::default(),
        tokens_issued: Arc::default(),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/embeddings", post(openai_embeddings))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(openai_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(openai_embeddings),
        )
        .route("/v1/messages", post(anthropic_messages))
        .route(
            "/metadata/identity/oauth2/token",
            axum::routing::get(imds_token),
        )
        .route("/test-tenant/oauth2/v2.0/token", post(federated_token))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    #[allow(
        clippy::disallowed_methods,
        reason = "a test peer that ends with the test"
    )]
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, fake)
}

fn record(fake: &Fake, uri: &axum::http::Uri, headers: &HeaderMap, body: &Value) -> Play {
    fake.seen
        .lock()
        .unwrap()
        .push((uri.to_string(), headers.clone(), body.clone()));
    *fake.play.lock().unwrap()
}

fn sse(events: Vec<String>, stall: bool) -> Response {
    let stream = futures::stream::iter(events.into_iter().map(Ok::<_, std::io::Error>));
    let body = if stall {
        let hang = futures::stream::once(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::io::Error>(String::new())
        });
        Body::from_stream(stream.chain(hang))
    } else {
        Body::from_stream(stream)
    };
    ([("content-type", "text/event-stream")], body).into_response()
}

fn garbage() -> Response {
    (
        [("content-type", "application/json")],
        "<html>502 upstream</html>",
    )
        .into_response()
}

fn rate_limited(vendor: Vendor) -> Response {
    let body = match vendor {
        Vendor::OpenAi => {
            json!({ "error": { "message": "Rate limit reached", "type": "rate_limit" } })
        }
        Vendor::Anthropic => {
            json!({ "type": "error", "error": { "type": "rate_limit_error", "message": "Rate limit reached" } })
        }
    };
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", "3")],
        axum::Json(body),
    )
        .into_response()
}

async fn openai_chat(
    State(fake): State<Fake>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let play = record(&fake, &uri, &headers, &body);
    let stream = body["stream"] == json!(true);
    match play {
        Play::RateLimited => return rate_limited(Vendor::OpenAi),
        Play::Garbage => return garbage(),
        _ => {}
    }
    let usage = json!({ "prompt_tokens": 11, "completion_tokens": 5 });
    if !stream {
        let message = if play == Play::ToolCall {
            json!({ "role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": { "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}" } }] })
        } else {
            json!({ "role": "assistant", "content": ANSWER })
        };
        let finish = if play == Play::ToolCall {
            "tool_calls"
        } else {
            "stop"
        };
        return axum::Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-test",
            "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
            "usage": usage,
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-test",
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
        )
    };
    let mut events = vec![chunk(json!({ "role": "assistant" }), Value::Null)];
    if play == Play::ToolCall {
        events.push(chunk(
            json!({ "tool_calls": [{ "index": 0, "id": "call_1", "type": "function",
                     "function": { "name": "get_weather", "arguments": "" } }] }),
            Value::Null,
        ));
        for piece in ["{\"ci", "ty\":\"Os", "lo\"}"] {
            events.push(chunk(
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] }),
                Value::Null,
            ));
        }
    } else {
        for piece in ["Hello", " there,", " general."] {
            events.push(chunk(json!({ "content": piece }), Value::Null));
        }
    }
    if matches!(play, Play::CutShort | Play::Stall) {
        return sse(events, play == Play::Stall);
    }
    let finish = if play == Play::ToolCall {
        "tool_calls"
    } else {
        "stop"
    };
    events.push(chunk(json!({}), json!(finish)));
    events.push(format!(
        "data: {}\n\n",
        json!({ "id": "chatcmpl-1", "model": "gpt-test", "choices": [], "usage": usage })
    ));
    events.push("data: [DONE]\n\n".to_owned());
    sse(events, false)
}

async fn openai_embeddings(
    State(fake): State<Fake>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let play = record(&fake, &uri, &headers, &body);
    if play == Play::Garbage {
        return garbage();
    }
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    // Returned out of order: the adapter must sort by index.
    let data: Vec<Value> = (0..inputs.len())
        .rev()
        .map(|i| json!({ "object": "embedding", "index": i, "embedding": [i as f32, 0.5, 1.0] }))
        .collect();
    axum::Json(
        json!({ "object": "list", "data": data, "model": "embed-test",
                       "usage": { "prompt_tokens": 7, "total_tokens": 7 } }),
    )
    .into_response()
}

/// The instance metadata service: a token for Azure OpenAI, asked for with `Metadata: true`.
async fn imds_token(
    State(fake): State<Fake>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    if headers.get("metadata").map(|v| v.as_bytes()) != Some(b"true")
        || query.get("resource").map(String::as_str) != Some("https://cognitiveservices.azure.com")
    {
        return StatusCode::BAD_REQUEST.into_response();
    }
    *fake.tokens_issued.lock().unwrap() += 1;
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    axum::Json(json!({ "access_token": "imds-token", "expires_on": expires.to_string() }))
        .into_response()
}

/// Entra's token endpoint for workload identity: the federated token must come as the assertion.
async fn federated_token(
    State(fake): State<Fake>,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    let ok = form.get("client_assertion").map(String::as_str) == Some("federated-jwt")
        && form.get("scope").map(String::as_str)
            == Some("https://cognitiveservices.azure.com/.default")
        && form.get("client_id").map(String::as_str) == Some("wi-client");
    if !ok {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    *fake.tokens_issued.lock().unwrap() += 1;
    axum::Json(json!({ "access_token": "wi-token", "expires_in": 3600, "token_type": "Bearer" }))
        .into_response()
}

async fn anthropic_messages(
    State(fake): State<Fake>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let play = record(&fake, &uri, &headers, &body);
    match play {
        Play::RateLimited => return rate_limited(Vendor::Anthropic),
        Play::Garbage => return garbage(),
        _ => {}
    }
    let tool = play == Play::ToolCall;
    if body["stream"] != json!(true) {
        let content = if tool {
            json!([{ "type": "tool_use", "id": "call_1", "name": "get_weather", "input": { "city": "Oslo" } }])
        } else {
            json!([{ "type": "text", "text": ANSWER }])
        };
        return axum::Json(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
            "content": content, "stop_reason": if tool { "tool_use" } else { "end_turn" },
            "usage": { "input_tokens": 11, "output_tokens": 5 },
        }))
        .into_response();
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![event(
        "message_start",
        json!({ "type": "message_start", "message": { "id": "msg_1", "type": "message",
            "role": "assistant", "model": "claude-test", "content": [],
            "usage": { "input_tokens": 11, "output_tokens": 1 } } }),
    )];
    if tool {
        events.push(event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0, "content_block":
                { "type": "tool_use", "id": "call_1", "name": "get_weather", "input": {} } }),
        ));
        for piece in ["{\"ci", "ty\":\"Os", "lo\"}"] {
            events.push(event(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": 0,
                        "delta": { "type": "input_json_delta", "partial_json": piece } }),
            ));
        }
    } else {
        events.push(event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0,
                    "content_block": { "type": "text", "text": "" } }),
        ));
        events.push(event("ping", json!({ "type": "ping" })));
        for piece in ["Hello", " there,", " general."] {
            events.push(event(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": 0,
                        "delta": { "type": "text_delta", "text": piece } }),
            ));
        }
    }
    if matches!(play, Play::CutShort | Play::Stall) {
        return sse(events, play == Play::Stall);
    }
    events.push(event(
        "content_block_stop",
        json!({ "type": "content_block_stop", "index": 0 }),
    ));
    events.push(event(
        "message_delta",
        json!({ "type": "message_delta",
                "delta": { "stop_reason": if tool { "tool_use" } else { "end_turn" } },
                "usage": { "output_tokens": 5 } }),
    ));
    events.push(event("message_stop", json!({ "type": "message_stop" })));
    sse(events, false)
}

struct Subject {
    provider: Arc<dyn ModelProvider>,
    fake: Fake,
    kind: ProviderKind,
}

async fn subject(kind: ProviderKind) -> Subject {
    let (address, fake) = start_fake().await;
    let endpoint = match kind {
        ProviderKind::AzureOpenAi | ProviderKind::Anthropic => format!("http://{address}"),
        _ => format!("http://{address}/v1"),
    };
    let deployment = DeploymentConfig {
        name: "test".to_owned(),
        provider: kind,
        endpoint: Some(endpoint.parse().unwrap()),
        model: "upstream-model".to_owned(),
        api_version: Some("2024-10-21".to_owned()),
        capabilities: vec![Capability::Chat, Capability::Embeddings],
        credential: Credential::ApiKeyFile {
            path: key_file(address.port()),
        },
        timeouts: Timeouts {
            idle_ms: 300,
            ..Timeouts::default()
        },
        retries: 0,
        fallbacks: Vec::new(),
        price_input_per_1k: 0.0,
        price_output_per_1k: 0.0,
        groups: Vec::new(),
        enabled: true,
        audit_content: false,
    };
    let http = ajutant_providers::http_client(Duration::from_secs(2)).unwrap();
    Subject {
        provider: ajutant_providers::provider_for(&deployment, http).unwrap(),
        fake,
        kind,
    }
}

/// The API key in a file, as a mounted secret would be; one file per test (tests run at once).
fn key_file(unique: u16) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("{KEY_FILE_PREFIX}-{}-{unique}", std::process::id()));
    std::fs::write(&path, format!("{API_KEY}\n")).unwrap();
    path
}

impl Subject {
    fn play(&self, play: Play) {
        *self.fake.play.lock().unwrap() = play;
    }

    fn last_seen(&self) -> (String, HeaderMap, Value) {
        self.fake.seen.lock().unwrap().last().cloned().unwrap()
    }
}

fn question(tools: bool) -> ChatRequest {
    ChatRequest {
        model: "upstream-model".to_owned(),
        messages: vec![
            ChatMessage::text(MessageRole::System, "Be brief."),
            ChatMessage::text(MessageRole::User, "Greet me."),
        ],
        max_tokens: Some(64),
        tools: if tools {
            vec![Tool {
                name: "get_weather".to_owned(),
                description: Some("Weather for a city".to_owned()),
                parameters: json!({ "type": "object", "properties": { "city": { "type": "string" } } }),
            }]
        } else {
            Vec::new()
        },
        tool_choice: tools.then_some(ToolChoice::Auto),
        ..ChatRequest::default()
    }
}

async fn collect(
    provider: &Arc<dyn ModelProvider>,
    request: &ChatRequest,
) -> Vec<Result<ChatEvent, ProviderError>> {
    let stream = provider.chat_stream(request).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), stream.collect())
        .await
        .unwrap()
}

async fn conformance(kind: ProviderKind) {
    let s = subject(kind).await;

    // A plain answer.
    let answer = s.provider.chat(&question(false)).await.unwrap();
    assert_eq!(answer.content.as_deref(), Some(ANSWER));
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (11, 5)
    );
    let (uri, headers, body) = s.last_seen();
    match kind {
        ProviderKind::AzureOpenAi => {
            assert!(
                uri.contains("/openai/deployments/upstream-model/")
                    && uri.contains("api-version=2024-10-21"),
                "{uri}"
            );
            assert_eq!(headers["api-key"], API_KEY);
        }
        ProviderKind::Anthropic => {
            assert_eq!(headers["x-api-key"], API_KEY);
            assert_eq!(headers["anthropic-version"], "2023-06-01");
            assert_eq!(body["system"], "Be brief.");
            assert_eq!(body["max_tokens"], 64);
        }
        _ => {
            assert_eq!(headers["authorization"], format!("Bearer {API_KEY}"));
            assert_eq!(body["model"], "upstream-model");
        }
    }

    // The same answer streamed.
    let events = collect(&s.provider, &question(false)).await;
    let events: Vec<ChatEvent> = events.into_iter().map(Result::unwrap).collect();
    assert!(
        matches!(events.first(), Some(ChatEvent::Start { .. })),
        "{events:?}"
    );
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, ANSWER);
    assert!(
        events.contains(&ChatEvent::Finish(FinishReason::Stop)),
        "{events:?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, ChatEvent::Usage(u) if u.input_tokens == 11 && u.output_tokens == 5)
        ),
        "{events:?}"
    );

    // A tool call, whole and streamed.
    s.play(Play::ToolCall);
    let call = s.provider.chat(&question(true)).await.unwrap();
    assert_eq!(call.finish_reason, FinishReason::ToolCalls);
    assert_eq!(call.tool_calls.len(), 1);
    assert_eq!(call.tool_calls[0].name, "get_weather");
    let arguments: Value = serde_json::from_str(&call.tool_calls[0].arguments).unwrap();
    assert_eq!(arguments, json!({ "city": "Oslo" }));
    let events: Vec<ChatEvent> = collect(&s.provider, &question(true))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::ToolCall(delta) => delta.arguments.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&streamed).unwrap(),
        json!({ "city": "Oslo" })
    );
    assert!(events.iter().any(|e| matches!(e, ChatEvent::ToolCall(d) if d.name.as_deref() == Some("get_weather") && d.id.as_deref() == Some("call_1"))));
    assert!(events.contains(&ChatEvent::Finish(FinishReason::ToolCalls)));

    // A rate limit, with the upstream's Retry-After.
    s.play(Play::RateLimited);
    let error = s.provider.chat(&question(false)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Status { status: 429, .. }),
        "{error:?}"
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    assert!(error.is_retryable());
    assert!(error.to_string().contains("Rate limit reached"), "{error}");

    // A stream cut short ends with an error, not a silent finish.
    s.play(Play::CutShort);
    let events = collect(&s.provider, &question(false)).await;
    assert!(
        matches!(events.last(), Some(Err(ProviderError::Truncated))),
        "{events:?}"
    );

    // A stalled stream hits the idle timeout.
    s.play(Play::Stall);
    let events = collect(&s.provider, &question(false)).await;
    assert!(
        matches!(
            events.last(),
            Some(Err(ProviderError::Timeout(TimeoutKind::Idle)))
        ),
        "{events:?}"
    );

    // Garbage is malformed, never a panic.
    s.play(Play::Garbage);
    let error = s.provider.chat(&question(false)).await.unwrap_err();
    assert!(matches!(error, ProviderError::Malformed(_)), "{error:?}");

    // Embeddings, where the vendor has them.
    s.play(Play::Answer);
    let embeddings = s
        .provider
        .embed(&EmbeddingsRequest {
            model: "upstream-model".to_owned(),
            input: vec!["a".to_owned(), "b".to_owned(), "c".to_owned()],
            dimensions: None,
        })
        .await;
    match s.kind {
        ProviderKind::Anthropic => {
            assert!(
                matches!(embeddings, Err(ProviderError::Unsupported(_))),
                "{embeddings:?}"
            );
        }
        _ => {
            let embeddings = embeddings.unwrap();
            let firsts: Vec<f32> = embeddings.vectors.iter().map(|v| v[0]).collect();
            assert_eq!(firsts, [0.0, 1.0, 2.0], "in input order");
            assert_eq!(embeddings.usage.input_tokens, 7);
        }
    }
}

/// Every provider against the suite it must pass. The match has no `_` arm, so a new
/// `ProviderKind` does not compile until it names its suite here.
async fn conforms(kind: ProviderKind) {
    match kind {
        ProviderKind::OpenAi
        | ProviderKind::AzureOpenAi
        | ProviderKind::OpenAiCompatible
        | ProviderKind::Anthropic => conformance(kind).await,
        ProviderKind::Offline => offline_conforms().await,
        // Needs the real model files: tests/local_embeddings.rs runs its suite.
        ProviderKind::Local => {}
    }
}

#[tokio::test]
async fn openai_conforms() {
    conforms(ProviderKind::OpenAi).await;
}

#[tokio::test]
async fn azure_openai_conforms() {
    conforms(ProviderKind::AzureOpenAi).await;
}

#[tokio::test]
async fn openai_compatible_conforms() {
    conforms(ProviderKind::OpenAiCompatible).await;
}

#[tokio::test]
async fn anthropic_conforms() {
    conforms(ProviderKind::Anthropic).await;
}

#[tokio::test]
async fn offline_provider_conforms() {
    conforms(ProviderKind::Offline).await;
}

/// The offline provider needs no upstream; it must still stream, finish and count like one.
async fn offline_conforms() {
    let deployment = DeploymentConfig::offline();
    let provider = ajutant_providers::provider_for(
        &deployment,
        ajutant_providers::http_client(Duration::from_secs(1)).unwrap(),
    )
    .unwrap();
    let mut request = question(false);
    request.grounding = vec![ajutant_core::model::Passage {
        citation: "1".to_owned(),
        title: "Greetings guide".to_owned(),
        text: "Greet people by name. Keep it short.".to_owned(),
    }];
    let whole = provider.chat(&request).await.unwrap();
    let events: Vec<ChatEvent> = collect(&provider, &request)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(Some(streamed.as_str()), whole.content.as_deref());
    assert!(streamed.contains("Greet people by name. [1]"), "{streamed}");
    assert!(whole.usage.input_tokens > 0 && whole.usage.output_tokens > 0);
    assert_eq!(events.last(), Some(&ChatEvent::Usage(whole.usage)));
    let tools = provider.chat(&question(true)).await.unwrap_err();
    assert!(matches!(tools, ProviderError::Unsupported(_)));
    let vectors = provider
        .embed(&EmbeddingsRequest {
            model: String::new(),
            input: vec!["greet".to_owned()],
            dimensions: None,
        })
        .await
        .unwrap();
    assert_eq!(vectors.vectors[0].len(), 384);
}

/// Azure OpenAI without a key: a managed identity's token, and a workload identity's, each
/// fetched once and reused.
#[tokio::test]
async fn azure_openai_takes_entra_tokens_from_managed_and_workload_identity() {
    let (address, fake) = start_fake().await;
    let token_file = std::env::temp_dir().join(format!("ajutant-federated-{}", std::process::id()));
    std::fs::write(&token_file, "federated-jwt\n").unwrap();
    let credentials = [
        (
            Credential::AzureManagedIdentity {
                client_id: None,
                endpoint: Some(
                    format!("http://{address}/metadata/identity/oauth2/token")
                        .parse()
                        .unwrap(),
                ),
            },
            "Bearer imds-token",
        ),
        (
            Credential::AzureWorkloadIdentity {
                tenant_id: Some("test-tenant".to_owned()),
                client_id: Some("wi-client".to_owned()),
                token_file: Some(token_file.clone()),
                authority_host: Some(format!("http://{address}/").parse().unwrap()),
            },
            "Bearer wi-token",
        ),
    ];
    for (credential, expected) in credentials {
        *fake.tokens_issued.lock().unwrap() = 0;
        let deployment = DeploymentConfig {
            provider: ProviderKind::AzureOpenAi,
            endpoint: Some(format!("http://{address}").parse().unwrap()),
            model: "upstream-model".to_owned(),
            api_version: Some("2024-10-21".to_owned()),
            credential,
            ..DeploymentConfig::offline()
        };
        let http = ajutant_providers::http_client(Duration::from_secs(2)).unwrap();
        let provider = ajutant_providers::provider_for(&deployment, http).unwrap();
        for _ in 0..2 {
            let answer = provider.chat(&question(false)).await.unwrap();
            assert_eq!(answer.content.as_deref(), Some(ANSWER));
            let (_, headers, _) = fake.seen.lock().unwrap().last().cloned().unwrap();
            assert_eq!(headers["authorization"], expected);
            assert!(headers.get("api-key").is_none());
        }
        assert_eq!(
            *fake.tokens_issued.lock().unwrap(),
            1,
            "the token is reused"
        );
    }
}
