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
    let mut audited = fake_deployment("fake-audited", "ok", upstream);
    audited.audit_content = true;
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
        audited,
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
    // A key's identity is its id (names may repeat); its name is how the trail shows it.
    assert!(
        records
            .iter()
            .all(|r| r.actor.id.starts_with("apikey:ajk_") && r.actor.display_name == "sdk-test"),
        "{records:?}"
    );
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
    let Some(cancelled) = upstream.hung_up_at() else {
        panic!("the upstream call was never cancelled");
    };
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

/// Waits for the usage writer (which batches off the request path) to have written `lines`.
async fn usage_report(app: &TestApp, token: &str, query: &str, lines: usize) -> Value {
    for _ in 0..100 {
        let report: Value = app
            .client
            .get(app.url(&format!("/api/v1/usage?{query}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if report["lines"].as_array().is_some_and(|l| l.len() >= lines) {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("usage for {query} was not written");
}

async fn limits_budgets_caps_and_switches(backend: Backend) {
    let upstream = FakeUpstream::start().await;
    let app = TestApp::spawn_with(backend, |config| {
        configure(config, &upstream);
        config.gateway.principal_limits.requests_per_minute = 3;
        config.gateway.group_limits = vec![ajutant_core::config::GroupLimits {
            group: "g-staff".to_owned(),
            limits: ajutant_core::config::Limits {
                monthly_tokens: 20,
                ..Default::default()
            },
        }];
        config.gateway.max_tokens_cap = 100;
        for deployment in &mut config.deployments {
            if deployment.name == "fake-chat" {
                deployment.price_input_per_1k = 1.0;
                deployment.price_output_per_1k = 2.0;
            }
            if deployment.name == "fake-garbage" {
                deployment.enabled = false;
            }
        }
    })
    .await;
    let key = api_key(&app).await;
    let mut asks_a_lot = chat("fake-chat", false);
    asks_a_lot["max_tokens"] = json!(5000);

    // Two calls of 13 tokens each spend the group's monthly budget of 20.
    for _ in 0..2 {
        let response = post(&app, &key, "/v1/chat/completions", asks_a_lot.clone()).await;
        assert_eq!(response.status(), 200);
    }
    assert!(
        upstream.bodies().iter().all(|b| b["max_tokens"] == 100),
        "capped"
    );
    let refused = post(&app, &key, "/v1/chat/completions", chat("fake-chat", false)).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 60, "until next month: {retry_after}");
    let error: Value = refused.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("monthly budget"),
        "{error}"
    );
    assert_eq!(
        upstream.calls("ok"),
        2,
        "a refused call never reaches the provider"
    );

    // Another service identity, outside the group: its own limit of 3 requests a minute.
    let (_, other) = api_keys::issue(
        &app.store().await,
        NewApiKey {
            name: "other".to_owned(),
            groups: vec![],
            expires_at: None,
            owner_subject: None,
            created_by: "test".to_owned(),
        },
    )
    .await
    .unwrap();
    for _ in 0..3 {
        assert_eq!(
            post(&app, &other, "/v1/chat/completions", chat("offline", false))
                .await
                .status(),
            200
        );
    }
    let limited = post(&app, &other, "/v1/chat/completions", chat("offline", false)).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    // A switched-off deployment refuses; nothing reaches its upstream.
    let off = post(
        &app,
        &other,
        "/v1/chat/completions",
        chat("fake-garbage", false),
    )
    .await;
    assert_eq!(off.status(), 503);
    assert_eq!(upstream.calls("garbage"), 0);

    // Each refusal is on the record: the budget, the rate limit, the switch.
    let denied = app
        .store()
        .await
        .audit_search(&AuditQuery {
            action: Some("model.chat".to_owned()),
            outcome: Some(ajutant_core::audit::Outcome::Denied),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(denied.len(), 3, "{denied:?}");
    assert!(denied.iter().any(|r| r.details.contains("monthly budget")));

    // Usage and cost, for IT operations.
    let ops = ajutant_testkit::identity::access_token(
        &app,
        &ajutant_testkit::identity::demo_user("oscar@example.org"),
    )
    .await
    .unwrap();
    let report = usage_report(&app, &ops, "by=deployment&deployment=fake-chat", 1).await;
    let line = &report["lines"][0];
    assert_eq!(line["key"], "fake-chat");
    assert_eq!(line["calls"], 2);
    assert_eq!(line["input_tokens"], 18);
    assert!(
        (line["cost"].as_f64().unwrap() - 0.034).abs() < 1e-9,
        "{line}"
    );
    let by_group = usage_report(&app, &ops, "by=group", 1).await;
    assert_eq!(by_group["lines"][0]["key"], "g-staff");
    let by_principal = usage_report(&app, &ops, "by=principal", 2).await;
    let keys: Vec<&str> = by_principal["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.iter().filter(|k| k.starts_with("apikey:ajk_")).count() == 2,
        "{keys:?}"
    );
    let alice = ajutant_testkit::identity::access_token(
        &app,
        &ajutant_testkit::identity::demo_user("alice@example.org"),
    )
    .await
    .unwrap();
    let hidden = app
        .client
        .get(app.url("/api/v1/usage"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404);
    app.stop().await.unwrap();
}

async fn the_platform_switch_refuses_every_call(backend: Backend) {
    let upstream = FakeUpstream::start().await;
    let app = TestApp::spawn_with(backend, |config| {
        configure(config, &upstream);
        config.gateway.enabled = false;
    })
    .await;
    let key = api_key(&app).await;
    let response = post(&app, &key, "/v1/chat/completions", chat("fake-chat", false)).await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("platform-wide")
    );
    assert_eq!(upstream.calls("ok"), 0);
    app.stop().await.unwrap();
}

async fn deployments_change_without_a_restart(backend: Backend) {
    let upstream = FakeUpstream::start().await;
    let app = TestApp::spawn_with(backend, |config| configure(config, &upstream)).await;
    let key = api_key(&app).await;
    let admin = ajutant_testkit::identity::access_token(
        &app,
        &ajutant_testkit::identity::demo_user("ada@example.org"),
    )
    .await
    .unwrap();
    let put = |name: &str, body: Value, token: &str| {
        app.client
            .put(app.url(&format!("/api/v1/admin/deployments/{name}")))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let team = json!({ "name": "team-model", "provider": "open_ai_compatible",
                       "endpoint": upstream.endpoint(), "model": "ok" });

    // Only platform admins manage deployments; others see nothing there.
    assert_eq!(
        put("team-model", team.clone(), &key)
            .await
            .unwrap()
            .status(),
        404
    );
    let invalid = json!({ "name": "team-model", "provider": "open_ai_compatible", "model": "ok" });
    let refused = put("team-model", invalid, &admin).await.unwrap();
    assert_eq!(refused.status(), 400);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("endpoint"),
        "{problem}"
    );

    assert_eq!(put("team-model", team, &admin).await.unwrap().status(), 200);
    let answer: Value = post(
        &app,
        &key,
        "/v1/chat/completions",
        chat("team-model", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], ANSWER);

    // Point the same name at another provider: the next call goes there.
    let offline =
        json!({ "name": "team-model", "provider": "offline", "model": "ajutant-offline" });
    assert_eq!(
        put("team-model", offline, &admin).await.unwrap().status(),
        200
    );
    let answer: Value = post(
        &app,
        &key,
        "/v1/chat/completions",
        chat("team-model", false),
    )
    .await
    .json()
    .await
    .unwrap();
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("No language model"), "{content}");

    let listed: Value = app
        .client
        .get(app.url("/api/v1/admin/deployments"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let team_view = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deployment"]["name"] == "team-model")
        .unwrap();
    assert_eq!(team_view["source"], "api");

    let removed = app
        .client
        .delete(app.url("/api/v1/admin/deployments/team-model"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let gone = post(
        &app,
        &key,
        "/v1/chat/completions",
        chat("team-model", false),
    )
    .await;
    assert_eq!(gone.status(), 404);

    // Another instance's change (written straight to the database) is picked up by watching.
    let elsewhere = json!({ "name": "from-elsewhere", "provider": "offline", "model": "x" });
    app.store()
        .await
        .put_deployment(
            "from-elsewhere",
            &elsewhere.to_string(),
            "other-instance",
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let models: Value = app
            .client
            .get(app.url("/v1/models"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "from-elsewhere")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not picked up: {models}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await.unwrap();
}

async fn content_is_audited_only_where_a_deployment_opts_in(backend: Backend) {
    let upstream = FakeUpstream::start().await;
    let app = TestApp::spawn_with(backend, |config| configure(config, &upstream)).await;
    let key = api_key(&app).await;
    for (model, stream) in [
        ("fake-chat", false),
        ("fake-audited", false),
        ("fake-audited", true),
    ] {
        let response = post(&app, &key, "/v1/chat/completions", chat(model, stream)).await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    let store = app.store().await;
    let search = |action: &str| AuditQuery {
        action: Some(action.to_owned()),
        limit: 100,
        ..AuditQuery::default()
    };
    let calls = store.audit_search(&search("model.chat")).await.unwrap();
    let plain = calls
        .iter()
        .find(|r| r.resource == "deployment/fake-chat")
        .unwrap();
    assert!(!plain.details.contains("Say hello"), "{}", plain.details);
    let opted = calls
        .iter()
        .find(|r| r.resource == "deployment/fake-audited")
        .unwrap();
    assert!(opted.details.contains("Say hello"), "{}", opted.details);
    let answers = store
        .audit_search(&search("model.chat.answer"))
        .await
        .unwrap();
    assert_eq!(answers.len(), 2, "one per opted-in call, streamed or not");
    assert!(
        answers.iter().all(|r| r.details.contains(ANSWER)),
        "{answers:?}"
    );
    app.stop().await.unwrap();
}

/// A deployment added through the API may name as its credential only what the operator set
/// aside: naming `PATH` (or any file) as an API key sent its value, as a bearer token, to
/// whatever endpoint the admin chose.
async fn api_deployments_name_only_the_credentials_the_operator_set_aside(backend: Backend) {
    let upstream = FakeUpstream::start().await;
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("team.key"), "sk-team").unwrap();
    let folder = keys.path().to_path_buf();
    let app = TestApp::spawn_with(backend, move |config| {
        configure(config, &upstream);
        config.gateway.api_credentials.folder = Some(folder);
    })
    .await;
    let admin = ajutant_testkit::identity::access_token(
        &app,
        &ajutant_testkit::identity::demo_user("ada@example.org"),
    )
    .await
    .unwrap();
    let put = |credential: Value| {
        app.client
            .put(app.url("/api/v1/admin/deployments/team-model"))
            .bearer_auth(&admin)
            .json(
                &json!({ "name": "team-model", "provider": "open_ai_compatible",
                           "endpoint": "https://models.example.org/v1", "model": "ok",
                           "credential": credential }),
            )
            .send()
    };
    for (credential, says) in [
        (
            json!({ "kind": "api_key_env", "variable": "PATH" }),
            "AJUTANT_MODEL_KEY_",
        ),
        (
            json!({ "kind": "api_key_env", "variable": "AJUTANT_MODEL_KEY_" }),
            "AJUTANT_MODEL_KEY_",
        ),
        (
            json!({ "kind": "api_key_file", "path": "/etc/hostname" }),
            "api_credentials.folder",
        ),
        (
            json!({ "kind": "api_key_file",
                    "path": keys.path().join("../../etc/hostname") }),
            "api_credentials.folder",
        ),
        (
            json!({ "kind": "azure_workload_identity", "token_file": "/etc/hostname",
                    "authority_host": "https://attacker.example/" }),
            "configuration file",
        ),
        (
            json!({ "kind": "azure_managed_identity", "endpoint": "https://attacker.example/" }),
            "configuration file",
        ),
    ] {
        let response = put(credential.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{credential}");
        let problem: Value = response.json().await.unwrap();
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{credential}: {detail}");
    }
    for credential in [
        json!({ "kind": "api_key_env", "variable": "AJUTANT_MODEL_KEY_TEAM" }),
        json!({ "kind": "api_key_file", "path": keys.path().join("team.key") }),
    ] {
        let response = put(credential.clone()).await.unwrap();
        assert_eq!(response.status(), 200, "{credential}");
    }
    app.stop().await.unwrap();
}

/// A streamed completion ends when its key is revoked, as fast as a new request is refused:
/// an error chunk in OpenAI's shape, and the upstream call is cancelled.
async fn a_revoked_key_loses_its_stream_within_a_second(backend: Backend) {
    let upstream = FakeUpstream::start().await;
    let app = TestApp::spawn_with(backend, |config| configure(config, &upstream)).await;
    let (issued, key) = api_keys::issue(
        &app.store().await,
        NewApiKey {
            name: "streamer".to_owned(),
            groups: vec!["g-staff".to_owned()],
            expires_at: None,
            owner_subject: None,
            created_by: "test".to_owned(),
        },
    )
    .await
    .unwrap();
    let admin = ajutant_testkit::identity::access_token(
        &app,
        &ajutant_testkit::identity::demo_user("ada@example.org"),
    )
    .await
    .unwrap();
    let response = post(&app, &key, "/v1/chat/completions", chat("fake-slow", true)).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("tick") {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    let revoked = Instant::now();
    let answer = app
        .client
        .delete(app.url(&format!("/api/v1/admin/api-keys/{}", issued.id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let mut rest = String::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(5), body.next()).await {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let took = revoked.elapsed();
    assert!(took < Duration::from_millis(1500), "ended after {took:?}");
    assert!(rest.contains("\"error\""), "{rest}");
    assert!(!rest.contains("[DONE]"), "{rest}");
    let mut waited = Duration::ZERO;
    while upstream.hung_up_at().is_none() && waited < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    assert!(upstream.hung_up_at().is_some(), "the upstream call went on");
    app.stop().await.unwrap();
}

/// A fallback is a deployment like any: a call whose first deployment is down goes on only to
/// fallbacks the caller may call and that are enabled. The gateway skipped both checks, so a
/// failing public deployment handed callers to a restricted or switched-off one.
async fn fallbacks_keep_their_grants_and_switches(backend: Backend) {
    let upstream = FakeUpstream::start().await;
    let app = TestApp::spawn_with(backend, |config| {
        configure(config, &upstream);
        let mut secret = fake_deployment("secret-ok", "ok", &upstream);
        secret.groups = vec!["g-secret".to_owned()];
        let mut disabled = fake_deployment("disabled-ok", "ok", &upstream);
        disabled.enabled = false;
        let mut guarded = fake_deployment("guarded-down", "down", &upstream);
        guarded.fallbacks = vec!["secret-ok".to_owned(), "disabled-ok".to_owned()];
        config.deployments.extend([secret, disabled, guarded]);
    })
    .await;
    let key = api_key(&app).await;
    let response = post(
        &app,
        &key,
        "/v1/chat/completions",
        chat("guarded-down", false),
    )
    .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(status >= 500, "{status} {body}");
    assert_eq!(upstream.calls("down"), 1);
    assert_eq!(
        upstream.calls("ok"),
        0,
        "a fallback the caller may not use answered"
    );
    app.stop().await.unwrap();
}

both_databases!(
    fallbacks_keep_their_grants_and_switches,
    a_revoked_key_loses_its_stream_within_a_second,
    api_deployments_name_only_the_credentials_the_operator_set_aside,
    content_is_audited_only_where_a_deployment_opts_in,
    deployments_change_without_a_restart,
    limits_budgets_caps_and_switches,
    the_platform_switch_refuses_every_call,
    the_official_sdk_works_against_the_gateway,
    retries_fallbacks_and_upstream_failures,
    a_caller_hanging_up_cancels_the_upstream_call,
    bad_requests_are_openai_shaped,
);
