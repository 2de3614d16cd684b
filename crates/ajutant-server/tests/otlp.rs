//! With a collector configured, request spans are exported over OTLP/HTTP and keep the caller's
//! trace id. Its own test binary, because the tracing subscriber is process-wide.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::sync::{Arc, Mutex};

use ajutant_core::config::{LogConfig, TelemetryConfig};
use ajutant_server::telemetry;
use ajutant_testkit::{Backend, TestApp};
use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;

type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A minimal collector: records every POST to /v1/traces.
async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                sink.lock().unwrap().push((
                    header("content-type"),
                    header("x-collector-key"),
                    body.to_vec(),
                ));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    #[allow(
        clippy::disallowed_methods,
        reason = "a test peer that ends with the test"
    )]
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_the_configured_collector_with_the_callers_trace_id() {
    let (endpoint, received) = collector().await;
    let mut settings = TelemetryConfig {
        otlp_endpoint: Some(endpoint.parse().unwrap()),
        ..TelemetryConfig::default()
    };
    settings.otlp_headers.insert(
        "x-collector-key".to_owned(),
        ajutant_core::secret::SecretString::new("k-123"),
    );
    let guard = telemetry::init(&LogConfig::default(), &settings).unwrap();

    let app = TestApp::spawn(Backend::Sqlite).await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-trace-id"], trace_id);
    app.stop().await.unwrap();

    // Shutting the provider down flushes the batch; it blocks, so off the async workers.
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap();

    let received = received.lock().unwrap();
    assert!(!received.is_empty(), "nothing was exported");
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let exported = received.iter().any(|(content_type, key, body)| {
        content_type == "application/x-protobuf"
            && key == "k-123"
            && body.windows(16).any(|w| w == trace_bytes.as_slice())
    });
    assert!(
        exported,
        "no protobuf export carried trace {trace_id}: {} requests",
        received.len()
    );
}
