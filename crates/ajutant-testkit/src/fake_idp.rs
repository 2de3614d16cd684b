//! An Entra-shaped OpenID provider and Microsoft Graph for tests, on `127.0.0.1:0`, whose keys
//! the test holds: it mints tokens (valid or hostile) with its own RSA keys, publishes or
//! withholds them in its JWKS, counts key-set fetches, and serves a paged, failable Graph.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ajutant_core::config::{Config, IdentityProviderKind};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The tenant the fake provider issues for; its issuer names it, as Entra's does.
pub const TENANT: &str = "7d3c0f52-1111-4a6e-9c1d-5e0a9b8f2c10";
/// Another tenant, for tokens that must be refused.
pub const OTHER_TENANT: &str = "0b9e2a41-2222-4c3d-8e7f-6a5b4c3d2e1f";
/// The application's client id (and an accepted audience).
pub const CLIENT_ID: &str = "a3f1c2d4-3333-4b5c-9d8e-7f6a5b4c3d2e";
/// The API's own audience.
pub const API_AUDIENCE: &str = "api://ajutant-test";
/// The app token the fake Graph expects.
const GRAPH_TOKEN: &str = "fake-graph-app-token";
/// Groups per Graph page, small so that paging is exercised.
const GRAPH_PAGE: usize = 2;

/// An RSA signing key the test controls.
pub struct TestKey {
    pub kid: String,
    pair: RsaKeyPair,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey").field("kid", &self.kid).finish()
    }
}

impl TestKey {
    pub fn generate(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048)
            .unwrap_or_else(|e| panic!("RSA key generation failed: {e}"));
        Self {
            kid: kid.to_owned(),
            pair,
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// The public key's DER bytes: what an attacker would use as an HMAC secret.
    pub fn public_der(&self) -> Vec<u8> {
        self.pair
            .public_key()
            .as_der()
            .map(|der| der.as_ref().to_vec())
            .unwrap_or_default()
    }

    /// Signs `header` (whatever it says) and `claims` with RS256.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .unwrap_or_else(|e| panic!("RSA signing failed: {e}"));
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A standard RS256 header naming this key.
    pub fn header(&self) -> Value {
        json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid })
    }
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// `alg: none`: no signature at all.
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.", signing_input(header, claims))
}

/// An HMAC-SHA256 token with `secret` as the key.
pub fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[derive(Default)]
struct FakeState {
    keys: Mutex<Vec<Value>>,
    jwks_down: AtomicBool,
    jwks_hits: AtomicUsize,
    graph_groups: Mutex<HashMap<String, Vec<String>>>,
    graph_failing: AtomicBool,
    graph_hits: AtomicUsize,
    attacker_hits: AtomicUsize,
    issuer: Mutex<String>,
}

