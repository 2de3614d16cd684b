//! Microsoft Entra tokens for Azure OpenAI without an API key: from the machine's managed
//! identity, or from AKS workload identity (a federated token exchanged for an access token).
//! A token is reused until five minutes before it expires.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ajutant_core::config::Credential;
use ajutant_core::model::ProviderError;
use ajutant_core::secret::SecretString;
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

/// Azure OpenAI's token audience.
const RESOURCE: &str = "https://cognitiveservices.azure.com";
const IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";
/// A token this close to expiry is replaced.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// Longest wait for a token.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Source {
    ManagedIdentity {
        endpoint: Url,
        client_id: Option<String>,
        /// App Service's `IDENTITY_HEADER`, when its endpoint is used.
        app_service_header: Option<SecretString>,
    },
    WorkloadIdentity {
        token_url: Url,
        client_id: String,
        token_file: PathBuf,
    },
}

/// A token source with its cached token.
#[derive(Debug)]
pub(crate) struct AzureToken {
    source: Source,
    http: reqwest::Client,
    cached: Mutex<Option<(SecretString, SystemTime)>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Workload identity (seconds from now).
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    /// Managed identity (seconds since the epoch, as text).
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
}

fn number(value: &serde_json::Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl AzureToken {
    /// The token source `credential` names, if it names one.
    pub fn for_credential(
        credential: &Credential,
        http: reqwest::Client,
    ) -> Result<Option<Self>, ProviderError> {
        let source = match credential {
            Credential::AzureManagedIdentity {
                client_id,
                endpoint,
            } => {
                let app_service = env("IDENTITY_ENDPOINT").zip(env("IDENTITY_HEADER"));
                let (endpoint, header) = match (endpoint, app_service) {
                    (Some(endpoint), _) => (endpoint.clone(), None),
                    (None, Some((endpoint, header))) => (
                        Url::parse(&endpoint).map_err(|e| {
                            ProviderError::Credentials(format!("IDENTITY_ENDPOINT: {e}"))
                        })?,
                        Some(SecretString::new(header)),
                    ),
                    (None, None) => (
                        Url::parse(IMDS).map_err(|e| ProviderError::Credentials(e.to_string()))?,
                        None,
                    ),
                };
                Source::ManagedIdentity {
                    endpoint,
                    client_id: client_id.clone(),
                    app_service_header: header,
                }
            }
            Credential::AzureWorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
                authority_host,
            } => {
                let missing = |what: &str| {
                    ProviderError::Credentials(format!("workload identity needs {what}"))
                };
                let tenant = tenant_id
                    .clone()
                    .or_else(|| env("AZURE_TENANT_ID"))
                    .ok_or_else(|| missing("a tenant id (AZURE_TENANT_ID)"))?;
                let client_id = client_id
                    .clone()
                    .or_else(|| env("AZURE_CLIENT_ID"))
                    .ok_or_else(|| missing("a client id (AZURE_CLIENT_ID)"))?;
                let token_file = token_file
                    .clone()
                    .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from))
                    .ok_or_else(|| missing("a token file (AZURE_FEDERATED_TOKEN_FILE)"))?;
                let authority = match authority_host {
                    Some(url) => url.clone(),
                    None => Url::parse(
                        &env("AZURE_AUTHORITY_HOST")
                            .unwrap_or_else(|| DEFAULT_AUTHORITY.to_owned()),
                    )
                    .map_err(|e| ProviderError::Credentials(format!("authority host: {e}")))?,
                };
                let token_url = authority
                    .join(&format!("{tenant}/oauth2/v2.0/token"))
                    .map_err(|e| ProviderError::Credentials(format!("authority host: {e}")))?;
                Source::WorkloadIdentity {
                    token_url,
                    client_id,
                    token_file,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(Self {
            source,
            http,
            cached: Mutex::new(None),
        }))
    }

    /// A valid token, fetched when there is none or it is about to expire.
    pub async fn token(&self) -> Result<SecretString, ProviderError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && SystemTime::now() + RENEW_BEFORE < *expires
        {
            return Ok(token.clone());
        }
        let (token, expires) = self.fetch().await?;
        *cached = Some((token.clone(), expires));
        Ok(token)
    }

    async fn fetch(&self) -> Result<(SecretString, SystemTime), ProviderError> {
        let request = match &self.source {
            Source::ManagedIdentity {
                endpoint,
                client_id,
                app_service_header,
            } => {
                let mut url = endpoint.clone();
                let version = if app_service_header.is_some() {
                    "2019-08-01"
                } else {
                    "2018-02-01"
                };
                url.query_pairs_mut()
                    .append_pair("api-version", version)
                    .append_pair("resource", RESOURCE);
                if let Some(id) = client_id {
                    url.query_pairs_mut().append_pair("client_id", id);
                }
                let request = self.http.get(url).header("Metadata", "true");
                match app_service_header {
                    Some(header) => request.header("X-IDENTITY-HEADER", header.expose()),
                    None => request,
                }
            }
            Source::WorkloadIdentity {
                token_url,
                client_id,
                token_file,
            } => {
                // Read at every exchange: the kubelet rotates the file.
                let assertion = std::fs::read_to_string(token_file).map_err(|e| {
                    ProviderError::Credentials(format!("{}: {e}", token_file.display()))
                })?;
                let scope = format!("{RESOURCE}/.default");
                self.http.post(token_url.clone()).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("scope", scope.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.trim()),
                ])
            }
        };
        let response = tokio::time::timeout(TOKEN_TIMEOUT, request.send())
            .await
            .map_err(|_| ProviderError::Credentials("the token service did not answer".to_owned()))?
            .map_err(|e| ProviderError::Credentials(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(ProviderError::Credentials(format!(
                "the token service answered {}",
                response.status().as_u16()
            )));
        }
        let answer: TokenAnswer = response.json().await.map_err(|e| {
            ProviderError::Credentials(format!("unreadable token: {}", e.without_url()))
        })?;
        let now = SystemTime::now();
        let expires = match (
            answer.expires_on.as_ref().and_then(number),
            answer.expires_in.as_ref().and_then(number),
        ) {
            (Some(on), _) => UNIX_EPOCH + Duration::from_secs(on),
            (None, Some(seconds)) => now + Duration::from_secs(seconds),
            // No expiry given: reuse briefly rather than not at all.
            (None, None) => now + RENEW_BEFORE + Duration::from_secs(60),
        };
        Ok((SecretString::new(answer.access_token), expires))
    }
}
