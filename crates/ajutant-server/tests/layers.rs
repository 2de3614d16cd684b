//! The request layers on routes of the test's own: timeouts and panics become problem details.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::time::Duration;

use ajutant_core::config::ServerConfig;
use ajutant_server::app::with_layers;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
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
