//! The conformance suite every adapter passes: the shared fake vendor
//! (`ajutant-fake-upstream`, the one the server's tests use), which speaks each vendor's wire
//! format (OpenAI, Azure OpenAI, OpenAI-compatible, Anthropic), and the same scenarios run
//! against every adapter through `ajutant_core::model::ModelProvider`: a plain answer, the same
//! answer streamed, a tool call both ways, embeddings, a rate limit with `Retry-After`, a stream
//! cut short, garbage, and a stalled stream. The fake plays a scenario by the model name a
//! deployment sends.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::time::Duration;

use ajutant_core::config::{Credential, DeploymentConfig, ProviderKind, Timeouts};
use ajutant_core::model::{
    ChatEvent, ChatMessage, ChatRequest, EmbeddingsRequest, FinishReason, MessageRole,
    ModelProvider, ProviderError, TimeoutKind, Tool, ToolChoice,
};
use ajutant_fake_upstream::{
    ANSWER, CHAT_USAGE, EMBEDDING_TOKENS, FEDERATED_ASSERTION, FakeUpstream,
    MANAGED_IDENTITY_TOKEN, RATE_LIMIT_MESSAGE, RETRY_AFTER_SECONDS, Seen, WORKLOAD_CLIENT_ID,
    WORKLOAD_IDENTITY_TOKEN,
};
use futures::StreamExt;
use serde_json::{Value, json};

const API_KEY: &str = "sk-test-conformance";
const KEY_FILE_PREFIX: &str = "ajutant-conformance-key";

/// One adapter against its own fake vendor.
struct Subject {
    fake: FakeUpstream,
    kind: ProviderKind,
    key_file: std::path::PathBuf,
}

async fn subject(kind: ProviderKind) -> Subject {
    let fake = FakeUpstream::start().await;
    let key_file = key_file(&fake);
    Subject {
        fake,
        kind,
        key_file,
    }
}

/// The API key in a file, as a mounted secret would be; one file per test (tests run at once).
fn key_file(fake: &FakeUpstream) -> std::path::PathBuf {
    let unique = fake
        .base_url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let path =
        std::env::temp_dir().join(format!("{KEY_FILE_PREFIX}-{}-{unique}", std::process::id()));
    std::fs::write(&path, format!("{API_KEY}\n")).unwrap();
    path
}

impl Subject {
    /// The adapter for a deployment of `model`: the name tells the fake which scenario to play.
    fn provider(&self, model: &str) -> Arc<dyn ModelProvider> {
        let endpoint = match self.kind {
            ProviderKind::AzureOpenAi | ProviderKind::Anthropic => self.fake.base_url(),
            _ => self.fake.endpoint(),
        };
        let deployment = DeploymentConfig {
            name: "test".to_owned(),
            provider: self.kind,
            endpoint: Some(endpoint.parse().unwrap()),
            model: model.to_owned(),
            api_version: Some("2024-10-21".to_owned()),
            credential: Credential::ApiKeyFile {
                path: self.key_file.clone(),
            },
            timeouts: Timeouts {
                idle_ms: 300,
                ..Timeouts::default()
            },
            ..DeploymentConfig::offline()
        };
        let http = ajutant_providers::http_client(Duration::from_secs(2)).unwrap();
        ajutant_providers::provider_for(&deployment, http).unwrap()
    }

    fn last_seen(&self) -> Seen {
        self.fake.last_request().unwrap()
    }
}

