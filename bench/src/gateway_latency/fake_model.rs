//! The fake model server: a fixed-latency stand-in for vLLM or OpenAI on `127.0.0.1:0`, so what
//! is measured is Ajutant and not a model.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::LocalServer;

/// The fake streams these pieces; the first is the "first token" a caller waits for.
pub const PIECES: [&str; 5] = ["Hello", " from", " the", " fake", "."];

/// Answers `/v1/chat/completions` as OpenAI does, after the delay its model name asks for
/// (`delay-50` waits 50 ms), so one server plays every delay; `/ping` answers at once.
pub async fn start() -> anyhow::Result<LocalServer> {
    let app = Router::new()
        .route("/v1/chat/completions", post(fake_chat))
        .route("/ping", get(|| async { "ok" }));
    LocalServer::start(app).await
}

async fn fake_chat(Json(body): Json<Value>) -> Response {
    let delay = body["model"]
        .as_str()
        .and_then(|model| model.strip_prefix("delay-"))
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or_default();
    if body["stream"] != json!(true) {
        // A zero sleep would still wait for the timer wheel's next tick.
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let answer = json!({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench",
            "choices": [{ "index": 0, "finish_reason": "stop",
                          "message": { "role": "assistant", "content": PIECES.concat() } }],
            "usage": { "prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14 },
        });
        return Json(answer).into_response();
    }
    let frames = futures::stream::unfold(0, move |n| async move {
        if n == 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        } else {
            // Returning Pending once makes hyper flush what it holds: one frame per chunk.
            tokio::task::yield_now().await;
        }
        let frame = match n {
            0 => stream_chunk(json!({ "role": "assistant", "content": PIECES[0] }), None),
            n if n < PIECES.len() => stream_chunk(json!({ "content": PIECES[n] }), None),
            n if n == PIECES.len() => stream_chunk(json!({}), Some("stop")),
            n if n == PIECES.len() + 1 => "data: [DONE]\n\n".to_owned(),
            _ => return None,
        };
        Some((Ok::<_, std::io::Error>(frame), n + 1))
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(frames),
    )
        .into_response()
}

fn stream_chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    format!("data: {chunk}\n\n")
}
