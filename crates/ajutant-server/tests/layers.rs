//! The request layers on routes of the test's own: timeouts and panics become problem details,
//! and a handler's audit record carries the request's id, trace id and client address.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::time::Duration;

use std::net::SocketAddr;

use ajutant_core::audit::{Actor, AuditEvent, Outcome};
use ajutant_core::config::ServerConfig;
use ajutant_server::app::with_layers;
use ajutant_server::request::RequestContext;
use ajutant_store::AuditLog;
use ajutant_testkit::{Backend, TestDatabase};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use serde_json::Value;
use tower::ServiceExt;

fn app() -> Router {
    let server = ServerConfig {
        request_timeout_secs: 1,
        ..ServerConfig::default()
    };
    let routes = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "too late"
            }),
        )
        .route(
            "/panics",
            get(|| async {
                if true {
                    panic!("internal detail that must not leak");
                }
                "unreachable"
            }),
        );
    with_layers(routes, &server)
}

async fn problem(path: &str) -> (StatusCode, Value) {
    let response = app()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_503_problem() {
    let started = std::time::Instant::now();
    let (status, problem) = problem("/slow").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["status"], 503);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_panicking_handler_gets_500_problem_without_its_message() {
    let (status, problem) = problem("/panics").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(problem["title"], "Internal Server Error");
    assert!(problem.get("detail").is_none());
    assert!(!problem.to_string().contains("must not leak"));
    assert_eq!(problem["request_id"].as_str().unwrap().len(), 36);
}

#[tokio::test]
async fn a_handlers_audit_record_carries_the_requests_identity() {
    let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let store = database.store().await.unwrap();
    let (audit, writer) = AuditLog::start(store.clone(), 16);
    let routes = Router::new()
        .route(
            "/act",
            post(
                |State(audit): State<AuditLog>, context: RequestContext| async move {
                    let event = AuditEvent::new(
                        Actor::system(),
                        ajutant_core::audit::AuditAction::ServerStarted,
                        "thing/1",
                        Outcome::Allowed,
                    )
                    .with_origin(context.origin());
                    audit
                        .append(event)
                        .await
                        .map(|receipt| receipt.seq.to_string())
                        .unwrap()
                },
            ),
        )
        .with_state(audit);
    let mut request = Request::post("/act")
        .header("x-request-id", "req-audit-1")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .unwrap();
    let client: SocketAddr = "198.51.100.23:50000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(client));
    let response = with_layers(routes, &ServerConfig::default())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    writer.finish(Duration::from_secs(5)).await;

    let records = store.audit_page(0, None, 10).await.unwrap();
    assert_eq!(records.len(), 1);
    let origin = &records[0].origin;
    assert_eq!(origin.request_id.as_deref(), Some("req-audit-1"));
    assert_eq!(
        origin.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(origin.client_addr.as_deref(), Some("198.51.100.23"));
}
