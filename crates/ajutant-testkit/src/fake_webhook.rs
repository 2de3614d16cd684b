//! A fake webhook receiver for notification tests, on `127.0.0.1:0`. It accepts a POST on any
//! path, records it (the Standard Webhooks headers, the body, when, and what it answered), and
//! fails on demand:
//!
//! - [`FakeWebhook::fail_next`]: the next n requests get 500;
//! - [`FakeWebhook::set_failing`]: every request gets 500 until switched off;
//! - [`FakeWebhook::set_down`]: connections are accepted and closed at once, unanswered, so the
//!   sender sees a transport error rather than an HTTP status.
//!
//! [`verify_standard_webhook`] checks a delivery's signature independently of the server's
//! signer, so a test of the signer is not the signer checking itself.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::net::{TcpListener, TcpStream};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `webhook-id`.
    pub id: Option<String>,
    /// `webhook-timestamp` (Unix seconds, as sent).
    pub timestamp: Option<String>,
    /// `webhook-signature`.
    pub signature: Option<String>,
    pub content_type: Option<String>,
    /// The body as JSON; `Null` when it was not JSON.
    pub body: Value,
    /// The body exactly as received, which is what a signature covers.
    pub raw: Vec<u8>,
    /// The request's path, with its query string when it had one.
    pub path: String,
    pub at: Instant,
    /// The status the fake answered with.
    pub answered: u16,
}

#[derive(Default)]
struct Control {
    deliveries: Vec<Delivery>,
    fail_next: usize,
    failing: bool,
}

#[derive(Clone, Default)]
struct FakeState {
    control: Arc<Mutex<Control>>,
    down: Arc<AtomicBool>,
}

pub struct FakeWebhook {
    address: SocketAddr,
    state: FakeState,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeWebhook")
            .field("address", &self.address)
            .finish()
    }
}

impl Drop for FakeWebhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// "Down" has to happen below HTTP: a handler can only answer, never hang up. axum::serve takes
/// any [`axum::serve::Listener`], so this one accepts as usual and, while down, closes each new
/// connection before hyper sees it. Every answer says `Connection: close`, so a sender cannot
/// keep a connection from before the fake went down and reach the handler through it.
struct SwitchableListener {
    listener: TcpListener,
    down: Arc<AtomicBool>,
}

impl axum::serve::Listener for SwitchableListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) if self.down.load(Ordering::SeqCst) => drop(stream),
                Ok(accepted) => return accepted,
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

impl FakeWebhook {
    pub async fn start() -> Self {
        let state = FakeState::default();
        let app = Router::new().fallback(receive).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the fake webhook: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no address: {e}"));
        let listener = SwitchableListener {
            listener,
            down: state.down.clone(),
        };
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

    /// `http://127.0.0.1:PORT` followed by `path` (which starts with `/`); any path is accepted.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Every request received, failed ones included, oldest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.state.control).deliveries.clone()
    }

    /// The requests answered with 2xx, oldest first.
    pub fn succeeded(&self) -> Vec<Delivery> {
        lock(&self.state.control)
            .deliveries
            .iter()
            .filter(|d| (200..300).contains(&d.answered))
            .cloned()
            .collect()
    }

    /// Answers the next `n` requests with 500 (replacing any count still left).
    pub fn fail_next(&self, n: usize) {
        lock(&self.state.control).fail_next = n;
    }

    /// While true, every request is answered with 500.
    pub fn set_failing(&self, failing: bool) {
        lock(&self.state.control).failing = failing;
    }

    /// While true, connections are closed as soon as they are accepted, without an HTTP answer,
    /// and nothing is recorded.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Waits until at least `count` requests have succeeded or `within` has passed, and returns
    /// the successful ones either way.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + within;
        loop {
            let succeeded = self.succeeded();
            if succeeded.len() >= count || Instant::now() >= deadline {
                return succeeded;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    State(state): State<FakeState>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut control = lock(&state.control);
    let status = if control.fail_next > 0 {
        control.fail_next -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else if control.failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    control.deliveries.push(Delivery {
        id: text("webhook-id"),
        timestamp: text("webhook-timestamp"),
        signature: text("webhook-signature"),
        content_type: text(header::CONTENT_TYPE.as_str()),
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw: raw.to_vec(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
        at: Instant::now(),
        answered: status.as_u16(),
    });
    drop(control);
    (status, [(header::CONNECTION, "close")], "ok").into_response()
}

/// Independent Standard Webhooks verification for tests: true when the `webhook-signature`
/// header (which may hold several space-separated `v1,<sig>` entries) has one matching
/// HMAC-SHA256 over `{id}.{timestamp}.{raw body}` with the key decoded from `whsec_...`.
pub fn verify_standard_webhook(secret: &str, delivery: &Delivery) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| STANDARD.decode(encoded).ok())
    else {
        return false;
    };
    let (Some(id), Some(timestamp), Some(signatures)) =
        (&delivery.id, &delivery.timestamp, &delivery.signature)
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&delivery.raw);
    signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|candidate| mac.clone().verify_slice(&candidate).is_ok())
}

