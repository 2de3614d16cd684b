//! `[[deployments]]`: the logical models workloads name. A deployment says which provider
//! serves it, where, with which credentials and limits; workloads never name a vendor, so the
//! model behind a deployment can change without touching them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

/// The providers Ajutant speaks to. A closed set: each has its own adapter module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Built in, no network: answers from the grounding passages it is given.
    Offline,
    /// Built in, no network: sentence embeddings computed in process (all-MiniLM-L6-v2 on the
    /// CPU) from the model files in the folder `model` names. Embeddings only.
    Local,
    OpenAi,
    AzureOpenAi,
    Anthropic,
    /// Any server speaking OpenAI's API: vLLM, Ollama, llama.cpp, LiteLLM, ...
    OpenAiCompatible,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Chat,
    Embeddings,
}

/// Where a deployment's credential comes from. Secrets are never written in the configuration
/// itself: they are read from the environment or a file when the deployment is used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Credential {
    #[default]
    None,
    /// An API key in this environment variable.
    ApiKeyEnv { variable: String },
    /// An API key in this file (e.g. a mounted Kubernetes secret), read at each use so that
    /// a rotated key is picked up.
    ApiKeyFile { path: PathBuf },
    /// Azure OpenAI with a Microsoft Entra token from the machine's managed identity (the
    /// instance metadata service, or App Service's `IDENTITY_ENDPOINT`). `client_id` picks a
    /// user-assigned identity; `endpoint` overrides where tokens are asked for.
    AzureManagedIdentity {
        #[serde(default)]
        client_id: Option<String>,
        #[serde(default)]
        endpoint: Option<Url>,
    },
    /// Azure OpenAI with a Microsoft Entra token from AKS workload identity: the federated
    /// token in `token_file` exchanged at `authority_host`. Each field defaults to the variable
    /// AKS sets (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`,
    /// `AZURE_AUTHORITY_HOST`).
    AzureWorkloadIdentity {
        #[serde(default)]
        tenant_id: Option<String>,
        #[serde(default)]
        client_id: Option<String>,
        #[serde(default)]
        token_file: Option<PathBuf>,
        #[serde(default)]
        authority_host: Option<Url>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub connect_ms: u64,
    /// Until the response (or, streaming, its first chunk) starts.
    pub first_byte_ms: u64,
    /// Between two streamed chunks.
    pub idle_ms: u64,
    pub total_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect_ms: 5_000,
            first_byte_ms: 60_000,
            idle_ms: 30_000,
            total_ms: 300_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// What workloads call it: `gpt-4o-prod`, `embeddings`, ...
    pub name: String,
    pub provider: ProviderKind,
    /// The provider's base URL (e.g. `https://api.openai.com/v1`, an Azure resource
    /// `https://NAME.openai.azure.com`, `http://vllm:8000/v1`); unset for `offline`, and for
    /// `openai`/`anthropic` their public endpoints.
    #[serde(default)]
    pub endpoint: Option<Url>,
    /// The upstream model, or for Azure OpenAI the deployment name. For `local`, the folder
    /// holding the model files (`model.safetensors`, `config.json`, `tokenizer.json`), relative
    /// to the working directory unless absolute.
    #[serde(default)]
    pub model: String,
    /// Azure OpenAI's `api-version`.
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default = "chat_only")]
    pub capabilities: Vec<Capability>,
    #[serde(default)]
    pub credential: Credential,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Retries after a retryable failure (429, 5xx, connection), before falling back.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Deployments to try, in order, when this one fails.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Prices per 1,000 tokens, in the organisation's currency, for usage reports.
    #[serde(default)]
    pub price_input_per_1k: f64,
    #[serde(default)]
    pub price_output_per_1k: f64,
    /// Directory groups that may use it; empty: everyone signed in.
    #[serde(default)]
    pub groups: Vec<String>,
    /// A switched-off deployment refuses calls (503) until switched on again.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Whether prompts and answers go into the audit trail. Off by default: the trail then
    /// says who called what, when and with what outcome, not what was said.
    #[serde(default)]
    pub audit_content: bool,
}

fn enabled() -> bool {
    true
}

/// `[gateway]`: what applies to every model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// The platform-wide switch: `false` refuses every model call.
    pub enabled: bool,
    /// The most output tokens a call may ask for; larger requests are capped to it, and calls
    /// that name no limit get it. 0: no cap.
    pub max_tokens_cap: u32,
    /// Limits for each principal (a person, an application, an API key's service identity).
    pub principal_limits: Limits,
    /// Limits a group's members share.
    pub group_limits: Vec<GroupLimits>,
    /// What deployments added through the admin API may name as their credential.
    pub api_credentials: ApiCredentials,
}

