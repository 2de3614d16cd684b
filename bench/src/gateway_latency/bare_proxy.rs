//! A bare reverse proxy in front of the fake: the same HTTP stack Ajutant is built on (axum and
//! hyper in, reqwest out, `TCP_NODELAY` both sides, bodies streamed through frame by frame) and
//! nothing else: no authentication, limits, audit, usage or translation. What any extra HTTP
//! hop costs on this machine is its figure minus the direct one; what Ajutant's governance
//! costs is Ajutant's figure minus this one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::LocalServer;

struct Upstream {
    client: reqwest::Client,
    url: String,
}

/// Forwards `/v1/chat/completions` to the fake at `upstream`.
pub async fn start(upstream: SocketAddr, max_connections: usize) -> anyhow::Result<LocalServer> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .http1_only()
        .pool_max_idle_per_host(max_connections)
        .build()?;
    let state = Arc::new(Upstream {
        client,
        url: format!("http://{upstream}/v1/chat/completions"),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(state);
    LocalServer::start(app).await
}

async fn forward(State(upstream): State<Arc<Upstream>>, body: Bytes) -> Response {
    let sent = upstream
        .client
        .post(&upstream.url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
            let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
            *response.status_mut() = status;
            if let Some(content_type) = content_type {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, content_type);
            }
            response
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}
