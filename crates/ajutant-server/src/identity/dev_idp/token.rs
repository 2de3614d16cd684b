//! The token endpoint: authorization codes and refresh tokens redeemed for Entra-shaped ID
//! and access tokens, and the claims those tokens carry.

use std::time::Instant;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{CLIENT_ID, DevIdp, Grant, TENANT_ID, lock};
use crate::identity::secrets::{constant_time_eq, pkce_challenge, random_token, sha256_hex};

/// Lifetime of ID and access tokens, like Entra's default of an hour.
const TOKEN_LIFETIME_SECS: i64 = 3600;
/// What access tokens grant, shaped like an Entra API scope.
const ACCESS_SCOPE: &str = "access_as_user";

/// Every grant's fields; all optional so a missing one is answered with OAuth's
/// `invalid_request`. A `client_secret` (client_secret_post) is accepted and ignored: this
/// provider has no secrets to check.
#[derive(Debug, Deserialize)]
pub(super) struct TokenRequest {
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
pub(super) enum TokenError {
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

pub(super) async fn token(
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
mod tests {
    use super::*;

    #[test]
    fn the_pairwise_subject_is_stable_and_not_the_object_id() {
        let a = pairwise_subject("0c2a7e3d-0001-4000-8000-000000000001");
        assert_eq!(a.len(), 43);
        assert_eq!(a, pairwise_subject("0c2a7e3d-0001-4000-8000-000000000001"));
        assert_ne!(a, pairwise_subject("0c2a7e3d-0002-4000-8000-000000000002"));
    }
}