/// A question for a deployment of `model`, offering the weather tool when `tools`.
fn question(model: &str, tools: bool) -> ChatRequest {
    ChatRequest {
        model: model.to_owned(),
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
    let (input_tokens, output_tokens) = CHAT_USAGE;

    // A plain answer.
    let ok = s.provider("ok");
    let answer = ok.chat(&question("ok", false)).await.unwrap();
    assert_eq!(answer.content.as_deref(), Some(ANSWER));
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (input_tokens, output_tokens)
    );
    let Seen { uri, headers, body } = s.last_seen();
    match kind {
        ProviderKind::AzureOpenAi => {
            assert!(
                uri.contains("/openai/deployments/ok/") && uri.contains("api-version=2024-10-21"),
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
            assert_eq!(body["model"], "ok");
        }
    }

    // The same answer streamed.
    let events = collect(&ok, &question("ok", false)).await;
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
            |e| matches!(e, ChatEvent::Usage(u) if u.input_tokens == input_tokens && u.output_tokens == output_tokens)
        ),
        "{events:?}"
    );

    // A tool call, whole and streamed.
    let call = ok.chat(&question("ok", true)).await.unwrap();
    assert_eq!(call.finish_reason, FinishReason::ToolCalls);
    assert_eq!(call.tool_calls.len(), 1);
    assert_eq!(call.tool_calls[0].name, "get_weather");
    let arguments: Value = serde_json::from_str(&call.tool_calls[0].arguments).unwrap();
    assert_eq!(arguments, json!({ "city": "Oslo" }));
    let events: Vec<ChatEvent> = collect(&ok, &question("ok", true))
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
    let error = s
        .provider("limited")
        .chat(&question("limited", false))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::Status { status: 429, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.retry_after(),
        Some(Duration::from_secs(RETRY_AFTER_SECONDS))
    );
    assert!(error.is_retryable());
    assert!(error.to_string().contains(RATE_LIMIT_MESSAGE), "{error}");

    // A stream cut short ends with an error, not a silent finish.
    let events = collect(
        &s.provider("broken-stream"),
        &question("broken-stream", false),
    )
    .await;
    assert!(
        matches!(events.last(), Some(Err(ProviderError::Truncated))),
        "{events:?}"
    );

    // A stalled stream hits the idle timeout.
    let events = collect(&s.provider("stalled"), &question("stalled", false)).await;
    assert!(
        matches!(
            events.last(),
            Some(Err(ProviderError::Timeout(TimeoutKind::Idle)))
        ),
        "{events:?}"
    );

    // Garbage is malformed, never a panic.
    let error = s
        .provider("garbage")
        .chat(&question("garbage", false))
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Malformed(_)), "{error:?}");

    // Embeddings, where the vendor has them.
    let embeddings = ok
        .embed(&EmbeddingsRequest {
            model: "ok".to_owned(),
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
            let seconds: Vec<f32> = embeddings.vectors.iter().map(|v| v[1]).collect();
            assert_eq!(seconds, [0.0, 1.0, 2.0], "in input order");
            assert_eq!(embeddings.usage.input_tokens, EMBEDDING_TOKENS);
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
    let mut request = question("offline", false);
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
    let tools = provider.chat(&question("offline", true)).await.unwrap_err();
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
    let fake = FakeUpstream::start().await;
    let base = fake.base_url();
    let token_file = std::env::temp_dir().join(format!("ajutant-federated-{}", std::process::id()));
    std::fs::write(&token_file, format!("{FEDERATED_ASSERTION}\n")).unwrap();
    let credentials = [
        (
            Credential::AzureManagedIdentity {
                client_id: None,
                endpoint: Some(
                    format!("{base}/metadata/identity/oauth2/token")
                        .parse()
                        .unwrap(),
                ),
            },
            MANAGED_IDENTITY_TOKEN,
        ),
        (
            Credential::AzureWorkloadIdentity {
                tenant_id: Some("test-tenant".to_owned()),
                client_id: Some(WORKLOAD_CLIENT_ID.to_owned()),
                token_file: Some(token_file.clone()),
                authority_host: Some(format!("{base}/").parse().unwrap()),
            },
            WORKLOAD_IDENTITY_TOKEN,
        ),
    ];
    for (credential, token) in credentials {
        let issued_before = fake.tokens_issued();
        let deployment = DeploymentConfig {
            provider: ProviderKind::AzureOpenAi,
            endpoint: Some(base.parse().unwrap()),
            model: "ok".to_owned(),
            api_version: Some("2024-10-21".to_owned()),
            credential,
            ..DeploymentConfig::offline()
        };
        let http = ajutant_providers::http_client(Duration::from_secs(2)).unwrap();
        let provider = ajutant_providers::provider_for(&deployment, http).unwrap();
        for _ in 0..2 {
            let answer = provider.chat(&question("ok", false)).await.unwrap();
            assert_eq!(answer.content.as_deref(), Some(ANSWER));
            let headers = fake.last_request().unwrap().headers;
            assert_eq!(headers["authorization"], format!("Bearer {token}"));
            assert!(headers.get("api-key").is_none());
        }
        assert_eq!(
            fake.tokens_issued() - issued_before,
            1,
            "the token is reused"
        );
    }
}
