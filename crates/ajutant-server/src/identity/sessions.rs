//! Browser sign-in and sessions. Sign-in is the authorization code flow with PKCE, `state` and
//! `nonce`; the sign-in in progress is bound to the browser by a short-lived cookie and consumed
//! exactly once. The session lives in the database behind a `__Host-` cookie (HttpOnly,
//! SameSite=Lax, Secure), so logout and deprovisioning end it server-side at once. It ends after
//! an idle period, at an absolute lifetime, or when the periodic re-check with the provider
//! (refresh token) fails.

use ajutant_core::audit::{AuditAction, AuditEvent, Outcome};
use ajutant_store::{LoginAttempt, NewSession};
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use super::secrets::{constant_time_eq, pkce_challenge, random_token, sha256_hex};
use super::tokens::TokenUse;
use super::{AuthMethod, Caller, Identity, Refusal, anonymous, cookie_value, ensure_provisioned};
use crate::AppState;
use crate::problem::ApiError;
use crate::request::RequestContext;

/// How long a sign-in may take at the provider.
const SIGN_IN_WINDOW: Duration = Duration::minutes(10);
/// `last_seen_at` is written at most this often per session, to keep reads from becoming writes.
const TOUCH_EVERY: Duration = Duration::seconds(60);
/// The header a page sends its session's CSRF token in on state-changing API calls.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
}

impl Identity {
    pub(crate) fn cookie_name(&self) -> &'static str {
        if self.inner.secure_cookies {
            "__Host-ajutant_session"
        } else {
            // Without Secure the browser refuses the __Host- prefix: plain-HTTP development only
            // (production requires an https:// public URL).
            "ajutant_session"
        }
    }

    fn sign_in_cookie_name(&self) -> &'static str {
        if self.inner.secure_cookies {
            "__Host-ajutant_signin"
        } else {
            "ajutant_signin"
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
        let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if self.inner.secure_cookies {
            cookie.push_str("; Secure");
        }
        if let Some(seconds) = max_age {
            cookie.push_str(&format!("; Max-Age={seconds}"));
        }
        // Cookie values here are base64url tokens or empty, always valid header text.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

pub(crate) fn session_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie_value(headers, name).filter(|v| !v.is_empty())
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
}

/// Only a path on this site: anything else would make sign-in an open redirect.
fn local_path(return_to: Option<String>) -> String {
    match return_to {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path
        }
        _ => "/".to_owned(),
    }
}

