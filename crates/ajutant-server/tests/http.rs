//! The real server over HTTP, on SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::path::PathBuf;
use std::process::Command;

use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

both_databases!(
    health_and_readiness_answer,
    an_unknown_route_is_a_problem_with_the_request_id,
    a_callers_request_id_and_trace_are_kept,
    a_body_over_the_limit_is_refused_before_it_is_read,
    a_wrong_method_is_a_problem,
    metrics_count_requests_by_route,
    start_and_stop_are_in_the_audit_trail,
);

async fn health_and_readiness_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["database"], expected);
    assert!(body["migrations_applied"].as_u64().unwrap() >= 1);
    app.stop().await.unwrap();
}

async fn an_unknown_route_is_a_problem_with_the_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .client
        .get(app.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let trace_id = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["title"], "Not Found");
    assert_eq!(problem["instance"], "/no/such/thing");
    assert_eq!(problem["request_id"], request_id.as_str());
    assert_eq!(problem["trace_id"], trace_id.as_str());
    assert!(uuid::Uuid::parse_str(&request_id).is_ok(), "{request_id}");
    app.stop().await.unwrap();
}

async fn a_callers_request_id_and_trace_are_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "caller-req-42")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "caller-req-42");
    assert_eq!(
        response.headers()["x-trace-id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );

    let bad = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "x".repeat(300))
        .send()
        .await
        .unwrap();
    let replaced = bad.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(replaced).is_ok(), "{replaced}");
    assert_eq!(bad.headers()["x-trace-id"].len(), 32);
    app.stop().await.unwrap();
}

async fn a_body_over_the_limit_is_refused_before_it_is_read(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.server.body_limit_bytes = 1024).await;
    let response = app
        .client
        .post(app.url("/healthz"))
        .header(CONTENT_TYPE, "application/json")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 413);
    assert!(problem["request_id"].is_string());
    app.stop().await.unwrap();
}

async fn a_wrong_method_is_a_problem(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.client.delete(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
    assert!(response.headers().contains_key("allow"));
    app.stop().await.unwrap();
}

async fn metrics_count_requests_by_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for _ in 0..3 {
        app.client.get(app.url("/healthz")).send().await.unwrap();
    }
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("ajutant_http_requests_total")
                && l.contains("route=\"/healthz\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no healthz counter in:\n{text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{line}");
    assert!(text.contains("ajutant_audit_records_total"), "{text}");
    app.stop().await.unwrap();
}

async fn start_and_stop_are_in_the_audit_trail(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let database = app.stop().await.unwrap();
    let store = database.store().await.unwrap();
    let records = store.audit_page(0, None, 10).await.unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["server.started", "server.stopped"]);
    assert_eq!(records[0].actor.id, "system");
    assert!(matches!(
        store.verify_audit_chain().await.unwrap(),
        ajutant_store::ChainStatus::Intact { records: 2, .. }
    ));
    // The stop is covered by a signed checkpoint: with SQLite the key was made beside the
    // database file; PostgreSQL without a configured key signs nothing.
    let checkpoints = store.audit_checkpoints().await.unwrap();
    match backend {
        Backend::Sqlite => {
            assert_eq!(
                checkpoints.last().map(|c| c.seq),
                Some(2),
                "{checkpoints:?}"
            );
            let file = database.url().trim_start_matches("sqlite://").to_owned() + ".audit-key";
            let key = ajutant_core::audit_checkpoint::CheckpointKey::from_hex(
                &std::fs::read_to_string(file).unwrap(),
            )
            .unwrap();
            assert!(matches!(
                store.verify_audit_chain_signed(&key).await.unwrap(),
                ajutant_store::ChainStatus::Intact { checkpoints: 1, .. }
            ));
        }
        Backend::Postgres => assert!(checkpoints.is_empty(), "{checkpoints:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_with_a_problem_when_the_database_is_gone() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.database().cut_off().await.unwrap();
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
    let problem: Value = response.json().await.unwrap();
    // Unreachable, or still being retried when the probe's 2 s are up: either way, not ready.
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.starts_with("the database"), "{detail}");
    // Liveness does not depend on the database.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// PostgreSQL stopped under load, then started again: while it is down every request is
/// answered within two acquire timeouts (2 s each) with a 503 and `Retry-After` (OpenAI's error shape
/// on `/v1`, a problem elsewhere) and readiness fails; afterwards the same instance serves again
/// and every answered model call has its audit record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_at_once_and_the_instance_recovers() {
    use ajutant_testkit::identity::{access_token, demo_user};
    use ajutant_testkit::{PostgresServer, TestDatabase};
    use std::time::{Duration, Instant};

    let server = PostgresServer::start().unwrap();
    let app = TestApp::spawn_on(TestDatabase::on_server(&server), |_| {}).await;
    let token = access_token(&app, &demo_user("alice@example.org"))
        .await
        .unwrap();
    let chat = || {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "model": "offline",
                "messages": [{ "role": "user", "content": "Hello" }],
            }))
            .send()
    };
    let mut answered = 0;
    for _ in 0..3 {
        assert_eq!(chat().await.unwrap().status(), StatusCode::OK);
        answered += 1;
    }

    server.stop().unwrap();
    let down = Instant::now();
    let calls = futures::future::join_all((0..8).map(|_| async {
        let started = Instant::now();
        let response = chat().await.unwrap();
        (started.elapsed(), response)
    }))
    .await;
    for (took, response) in calls {
        // At most two acquire timeouts: the audit batch in flight, then the caller's own.
        assert!(took < Duration::from_secs(5), "a call waited {took:?}");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "server_error", "{body}");
    }
    let listed = app
        .client
        .get(app.url("/api/v1/conversations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(listed.headers().contains_key("retry-after"));
    assert_eq!(listed.headers()[CONTENT_TYPE], "application/problem+json");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        down.elapsed() < Duration::from_secs(20),
        "{:?}",
        down.elapsed()
    );

    server.start_again().unwrap();
    let back = Instant::now();
    loop {
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        if ready.status() == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(chat().await.unwrap().status(), StatusCode::OK);
    answered += 1;

    // Every answered call was audited; refused ones were never answered.
    let store = app.store().await;
    let records = store.audit_page(0, None, 1000).await.unwrap();
    let audited = records
        .iter()
        .filter(|r| r.action == "model.chat" && r.outcome == ajutant_core::audit::Outcome::Allowed)
        .count();
    assert_eq!(audited, answered, "answered {answered}, audited {audited}");
    assert!(matches!(
        store.verify_audit_chain().await.unwrap(),
        ajutant_store::ChainStatus::Intact { .. }
    ));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_openapi_document_passes_a_real_validator() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(document["paths"][path].is_object(), "{path} undocumented");
    }
    assert!(document["components"]["schemas"]["Problem"].is_object());

    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&document).unwrap()).unwrap();
    let python = test_python();
    let output = Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/test", python.display()));
    assert!(
        output.status.success(),
        "openapi-spec-validator rejected the document:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    app.stop().await.unwrap();
}

/// The Python that `scripts/test` prepared (with openapi-spec-validator).
fn test_python() -> PathBuf {
    std::env::var_os("TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"))
}

#[tokio::test]
async fn the_api_reference_is_served_from_the_binary() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("cdn."), "the page must not load from a CDN");
    for asset in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"] {
        let response = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    app.stop().await.unwrap();
}
