//! Model provider adapters. Each vendor has its own module with private wire types and
//! implements `ajutant_core::model::ModelProvider`; [`provider_for`] builds the one a deployment
//! names. Every adapter passes the same conformance suite (`tests/conformance.rs`) against a
//! fake upstream speaking its vendor's wire format, streaming included. The `local` provider
//! (feature `local-embeddings`, on by default) runs an embedding model in process instead;
//! `tests/local_embeddings.rs` checks it against the real model files.

mod anthropic;
mod azure_token;
mod http;
#[cfg(feature = "local-embeddings")]
pub mod local;
pub mod offline;
mod openai;

use std::sync::Arc;
use std::time::Duration;

use ajutant_core::config::{DeploymentConfig, ProviderKind};
use ajutant_core::model::{ModelProvider, ProviderError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("deployment {0}: {1}")]
    Credential(String, ProviderError),
    /// A `local` deployment whose model cannot be loaded, or a build without local embeddings.
    #[error("deployment {0}: {1}")]
    LocalModel(String, String),
}

/// The HTTP client adapters share: connection pooling, TCP_NODELAY (streamed tokens must not
/// wait for a delayed ACK), no redirects (a redirect could carry the API key elsewhere). Each
/// call applies its deployment's own timeouts.
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| BuildError::Client(e.to_string()))
}

/// The adapter for `deployment`. A `local` deployment loads its model here (0.1 to 0.2 s and
/// 90 MB for all-MiniLM-L6-v2), so a missing model stops the server at start.
pub fn provider_for(
    deployment: &DeploymentConfig,
    http: reqwest::Client,
) -> Result<Arc<dyn ModelProvider>, BuildError> {
    Ok(match deployment.provider {
        ProviderKind::Offline => Arc::new(offline::Offline::new(&deployment.model)),
        ProviderKind::OpenAi | ProviderKind::AzureOpenAi | ProviderKind::OpenAiCompatible => {
            Arc::new(
                openai::OpenAi::new(deployment, http)
                    .map_err(|e| BuildError::Credential(deployment.name.clone(), e))?,
            )
        }
        ProviderKind::Anthropic => Arc::new(anthropic::Anthropic::new(deployment, http)),
        ProviderKind::Local => local_provider(deployment)?,
    })
}

#[cfg(feature = "local-embeddings")]
fn local_provider(deployment: &DeploymentConfig) -> Result<Arc<dyn ModelProvider>, BuildError> {
    let folder = std::path::Path::new(&deployment.model);
    local::Local::load(folder)
        .map(|local| Arc::new(local) as Arc<dyn ModelProvider>)
        .map_err(|e| BuildError::LocalModel(deployment.name.clone(), e.to_string()))
}

#[cfg(not(feature = "local-embeddings"))]
fn local_provider(deployment: &DeploymentConfig) -> Result<Arc<dyn ModelProvider>, BuildError> {
    Err(BuildError::LocalModel(
        deployment.name.clone(),
        "this build has no local embedding provider (ajutant-providers' feature \
         local-embeddings is off)"
            .to_owned(),
    ))
}