async fn login(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    let identity = &state.identity;
    let discovery = identity
        .inner
        .validator
        .provider()
        .discovery()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let now = OffsetDateTime::now_utc();
    let state_token = random_token();
    let browser = random_token();
    let attempt = LoginAttempt {
        browser_hash: sha256_hex(&browser),
        nonce: random_token(),
        code_verifier: random_token(),
        return_to: local_path(query.return_to),
    };
    state
        .store
        .insert_login_attempt(
            &sha256_hex(&state_token),
            &attempt,
            now,
            now + SIGN_IN_WINDOW,
        )
        .await
        .map_err(ApiError::from)?;

    let mut authorize = discovery.authorization_endpoint;
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", identity.inner.validator.provider().client_id())
        .append_pair("redirect_uri", identity.inner.redirect_uri.as_str())
        .append_pair("scope", &identity.inner.scopes.join(" "))
        .append_pair("state", &state_token)
        .append_pair("nonce", &attempt.nonce)
        .append_pair("code_challenge", &pkce_challenge(&attempt.code_verifier))
        .append_pair("code_challenge_method", "S256");
    let mut response = redirect(authorize.as_str());
    response.headers_mut().append(
        header::SET_COOKIE,
        identity.cookie(
            identity.sign_in_cookie_name(),
            &browser,
            Some(SIGN_IN_WINDOW.whole_seconds()),
        ),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let identity = &state.identity;
    let now = OffsetDateTime::now_utc();
    let refuse = |reason: &'static str, code: &'static str| {
        let state = state.clone();
        let context = context.clone();
        async move {
            let event = AuditEvent::new(anonymous(), AuditAction::SignIn, "", Outcome::Denied)
                .with_origin(context.origin())
                .with_details(serde_json::json!({ "reason": code }));
            match state.record(event).await {
                Ok(()) => ApiError::BadRequest(reason.to_owned()),
                Err(error) => error,
            }
        }
    };
    let Some(state_token) = query.state.as_deref().filter(|s| !s.is_empty()) else {
        return Err(refuse("the sign-in response has no state", "missing_state").await);
    };
    // Consumed whatever happens next: a state is good for one callback.
    let attempt = state
        .store
        .take_login_attempt(&sha256_hex(state_token), now)
        .await
        .map_err(ApiError::from)?;
    let Some(attempt) = attempt else {
        return Err(refuse(
            "this sign-in is unknown, expired or already used; start again",
            "unknown_state",
        )
        .await);
    };
    let browser = cookie_value(&headers, identity.sign_in_cookie_name()).unwrap_or_default();
    if !constant_time_eq(&sha256_hex(&browser), &attempt.browser_hash) {
        return Err(refuse(
            "this sign-in was started in another browser; start again",
            "browser_mismatch",
        )
        .await);
    }
    if let Some(error) = query.error {
        tracing::info!(%error, description = ?query.error_description, "the provider refused sign-in");
        return Err(refuse(
            "the identity provider refused the sign-in",
            "provider_error",
        )
        .await);
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(refuse("the sign-in response has no code", "missing_code").await);
    };
    let provider = identity.inner.validator.provider();
    let tokens = match provider
        .exchange_code(
            code,
            identity.inner.redirect_uri.as_str(),
            &attempt.code_verifier,
        )
        .await
    {
        Ok(tokens) => tokens,
        Err(error) => {
            tracing::info!(%error, "code exchange failed");
            return Err(refuse(
                "the identity provider did not accept the sign-in code",
                "code_rejected",
            )
            .await);
        }
    };
    let Some(id_token) = tokens.id_token else {
        return Err(refuse("the identity provider sent no ID token", "no_id_token").await);
    };
    let claims = match identity
        .inner
        .validator
        .validate(
            &id_token,
            TokenUse::Id {
                nonce: Some(&attempt.nonce),
            },
        )
        .await
    {
        Ok(claims) => claims,
        Err(rejection) => {
            tracing::info!(%rejection, "ID token refused");
            return Err(refuse(
                "the identity provider's ID token is not valid",
                rejection.code(),
            )
            .await);
        }
    };
    let (principal, graph_failure) = identity.principal_from(&claims).await;
    if let Some(failure) = graph_failure {
        super::audit_graph_failure(&state, &context, &principal, &failure).await?;
    }
    ensure_provisioned(&state, &context, &principal, "session").await?;

    // A fresh id at every sign-in; a session the browser already had ends here.
    if let Some(old) = session_cookie(&headers, identity.cookie_name()) {
        let _ = state
            .store
            .end_session(&sha256_hex(&old), "replaced by a new sign-in", now)
            .await;
    }
    let session_id = random_token();
    let sessions = &identity.inner.sessions;
    // The provider's refresh token is kept as it is, since it must be presented back to the
    // provider; it is cleared when the session ends. Encrypting it at rest with a key held
    // outside the database is not done yet.
    state
        .store
        .create_session(NewSession {
            id_hash: &sha256_hex(&session_id),
            principal: &principal,
            csrf_token: &random_token(),
            refresh_token: tokens.refresh_token.as_deref(),
            now,
            expires_at: now + Duration::hours(sessions.absolute_hours as i64),
            recheck_at: now + Duration::seconds(sessions.recheck_secs as i64),
        })
        .await
        .map_err(ApiError::from)?;
    let event = AuditEvent::new(principal.actor(), AuditAction::SignIn, "", Outcome::Allowed)
        .with_origin(context.origin())
        .with_details(serde_json::json!({
            "groups": principal.groups.len(),
            "refreshable": tokens.refresh_token.is_some(),
        }));
    state.record(event).await?;

    let mut response = redirect(&attempt.return_to);
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        identity.cookie(identity.cookie_name(), &session_id, None),
    );
    cookies.append(
        header::SET_COOKIE,
        identity.cookie(identity.sign_in_cookie_name(), "", Some(0)),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    csrf_token: String,
}

/// Ends the session server-side. A form post, so it carries the session's CSRF token.
async fn logout(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Result<Response, ApiError> {
    let identity = &state.identity;
    let now = OffsetDateTime::now_utc();
    let Some(cookie) = session_cookie(&headers, identity.cookie_name()) else {
        return Err(ApiError::Unauthorized(
            "no session to sign out of".to_owned(),
        ));
    };
    let id_hash = sha256_hex(&cookie);
    let session = state
        .store
        .session(&id_hash)
        .await
        .map_err(ApiError::from)?
        .filter(|s| !s.ended);
    let Some(session) = session else {
        return Err(ApiError::Unauthorized(
            "the session has already ended".to_owned(),
        ));
    };
    if !constant_time_eq(&form.csrf_token, &session.csrf_token) {
        return Err(state
            .refuse(
                &context,
                session.principal.actor(),
                Refusal {
                    method: "session",
                    message: "the CSRF token does not match",
                    code: "csrf",
                },
            )
            .await);
    }
    state
        .store
        .end_session(&id_hash, "signed out", now)
        .await
        .map_err(ApiError::from)?;
    let event = AuditEvent::new(
        session.principal.actor(),
        AuditAction::SignOut,
        "",
        Outcome::Allowed,
    )
    .with_origin(context.origin());
    state.record(event).await?;
    let mut response = redirect("/");
    response.headers_mut().append(
        header::SET_COOKIE,
        identity.cookie(identity.cookie_name(), "", Some(0)),
    );
    Ok(response)
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The session behind `cookie`, checked: live, within its idle and absolute lifetimes, not
/// deprovisioned, re-checked with the provider when due; for unsafe methods, the CSRF header.
pub(crate) async fn authenticate_session(
    state: &AppState,
    context: &RequestContext,
    cookie: &str,
    parts: &Parts,
    now: OffsetDateTime,
) -> Result<Caller, ApiError> {
    let (method, headers) = (&parts.method, &parts.headers);
    let identity = &state.identity;
    let sessions = &identity.inner.sessions;
    let id_hash = sha256_hex(cookie);
    let internal = ApiError::from;
    let Some(session) = state.store.session(&id_hash).await.map_err(internal)? else {
        return Err(ApiError::Unauthorized(
            "the session is unknown; sign in again".to_owned(),
        ));
    };
    if session.ended {
        return Err(ApiError::Unauthorized(
            "the session has ended; sign in again".to_owned(),
        ));
    }
    let end = |reason: &'static str, code: &'static str| {
        let principal = session.principal.clone();
        let id_hash = id_hash.clone();
        async move {
            if let Err(error) = state.store.end_session(&id_hash, reason, now).await {
                return ApiError::from(error);
            }
            state
                .refuse(
                    context,
                    principal.actor(),
                    Refusal {
                        method: "session",
                        message: reason,
                        code,
                    },
                )
                .await
        }
    };
    if now >= session.expires_at {
        return Err(end(
            "the session reached its absolute lifetime; sign in again",
            "session_expired",
        )
        .await);
    }
    if now - session.last_seen_at >= Duration::minutes(sessions.idle_minutes as i64) {
        return Err(end(
            "the session was idle too long; sign in again",
            "session_idle",
        )
        .await);
    }
    if state
        .store
        .is_deprovisioned(&session.principal.subject)
        .await
        .map_err(internal)?
    {
        return Err(end(
            "this account has been deprovisioned by the directory",
            "deprovisioned",
        )
        .await);
    }
    let mut principal = session.principal.clone();
    if now >= session.recheck_at {
        let next = now + Duration::seconds(sessions.recheck_secs as i64);
        // One request re-checks; the others carry on with the session as it stands.
        if state
            .store
            .claim_session_recheck(&id_hash, session.recheck_at, next)
            .await
            .map_err(internal)?
        {
            match recheck(identity, session.refresh_token.as_deref()).await {
                Ok((fresh, refresh_token)) => {
                    if fresh.subject != principal.subject {
                        return Err(
                            end("the provider now names someone else", "subject_changed").await,
                        );
                    }
                    state
                        .store
                        .refresh_session(&id_hash, &fresh, refresh_token.as_deref())
                        .await
                        .map_err(internal)?;
                    principal = fresh;
                }
                Err(reason) => {
                    tracing::info!(%reason, "session re-check failed");
                    return Err(end(
                        "the identity provider no longer confirms this sign-in",
                        "recheck_failed",
                    )
                    .await);
                }
            }
        }
    }
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !constant_time_eq(presented, &session.csrf_token) {
            return Err(state
                .refuse(
                    context,
                    principal.actor(),
                    Refusal {
                        method: "session",
                        message: "missing or wrong x-csrf-token header",
                        code: "csrf",
                    },
                )
                .await);
        }
    }
    if now - session.last_seen_at >= TOUCH_EVERY {
        state
            .store
            .touch_session(&id_hash, now)
            .await
            .map_err(internal)?;
    }
    Ok(Caller {
        principal,
        via: AuthMethod::Session,
        csrf_token: Some(session.csrf_token),
    })
}

/// Asks the provider, with the refresh token, whether the user may still sign in, and who they
/// are now (groups may have changed).
async fn recheck(
    identity: &Identity,
    refresh_token: Option<&str>,
) -> Result<(ajutant_core::policy::Principal, Option<String>), String> {
    let refresh_token = refresh_token.ok_or("the provider gave no refresh token")?;
    let validator = &identity.inner.validator;
    let tokens = validator
        .provider()
        .refresh(refresh_token)
        .await
        .map_err(|e| e.to_string())?;
    let id_token = tokens
        .id_token
        .ok_or("no ID token in the refresh response")?;
    let claims = validator
        .validate(&id_token, TokenUse::Id { nonce: None })
        .await
        .map_err(|e| e.to_string())?;
    let (principal, graph_failure) = identity.principal_from(&claims).await;
    if let Some(failure) = graph_failure {
        tracing::warn!(%failure, "groups could not be resolved at re-check");
    }
    Ok((principal, tokens.refresh_token))
}
