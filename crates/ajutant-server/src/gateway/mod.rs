//! The OpenAI-compatible gateway: other tools in the organisation call `/v1/chat/completions`,
//! `/v1/embeddings` and `/v1/models` here instead of calling a model vendor, so the
//! organisation's identity, grants and audit apply to code that is not ours. Callers name a
//! deployment (a logical model); `resilience.rs` retries, falls back and breaks circuits;
//! `wire.rs` speaks OpenAI's format at the edge.
//!
//! `admission.rs` decides whether a call may run, `metering.rs` records what it used and
//! audits it, and `handlers.rs` turns the OpenAI-shaped requests into calls and answers back.

pub(crate) mod admin;
mod admission;
pub(crate) mod deployments;
mod handlers;
mod limits;
mod metering;
mod registry;
pub(crate) mod reports;
mod resilience;
pub(crate) mod runtime;
pub(crate) mod wire;

use std::sync::Arc;

use ajutant_core::config::{Capability, DeploymentConfig, GatewayConfig};
use ajutant_core::model::ModelProvider;
use ajutant_core::policy::Principal;

use crate::identity::Caller;
use crate::request::RequestContext;
use ajutant_store::UsageLog;
use limits::Limiter;
use resilience::Breaker;

pub(crate) use handlers::router;
pub(crate) use metering::CallMeter;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Build(#[from] ajutant_providers::BuildError),
    #[error("cannot load the stored deployments: {0}")]
    Reload(String),
}

/// A deployment ready to serve: its configuration, its adapter and its circuit breaker.
pub(crate) struct Deployment {
    pub config: DeploymentConfig,
    provider: Arc<dyn ModelProvider>,
    breaker: Breaker,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("name", &self.config.name)
            .field("provider", &self.config.provider)
            .finish_non_exhaustive()
    }
}

impl Deployment {
    /// Whether `principal` may call it: anyone signed in when it names no groups, else
    /// members of one of them.
    fn permits(&self, principal: &Principal) -> bool {
        self.config.groups.is_empty()
            || self
                .config
                .groups
                .iter()
                .any(|g| principal.groups.contains(g))
    }

    fn offers(&self, capability: Capability) -> bool {
        self.config.capabilities.contains(&capability)
    }
}

/// The deployments in force, with what governs calls to them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    deployments: Arc<registry::Deployments>,
    settings: Arc<GatewayConfig>,
    limiter: Arc<Limiter>,
    usage: UsageLog,
}

impl Gateway {
    pub fn new(
        configs: &[DeploymentConfig],
        settings: &GatewayConfig,
        usage: UsageLog,
    ) -> Result<Self, GatewayError> {
        Ok(Self {
            deployments: Arc::new(registry::Deployments::new(configs)?),
            settings: Arc::new(settings.clone()),
            limiter: Arc::new(Limiter::new(settings)),
            usage,
        })
    }

    /// Loads the deployments stored through the admin API over the configured ones.
    pub async fn load_stored(&self, store: &ajutant_store::Store) -> Result<(), GatewayError> {
        self.deployments
            .reload(store)
            .await
            .map_err(|e| GatewayError::Reload(e.to_string()))
    }

    /// Reloads whenever another instance changes the deployments, until `stop` resolves.
    pub async fn watch(&self, store: ajutant_store::Store, stop: Arc<tokio::sync::Notify>) {
        loop {
            tokio::select! {
                () = stop.notified() => return,
                () = tokio::time::sleep(registry::WATCH_EVERY) => {}
            }
            if let Err(error) = self.deployments.reload_if_changed(&store).await {
                tracing::warn!(%error, "cannot check for changed deployments");
            }
        }
    }

    /// Whether a deployment of this name exists (configured or stored).
    pub(crate) fn has_deployment(&self, name: &str) -> bool {
        self.deployments.current().get(name).is_some()
    }
}

/// Who is calling, and the request they called in.
#[derive(Clone, Copy)]
struct CallOrigin<'a> {
    context: &'a RequestContext,
    caller: &'a Caller,
}
