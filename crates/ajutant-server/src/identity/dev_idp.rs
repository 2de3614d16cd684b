//! The built-in development OpenID Connect provider: discovery, signing keys, a page that signs in
//! as any demo user without a password, and a token endpoint issuing Entra-shaped tokens. It
//! serves the embedded default and the tests; the server refuses it in production mode.
//!
//! Everything lives in memory: the signing key is generated at start, so a restart invalidates
//! every token and refresh token issued before it. That is acceptable for development, and it
//! means there is no key material to protect on disk.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ajutant_core::config::{DemoUser, DevelopmentIdpConfig};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;

use super::secrets::{constant_time_eq, pkce_challenge, random_token, sha256_hex};

/// The client id the relying party uses with the development provider.
pub(crate) const CLIENT_ID: &str = "ajutant-development";
/// The tenant id the development provider puts in `tid` and its issuer.
pub(crate) const TENANT_ID: &str = "9f3c1d2e-0000-4000-8000-00000000d3e0";

/// Lifetime of ID and access tokens, like Entra's default of an hour.
const TOKEN_LIFETIME_SECS: i64 = 3600;
/// An authorization code is redeemed by the relying party straight after the redirect.
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// What access tokens grant, shaped like an Entra API scope.
const ACCESS_SCOPE: &str = "access_as_user";

const PAGE_TITLE: &str = "Development sign-in — not for production";

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

async fn jwks(State(idp): State<DevIdp>) -> Json<Value> {
    Json(idp.inner.jwks.clone())
}

// ---------------------------------------------------------------------------------------------
// The authorization endpoint
// ---------------------------------------------------------------------------------------------

/// The authorization request's parameters, from the query (GET) or from the picker's hidden
/// fields (POST). All optional so that a missing one is answered the OAuth way, not by the
/// framework's rejection.
#[derive(Debug, Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// The picked demo user's id; only in the picker's POST.
    user: Option<String>,
}

/// An authorization request that passed every check.
struct ValidAuthorize {
    scope: String,
    state: String,
    nonce: String,
    code_challenge: String,
}

enum AuthorizeError {
    /// The client or redirect URI is not the registered one. Reported here, never by redirect:
    /// sending the browser to an unverified URI would make this an open redirector.
    Unverified(&'static str),
    /// Safe to report to the relying party at its verified redirect URI.
    Invalid {
        description: &'static str,
        state: Option<String>,
    },
}

impl DevIdp {
    fn validate(&self, params: &AuthorizeParams) -> Result<ValidAuthorize, AuthorizeError> {
        if params.client_id.as_deref() != Some(CLIENT_ID) {
            return Err(AuthorizeError::Unverified(
                "client_id is not ajutant-development, the only client this provider serves.",
            ));
        }
        if params.redirect_uri.as_deref() != Some(self.inner.redirect_uri.as_str()) {
            return Err(AuthorizeError::Unverified(
                "redirect_uri is not the registered redirect URI.",
            ));
        }
        let invalid = |description| AuthorizeError::Invalid {
            description,
            state: params.state.clone(),
        };
        if params.response_type.as_deref() != Some("code") {
            return Err(invalid("response_type must be code"));
        }
        let scope = params.scope.clone().unwrap_or_default();
        if !scope.split_whitespace().any(|s| s == "openid") {
            return Err(invalid("scope must include openid"));
        }
        let state = required(&params.state).ok_or_else(|| invalid("state is required"))?;
        let nonce = required(&params.nonce).ok_or_else(|| invalid("nonce is required"))?;
        let code_challenge = required(&params.code_challenge)
            .ok_or_else(|| invalid("code_challenge is required"))?;
        if params.code_challenge_method.as_deref() != Some("S256") {
            return Err(invalid("code_challenge_method must be S256"));
        }
        Ok(ValidAuthorize {
            scope,
            state,
            nonce,
            code_challenge,
        })
    }

    /// The redirect that reports an invalid request to the relying party.
    fn error_redirect(&self, description: &str, state: Option<&str>) -> Response {
        let mut target = self.inner.redirect_uri.clone();
        {
            let mut query = target.query_pairs_mut();
            query.append_pair("error", "invalid_request");
            query.append_pair("error_description", description);
            if let Some(state) = state {
                query.append_pair("state", state);
            }
        }
        Redirect::to(target.as_str()).into_response()
    }

