//! The OpenID Connect provider as a relying party sees it: its discovery document, its signing
//! keys (cached, refreshed on schedule and, rate-limited, when a token names an unknown key), and
//! its token endpoint (code exchange, refresh, client credentials for Microsoft Graph).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ajutant_core::secret::SecretString;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};
use url::Url;

/// After a failed key refresh, the next attempt waits at least this long, so an identity
/// provider outage does not turn every request into an outbound call.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProviderError {
    #[error("the identity provider cannot be reached: {0}")]
    Unreachable(String),
    #[error("the identity provider answered {status}: {detail}")]
    Refused { status: u16, detail: String },
    #[error("the identity provider's answer cannot be read: {0}")]
    Malformed(String),
}

/// One signing key and what it may verify.
#[derive(Clone)]
pub(crate) struct SigningKey {
    pub key: DecodingKey,
    /// The `alg` the JWK pins, if it pins one.
    pub alg: Option<Algorithm>,
}

/// What [`Provider::key`] found.
pub(crate) enum KeyLookup {
    Found(SigningKey),
    /// The provider does not publish that key id (after one refresh, if allowed).
    Unknown,
    /// No key set was ever loaded: nothing can be verified, so nothing is accepted.
    Unavailable,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, SigningKey>,
    loaded_at: Option<Instant>,
    last_forced: Option<Instant>,
    last_failure: Option<Instant>,
}

/// Responses from the token endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

struct Inner {
    discovery_url: Url,
    expected_issuer: String,
    client_id: String,
    client_secret: Option<SecretString>,
    http: reqwest::Client,
    refresh_every: Duration,
    forced_refresh_min: Duration,
    discovery: RwLock<Option<Discovery>>,
    keys: RwLock<KeyCache>,
    /// One refresh at a time; others wait and then use its result.
    refreshing: Mutex<()>,
}

/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct Provider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("discovery_url", &self.inner.discovery_url.as_str())
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

pub(crate) struct ProviderSettings {
    pub discovery_url: Url,
    /// The discovery document must name exactly this issuer (OpenID Connect Discovery §4.3),
    /// so a misdirected discovery URL cannot substitute another provider's keys.
    pub expected_issuer: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub refresh_every: Duration,
    pub forced_refresh_min: Duration,
}

