//! A fake model vendor on `127.0.0.1:0`, shared by the providers' conformance suite and the
//! server's tests (through `ajutant-testkit`). It speaks each vendor's wire format:
//!
//! - OpenAI and OpenAI-compatible: `/v1/chat/completions`, `/v1/embeddings`;
//! - Azure OpenAI: `/openai/deployments/{deployment}/…`;
//! - Anthropic: `/v1/messages`;
//! - Entra tokens: the instance metadata service (`/metadata/identity/oauth2/token`) and the
//!   workload-identity token endpoint (`/{tenant}/oauth2/v2.0/token`).
//!
//! What it does is chosen by the model a request names (the body's `model`, or Azure's deployment
//! in the path), so one server plays several deployments at once:
//!
//! - any name not below: answers [`ANSWER`], streams it, embeds; a request that offers tools gets
//!   a `get_weather` call for Oslo instead of text;
//! - `flaky`: the first call gets 503 with `Retry-After: 1`, later ones are answered;
//! - `down`: always 500;
//! - `limited`: always 429 with `Retry-After:` [`RETRY_AFTER_SECONDS`];
//! - `broken-stream`: streams two pieces, then the connection ends without a finish;
//! - `stalled`: streams the answer, then sends nothing for 30 s;
//! - `garbage`: answers 200 with HTML;
//! - `slow`: streams a piece every 100 ms for a minute, and notes when the caller hangs up;
//! - `xss`: answers [`XSS_CORPUS`] citing source 1, streamed a few words at a time, so a client
//!   can prove it renders hostile model output inertly.
//!
//! It depends on no Ajutant crate, so testing an adapter never builds the server.

mod anthropic;
mod entra;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};

pub const ANSWER: &str = "Hello from the fake.";
/// [`ANSWER`] as it is streamed.
const ANSWER_PIECES: [&str; 4] = ["Hello", " from", " the", " fake."];
/// The tokens every answer reports: (input, output).
pub const CHAT_USAGE: (u32, u32) = (9, 4);
/// The tokens every embeddings call reports.
pub const EMBEDDING_TOKENS: u32 = 3;
/// What `limited` asks callers to wait, in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 7;
/// The message of `limited`'s refusal, in each vendor's error shape.
pub const RATE_LIMIT_MESSAGE: &str = "Rate limit reached";
/// The access token the metadata service issues.
pub const MANAGED_IDENTITY_TOKEN: &str = "imds-token";
/// The access token the workload-identity endpoint issues, for [`FEDERATED_ASSERTION`] from
/// [`WORKLOAD_CLIENT_ID`].
pub const WORKLOAD_IDENTITY_TOKEN: &str = "wi-token";
pub const FEDERATED_ASSERTION: &str = "federated-jwt";
pub const WORKLOAD_CLIENT_ID: &str = "wi-client";

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

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct Log {
    requests: Vec<Seen>,
    calls: HashMap<String, usize>,
    tokens_issued: usize,
    hung_up_at: Option<Instant>,
}

#[derive(Clone, Default)]
struct FakeState {
    log: Arc<Mutex<Log>>,
    slow_running: Arc<AtomicBool>,
}

impl FakeState {
    fn log(&self) -> MutexGuard<'_, Log> {
        // A test that panicked while holding the lock has already failed; keep answering.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes the request and returns the model it names with how many calls named it so far.
    fn note(&self, uri: &Uri, headers: &HeaderMap, body: &Value) -> (String, usize) {
        let model = deployment_in_path(uri)
            .or_else(|| body["model"].as_str())
            .unwrap_or_default()
            .to_owned();
        let mut log = self.log();
        log.requests.push(Seen {
            uri: uri.to_string(),
            headers: headers.clone(),
            body: body.clone(),
        });
        let count = log.calls.entry(model.clone()).or_insert(0);
        *count += 1;
        (model, *count)
    }
}

fn deployment_in_path(uri: &Uri) -> Option<&str> {
    let rest = uri.path().strip_prefix("/openai/deployments/")?;
    rest.split('/').next()
}

/// Notes when the response body of a `slow` stream is dropped, i.e. the caller hung up.
struct HangUpGuard(FakeState);

