//! Model provider adapters. Each vendor has its own module with private wire types and
//! implements `ajutant_core::model::ModelProvider`; [`provider_for`] builds the one a deployment
//! names. Every adapter passes the same conformance suite (`tests/conformance.rs`) against a
//! fake upstream speaking its vendor's wire format, streaming included.

mod anthropic;
mod azure_token;
mod http;
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

/// The adapter for `deployment`.
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
    })
}
