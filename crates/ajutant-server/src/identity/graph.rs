//! Microsoft Graph, asked for a user's groups when the token could not carry them all (Entra's
//! groups overage: more than 200 groups in a JWT, or `hasgroups` in an implicit-flow token).
//! Transitive membership, every page, with the application's own credentials, cached briefly.
//! A failure yields no groups, never a guess: the caller then gets no group-based access.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ajutant_core::config::GraphConfig;
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::provider::{Provider, ProviderError};

/// Most pages followed for one user; Graph pages hold up to 999 groups each.
const MAX_PAGES: usize = 100;
/// An app token is reused until this close to its expiry (tokens last about an hour; the
/// response's `expires_in` is not trusted to be present).
const APP_TOKEN_LIFETIME: Duration = Duration::from_secs(45 * 60);

#[derive(Debug, thiserror::Error)]
pub(crate) enum GraphError {
    #[error("cannot get an app token for Microsoft Graph: {0}")]
    Token(#[from] ProviderError),
    #[error("Microsoft Graph cannot be reached: {0}")]
    Unreachable(String),
    #[error("Microsoft Graph answered {0}")]
    Status(u16),
    #[error("Microsoft Graph's answer cannot be read: {0}")]
    Malformed(String),
    #[error("Microsoft Graph returned more than {MAX_PAGES} pages of groups")]
    TooManyPages,
}

#[derive(Deserialize)]
struct Page {
    value: Vec<DirectoryObject>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<Url>,
}

#[derive(Deserialize)]
struct DirectoryObject {
    id: String,
}

struct Cached {
    groups: BTreeSet<String>,
    at: Instant,
}

#[derive(Clone)]
pub(crate) struct Graph {
    config: Arc<GraphConfig>,
    provider: Provider,
    http: reqwest::Client,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    app_token: Arc<Mutex<Option<(String, Instant)>>>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("base_url", &self.config.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Graph {
    pub fn new(config: GraphConfig, provider: Provider, http: reqwest::Client) -> Self {
        Self {
            config: Arc::new(config),
            provider,
            http,
            cache: Arc::default(),
            app_token: Arc::default(),
        }
    }

    /// The groups `object_id` belongs to, directly or through nested groups.
    pub async fn groups_of(&self, object_id: &str) -> Result<BTreeSet<String>, GraphError> {
        let ttl = Duration::from_secs(self.config.cache_secs);
        if let Some(hit) = self.cache.lock().await.get(object_id)
            && hit.at.elapsed() < ttl
        {
            return Ok(hit.groups.clone());
        }
        let groups = self.fetch(object_id).await?;
        let mut cache = self.cache.lock().await;
        cache.retain(|_, entry| entry.at.elapsed() < ttl);
        cache.insert(
            object_id.to_owned(),
            Cached {
                groups: groups.clone(),
                at: Instant::now(),
            },
        );
        Ok(groups)
    }

    async fn fetch(&self, object_id: &str) -> Result<BTreeSet<String>, GraphError> {
        let token = self.app_token().await?;
        let mut url = self.config.base_url.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                GraphError::Malformed("the Graph base URL cannot have a path".into())
            })?;
            segments.pop_if_empty().extend([
                "v1.0",
                "users",
                object_id,
                "transitiveMemberOf",
                "microsoft.graph.group",
            ]);
        }
        url.query_pairs_mut()
            .append_pair("$select", "id")
            .append_pair("$top", "999");
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let mut groups = BTreeSet::new();
        let mut next = Some(url);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(GraphError::TooManyPages);
            }
            let response = self
                .http
                .get(url)
                .bearer_auth(&token)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| GraphError::Unreachable(e.without_url().to_string()))?;
            if !response.status().is_success() {
                return Err(GraphError::Status(response.status().as_u16()));
            }
            let page: Page = response
                .json()
                .await
                .map_err(|e| GraphError::Malformed(e.without_url().to_string()))?;
            groups.extend(page.value.into_iter().map(|object| object.id));
            // Follow the link only back to the configured Graph, so a tampered response cannot
            // send the app token elsewhere.
            next = match page.next_link {
                Some(link) if link.origin() == self.config.base_url.origin() => Some(link),
                Some(_) => {
                    return Err(GraphError::Malformed(
                        "a next page link points away from the Graph base URL".into(),
                    ));
                }
                None => None,
            };
        }
        Ok(groups)
    }

    async fn app_token(&self) -> Result<String, GraphError> {
        let mut slot = self.app_token.lock().await;
        if let Some((token, at)) = slot.as_ref()
            && at.elapsed() < APP_TOKEN_LIFETIME
        {
            return Ok(token.clone());
        }
        let token = self
            .provider
            .client_credentials(self.config.token_url.as_ref(), &self.config.scope)
            .await?;
        *slot = Some((token.clone(), Instant::now()));
        Ok(token)
    }
}
