//! Bearer JWT validation. The order matters: the header is judged before any key is looked up
//! (algorithm allow-list, a sane `kid`), the key comes only from the provider's published key
//! set by `kid` (never from `jku`, `x5u` or an embedded `jwk`), then the signature and the time
//! claims, then the claims that say whom the token is for (`iss`, `tid`, `aud`) and what it is
//! (an access token, not an ID token).

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::provider::{KeyLookup, Provider};

/// The only algorithms accepted: asymmetric, so the provider's public key can never double as
/// an HMAC secret, and never `none`.
pub(crate) const ALLOWED_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256];

/// Key ids longer than this, or with characters outside the visible ASCII range, are refused
/// before any lookup or refresh.
const MAX_KID_LEN: usize = 256;

/// Why a token is refused. Each becomes a 401 (or 503 when no key could ever be loaded) and an
/// audit record naming the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenRejection {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm {0:?} is not accepted")]
    AlgorithmNotAllowed(String),
    #[error("the token names no usable key id")]
    BadKeyId,
    #[error("the token is signed with a key the identity provider does not publish")]
    UnknownKey,
    #[error("the identity provider's signing keys are unavailable")]
    KeysUnavailable,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by an issuer that is not trusted")]
    WrongIssuer,
    #[error("the token is not meant for this application (audience)")]
    WrongAudience,
    #[error("the token's tenant is not allowed")]
    WrongTenant,
    #[error("an ID token is not accepted as an access token")]
    IdTokenAsAccessToken,
    #[error("the token's nonce does not match the sign-in")]
    WrongNonce,
    #[error("the token lacks the claim {0}")]
    MissingClaim(&'static str),
}

impl TokenRejection {
    /// A short stable code for the audit trail and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::BadKeyId => "bad_kid",
            Self::UnknownKey => "unknown_kid",
            Self::KeysUnavailable => "keys_unavailable",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::WrongTenant => "wrong_tenant",
            Self::IdTokenAsAccessToken => "id_token_as_access_token",
            Self::WrongNonce => "wrong_nonce",
            Self::MissingClaim(_) => "missing_claim",
        }
    }
}

/// What a token is being accepted as.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TokenUse<'a> {
    /// A bearer token on an API call: `aud` must be one of the API audiences.
    Access,
    /// The ID token of a browser sign-in: `aud` must be the client id, and `nonce` must match
    /// the one sent (none is expected after a refresh).
    Id { nonce: Option<&'a str> },
}

/// The claims Ajutant reads; everything else in the token is ignored.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Claims {
    pub iss: String,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub oid: Option<String>,
    #[serde(default)]
    pub tid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub appid: Option<String>,
    #[serde(default)]
    pub idtyp: Option<String>,
    #[serde(default)]
    pub scp: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub at_hash: Option<String>,
    #[serde(default)]
    pub c_hash: Option<String>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Entra's groups overage: the groups did not fit and must be fetched from Graph.
    #[serde(default, rename = "_claim_names")]
    pub claim_names: Option<Value>,
    #[serde(default)]
    pub hasgroups: Option<Value>,
}

impl Claims {
    /// The directory object id when the provider gives one (Entra), else `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.oid.as_deref().or(self.sub.as_deref())
    }

    /// Whether Entra left the groups out because there were too many.
    pub fn groups_overage(&self) -> bool {
        let named = self
            .claim_names
            .as_ref()
            .and_then(|names| names.get("groups"))
            .is_some();
        let has = matches!(&self.hasgroups, Some(Value::Bool(true)))
            || matches!(&self.hasgroups, Some(Value::String(s)) if s.eq_ignore_ascii_case("true"));
        named || has
    }

    /// App-only tokens (client credentials) have no user: Entra marks them `idtyp: app`, and
    /// their `sub` is the application's own object id.
    pub fn is_application(&self) -> bool {
        self.idtyp.as_deref() == Some("app")
            || (self.scp.is_none() && self.oid.is_some() && self.oid == self.sub)
    }

    pub fn app_roles(&self) -> BTreeSet<String> {
        self.roles.iter().flatten().cloned().collect()
    }
}

