//! Platform API keys: a named service identity with directory groups, so the same policy
//! applies to scripts as to people. A key reads `ajk_<10 hex>_<43 base64url>`; the first part is
//! its public id (shown in lists and the audit trail), the whole key is stored only as SHA-256,
//! shown once at creation, and accepted only in the `Authorization: Bearer` header.

use crate::tasks::Tasks;
use ajutant_store::{ApiKey, Store, StoreError};
use time::OffsetDateTime;

use super::cache::CredentialCache;
use super::secrets::{constant_time_eq, random_token, sha256_hex};

pub const KEY_PREFIX: &str = "ajk_";
/// `ajk_` and 10 hex digits.
const ID_LEN: usize = KEY_PREFIX.len() + 10;

/// What to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub groups: Vec<String>,
    pub expires_at: Option<OffsetDateTime>,
    /// The directory object id of the person responsible; SCIM deprovisioning revokes the key.
    pub owner_subject: Option<String>,
    /// Who created it (a principal id, or `cli`).
    pub created_by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a key and returns it with the full secret, which exists nowhere else afterwards.
pub async fn issue(store: &Store, new: NewApiKey) -> Result<(ApiKey, String), ApiKeyError> {
    let name = new.name.trim();
    if name.is_empty()
        || name.len() > 100
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ApiKeyError::Invalid(
            "a key's name is 1 to 100 letters, digits, '-', '_' or '.'".to_owned(),
        ));
    }
    if new
        .groups
        .iter()
        .any(|g| g.trim().is_empty() || g.len() > 200)
    {
        return Err(ApiKeyError::Invalid(
            "group ids must be non-empty and at most 200 characters".to_owned(),
        ));
    }
    let now = OffsetDateTime::now_utc();
    if new.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiKeyError::Invalid("the expiry is in the past".to_owned()));
    }
    let id = format!("{KEY_PREFIX}{}", &sha256_hex(&random_token())[..10]);
    let secret = format!("{id}_{}", random_token());
    let mut groups = new.groups;
    groups.sort();
    groups.dedup();
    let key = ApiKey {
        id,
        name: name.to_owned(),
        groups,
        secret_hash: sha256_hex(&secret),
        owner_subject: new.owner_subject,
        created_by: new.created_by,
        created_at: now,
        expires_at: new.expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    store.insert_api_key(&key).await?;
    Ok((key, secret))
}

/// Whether a bearer credential is shaped like one of our keys (rather than a JWT).
pub fn looks_like_key(credential: &str) -> bool {
    credential.starts_with(KEY_PREFIX)
}

/// Why a presented key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    Malformed,
    Unknown,
    Revoked,
    Expired,
}

impl KeyRejection {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "the API key is malformed",
            Self::Unknown => "the API key is not known",
            Self::Revoked => "the API key has been revoked",
            Self::Expired => "the API key has expired",
        }
    }
}

/// Re-reads a cached key while callers go on with the cached answer.
fn reread_key_in_background(store: &Store, cache: &CredentialCache, tasks: &Tasks, id: &str) {
    let (store, cache, id) = (store.clone(), cache.clone(), id.to_owned());
    let generation = cache.generation();
    tasks.spawn(async move {
        match store.api_key(&id).await {
            Ok(Some(key)) => cache.remember_key(&key, generation),
            Ok(None) => cache.forget_key(&id),
            // The entry expires at FRESH_FOR, and the next caller reads it again.
            Err(error) => tracing::warn!(%error, "cannot re-read an API key"),
        }
    });
}

/// Finds the key a caller presented and checks it is live. The public id selects the row; the
/// digest of the whole key is compared in constant time.
pub async fn verify(
    store: &Store,
    cache: &CredentialCache,
    tasks: &Tasks,
    presented: &str,
    now: OffsetDateTime,
) -> Result<Result<ApiKey, (KeyRejection, Option<String>)>, StoreError> {
    let Some(id) = presented
        .get(..ID_LEN)
        .filter(|_| presented.len() > ID_LEN + 1)
    else {
        return Ok(Err((KeyRejection::Malformed, None)));
    };
    if !id[KEY_PREFIX.len()..]
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
    {
        return Ok(Err((KeyRejection::Malformed, None)));
    }
    let key = match cache.key(id) {
        Some(cached) => {
            if cached.refresh {
                reread_key_in_background(store, cache, tasks, id);
            }
            cached.value
        }
        None => {
            let generation = cache.generation();
            let Some(key) = store.api_key(id).await? else {
                return Ok(Err((KeyRejection::Unknown, None)));
            };
            cache.remember_key(&key, generation);
            key
        }
    };
    let known_id = Some(key.id.clone());
    if !constant_time_eq(&key.secret_hash, &sha256_hex(presented)) {
        return Ok(Err((KeyRejection::Unknown, known_id)));
    }
    if key.revoked_at.is_some() {
        return Ok(Err((KeyRejection::Revoked, known_id)));
    }
    if key.expires_at.is_some_and(|at| at <= now) {
        return Ok(Err((KeyRejection::Expired, known_id)));
    }
    Ok(Ok(key))
}