    fn authorize_error(&self, error: AuthorizeError) -> Response {
        match error {
            AuthorizeError::Unverified(message) => bad_request_page(message),
            AuthorizeError::Invalid { description, state } => {
                self.error_redirect(description, state.as_deref())
            }
        }
    }
}

fn required(value: &Option<String>) -> Option<String> {
    value.as_ref().filter(|v| !v.is_empty()).cloned()
}

fn bad_request_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        format!("Development sign-in: {message}"),
    )
        .into_response()
}

async fn authorize_page(
    State(idp): State<DevIdp>,
    params: Result<Query<AuthorizeParams>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return bad_request_page("the authorization request's query could not be read.");
    };
    let valid = match idp.validate(&params) {
        Ok(valid) => valid,
        Err(error) => return idp.authorize_error(error),
    };
    let mut response = Html(idp.picker_html(&valid)).into_response();
    let headers = response.headers_mut();
    // The picker posts to this provider, which then redirects to the relying party; browsers
    // apply form-action to that redirect too, so the redirect URI's origin is allowed as well
    // (it differs from 'self' when the page is reached as localhost and the redirect URI
    // names 127.0.0.1).
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {}; \
         frame-ancestors 'none'",
        idp.inner.redirect_uri.origin().ascii_serialization()
    );
    let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
         frame-ancestors 'none'",
    ));
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

impl DevIdp {
    fn picker_html(&self, request: &ValidAuthorize) -> String {
        let hidden = [
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", self.inner.redirect_uri.as_str()),
            ("scope", &request.scope),
            ("state", &request.state),
            ("nonce", &request.nonce),
            ("code_challenge", &request.code_challenge),
            ("code_challenge_method", "S256"),
        ];
        let mut fields = String::new();
        for (name, value) in hidden {
            fields.push_str(&format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(name),
                escape(value)
            ));
        }

        let mut buttons = String::new();
        for user in &self.inner.users {
            let groups: Vec<&str> = user
                .groups
                .iter()
                .map(|id| {
                    self.inner
                        .group_names
                        .get(id)
                        .map_or(id.as_str(), String::as_str)
                })
                .collect();
            let groups = if groups.is_empty() {
                "no groups".to_owned()
            } else {
                groups.join(", ")
            };
            buttons.push_str(&format!(
                "<li><button type=\"submit\" name=\"user\" value=\"{}\">\
                 <span class=\"name\">{}</span> \
                 <span class=\"email\">{}</span> \
                 <span class=\"groups\">Groups: {}</span></button></li>\n",
                escape(&user.id),
                escape(&user.name),
                escape(&user.email),
                escape(&groups),
            ));
        }
        if buttons.is_empty() {
            buttons
                .push_str("<li>No demo users are configured (identity.development.users).</li>\n");
        }

        format!(
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{PAGE_TITLE}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; }}
.warning {{ background: #fff4ce; border-left: 4px solid #c19c00; padding: 0.5rem 0.75rem; }}
fieldset {{ border: none; padding: 0; }}
legend {{ font-weight: 600; margin-bottom: 0.5rem; }}
ul {{ list-style: none; padding: 0; }}
li {{ margin: 0.5rem 0; }}
button {{ width: 100%; text-align: left; padding: 0.75rem; font: inherit; border: 1px solid #8a8a8a; border-radius: 4px; background: #fff; cursor: pointer; }}
button:hover, button:focus-visible {{ background: #eef4fb; outline: 2px solid #0f6cbd; }}
.name {{ display: block; font-weight: 600; }}
.email, .groups {{ display: block; color: #424242; }}
</style>
</head>
<body>
<main>
<h1>{PAGE_TITLE}</h1>
<p class="warning">This built-in identity provider signs in as any demo user without a password.
It exists for local development and tests; Ajutant refuses to run it in production mode.</p>
<form method="post" action="authorize">
{fields}<fieldset>
<legend>Sign in as</legend>
<ul>
{buttons}</ul>
</fieldset>
</form>
</main>
</body>
</html>
"#
        )
    }
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

async fn authorize_submit(
    State(idp): State<DevIdp>,
    params: Result<Form<AuthorizeParams>, FormRejection>,
) -> Response {
    let Ok(Form(params)) = params else {
        return bad_request_page("the sign-in form could not be read.");
    };
    let valid = match idp.validate(&params) {
        Ok(valid) => valid,
        Err(error) => return idp.authorize_error(error),
    };
    let Some(user) = params.user.as_deref().and_then(|id| idp.user(id)) else {
        return idp.error_redirect("no such demo user", Some(&valid.state));
    };

    let code = random_token();
    let now = Instant::now();
    {
        let mut codes = lock(&idp.inner.codes);
        codes.retain(|_, pending| pending.expires_at > now);
        codes.insert(
            sha256_hex(&code),
            PendingCode {
                grant: Grant {
                    user_id: user.id.clone(),
                    scope: valid.scope,
                    auth_time: OffsetDateTime::now_utc().unix_timestamp(),
                },
                redirect_uri: idp.inner.redirect_uri.as_str().to_owned(),
                nonce: valid.nonce,
                code_challenge: valid.code_challenge,
                expires_at: now + CODE_LIFETIME,
            },
        );
    }

    let mut target = idp.inner.redirect_uri.clone();
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &valid.state);
    Redirect::to(target.as_str()).into_response()
}

// ---------------------------------------------------------------------------------------------
// The token endpoint
// ---------------------------------------------------------------------------------------------

/// Every grant's fields; all optional so a missing one is answered with OAuth's
/// `invalid_request`. A `client_secret` (client_secret_post) is accepted and ignored: this
/// provider has no secrets to check.
#[derive(Debug, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
}

#[derive(Serialize)]
struct TokenResponse {
    token_type: &'static str,
    expires_in: i64,
    access_token: String,
    id_token: String,
    refresh_token: String,
    scope: String,
}

/// An OAuth token error (RFC 6749 section 5.2), answered as JSON.
#[derive(Debug)]
enum TokenError {
    InvalidRequest(&'static str),
    InvalidGrant(&'static str),
    UnsupportedGrantType,
    /// Signing failed; the cause is logged, not returned.
    Server,
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::InvalidRequest(description) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_request", "error_description": description}),
            ),
            Self::InvalidGrant(description) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_grant", "error_description": description}),
            ),
            Self::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                json!({"error": "unsupported_grant_type"}),
            ),
            Self::Server => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "server_error"}),
            ),
        };
        (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
    }
}