/// Who is trusted, and for what.
#[derive(Debug, Clone)]
pub(crate) struct TokenPolicy {
    /// Exact issuer, or a template containing `{tenantid}`.
    pub issuer: String,
    pub client_id: String,
    pub api_audiences: Vec<String>,
    pub allowed_tenants: Vec<String>,
    pub clock_skew_secs: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct TokenValidator {
    policy: TokenPolicy,
    provider: Provider,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    kid: Option<Value>,
    typ: Option<String>,
}

impl TokenValidator {
    pub fn new(policy: TokenPolicy, provider: Provider) -> Self {
        Self { policy, provider }
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    pub fn issuer_template(&self) -> &str {
        &self.policy.issuer
    }

    pub async fn validate(
        &self,
        token: &str,
        token_use: TokenUse<'_>,
    ) -> Result<Claims, TokenRejection> {
        let header = raw_header(token)?;
        let alg = match header.alg {
            Some(Value::String(name)) => name,
            _ => return Err(TokenRejection::Malformed),
        };
        let Some(algorithm) = ALLOWED_ALGORITHMS
            .into_iter()
            .find(|allowed| format!("{allowed:?}") == alg)
        else {
            return Err(TokenRejection::AlgorithmNotAllowed(alg));
        };
        let kid = match header.kid {
            Some(Value::String(kid))
                if !kid.is_empty()
                    && kid.len() <= MAX_KID_LEN
                    && kid.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                kid
            }
            _ => return Err(TokenRejection::BadKeyId),
        };
        let key = match self.provider.key(&kid).await {
            KeyLookup::Found(key) => key,
            KeyLookup::Unknown => return Err(TokenRejection::UnknownKey),
            KeyLookup::Unavailable => return Err(TokenRejection::KeysUnavailable),
        };
        if key.alg.is_some_and(|pinned| pinned != algorithm) {
            return Err(TokenRejection::AlgorithmNotAllowed(alg));
        }

        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = self.policy.clock_skew_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let audiences = match token_use {
            TokenUse::Access => self.policy.api_audiences.clone(),
            TokenUse::Id { .. } => vec![self.policy.client_id.clone()],
        };
        validation.set_audience(&audiences);
        // The issuer is checked below, where the tenant template is understood.
        validation.iss = None;

        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|error| rejection_of(&error))?;
        let claims = data.claims;
        self.check_issuer(&claims)?;
        if claims.subject().is_none() {
            return Err(TokenRejection::MissingClaim("oid or sub"));
        }

        match token_use {
            TokenUse::Access => {
                // ID tokens carry sign-in artefacts an access token never has; and an access
                // token says what it grants (`scp` for a user, `roles` for an application) or
                // declares itself one (RFC 9068 `at+jwt`).
                let typed_access = header
                    .typ
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"));
                let id_token_traits =
                    claims.nonce.is_some() || claims.at_hash.is_some() || claims.c_hash.is_some();
                let grants_something = claims.scp.is_some() || claims.roles.is_some();
                if id_token_traits || !(typed_access || grants_something) {
                    return Err(TokenRejection::IdTokenAsAccessToken);
                }
            }
            TokenUse::Id { nonce } => {
                if let Some(expected) = nonce
                    && claims.nonce.as_deref() != Some(expected)
                {
                    return Err(TokenRejection::WrongNonce);
                }
            }
        }
        Ok(claims)
    }

    fn check_issuer(&self, claims: &Claims) -> Result<(), TokenRejection> {
        let template = &self.policy.issuer;
        let allowed = &self.policy.allowed_tenants;
        if template.contains("{tenantid}") {
            let tid = claims.tid.as_deref().ok_or(TokenRejection::WrongTenant)?;
            if !allowed.iter().any(|t| t == tid) {
                return Err(TokenRejection::WrongTenant);
            }
            if claims.iss != template.replace("{tenantid}", tid) {
                return Err(TokenRejection::WrongIssuer);
            }
            return Ok(());
        }
        if claims.iss != *template {
            return Err(TokenRejection::WrongIssuer);
        }
        if !allowed.is_empty() {
            let tid = claims.tid.as_deref().ok_or(TokenRejection::WrongTenant)?;
            // The tenant must be allowed and be the one the issuer names.
            if !allowed.iter().any(|t| t == tid) || !claims.iss.contains(tid) {
                return Err(TokenRejection::WrongTenant);
            }
        }
        Ok(())
    }
}

/// The JOSE header as plain JSON, so an algorithm the JWT library does not even know (`none`)
/// is reported as such rather than as a parse error.
fn raw_header(token: &str) -> Result<RawHeader, TokenRejection> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRejection::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenRejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenRejection::Malformed)
}

fn rejection_of(error: &jsonwebtoken::errors::Error) -> TokenRejection {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => TokenRejection::BadSignature,
        ErrorKind::ExpiredSignature => TokenRejection::Expired,
        ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
        ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
        ErrorKind::InvalidIssuer => TokenRejection::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "aud" => TokenRejection::MissingClaim("aud"),
            "iss" => TokenRejection::MissingClaim("iss"),
            _ => TokenRejection::MissingClaim("exp"),
        },
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {
            TokenRejection::AlgorithmNotAllowed("key and algorithm disagree".to_owned())
        }
        _ => TokenRejection::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn the_header_is_read_before_any_library_parsing() {
        let none = format!("{}.{}.", encode(r#"{"alg":"none"}"#), encode("{}"));
        let header = raw_header(&none).unwrap();
        assert!(matches!(header.alg, Some(Value::String(ref a)) if a == "none"));
        assert_eq!(
            raw_header("a.b").err(),
            Some(TokenRejection::Malformed),
            "two parts"
        );
        assert_eq!(raw_header("!!.b.c").err(), Some(TokenRejection::Malformed));
    }

    #[test]
    fn overage_is_recognised_in_both_entra_shapes() {
        let named: Claims = serde_json::from_str(
            r#"{"iss":"i","_claim_names":{"groups":"src1"},"_claim_sources":{}}"#,
        )
        .unwrap();
        assert!(named.groups_overage());
        let has: Claims = serde_json::from_str(r#"{"iss":"i","hasgroups":true}"#).unwrap();
        assert!(has.groups_overage());
        let plain: Claims = serde_json::from_str(r#"{"iss":"i","groups":["g"]}"#).unwrap();
        assert!(!plain.groups_overage());
    }
}