impl Provider {
    pub fn new(settings: ProviderSettings, http: reqwest::Client) -> Self {
        Self {
            inner: Arc::new(Inner {
                discovery_url: settings.discovery_url,
                expected_issuer: settings.expected_issuer,
                client_id: settings.client_id,
                client_secret: settings.client_secret,
                http,
                refresh_every: settings.refresh_every,
                forced_refresh_min: settings.forced_refresh_min,
                discovery: RwLock::new(None),
                keys: RwLock::new(KeyCache::default()),
                refreshing: Mutex::new(()),
            }),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The discovery document, fetched once and kept.
    pub async fn discovery(&self) -> Result<Discovery, ProviderError> {
        if let Some(found) = self.inner.discovery.read().await.clone() {
            return Ok(found);
        }
        let mut slot = self.inner.discovery.write().await;
        if let Some(found) = slot.clone() {
            return Ok(found);
        }
        let found: Discovery = self.get_json(self.inner.discovery_url.clone()).await?;
        if found.issuer != self.inner.expected_issuer {
            return Err(ProviderError::Malformed(format!(
                "the discovery document names the issuer {:?}, not the configured {:?}",
                found.issuer, self.inner.expected_issuer
            )));
        }
        *slot = Some(found.clone());
        Ok(found)
    }

    /// The verification key for `kid`. Refreshes the key set when it is due, or (at most once
    /// per `forced_refresh_min`) when `kid` is not in it, which is how a rotated key is picked
    /// up without a restart.
    pub async fn key(&self, kid: &str) -> KeyLookup {
        let (found, stale, loaded) = {
            let cache = self.inner.keys.read().await;
            let stale = cache
                .loaded_at
                .is_none_or(|at| at.elapsed() >= self.inner.refresh_every);
            (
                cache.keys.get(kid).cloned(),
                stale,
                cache.loaded_at.is_some(),
            )
        };
        // Due on schedule, never loaded, or an unknown key id: try to refresh.
        let forced = found.is_none() && loaded && !stale;
        if let Some(key) = found
            && !stale
        {
            return KeyLookup::Found(key);
        }
        if let Err(error) = self.refresh_keys(forced).await {
            tracing::warn!(%error, "cannot refresh the identity provider's signing keys");
        }
        let cache = self.inner.keys.read().await;
        match cache.keys.get(kid) {
            Some(key) => KeyLookup::Found(key.clone()),
            None if cache.loaded_at.is_none() => KeyLookup::Unavailable,
            None => KeyLookup::Unknown,
        }
    }

    async fn refresh_keys(&self, forced: bool) -> Result<(), ProviderError> {
        let _one_at_a_time = self.inner.refreshing.lock().await;
        {
            let cache = self.inner.keys.read().await;
            if cache
                .last_failure
                .is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE)
            {
                return Ok(());
            }
            if forced
                && cache
                    .last_forced
                    .is_some_and(|at| at.elapsed() < self.inner.forced_refresh_min)
            {
                return Ok(());
            }
            // Someone else refreshed while this caller waited for the lock.
            if !forced
                && cache
                    .loaded_at
                    .is_some_and(|at| at.elapsed() < self.inner.refresh_every)
            {
                return Ok(());
            }
        }
        let result = self.fetch_keys().await;
        let mut cache = self.inner.keys.write().await;
        if forced {
            cache.last_forced = Some(Instant::now());
        }
        match result {
            Ok(keys) => {
                tracing::info!(
                    keys = keys.len(),
                    forced,
                    "loaded the identity provider's signing keys"
                );
                cache.keys = keys;
                cache.loaded_at = Some(Instant::now());
                cache.last_failure = None;
                Ok(())
            }
            Err(error) => {
                // The keys already held stay in use: a brief provider outage must not lock
                // everyone out.
                cache.last_failure = Some(Instant::now());
                Err(error)
            }
        }
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, SigningKey>, ProviderError> {
        let discovery = self.discovery().await?;
        let set: JwkSet = self.get_json(discovery.jwks_uri).await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            // Keys without an id cannot be selected safely, and encryption keys never verify.
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) {
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    let alg = jwk
                        .common
                        .key_algorithm
                        .and_then(|a| a.to_string().parse::<Algorithm>().ok());
                    keys.insert(kid, SigningKey { key, alg });
                }
                Err(error) => tracing::warn!(%kid, %error, "skipping an unusable signing key"),
            }
        }
        Ok(keys)
    }

    /// The authorization code grant with PKCE.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<TokenResponse, ProviderError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ];
        self.add_client(&mut form);
        self.post_token(form).await
    }

    /// The refresh token grant: asks the provider whether the user may still sign in.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, ProviderError> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        self.add_client(&mut form);
        self.post_token(form).await
    }

    /// The client credentials grant, for this application's own calls (Microsoft Graph).
    pub async fn client_credentials(
        &self,
        token_url: Option<&Url>,
        scope: &str,
    ) -> Result<String, ProviderError> {
        let mut form = vec![("grant_type", "client_credentials"), ("scope", scope)];
        self.add_client(&mut form);
        let url = match token_url {
            Some(url) => url.clone(),
            None => self.discovery().await?.token_endpoint,
        };
        let response = self.post_form(url, form).await?;
        response
            .access_token
            .ok_or_else(|| ProviderError::Malformed("no access_token in the response".to_owned()))
    }

    fn add_client<'a>(&'a self, form: &mut Vec<(&'a str, &'a str)>) {
        form.push(("client_id", &self.inner.client_id));
        if let Some(secret) = &self.inner.client_secret {
            form.push(("client_secret", secret.expose()));
        }
    }

    async fn post_token(&self, form: Vec<(&str, &str)>) -> Result<TokenResponse, ProviderError> {
        let url = self.discovery().await?.token_endpoint;
        self.post_form(url, form).await
    }

    async fn post_form(
        &self,
        url: Url,
        form: Vec<(&str, &str)>,
    ) -> Result<TokenResponse, ProviderError> {
        let response = self
            .inner
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Unreachable(e.without_url().to_string()))?;
        if !status.is_success() {
            let detail = match serde_json::from_slice::<OAuthError>(&body) {
                Ok(error) => match error.error_description {
                    Some(description) => format!("{}: {description}", error.error),
                    None => error.error,
                },
                Err(_) => "no OAuth error in the response".to_owned(),
            };
            return Err(ProviderError::Refused {
                status: status.as_u16(),
                detail,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed(e.to_string()))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: Url) -> Result<T, ProviderError> {
        let response = self
            .inner
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ProviderError::Refused {
                status: status.as_u16(),
                detail: "GET failed".to_owned(),
            });
        }
        response
            .json()
            .await
            .map_err(|e| ProviderError::Malformed(e.without_url().to_string()))
    }
}