/// The credentials a deployment added through the API may name. The API is for admins, but
/// an admin is not the operator: without this bound, naming any variable or file as an API key
/// sends its value, as a bearer token, to any endpoint. Deployments in the configuration file
/// are the operator's and are not bound by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiCredentials {
    /// `api_key_env` must name a variable starting with this. Empty: no variable may be named.
    pub env_prefix: String,
    /// `api_key_file` must name a file inside this folder. Unset: no file may be named.
    pub folder: Option<PathBuf>,
}

impl Default for ApiCredentials {
    fn default() -> Self {
        Self {
            env_prefix: "AJUTANT_MODEL_KEY_".to_owned(),
            folder: None,
        }
    }
}

impl ApiCredentials {
    /// Why `credential` may not be set through the API, if it may not.
    pub fn problem(&self, credential: &Credential) -> Option<String> {
        match credential {
            Credential::None => None,
            Credential::ApiKeyEnv { variable } => {
                if self.env_prefix.is_empty() {
                    Some(
                        "credential: no environment variable may be named through the API \
                         (gateway.api_credentials.env_prefix is empty)"
                            .to_owned(),
                    )
                } else if !variable.starts_with(&self.env_prefix) || variable == &self.env_prefix {
                    Some(format!(
                        "credential: the variable must start with {} \
                         (gateway.api_credentials.env_prefix), the variables the operator set \
                         aside for model keys",
                        self.env_prefix
                    ))
                } else {
                    None
                }
            }
            Credential::ApiKeyFile { path } => {
                let Some(folder) = &self.folder else {
                    return Some(
                        "credential: no file may be named through the API \
                         (gateway.api_credentials.folder is not set)"
                            .to_owned(),
                    );
                };
                // Resolved, so neither `..` nor a link leads out of the folder.
                let inside = std::fs::canonicalize(folder)
                    .ok()
                    .zip(std::fs::canonicalize(path).ok())
                    .is_some_and(|(folder, path)| path.starts_with(folder));
                (!inside).then(|| {
                    "credential: the file must exist inside gateway.api_credentials.folder"
                        .to_owned()
                })
            }
            Credential::AzureManagedIdentity { endpoint, .. } => endpoint.is_some().then(|| {
                "credential: a managed identity's endpoint can only be set in the \
                 configuration file"
                    .to_owned()
            }),
            Credential::AzureWorkloadIdentity {
                token_file,
                authority_host,
                ..
            } => (token_file.is_some() || authority_host.is_some()).then(|| {
                "credential: a workload identity's token_file and authority_host can only be \
                 set in the configuration file (the API uses what AKS sets)"
                    .to_owned()
            }),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_tokens_cap: 0,
            principal_limits: Limits::default(),
            group_limits: Vec::new(),
            api_credentials: ApiCredentials::default(),
        }
    }
}

/// Zero means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub requests_per_minute: u64,
    /// Input and output tokens together.
    pub tokens_per_minute: u64,
    /// Input and output tokens together, per calendar month (UTC).
    pub monthly_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupLimits {
    /// The directory group's object id.
    pub group: String,
    #[serde(flatten)]
    pub limits: Limits,
}

/// Where `scripts/fetch-embedding-model` puts all-MiniLM-L6-v2 by default, relative to the
/// working directory (like the default SQLite database).
pub const LOCAL_EMBEDDING_MODEL_DIR: &str = "data/models/all-MiniLM-L6-v2";

fn chat_only() -> Vec<Capability> {
    vec![Capability::Chat]
}

fn default_retries() -> u32 {
    2
}

impl DeploymentConfig {
    /// The embedded default: the offline provider, for everyone, so a fresh instance has a
    /// usable model with no configuration at all.
    pub fn offline() -> Self {
        Self {
            name: "offline".to_owned(),
            provider: ProviderKind::Offline,
            endpoint: None,
            model: "ajutant-offline".to_owned(),
            api_version: None,
            capabilities: vec![Capability::Chat, Capability::Embeddings],
            credential: Credential::None,
            timeouts: Timeouts::default(),
            retries: 0,
            fallbacks: Vec::new(),
            price_input_per_1k: 0.0,
            price_output_per_1k: 0.0,
            groups: Vec::new(),
            enabled: true,
            audit_content: false,
        }
    }

