//! The OpenAI-compatible gateway, driven by the official `openai` Python SDK (tests/sdk) and,
//! for what the SDK hides, over raw HTTP against a fake upstream: a retry after 503 with
//! `Retry-After`, a fallback, a half-finished stream, a caller hanging up, garbage upstream,
//! and the audit record of each call.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ajutant_core::config::{Capability, Config, DeploymentConfig, ProviderKind};
use ajutant_server::identity::api_keys::{self, NewApiKey};
use ajutant_store::AuditQuery;
use ajutant_testkit::fake_upstream::{ANSWER, FakeUpstream};
use ajutant_testkit::{Backend, TestApp, both_databases};
use futures::StreamExt;
use serde_json::{Value, json};

fn fake_deployment(name: &str, model: &str, upstream: &FakeUpstream) -> DeploymentConfig {
    DeploymentConfig {
        name: name.to_owned(),
        provider: ProviderKind::OpenAiCompatible,
        endpoint: Some(upstream.endpoint().parse().unwrap()),
        model: model.to_owned(),
        capabilities: vec![Capability::Chat, Capability::Embeddings],
        retries: 0,
        ..DeploymentConfig::offline()
    }
}

fn configure(config: &mut Config, upstream: &FakeUpstream) {
    let mut flaky = fake_deployment("fake-flaky", "flaky", upstream);
    flaky.retries = 2;
    let mut down = fake_deployment("fake-down", "down", upstream);
    down.fallbacks = vec!["fake-chat".to_owned()];
    let mut restricted = DeploymentConfig::offline();
    restricted.name = "restricted".to_owned();
    restricted.groups = vec!["g-secret".to_owned()];
    config.deployments = vec![
        DeploymentConfig::offline(),
        fake_deployment("fake-chat", "ok", upstream),
        flaky,
        down,
        fake_deployment("fake-limited", "limited", upstream),
        fake_deployment("fake-broken", "broken-stream", upstream),
        fake_deployment("fake-garbage", "garbage", upstream),
        fake_deployment("fake-slow", "slow", upstream),
        restricted,
    ];
}

async fn api_key(app: &TestApp) -> String {
    let (_, secret) = api_keys::issue(
        &app.store().await,
        NewApiKey {
            name: "sdk-test".to_owned(),
            groups: vec!["g-staff".to_owned()],
            expires_at: None,
            owner_subject: None,
            created_by: "test".to_owned(),
        },
    )
    .await
    .unwrap();
    secret
}

fn test_python() -> PathBuf {
    std::env::var_os("TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"))
}

async fn the_official_sdk_works_against_the_gateway(backend: Backend) {
    let upstream = FakeUpstream::start().await;
    let app = TestApp::spawn_with(backend, |config| configure(config, &upstream)).await;
    let key = api_key(&app).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/gateway_sdk.py");
    let python = test_python();
    let base_url = app.url("/v1");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(script)
            .env("BASE_URL", base_url)
            .env("API_KEY", key)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/test", python.display()))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "ok");
    // Nothing about transport reached the upstream.
    for body in upstream.bodies() {
        for field in ["api_base", "api_key", "user", "extra_headers"] {
            assert!(body.get(field).is_none(), "{field} was forwarded: {body}");
        }
    }
    app.stop().await.unwrap();
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(model: &str, stream: bool) -> Value {
    json!({ "model": model, "stream": stream,
            "messages": [{ "role": "user", "content": "Say hello." }] })
}

async fn retries_fallbacks_and_upstream_failures(backend: Backend) {
    let upstream = FakeUpstream::start().await;
    let app = TestApp::spawn_with(backend, |config| configure(config, &upstream)).await;
    let key = api_key(&app).await;

    // 503 with Retry-After: 1, then success: the gateway waited and tried again.
    let started = Instant::now();
    let response = post(
        &app,
        &key,
        "/v1/chat/completions",
        chat("fake-flaky", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.calls("flaky"), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After honoured"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], ANSWER);

    // The first deployment is down; its fallback answers.
    let response = post(&app, &key, "/v1/chat/completions", chat("fake-down", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.calls("down"), 1);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["model"], "fake-down",
        "callers see the deployment they named"
    );

    // Garbage from upstream: a 502 in OpenAI's shape.
    let response = post(
        &app,
        &key,
        "/v1/chat/completions",
        chat("fake-garbage", false),
    )
    .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "upstream_error");

    // A half-finished stream ends with an error event, and no [DONE].
    let response = post(
        &app,
        &key,
        "/v1/chat/completions",
        chat("fake-broken", true),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("data: {\"error\""), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");

    // Every accepted call is on the record, with the caller and the deployment.
    let records = app
        .store()
        .await
        .audit_search(&AuditQuery {
            action: Some("model.chat".to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r.actor.id == "apikey:sdk-test"));
    assert!(
        records
            .iter()
            .any(|r| r.resource == "deployment/fake-flaky")
    );
    assert!(records.iter().all(|r| r.origin.trace_id.is_some()));
    app.stop().await.unwrap();
}

async fn a_caller_hanging_up_cancels_the_upstream_call(backend: Backend) {
    let upstream = FakeUpstream::start().await;
    let app = TestApp::spawn_with(backend, |config| configure(config, &upstream)).await;
    let key = api_key(&app).await;
    let response = post(&app, &key, "/v1/chat/completions", chat("fake-slow", true)).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    // Read until the upstream's ticks are flowing through.
    let mut seen = String::new();
    while !seen.contains("tick") {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    assert!(upstream.slow_stream_running());
    let hung_up = Instant::now();
    drop(body);
    let mut waited = Duration::ZERO;
    while upstream.hung_up_at().is_none() && waited < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    let cancelled = upstream
        .hung_up_at()
        .expect("the upstream call was never cancelled");
    let after = cancelled.saturating_duration_since(hung_up);
    assert!(
        after < Duration::from_secs(1),
        "cancelled {after:?} after the caller left"
    );
    app.stop().await.unwrap();
}

async fn bad_requests_are_openai_shaped(backend: Backend) {
    let upstream = FakeUpstream::start().await;
    let app = TestApp::spawn_with(backend, |config| configure(config, &upstream)).await;
    let key = api_key(&app).await;
    for (body, param) in [
        (json!({ "messages": [] }), "model"),
        (
            json!({ "model": "fake-chat", "messages": "hi" }),
            "messages",
        ),
        (
            json!({ "model": "fake-chat", "n": 3, "messages": [{ "role": "user", "content": "x" }] }),
            "n",
        ),
        (
            json!({ "model": "fake-chat", "max_tokens": -1, "messages": [{ "role": "user", "content": "x" }] }),
            "max_tokens",
        ),
    ] {
        let response = post(&app, &key, "/v1/chat/completions", body).await;
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], param, "{error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    let not_json = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let anonymous = app.client.get(app.url("/v1/models")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let error: Value = anonymous.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key");
    app.stop().await.unwrap();
}

both_databases!(
    the_official_sdk_works_against_the_gateway,
    retries_fallbacks_and_upstream_failures,
    a_caller_hanging_up_cancels_the_upstream_call,
    bad_requests_are_openai_shaped,
);
