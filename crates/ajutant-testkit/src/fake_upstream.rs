//! A fake OpenAI-compatible model server for gateway tests, on `127.0.0.1:0`. What it does is
//! chosen by the upstream model name each deployment sends, so one server can play several
//! deployments at once:
//!
//! - `ok`: answers (`Hello from the fake.`), streams, calls `get_weather` when given tools,
//!   embeds;
//! - `flaky`: the first call gets 503 with `Retry-After: 1`, later ones are `ok`;
//! - `down`: always 500;
//! - `limited`: always 429 with `Retry-After: 7`;
//! - `broken-stream`: streams two chunks, then the connection ends without a finish;
//! - `garbage`: answers 200 with HTML;
//! - `slow`: streams a chunk every 100 ms for a minute, and notes when the gateway hangs up;
//! - `xss`: answers [`XSS_CORPUS`] citing source 1, streamed a few words at a time, so a client
//!   can prove it renders hostile model output inertly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};

pub const ANSWER: &str = "Hello from the fake.";

/// Markup and Markdown that would run script, load remote content or hide a link to
/// `javascript:` if a client rendered it carelessly. Every payload that runs sets `window.__xss`;
/// every remote address is under `remote.invalid`. The first sentence is plain prose so that
/// retrieval finds a document holding the corpus.
pub const XSS_CORPUS: &str = "The XSS corpus document explains the quarterly parking policy.

<script>window.__xss=1</script>

<img src=x onerror=\"window.__xss=2\">

<img src=\"https://remote.invalid/pixel.png\">

<svg onload=\"window.__xss=3\"><script>window.__xss=4</script></svg>

A link: [click](javascript:window.__xss=5) and an image: ![remote](https://remote.invalid/img.png)

<a href=\"javascript:window.__xss=6\">x</a>

<iframe src=\"https://remote.invalid/\"></iframe>

<div onclick=\"window.__xss=7\">x</div>

<style>body{background:url(https://remote.invalid/bg.png)}</style>

<object data=\"https://remote.invalid/object.swf\"></object><embed src=\"https://remote.invalid/embed.swf\">

[data link](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9ODwvc2NyaXB0Pg==) and <a href=\"  JaVaScRiPt:window.__xss=9\">mixed case</a>

Parking permits are renewed every quarter at the front desk.
";

#[derive(Default)]
struct Seen {
    calls: HashMap<String, usize>,
    bodies: Vec<Value>,
    hung_up_at: Option<Instant>,
}

#[derive(Clone, Default)]
struct FakeState {
    seen: Arc<Mutex<Seen>>,
    slow_running: Arc<AtomicBool>,
}

/// Notes when the response body of a `slow` stream is dropped, i.e. the caller hung up.
struct HangUpGuard(FakeState);

impl Drop for HangUpGuard {
    fn drop(&mut self) {
        self.0.slow_running.store(false, Ordering::SeqCst);
        lock(&self.0.seen).hung_up_at = Some(Instant::now());
    }
}

pub struct FakeUpstream {
    address: SocketAddr,
    state: FakeState,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeUpstream")
            .field("address", &self.address)
            .finish()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let state = FakeState::default();
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the fake upstream: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no address: {e}"));
        #[allow(
            clippy::disallowed_methods,
            reason = "a test peer: the handle is kept and the server ends with the test"
        )]
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            address,
            state,
            server,
        }
    }

    /// The base URL a deployment's `endpoint` takes.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// How many calls asked for `model`.
    pub fn calls(&self, model: &str) -> usize {
        lock(&self.state.seen)
            .calls
            .get(model)
            .copied()
            .unwrap_or(0)
    }

    /// Every request body received, oldest first.
    pub fn bodies(&self) -> Vec<Value> {
        lock(&self.state.seen).bodies.clone()
    }

    /// When the gateway hung up on a `slow` stream, if it has.
    pub fn hung_up_at(&self) -> Option<Instant> {
        lock(&self.state.seen).hung_up_at
    }

    pub fn slow_stream_running(&self) -> bool {
        self.state.slow_running.load(Ordering::SeqCst)
    }
}

fn note(state: &FakeState, body: &Value) -> (String, usize) {
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let mut seen = lock(&state.seen);
    seen.bodies.push(body.clone());
    let count = seen.calls.entry(model.clone()).or_insert(0);
    *count += 1;
    (model, *count)
}

