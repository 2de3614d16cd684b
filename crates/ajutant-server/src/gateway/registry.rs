//! The deployments in force: the configured ones, overridden and extended by those stored
//! through the admin API. The set is swapped whole on a change, so a call sees one consistent
//! set; unchanged deployments are carried over with their circuit breakers. Every instance
//! watches a revision counter in the database and reloads when it moves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ajutant_core::config::DeploymentConfig;
use ajutant_store::{Store, StoreError};

use super::resilience::Breaker;
use super::{Deployment, GatewayError};

/// How often an instance checks whether another one changed the deployments.
pub(crate) const WATCH_EVERY: Duration = Duration::from_secs(2);

/// One consistent set of deployments.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub by_name: HashMap<String, Arc<Deployment>>,
    /// Configuration order, then stored ones by name.
    pub order: Vec<String>,
    /// Which names come from the admin API.
    pub stored: Vec<String>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&Arc<Deployment>> {
        self.by_name.get(name)
    }

    pub fn in_order(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.order.iter().filter_map(|name| self.by_name.get(name))
    }
}

/// The swappable set, the configured base it starts from, and the revision it reflects.
#[derive(Debug)]
pub(crate) struct Deployments {
    base: Vec<DeploymentConfig>,
    current: RwLock<Arc<Registry>>,
    revision: AtomicI64,
}

fn build(config: &DeploymentConfig) -> Result<Deployment, GatewayError> {
    let connect = Duration::from_millis(config.timeouts.connect_ms);
    let http = ajutant_providers::http_client(connect)?;
    Ok(Deployment {
        config: config.clone(),
        provider: ajutant_providers::provider_for(config, http)?,
        breaker: Breaker::default(),
    })
}

impl Deployments {
    pub fn new(base: &[DeploymentConfig]) -> Result<Self, GatewayError> {
        let deployments = Self {
            base: base.to_vec(),
            current: RwLock::new(Arc::default()),
            revision: AtomicI64::new(-1),
        };
        deployments.install(base.to_vec(), Vec::new())?;
        Ok(deployments)
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<Registry> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// What the set would be with `stored` over the configured base.
    pub fn effective(&self, stored: Vec<DeploymentConfig>) -> (Vec<DeploymentConfig>, Vec<String>) {
        let mut configs = self.base.clone();
        let mut names = Vec::new();
        let mut extra: Vec<DeploymentConfig> = Vec::new();
        for config in stored {
            names.push(config.name.clone());
            match configs.iter_mut().find(|c| c.name == config.name) {
                Some(slot) => *slot = config,
                None => extra.push(config),
            }
        }
        extra.sort_by(|a, b| a.name.cmp(&b.name));
        configs.extend(extra);
        (configs, names)
    }

    fn install(
        &self,
        configs: Vec<DeploymentConfig>,
        stored: Vec<String>,
    ) -> Result<(), GatewayError> {
        let old = self.current();
        let mut by_name = HashMap::new();
        let mut order = Vec::new();
        for config in configs {
            let deployment = match old.get(&config.name) {
                // Unchanged: keep it, with its breaker's memory of recent failures.
                Some(existing) if existing.config == config => Arc::clone(existing),
                _ => Arc::new(build(&config)?),
            };
            order.push(config.name.clone());
            by_name.insert(config.name, deployment);
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Registry {
            by_name,
            order,
            stored,
        });
        Ok(())
    }

    /// Reads the stored deployments and installs the result. A stored deployment that no
    /// longer parses is skipped (and logged) rather than taking every deployment down.
    pub async fn reload(&self, store: &Store) -> Result<(), ReloadError> {
        let revision = store.deployment_revision().await?;
        let mut stored = Vec::new();
        for row in store.stored_deployments().await? {
            match serde_json::from_str::<DeploymentConfig>(&row.config) {
                Ok(config) if config.name == row.name => stored.push(config),
                Ok(_) | Err(_) => {
                    tracing::error!(name = %row.name, "a stored deployment cannot be read; skipped");
                }
            }
        }
        let (configs, names) = self.effective(stored);
        self.install(configs, names)?;
        self.revision.store(revision, Ordering::SeqCst);
        Ok(())
    }

    /// Reloads when another instance has changed the deployments.
    pub async fn reload_if_changed(&self, store: &Store) -> Result<(), ReloadError> {
        let revision = store.deployment_revision().await?;
        if revision != self.revision.load(Ordering::SeqCst) {
            self.reload(store).await?;
            tracing::info!(revision, "deployments reloaded");
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Build(#[from] GatewayError),
}
