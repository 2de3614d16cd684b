//! The built-in development OpenID Connect provider: discovery, signing keys, a page that signs in
//! as any demo user without a password, and a token endpoint issuing Entra-shaped tokens. It
//! serves the embedded default and the tests; the server refuses it in production mode.
//!
//! Everything lives in memory: the signing key is generated at start, so a restart invalidates
//! every token and refresh token issued before it. That is acceptable for development, and it
//! means there is no key material to protect on disk.
//!
//! `keys.rs` publishes the key set and signs tokens, `pages.rs` serves the authorization
//! endpoint (the demo-user picker), and `token.rs` the token endpoint and its claims.

mod keys;
mod pages;
mod token;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use ajutant_core::config::{DemoUser, DevelopmentIdpConfig};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use keys::jwks;
use pages::{authorize_page, authorize_submit};
use token::token;

/// The client id the relying party uses with the development provider.
pub(crate) const CLIENT_ID: &str = "ajutant-development";
/// The tenant id the development provider puts in `tid` and its issuer.
pub(crate) const TENANT_ID: &str = "9f3c1d2e-0000-4000-8000-00000000d3e0";

#[derive(Debug, thiserror::Error)]
pub(crate) enum DevIdpError {
    #[error("could not generate the development identity provider's signing key")]
    KeyGeneration,
    #[error(
        "the development identity provider's issuer must be an http(s) URL without query or \
         fragment, not {0}"
    )]
    InvalidIssuer(String),
    #[error(
        "the development identity provider's redirect URI must be an http(s) URL without a \
         fragment, not {0}"
    )]
    InvalidRedirectUri(String),
    #[error("identity.development: demo user id {0} appears more than once")]
    DuplicateUser(String),
}

/// The development provider. Cheap to clone: every clone shares one key and one set of
/// outstanding codes and refresh tokens.
#[derive(Clone)]
pub(crate) struct DevIdp {
    inner: Arc<Inner>,
}

struct Inner {
    /// Without a trailing slash, exactly as `iss` carries it.
    issuer: String,
    redirect_uri: Url,
    users: Vec<DemoUser>,
    /// Group id to display name, for the picker.
    group_names: HashMap<String, String>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
    /// The published key set, rendered once.
    jwks: Value,
    /// Outstanding authorization codes by SHA-256 of the code.
    codes: Mutex<HashMap<String, PendingCode>>,
    /// Refresh tokens by SHA-256 of the token. They do not expire: the map grows by one small
    /// entry per sign-in and is emptied by every restart.
    refresh_tokens: Mutex<HashMap<String, Grant>>,
}

/// What a sign-in granted: who, which scope, and when they signed in.
#[derive(Clone)]
struct Grant {
    user_id: String,
    scope: String,
    auth_time: i64,
}

struct PendingCode {
    grant: Grant,
    redirect_uri: String,
    nonce: String,
    code_challenge: String,
    expires_at: Instant,
}

impl fmt::Debug for DevIdp {
    // By hand, so neither the signing key nor outstanding codes and tokens reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIdp")
            .field("issuer", &self.inner.issuer)
            .field("redirect_uri", &self.inner.redirect_uri.as_str())
            .field("kid", &self.inner.kid)
            .field("users", &self.inner.users.len())
            .finish_non_exhaustive()
    }
}