async fn token(
    State(idp): State<DevIdp>,
    request: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let result = match request {
        Ok(Form(request)) => match request.grant_type.as_deref() {
            Some("authorization_code") => idp.redeem_code(&request),
            Some("refresh_token") => idp.redeem_refresh_token(&request),
            Some(_) => Err(TokenError::UnsupportedGrantType),
            None => Err(TokenError::InvalidRequest("grant_type is required")),
        },
        Err(_) => Err(TokenError::InvalidRequest(
            "the body must be a form (application/x-www-form-urlencoded) naming each field once",
        )),
    };
    match result {
        Ok(tokens) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            Json(tokens),
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

fn field<'a>(value: &'a Option<String>, missing: &'static str) -> Result<&'a str, TokenError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or(TokenError::InvalidRequest(missing))
}

fn check_client(client_id: &str) -> Result<(), TokenError> {
    if client_id == CLIENT_ID {
        Ok(())
    } else {
        Err(TokenError::InvalidGrant(
            "the grant was not issued to this client_id",
        ))
    }
}

impl DevIdp {
    fn redeem_code(&self, request: &TokenRequest) -> Result<TokenResponse, TokenError> {
        let code = field(&request.code, "code is required")?;
        let redirect_uri = field(&request.redirect_uri, "redirect_uri is required")?;
        let client_id = field(&request.client_id, "client_id is required")?;
        let verifier = field(&request.code_verifier, "code_verifier is required")?;

        // Removed before any other check: a code is spent by its first use, right or wrong, so
        // a stolen code cannot be retried with guessed verifiers.
        let pending =
            lock(&self.inner.codes)
                .remove(&sha256_hex(code))
                .ok_or(TokenError::InvalidGrant(
                    "the code is unknown, expired or already used",
                ))?;
        if pending.expires_at <= Instant::now() {
            return Err(TokenError::InvalidGrant("the code has expired"));
        }
        check_client(client_id)?;
        if redirect_uri != pending.redirect_uri {
            return Err(TokenError::InvalidGrant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        if !constant_time_eq(&pkce_challenge(verifier), &pending.code_challenge) {
            return Err(TokenError::InvalidGrant(
                "code_verifier does not match the code_challenge",
            ));
        }

        let refresh_token = random_token();
        lock(&self.inner.refresh_tokens).insert(sha256_hex(&refresh_token), pending.grant.clone());
        self.tokens(&pending.grant, Some(&pending.nonce), refresh_token)
    }

    fn redeem_refresh_token(&self, request: &TokenRequest) -> Result<TokenResponse, TokenError> {
        let refresh_token = field(&request.refresh_token, "refresh_token is required")?;
        let client_id = field(&request.client_id, "client_id is required")?;
        check_client(client_id)?;
        // Looked up by digest, so the lookup's timing says nothing about stored tokens.
        let grant = lock(&self.inner.refresh_tokens)
            .get(&sha256_hex(refresh_token))
            .cloned()
            .ok_or(TokenError::InvalidGrant("the refresh token is unknown"))?;
        // The same refresh token comes back rather than a rotated one: the relying party may
        // re-check one session from several replicas at once, and rotation would make all but
        // the first of them fail and end a healthy session.
        self.tokens(&grant, None, refresh_token.to_owned())
    }

    /// A fresh ID token and access token for `grant`, returned with `refresh_token`.
    fn tokens(
        &self,
        grant: &Grant,
        nonce: Option<&str>,
        refresh_token: String,
    ) -> Result<TokenResponse, TokenError> {
        // Demo users come from configuration, which only a restart changes, and a restart
        // forgets every grant; so this only fails if that ever stops being true.
        let user = self
            .user(&grant.user_id)
            .ok_or(TokenError::InvalidGrant("the user no longer exists"))?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let subject = pairwise_subject(&user.id);
        let common = |uti: String| CommonClaims {
            iss: &self.inner.issuer,
            aud: CLIENT_ID,
            iat: now,
            nbf: now,
            exp: now + TOKEN_LIFETIME_SECS,
            tid: TENANT_ID,
            oid: &user.id,
            sub: &subject,
            name: &user.name,
            preferred_username: &user.email,
            email: &user.email,
            groups: &user.groups,
            ver: "2.0",
            uti,
        };
        let id_token = self.sign(
            "JWT",
            &IdTokenClaims {
                common: common(random_token()),
                nonce,
                auth_time: grant.auth_time,
            },
        )?;
        let access_token = self.sign(
            "at+jwt",
            &AccessTokenClaims {
                common: common(random_token()),
                scp: ACCESS_SCOPE,
                azp: CLIENT_ID,
            },
        )?;
        Ok(TokenResponse {
            token_type: "Bearer",
            expires_in: TOKEN_LIFETIME_SECS,
            access_token,
            id_token,
            refresh_token,
            scope: grant.scope.clone(),
        })
    }

    /// A compact JWS: base64url(header).base64url(claims).base64url(r || s).
    fn sign(&self, typ: &str, claims: &impl Serialize) -> Result<String, TokenError> {
        let header = json!({"alg": "ES256", "typ": typ, "kid": self.inner.kid});
        let (Ok(header), Ok(claims)) = (serde_json::to_vec(&header), serde_json::to_vec(claims))
        else {
            tracing::error!("development identity provider: could not serialize a token");
            return Err(TokenError::Server);
        };
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        // The FIXED signing algorithm yields r || s, each 32 bytes: JWS's ES256 format.
        let signature = self
            .inner
            .key
            .sign(&self.inner.rng, signing_input.as_bytes())
            .map_err(|_| {
                tracing::error!("development identity provider: signing a token failed");
                TokenError::Server
            })?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

/// Entra's `sub` is pairwise: it differs per application for the same person. Shaped the same
/// way here, base64url SHA-256 of the object id and the client id (43 characters), so the
/// relying party cannot mistake `sub` for the stable `oid`.
fn pairwise_subject(oid: &str) -> String {
    let encoded = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{oid}{CLIENT_ID}").as_bytes()));
    encoded.chars().take(43).collect()
}

/// Claims both tokens carry.
#[derive(Serialize)]
struct CommonClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    tid: &'a str,
    oid: &'a str,
    sub: &'a str,
    name: &'a str,
    preferred_username: &'a str,
    email: &'a str,
    groups: &'a [String],
    ver: &'a str,
    uti: String,
}

#[derive(Serialize)]
struct IdTokenClaims<'a> {
    #[serde(flatten)]
    common: CommonClaims<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    auth_time: i64,
}

#[derive(Serialize)]
struct AccessTokenClaims<'a> {
    #[serde(flatten)]
    common: CommonClaims<'a>,
    scp: &'a str,
    azp: &'a str,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    use ajutant_core::config::DemoGroup;
    use axum::body::Body;
    use axum::http::{HeaderMap, Method, Request};
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
    fn the_pairwise_subject_is_stable_and_not_the_object_id() {
        let a = pairwise_subject("0c2a7e3d-0001-4000-8000-000000000001");
        assert_eq!(a.len(), 43);
        assert_eq!(a, pairwise_subject("0c2a7e3d-0001-4000-8000-000000000001"));
        assert_ne!(a, pairwise_subject("0c2a7e3d-0002-4000-8000-000000000002"));
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