/// The fake provider. Dropping it stops the server.
pub struct FakeIdp {
    address: SocketAddr,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeIdp")
            .field("address", &self.address)
            .finish()
    }
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeIdp {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the fake provider: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"));
        *state.issuer.lock().unwrap_or_else(|e| e.into_inner()) =
            format!("http://{address}/{TENANT}/v2.0");
        let app = Router::new()
            .route(
                &format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
                get(discovery),
            )
            .route("/keys", get(jwks))
            .route("/token", post(token))
            .route("/attacker/keys", get(attacker_jwks))
            .route(
                "/v1.0/users/{oid}/transitiveMemberOf/microsoft.graph.group",
                get(graph_groups),
            )
            .with_state(Arc::clone(&state));
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

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The exact issuer tokens carry.
    pub fn issuer(&self) -> String {
        format!("http://{}/{TENANT}/v2.0", self.address)
    }

    /// A URL an attacker controls, for `jku`/`x5u` headers; counts fetches.
    pub fn attacker_url(&self) -> String {
        format!("http://{}/attacker/keys", self.address)
    }

    /// Points `config` at this provider and its Graph.
    pub fn configure(&self, config: &mut Config) {
        config.identity.provider = IdentityProviderKind::Oidc;
        let oidc = &mut config.identity.oidc;
        oidc.issuer = self.issuer();
        oidc.client_id = CLIENT_ID.to_owned();
        oidc.client_secret = Some(ajutant_core::secret::SecretString::new(
            "test-client-secret",
        ));
        oidc.audiences = vec![API_AUDIENCE.to_owned(), CLIENT_ID.to_owned()];
        oidc.allowed_tenants = vec![TENANT.to_owned()];
        oidc.clock_skew_secs = 30;
        config.identity.graph.base_url =
            url::Url::parse(&self.base_url()).unwrap_or_else(|e| panic!("fake base URL: {e}"));
    }

    /// Adds `key` to the published key set.
    pub fn publish(&self, key: &TestKey) {
        lock(&self.state.keys).push(key.jwk());
    }

    pub fn set_jwks_down(&self, down: bool) {
        self.state.jwks_down.store(down, Ordering::SeqCst);
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn attacker_hits(&self) -> usize {
        self.state.attacker_hits.load(Ordering::SeqCst)
    }

    /// What Graph answers for the user with object id `oid` (all pages together).
    pub fn set_graph_groups(&self, oid: &str, groups: &[&str]) {
        lock(&self.state.graph_groups).insert(
            oid.to_owned(),
            groups.iter().map(|g| (*g).to_owned()).collect(),
        );
    }

    pub fn set_graph_failing(&self, failing: bool) {
        self.state.graph_failing.store(failing, Ordering::SeqCst);
    }

    pub fn graph_hits(&self) -> usize {
        self.state.graph_hits.load(Ordering::SeqCst)
    }

    /// Claims of a valid delegated access token for user `oid` with `groups`.
    pub fn access_claims(&self, oid: &str, groups: &[&str]) -> Value {
        let now = now();
        json!({
            "iss": self.issuer(),
            "aud": API_AUDIENCE,
            "tid": TENANT,
            "oid": oid,
            "sub": format!("pairwise-{oid}"),
            "name": format!("User {oid}"),
            "preferred_username": format!("{oid}@example.org"),
            "scp": "access_as_user",
            "groups": groups,
            "ver": "2.0",
            "iat": now,
            "nbf": now - 5,
            "exp": now + 600,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

async fn discovery(State(state): State<Arc<FakeState>>, headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let issuer = lock(&state.issuer).clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("http://{host}/authorize"),
        "token_endpoint": format!("http://{host}/token"),
        "jwks_uri": format!("http://{host}/keys"),
    }))
}

async fn jwks(State(state): State<Arc<FakeState>>) -> Response {
    state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if state.jwks_down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    Json(json!({ "keys": *lock(&state.keys) })).into_response()
}

async fn attacker_jwks(State(state): State<Arc<FakeState>>) -> Json<Value> {
    state.attacker_hits.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "keys": [] }))
}

/// Only the client credentials grant Graph needs.
async fn token(axum::Form(form): axum::Form<HashMap<String, String>>) -> Response {
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some("test-client-secret");
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    Json(json!({ "access_token": GRAPH_TOKEN, "token_type": "Bearer", "expires_in": 3600 }))
        .into_response()
}

async fn graph_groups(
    State(state): State<Arc<FakeState>>,
    Path(oid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    state.graph_hits.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {GRAPH_TOKEN}"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if state.graph_failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let groups = lock(&state.graph_groups)
        .get(&oid)
        .cloned()
        .unwrap_or_default();
    let skip: usize = query
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = groups
        .iter()
        .skip(skip)
        .take(GRAPH_PAGE)
        .map(|id| json!({ "@odata.type": "#microsoft.graph.group", "id": id }))
        .collect();
    let mut body = json!({ "value": page });
    if skip + GRAPH_PAGE < groups.len() {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        body["@odata.nextLink"] = json!(format!(
            "http://{host}/v1.0/users/{oid}/transitiveMemberOf/microsoft.graph.group?$skiptoken={}",
            skip + GRAPH_PAGE
        ));
    }
    Json(body).into_response()
}