    /// An embeddings-only deployment running all-MiniLM-L6-v2 in process from
    /// [`LOCAL_EMBEDDING_MODEL_DIR`] (filled by `scripts/fetch-embedding-model`).
    pub fn local_embeddings() -> Self {
        Self {
            name: "local-embeddings".to_owned(),
            provider: ProviderKind::Local,
            model: LOCAL_EMBEDDING_MODEL_DIR.to_owned(),
            capabilities: vec![Capability::Embeddings],
            ..Self::offline()
        }
    }

    /// What is wrong with this deployment on its own; the list-wide checks (unique names,
    /// fallbacks that exist) are in `Config::check`.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let name = &self.name;
        if name.is_empty()
            || name.len() > 100
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
        {
            problems.push(format!(
                "deployments: {name:?} is not a valid name (1 to 100 letters, digits, - _ . : /)"
            ));
        }
        let needs_endpoint = matches!(
            self.provider,
            ProviderKind::AzureOpenAi | ProviderKind::OpenAiCompatible
        );
        if needs_endpoint && self.endpoint.is_none() {
            problems.push(format!(
                "deployments.{name}: this provider needs an endpoint"
            ));
        }
        if self.provider == ProviderKind::Local {
            problems.extend(self.local_problems());
        } else if self.provider != ProviderKind::Offline && self.model.trim().is_empty() {
            problems.push(format!("deployments.{name}: model is required"));
        }
        if self.provider == ProviderKind::AzureOpenAi && self.api_version.is_none() {
            problems.push(format!(
                "deployments.{name}: azure_open_ai needs api_version"
            ));
        }
        if self.capabilities.is_empty() {
            problems.push(format!("deployments.{name}: list at least one capability"));
        }
        let t = &self.timeouts;
        if [t.connect_ms, t.first_byte_ms, t.idle_ms, t.total_ms].contains(&0) {
            problems.push(format!(
                "deployments.{name}: timeouts must be greater than 0"
            ));
        }
        if self.price_input_per_1k < 0.0 || self.price_output_per_1k < 0.0 {
            problems.push(format!("deployments.{name}: prices cannot be negative"));
        }
        if self.fallbacks.contains(name) {
            problems.push(format!("deployments.{name}: cannot fall back to itself"));
        }
        problems
    }

    /// `local` reads its model from a folder and computes embeddings, nothing else. Whether the
    /// folder holds a usable model is checked when the provider is built (server start).
    fn local_problems(&self) -> Vec<String> {
        let name = &self.name;
        let mut problems = Vec::new();
        if self.model.trim().is_empty() {
            problems.push(format!(
                "deployments.{name}: local needs model = the folder holding the model files \
                 (e.g. \"{LOCAL_EMBEDDING_MODEL_DIR}\", filled by scripts/fetch-embedding-model)"
            ));
        }
        if self.capabilities.contains(&Capability::Chat) {
            problems.push(format!(
                "deployments.{name}: local offers embeddings only; \
                 set capabilities = [\"embeddings\"]"
            ));
        }
        if self.endpoint.is_some() {
            problems.push(format!(
                "deployments.{name}: local runs in process and takes no endpoint"
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> DeploymentConfig {
        use figment::Figment;
        use figment::providers::{Format, Toml};
        Figment::from(Toml::string(toml)).extract().unwrap()
    }

    #[test]
    fn a_local_deployment_names_its_model_folder_and_offers_embeddings() {
        let deployment = parse(
            "name = \"embeddings\"\nprovider = \"local\"\n\
             model = \"data/models/all-MiniLM-L6-v2\"\ncapabilities = [\"embeddings\"]\n",
        );
        assert_eq!(deployment.provider, ProviderKind::Local);
        assert_eq!(deployment.problems(), Vec::<String>::new());
        assert_eq!(
            DeploymentConfig::local_embeddings().problems(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_local_deployment_without_a_folder_or_offering_chat_is_refused() {
        let deployment = parse("name = \"embeddings\"\nprovider = \"local\"\n");
        let problems = deployment.problems().join("\n");
        assert!(
            problems.contains("local needs model = the folder"),
            "{problems}"
        );
        assert!(
            problems.contains("scripts/fetch-embedding-model"),
            "{problems}"
        );
        // The default capabilities are chat only, which a local deployment cannot offer.
        assert!(
            problems.contains("local offers embeddings only"),
            "{problems}"
        );

        let with_endpoint = DeploymentConfig {
            endpoint: Some("http://127.0.0.1:1/".parse().unwrap()),
            ..DeploymentConfig::local_embeddings()
        };
        assert_eq!(
            with_endpoint.problems(),
            ["deployments.local-embeddings: local runs in process and takes no endpoint"]
        );
    }
}