impl Drop for HangUpGuard {
    fn drop(&mut self) {
        self.0.slow_running.store(false, Ordering::SeqCst);
        self.0.log().hung_up_at = Some(Instant::now());
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

impl FakeUpstream {
    pub async fn start() -> Self {
        let state = FakeState::default();
        let app = Router::new()
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/embeddings", post(openai_embeddings))
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(openai_chat),
            )
            .route(
                "/openai/deployments/{deployment}/embeddings",
                post(openai_embeddings),
            )
            .route("/v1/messages", post(anthropic::messages))
            .route(
                "/metadata/identity/oauth2/token",
                get(entra::managed_identity_token),
            )
            .route(
                "/{tenant}/oauth2/v2.0/token",
                post(entra::workload_identity_token),
            )
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

    /// `http://127.0.0.1:port`: the endpoint of Azure OpenAI and Anthropic deployments, and the
    /// root of the token endpoints.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `http://127.0.0.1:port/v1`: the endpoint of OpenAI and OpenAI-compatible deployments.
    pub fn endpoint(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// How many calls named `model`.
    pub fn calls(&self, model: &str) -> usize {
        self.state.log().calls.get(model).copied().unwrap_or(0)
    }

    /// Every model request body received, oldest first.
    pub fn bodies(&self) -> Vec<Value> {
        let log = self.state.log();
        log.requests.iter().map(|seen| seen.body.clone()).collect()
    }

    /// The last model request received, with its address and headers.
    pub fn last_request(&self) -> Option<Seen> {
        self.state.log().requests.last().cloned()
    }

    /// How many Entra access tokens were issued, by either endpoint.
    pub fn tokens_issued(&self) -> usize {
        self.state.log().tokens_issued
    }

    /// When a caller hung up on a `slow` stream, if one has.
    pub fn hung_up_at(&self) -> Option<Instant> {
        self.state.log().hung_up_at
    }

    pub fn slow_stream_running(&self) -> bool {
        self.state.slow_running.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vendor {
    OpenAi,
    Anthropic,
}

/// The answer of a model whose name asks for a failure, if it does.
fn refusal(vendor: Vendor, model: &str, count: usize) -> Option<Response> {
    match model {
        "down" => Some(error(
            vendor,
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the fake is down",
        )),
        "limited" => Some(error(
            vendor,
            StatusCode::TOO_MANY_REQUESTS,
            Some(RETRY_AFTER_SECONDS),
            RATE_LIMIT_MESSAGE,
        )),
        "flaky" if count == 1 => Some(error(
            vendor,
            StatusCode::SERVICE_UNAVAILABLE,
            Some(1),
            "try again shortly",
        )),
        "garbage" => Some(
            (
                [("content-type", "application/json")],
                "<html>502 upstream</html>",
            )
                .into_response(),
        ),
        _ => None,
    }
}

fn error(vendor: Vendor, status: StatusCode, retry_after: Option<u64>, message: &str) -> Response {
    let body = match vendor {
        Vendor::OpenAi => json!({ "error": { "message": message, "type": "server_error" } }),
        Vendor::Anthropic => {
            json!({ "type": "error", "error": { "type": "api_error", "message": message } })
        }
    };
    let mut response = (status, Json(body)).into_response();
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(
            "retry-after",
            seconds
                .to_string()
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    response
}

/// What a streamed answer does after its pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Finish,
    /// Two pieces, then the connection ends.
    CutShort,
    /// Every piece, then nothing for 30 s.
    Stall,
}

impl Ending {
    fn of(model: &str) -> Self {
        match model {
            "broken-stream" => Self::CutShort,
            "stalled" => Self::Stall,
            _ => Self::Finish,
        }
    }
}

fn sse(events: Vec<String>) -> Response {
    let body = Body::from_stream(futures::stream::iter(
        events.into_iter().map(Ok::<_, std::io::Error>),
    ));
    ([("content-type", "text/event-stream")], body).into_response()
}

fn stalled_sse(events: Vec<String>) -> Response {
    let hang = futures::stream::once(async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, std::io::Error>(String::new())
    });
    let events = futures::stream::iter(events.into_iter().map(Ok::<_, std::io::Error>));
    let body = Body::from_stream(events.chain(hang));
    ([("content-type", "text/event-stream")], body).into_response()
}

fn offers_tools(body: &Value) -> bool {
    body["tools"].as_array().is_some_and(|t| !t.is_empty())
}

fn openai_chunk(delta: Value, finish: Value) -> String {
    format!(
        "data: {}\n\n",
        json!({ "id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake-model",
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
    )
}

async fn openai_chat(
    State(state): State<FakeState>,
    uri: Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (model, count) = state.note(&uri, &headers, &body);
    if let Some(refused) = refusal(Vendor::OpenAi, &model, count) {
        return refused;
    }
    let tools = offers_tools(&body);
    let (input, output) = CHAT_USAGE;
    let usage = json!({ "prompt_tokens": input, "completion_tokens": output,
                        "total_tokens": input + output });
    if body["stream"] != json!(true) {
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
        return sse(xss_events());
    }
    if model == "slow" {
        return slow_stream(state);
    }
    let mut events = vec![openai_chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    )];
    if tools {
        events.push(openai_chunk(
            json!({ "tool_calls": [{ "index": 0, "id": "call_1", "type": "function",
                     "function": { "name": "get_weather", "arguments": "" } }] }),
            Value::Null,
        ));
        for piece in ["{\"ci", "ty\":\"Os", "lo\"}"] {
            events.push(openai_chunk(
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] }),
                Value::Null,
            ));
        }
    } else {
        for piece in ANSWER_PIECES {
            events.push(openai_chunk(json!({ "content": piece }), Value::Null));
        }
    }
    match Ending::of(&model) {
        Ending::CutShort => {
            events.truncate(3);
            return sse(events);
        }
        Ending::Stall => return stalled_sse(events),
        Ending::Finish => {}
    }
    events.push(openai_chunk(
        json!({}),
        json!(if tools { "tool_calls" } else { "stop" }),
    ));
    events.push(format!(
        "data: {}\n\n",
        json!({ "id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake-model",
                "choices": [], "usage": usage })
    ));
    events.push("data: [DONE]\n\n".to_owned());
    sse(events)
}

fn slow_stream(state: FakeState) -> Response {
    state.slow_running.store(true, Ordering::SeqCst);
    let guard = HangUpGuard(state);
    let ticks = futures::stream::unfold((0u32, guard), |(n, guard)| async move {
        if n >= 600 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, std::io::Error>(openai_chunk(json!({ "content": "tick " }), Value::Null)),
            (n + 1, guard),
        ))
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(ticks),
    )
        .into_response()
}

/// The `xss` model's stream: the corpus a few words at a time (so payloads arrive split across
/// deltas, as a real model's would), then a citation of source 1 and the end.
fn xss_events() -> Vec<String> {
    let mut events = vec![openai_chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    )];
    let words: Vec<&str> = XSS_CORPUS.split_inclusive(' ').collect();
    for piece in words.chunks(4) {
        events.push(openai_chunk(
            json!({ "content": piece.concat() }),
            Value::Null,
        ));
    }
    events.push(openai_chunk(json!({ "content": " [1]" }), Value::Null));
    events.push(openai_chunk(json!({}), json!("stop")));
    events.push("data: [DONE]\n\n".to_owned());
    events
}

async fn openai_embeddings(
    State(state): State<FakeState>,
    uri: Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (model, count) = state.note(&uri, &headers, &body);
    if let Some(refused) = refusal(Vendor::OpenAi, &model, count) {
        return refused;
    }
    let inputs = match &body["input"] {
        Value::Array(items) => items.len(),
        _ => 1,
    };
    // Last first: a client must order vectors by `index`, as the API allows any order.
    let data: Vec<Value> = (0..inputs)
        .rev()
        .map(|i| json!({ "object": "embedding", "index": i, "embedding": [0.25, i as f32, 1.0] }))
        .collect();
    Json(json!({ "object": "list", "data": data, "model": "fake-embed",
                 "usage": { "prompt_tokens": EMBEDDING_TOKENS, "total_tokens": EMBEDDING_TOKENS } }))
    .into_response()
}