impl DevIdp {
    /// `issuer` is e.g. `http://127.0.0.1:8080/dev-idp` (no trailing slash); `redirect_uri` is
    /// the only redirect URI accepted (e.g. `http://127.0.0.1:8080/auth/callback`).
    pub(crate) fn new(
        config: &DevelopmentIdpConfig,
        issuer: Url,
        redirect_uri: Url,
    ) -> Result<Self, DevIdpError> {
        if !is_http(&issuer) || issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(DevIdpError::InvalidIssuer(issuer.to_string()));
        }
        // RFC 6749 section 3.1.2: a redirection endpoint must not include a fragment.
        if !is_http(&redirect_uri) || redirect_uri.fragment().is_some() {
            return Err(DevIdpError::InvalidRedirectUri(redirect_uri.to_string()));
        }
        for (index, user) in config.users.iter().enumerate() {
            if config.users[..index].iter().any(|u| u.id == user.id) {
                return Err(DevIdpError::DuplicateUser(user.id.clone()));
            }
        }

        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| DevIdpError::KeyGeneration)?;
        let point = key.public_key().as_ref();
        // The uncompressed SEC1 point: 0x04, then the 32-byte x and y coordinates.
        let (x, y) = match point {
            [0x04, coordinates @ ..] if coordinates.len() == 64 => coordinates.split_at(32),
            _ => return Err(DevIdpError::KeyGeneration),
        };
        let kid = hex::encode(Sha256::digest(point))[..16].to_owned();
        let jwks = json!({
            "keys": [{
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
                "kid": kid,
                "use": "sig",
                "alg": "ES256",
            }]
        });

        Ok(Self {
            inner: Arc::new(Inner {
                issuer: issuer.as_str().trim_end_matches('/').to_owned(),
                redirect_uri,
                users: config.users.clone(),
                group_names: config
                    .groups
                    .iter()
                    .map(|g| (g.id.clone(), g.name.clone()))
                    .collect(),
                key,
                rng: SystemRandom::new(),
                kid,
                jwks,
                codes: Mutex::new(HashMap::new()),
                refresh_tokens: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    fn user(&self, id: &str) -> Option<&DemoUser> {
        self.inner.users.iter().find(|u| u.id == id)
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.inner.issuer)
    }
}

fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

/// The maps hold plain values that no update can leave half-written, so a panic elsewhere while
/// the lock was held does not make them untrustworthy.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Routes, all under `/dev-idp` (absolute paths, so the caller merges them at the root).
pub(crate) fn router(idp: DevIdp) -> Router {
    Router::new()
        .route("/dev-idp/.well-known/openid-configuration", get(discovery))
        .route("/dev-idp/jwks", get(jwks))
        .route(
            "/dev-idp/authorize",
            get(authorize_page).post(authorize_submit),
        )
        .route("/dev-idp/token", post(token))
        .with_state(idp)
}

async fn discovery(State(idp): State<DevIdp>) -> Json<Value> {
    Json(json!({
        "issuer": idp.issuer(),
        "authorization_endpoint": idp.endpoint("authorize"),
        "token_endpoint": idp.endpoint("token"),
        "jwks_uri": idp.endpoint("jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post"],
        "claims_supported": [
            "iss", "aud", "sub", "iat", "nbf", "exp", "auth_time", "nonce", "tid", "oid",
            "name", "preferred_username", "email", "groups", "ver", "uti",
        ],
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::pages::PAGE_TITLE;
    use super::*;
    use crate::identity::secrets::{pkce_challenge, random_token};

    use ajutant_core::config::DemoGroup;
    use axum::body::Body;
    use axum::http::{HeaderMap, Method, Request, StatusCode, header};
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use tower::ServiceExt;

    const ISSUER: &str = "http://127.0.0.1:8080/dev-idp";
    const REDIRECT_URI: &str = "http://127.0.0.1:8080/auth/callback";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn idp(config: &DevelopmentIdpConfig) -> DevIdp {
        DevIdp::new(
            config,
            Url::parse(ISSUER).unwrap(),
            Url::parse(REDIRECT_URI).unwrap(),
        )
        .unwrap()
    }

    fn default_router() -> Router {
        router(idp(&DevelopmentIdpConfig::default()))
    }

    struct Reply {
        status: StatusCode,
        headers: HeaderMap,
        body: String,
    }

    impl Reply {
        fn json(&self) -> Value {
            serde_json::from_str(&self.body).unwrap()
        }

        fn location(&self) -> Url {
            Url::parse(self.headers[header::LOCATION].to_str().unwrap()).unwrap()
        }
    }

    async fn send(app: &Router, request: Request<Body>) -> Reply {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(app: &Router, uri: &str) -> Reply {
        send(app, Request::get(uri).body(Body::empty()).unwrap()).await
    }

    async fn post_form(app: &Router, uri: &str, fields: &[(&str, &str)]) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        send(app, request).await
    }

    /// A valid authorization request's parameters.
    fn authorize_params() -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".to_owned()),
            ("client_id", CLIENT_ID.to_owned()),
            ("redirect_uri", REDIRECT_URI.to_owned()),
            ("scope", "openid profile offline_access".to_owned()),
            ("state", "state-123".to_owned()),
            ("nonce", "nonce-456".to_owned()),
            ("code_challenge", pkce_challenge(VERIFIER)),
            ("code_challenge_method", "S256".to_owned()),
        ]
    }

    /// `params` with `name` set to `value`.
    fn with(
        mut params: Vec<(&'static str, String)>,
        name: &'static str,
        value: &str,
    ) -> Vec<(&'static str, String)> {
        params.retain(|(n, _)| *n != name);
        params.push((name, value.to_owned()));
        params
    }

    fn authorize_uri(params: &[(&str, String)]) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        format!("/dev-idp/authorize?{query}")
    }

    /// Submits the picker's form as if `user` had been clicked.
    async fn pick(app: &Router, user: &str) -> Reply {
        let params = authorize_params();
        let mut fields: Vec<(&str, &str)> = params.iter().map(|(n, v)| (*n, v.as_str())).collect();
        fields.push(("user", user));
        post_form(app, "/dev-idp/authorize", &fields).await
    }

    /// Picks `user` and returns the code from the redirect.
    async fn sign_in(app: &Router, user: &str) -> String {
        let reply = pick(app, user).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        let location = reply.location();
        assert!(location.as_str().starts_with(REDIRECT_URI));
        let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(query["state"], "state-123");
        query["code"].clone()
    }

    async fn redeem(app: &Router, code: &str, verifier: &str) -> Reply {
        post_form(
            app,
            "/dev-idp/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", CLIENT_ID),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// The published key, and its key id.
    async fn published_key(app: &Router) -> (DecodingKey, Option<String>) {
        let jwks: JwkSet = serde_json::from_str(&get(app, "/dev-idp/jwks").await.body).unwrap();
        assert_eq!(jwks.keys.len(), 1);
        let jwk = &jwks.keys[0];
        (
            DecodingKey::from_jwk(jwk).unwrap(),
            jwk.common.key_id.clone(),
        )
    }

    fn verify(token: &str, key: &DecodingKey) -> Value {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[CLIENT_ID]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Value>(token, key, &validation)
            .unwrap()
            .claims
    }

    #[tokio::test]
    async fn discovery_points_at_the_issuer() {
        let reply = get(
            &default_router(),
            "/dev-idp/.well-known/openid-configuration",
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        let doc = reply.json();
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(doc["authorization_endpoint"], format!("{ISSUER}/authorize"));
        assert_eq!(doc["token_endpoint"], format!("{ISSUER}/token"));
        assert_eq!(doc["jwks_uri"], format!("{ISSUER}/jwks"));
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["ES256"])
        );
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            doc["grant_types_supported"],
            json!(["authorization_code", "refresh_token"])
        );
    }

    #[tokio::test]
    async fn the_key_set_publishes_one_p256_signing_key() {
        let jwks = get(&default_router(), "/dev-idp/jwks").await.json();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"].as_str().unwrap().len(), 16);
        assert_eq!(key["x"].as_str().unwrap().len(), 43);
        assert_eq!(key["y"].as_str().unwrap().len(), 43);
    }

    #[tokio::test]
    async fn the_picker_lists_users_with_group_names_and_carries_the_request() {
        let reply = get(&default_router(), &authorize_uri(&authorize_params())).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.body.contains(PAGE_TITLE));
        assert!(reply.body.contains(
            "<button type=\"submit\" name=\"user\" value=\"0c2a7e3d-0002-4000-8000-000000000002\">"
        ));
        assert!(reply.body.contains("harriet@example.org"));
        assert!(reply.body.contains("Employees, HR assistant owners"));
        assert!(
            reply
                .body
                .contains("<input type=\"hidden\" name=\"state\" value=\"state-123\">")
        );
        let csp = reply.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(reply.headers[header::REFERRER_POLICY], "no-referrer");
    }

    #[tokio::test]
    async fn the_picker_escapes_everything_it_interpolates() {
        let config = DevelopmentIdpConfig {
            groups: vec![DemoGroup {
                id: "g1".to_owned(),
                name: "<b>group</b>".to_owned(),
            }],
            users: vec![DemoUser {
                id: "u\"1".to_owned(),
                name: "<script>alert(1)</script>".to_owned(),
                email: "x@example.org".to_owned(),
                groups: vec!["g1".to_owned()],
            }],
            allow_network: false,
        };
        let app = router(idp(&config));
        let params = with(authorize_params(), "state", "\"><script>alert(2)</script>");
        let reply = get(&app, &authorize_uri(&params)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(!reply.body.contains("<script>"));
        assert!(!reply.body.contains("<b>"));
        assert!(reply.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(reply.body.contains("value=\"u&quot;1\""));
        assert!(
            reply
                .body
                .contains("value=\"&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;\"")
        );
    }

    #[tokio::test]
    async fn a_full_code_flow_issues_tokens_that_verify_against_the_key_set() {
        let app = default_router();
        let alice = "0c2a7e3d-0001-4000-8000-000000000001";
        let code = sign_in(&app, alice).await;
        let reply = redeem(&app, &code, VERIFIER).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
        let tokens = reply.json();
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 3600);
        assert_eq!(tokens["scope"], "openid profile offline_access");
        assert!(tokens["refresh_token"].as_str().is_some());

        let (key, kid) = published_key(&app).await;
        let id_token = tokens["id_token"].as_str().unwrap();
        let claims = verify(id_token, &key);
        assert_eq!(claims["nonce"], "nonce-456");
        assert_eq!(claims["oid"], alice);
        assert_eq!(claims["tid"], TENANT_ID);
        assert_eq!(claims["ver"], "2.0");
        assert_eq!(claims["preferred_username"], "alice@example.org");
        assert_eq!(claims["email"], "alice@example.org");
        assert_eq!(claims["name"], "Alice Employee");
        assert_eq!(
            claims["groups"],
            json!([ajutant_core::config::DEMO_EMPLOYEES])
        );
        assert_eq!(claims["sub"].as_str().unwrap().len(), 43);
        assert_ne!(claims["sub"], alice);
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            3600
        );
        assert!(claims["auth_time"].is_i64());
        let header = jsonwebtoken::decode_header(id_token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid, kid);

        let access_token = tokens["access_token"].as_str().unwrap();
        let access = verify(access_token, &key);
        assert_eq!(access["scp"], "access_as_user");
        assert_eq!(access["azp"], CLIENT_ID);
        assert_eq!(access["oid"], alice);
        assert!(access.get("nonce").is_none());
        let header = jsonwebtoken::decode_header(access_token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    }

    #[tokio::test]
    async fn a_code_works_only_once() {
        let app = default_router();
        let code = sign_in(&app, "0c2a7e3d-0001-4000-8000-000000000001").await;
        assert_eq!(redeem(&app, &code, VERIFIER).await.status, StatusCode::OK);
        let again = redeem(&app, &code, VERIFIER).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert_eq!(again.json()["error"], "invalid_grant");
    }

    #[tokio::test]
    async fn a_wrong_code_verifier_is_an_invalid_grant_and_spends_the_code() {
        let app = default_router();
        let code = sign_in(&app, "0c2a7e3d-0001-4000-8000-000000000001").await;
        let wrong = redeem(&app, &code, &random_token()).await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
        assert_eq!(wrong.json()["error"], "invalid_grant");
        let right_too_late = redeem(&app, &code, VERIFIER).await;
        assert_eq!(right_too_late.json()["error"], "invalid_grant");
    }

    #[tokio::test]
    async fn a_wrong_redirect_uri_at_the_token_endpoint_is_an_invalid_grant() {
        let app = default_router();
        let code = sign_in(&app, "0c2a7e3d-0001-4000-8000-000000000001").await;
        let reply = post_form(
            &app,
            "/dev-idp/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:8080/elsewhere"),
                ("client_id", CLIENT_ID),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.json()["error"], "invalid_grant");
    }

    #[tokio::test]
    async fn an_unregistered_redirect_uri_is_refused_without_redirecting() {
        let app = default_router();
        for (name, value) in [
            ("redirect_uri", "https://evil.example/callback"),
            ("client_id", "someone-else"),
        ] {
            let reply = get(&app, &authorize_uri(&with(authorize_params(), name, value))).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{name}");
            assert!(reply.headers.get(header::LOCATION).is_none(), "{name}");
            assert!(!reply.body.contains("evil.example"));
        }
    }

    #[tokio::test]
    async fn other_invalid_parameters_are_reported_to_the_redirect_uri() {
        let app = default_router();
        for (name, value) in [
            ("response_type", "token"),
            ("scope", "profile"),
            ("nonce", ""),
            ("code_challenge_method", "plain"),
        ] {
            let reply = get(&app, &authorize_uri(&with(authorize_params(), name, value))).await;
            assert_eq!(reply.status, StatusCode::SEE_OTHER, "{name}");
            let location = reply.location();
            assert!(location.as_str().starts_with(REDIRECT_URI));
            let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
            assert_eq!(query["error"], "invalid_request", "{name}");
            assert_eq!(query["state"], "state-123", "{name}");
            assert!(!query["error_description"].is_empty());
        }
    }

    #[tokio::test]
    async fn an_unknown_user_gets_no_code() {
        let reply = pick(&default_router(), "nobody").await;
        let query: HashMap<String, String> = reply.location().query_pairs().into_owned().collect();
        assert_eq!(query["error"], "invalid_request");
        assert!(!query.contains_key("code"));
    }

    #[tokio::test]
    async fn a_refresh_token_grant_returns_fresh_valid_tokens_and_the_same_refresh_token() {
        let app = default_router();
        let code = sign_in(&app, "0c2a7e3d-0005-4000-8000-000000000005").await;
        let first = redeem(&app, &code, VERIFIER).await.json();
        let refresh_token = first["refresh_token"].as_str().unwrap();

        let reply = post_form(
            &app,
            "/dev-idp/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", CLIENT_ID),
            ],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let second = reply.json();
        assert_eq!(second["refresh_token"], refresh_token);
        assert_ne!(second["id_token"], first["id_token"]);

        let (key, _) = published_key(&app).await;
        let claims = verify(second["id_token"].as_str().unwrap(), &key);
        assert_eq!(claims["oid"], "0c2a7e3d-0005-4000-8000-000000000005");
        assert!(claims.get("nonce").is_none());
        let first_claims = verify(first["id_token"].as_str().unwrap(), &key);
        assert_eq!(claims["sub"], first_claims["sub"]);
        assert_eq!(claims["auth_time"], first_claims["auth_time"]);
        verify(second["access_token"].as_str().unwrap(), &key);
    }

    #[tokio::test]
    async fn an_unknown_refresh_token_is_an_invalid_grant() {
        let reply = post_form(
            &default_router(),
            "/dev-idp/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &random_token()),
                ("client_id", CLIENT_ID),
            ],
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.json()["error"], "invalid_grant");
    }

    #[tokio::test]
    async fn the_token_endpoint_names_missing_fields_and_unknown_grants() {
        let app = default_router();
        let missing = post_form(
            &app,
            "/dev-idp/token",
            &[("grant_type", "authorization_code")],
        )
        .await;
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        assert_eq!(missing.json()["error"], "invalid_request");

        let unknown = post_form(&app, "/dev-idp/token", &[("grant_type", "password")]).await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
        assert_eq!(unknown.json(), json!({"error": "unsupported_grant_type"}));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let idp = idp(&DevelopmentIdpConfig::default());
        let debug = format!("{idp:?}");
        assert!(debug.contains(ISSUER));
        assert!(!debug.contains("key:"));
    }

    #[test]
    fn duplicate_user_ids_are_refused() {
        let mut config = DevelopmentIdpConfig::default();
        let first = config.users[0].clone();
        config.users.push(first);
        let result = DevIdp::new(
            &config,
            Url::parse(ISSUER).unwrap(),
            Url::parse(REDIRECT_URI).unwrap(),
        );
        assert!(matches!(result, Err(DevIdpError::DuplicateUser(_))));
    }
}
