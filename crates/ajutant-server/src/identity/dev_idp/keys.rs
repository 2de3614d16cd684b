//! The development provider's signing key in use: the published key set (JWKS) and the
//! compact ES256 signatures of the tokens it issues.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};

use super::DevIdp;
use super::token::TokenError;

pub(super) async fn jwks(State(idp): State<DevIdp>) -> Json<Value> {
    Json(idp.inner.jwks.clone())
}

impl DevIdp {
    /// A compact JWS: base64url(header).base64url(claims).base64url(r || s).
    pub(super) fn sign(&self, typ: &str, claims: &impl Serialize) -> Result<String, TokenError> {
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