/// A fixed, valid signing secret for tests: `whsec_` and the base64 of 32 bytes.
pub fn test_secret() -> String {
    "whsec_xZIZTuRgZjQLQcXZcwD/R3LNMmiczmxM+OwB4hPiMr8=".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's published example.
    fn spec_delivery(signature: &str) -> Delivery {
        let raw = br#"{"test": 2432232314}"#.to_vec();
        Delivery {
            id: Some("msg_p5jXN8AQM9LWM0D4loKWxJek".to_owned()),
            timestamp: Some("1614265330".to_owned()),
            signature: Some(signature.to_owned()),
            content_type: Some("application/json".to_owned()),
            body: serde_json::from_slice(&raw).unwrap(),
            raw,
            path: "/".to_owned(),
            at: Instant::now(),
            answered: 200,
        }
    }

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn verification_accepts_the_specification_vector_among_other_entries() {
        assert!(verify_standard_webhook(
            SPEC_SECRET,
            &spec_delivery(SPEC_SIGNATURE)
        ));
        let several = format!("v1,bm90IGl0 {SPEC_SIGNATURE} v2,whatever");
        assert!(verify_standard_webhook(
            SPEC_SECRET,
            &spec_delivery(&several)
        ));
    }

    #[test]
    fn verification_refuses_a_changed_body_or_another_secret() {
        let mut changed = spec_delivery(SPEC_SIGNATURE);
        changed.raw = br#"{"test": 2432232315}"#.to_vec();
        assert!(!verify_standard_webhook(SPEC_SECRET, &changed));
        assert!(!verify_standard_webhook(
            &test_secret(),
            &spec_delivery(SPEC_SIGNATURE)
        ));
        assert!(!verify_standard_webhook(
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &spec_delivery(SPEC_SIGNATURE)
        ));
        let mut unsigned = spec_delivery(SPEC_SIGNATURE);
        unsigned.signature = None;
        assert!(!verify_standard_webhook(SPEC_SECRET, &unsigned));
    }

    #[tokio::test]
    async fn it_records_fails_and_goes_down_on_demand() {
        let fake = FakeWebhook::start().await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let send = |path: &str| {
            client
                .post(fake.url(path))
                .header("webhook-id", "msg_1")
                .json(&serde_json::json!({ "n": 1 }))
                .send()
        };
        fake.fail_next(1);
        assert_eq!(send("/a").await.unwrap().status(), 500);
        assert_eq!(send("/a?sig=x").await.unwrap().status(), 200);
        fake.set_failing(true);
        assert_eq!(send("/b").await.unwrap().status(), 500);
        fake.set_failing(false);
        fake.set_down(true);
        assert!(send("/down").await.is_err());
        fake.set_down(false);
        assert_eq!(send("/c").await.unwrap().status(), 200);

        let all = fake.deliveries();
        let seen: Vec<(&str, u16)> = all.iter().map(|d| (d.path.as_str(), d.answered)).collect();
        assert_eq!(
            seen,
            [("/a", 500), ("/a?sig=x", 200), ("/b", 500), ("/c", 200)]
        );
        assert_eq!(all[0].id.as_deref(), Some("msg_1"));
        assert_eq!(all[0].body, serde_json::json!({ "n": 1 }));
        assert_eq!(all[0].content_type.as_deref(), Some("application/json"));
        let succeeded = fake.wait_for(2, Duration::from_secs(1)).await;
        assert_eq!(succeeded.len(), 2);
        assert_eq!(fake.wait_for(3, Duration::from_millis(50)).await.len(), 2);
    }

    #[test]
    fn the_test_secret_is_one_the_configuration_accepts() {
        assert!(ajutant_core::config::is_standard_webhook_secret(
            &test_secret()
        ));
    }
}