fn error(status: StatusCode, retry_after: Option<&str>, message: &str) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": { "message": message, "type": "server_error" } })),
    )
        .into_response();
    if let Some(seconds) = retry_after
        && let Ok(value) = seconds.parse()
    {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

fn chunk(delta: Value, finish: Value) -> String {
    format!(
        "data: {}\n\n",
        json!({ "id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake-model",
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
    )
}

fn sse(body: Body) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

async fn chat(State(state): State<FakeState>, Json(body): Json<Value>) -> Response {
    let (model, count) = note(&state, &body);
    match model.as_str() {
        "down" => return error(StatusCode::INTERNAL_SERVER_ERROR, None, "the fake is down"),
        "limited" => return error(StatusCode::TOO_MANY_REQUESTS, Some("7"), "slow down"),
        "flaky" if count == 1 => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("1"),
                "try again shortly",
            );
        }
        "garbage" => {
            return ([("content-type", "application/json")], "<html>oops</html>").into_response();
        }
        _ => {}
    }
    let tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let stream = body["stream"] == json!(true);
    let usage = json!({ "prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13 });
    if !stream {
        let message = if tools {
            json!({ "role": "assistant", "content": null, "tool_calls": [{ "id": "call_1",
                "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}" } }] })
        } else if model == "xss" {
            json!({ "role": "assistant", "content": format!("{XSS_CORPUS} [1]") })
        } else {
            json!({ "role": "assistant", "content": ANSWER })
        };
        return Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "fake-model",
            "choices": [{ "index": 0, "message": message,
                          "finish_reason": if tools { "tool_calls" } else { "stop" } }],
            "usage": usage,
        }))
        .into_response();
    }
    if model == "xss" {
        return sse(Body::from_stream(futures::stream::iter(
            xss_events().into_iter().map(Ok::<_, std::io::Error>),
        )));
    }
    if model == "slow" {
        state.slow_running.store(true, Ordering::SeqCst);
        let guard = HangUpGuard(state.clone());
        let ticks = futures::stream::unfold((0u32, guard), |(n, guard)| async move {
            if n >= 600 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((
                Ok::<_, std::io::Error>(chunk(json!({ "content": "tick " }), Value::Null)),
                (n + 1, guard),
            ))
        });
        return sse(Body::from_stream(ticks));
    }
    let mut events = vec![chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    )];
    if tools {
        events.push(chunk(
            json!({ "tool_calls": [{ "index": 0, "id": "call_1", "type": "function",
                     "function": { "name": "get_weather", "arguments": "" } }] }),
            Value::Null,
        ));
        for piece in ["{\"city\"", ":\"Oslo\"}"] {
            events.push(chunk(
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] }),
                Value::Null,
            ));
        }
    } else {
        for piece in ["Hello", " from", " the", " fake."] {
            events.push(chunk(json!({ "content": piece }), Value::Null));
        }
    }
    if model == "broken-stream" {
        events.truncate(3);
        return sse(Body::from_stream(futures::stream::iter(
            events.into_iter().map(Ok::<_, std::io::Error>),
        )));
    }
    events.push(chunk(
        json!({}),
        json!(if tools { "tool_calls" } else { "stop" }),
    ));
    events.push(format!(
        "data: {}\n\n",
        json!({ "id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake-model",
                "choices": [], "usage": usage })
    ));
    events.push("data: [DONE]\n\n".to_owned());
    sse(Body::from_stream(
        futures::stream::iter(events.into_iter().map(Ok::<_, std::io::Error>)).boxed(),
    ))
}

/// The `xss` model's stream: the corpus a few words at a time (so payloads arrive split across
/// deltas, as a real model's would), then a citation of source 1 and the end.
fn xss_events() -> Vec<String> {
    let mut events = vec![chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    )];
    let words: Vec<&str> = XSS_CORPUS.split_inclusive(' ').collect();
    for piece in words.chunks(4) {
        events.push(chunk(json!({ "content": piece.concat() }), Value::Null));
    }
    events.push(chunk(json!({ "content": " [1]" }), Value::Null));
    events.push(chunk(json!({}), json!("stop")));
    events.push("data: [DONE]\n\n".to_owned());
    events
}

async fn embeddings(State(state): State<FakeState>, Json(body): Json<Value>) -> Response {
    note(&state, &body);
    let inputs = match &body["input"] {
        Value::Array(items) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|i| json!({ "object": "embedding", "index": i, "embedding": [0.25, i as f32, 1.0] }))
        .collect();
    Json(
        json!({ "object": "list", "data": data, "model": "fake-embed",
                 "usage": { "prompt_tokens": 3, "total_tokens": 3 } }),
    )
    .into_response()
}
