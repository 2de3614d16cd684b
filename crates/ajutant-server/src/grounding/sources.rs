//! A collection's `source`, as stored JSON, turned into a connector. Secrets are never stored:
//! a source names the environment variable that holds its key, as deployments do.

use std::path::{Path, PathBuf};

use ajutant_core::config::GroundingConfig;
use ajutant_ingest::connector::{
    AzureBlobConfig, AzureBlobConnector, AzureBlobCredential, Connector, FolderConnector, SasToken,
    SharedKey,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum SourceSettings {
    /// A folder on the server, inside one of `grounding.allowed_folders`.
    Folder { path: PathBuf },
    /// An Azure Blob Storage container (or the part of it under `prefix`).
    AzureBlob {
        /// `https://ACCOUNT.blob.core.windows.net`, or an emulator's URL.
        account_url: String,
        container: String,
        #[serde(default)]
        prefix: Option<String>,
        /// For Shared Key: the account name and the variable holding its key.
        #[serde(default)]
        account_name: Option<String>,
        #[serde(default)]
        account_key_env: Option<String>,
        /// Or a SAS token, from this variable.
        #[serde(default)]
        sas_token_env: Option<String>,
    },
}

impl SourceSettings {
    /// Parses and checks stored or submitted settings.
    pub(crate) fn parse(
        value: &serde_json::Value,
        config: &GroundingConfig,
    ) -> Result<Self, String> {
        let settings: Self = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        match &settings {
            Self::Folder { path } => {
                allowed_folder(path, &config.allowed_folders)?;
            }
            Self::AzureBlob {
                account_url,
                container,
                account_key_env,
                sas_token_env,
                account_name,
                ..
            } => {
                url::Url::parse(account_url).map_err(|e| format!("account_url: {e}"))?;
                if container.trim().is_empty() {
                    return Err("container is required".to_owned());
                }
                match (account_key_env, sas_token_env) {
                    (Some(_), None) if account_name.is_some() => {}
                    (None, Some(_)) => {}
                    _ => {
                        return Err("give account_name with account_key_env (Shared Key), or \
                                    sas_token_env (SAS)"
                            .to_owned());
                    }
                }
            }
        }
        Ok(settings)
    }

    /// The connector that reads this source.
    pub(crate) fn connector(&self, config: &GroundingConfig) -> Result<Box<dyn Connector>, String> {
        match self {
            Self::Folder { path } => {
                let path = allowed_folder(path, &config.allowed_folders)?;
                Ok(Box::new(FolderConnector::new(path)))
            }
            Self::AzureBlob { .. } => azure_blob(self),
        }
    }
}

/// `path`, resolved, when it lies inside an allowed folder. Resolving first means neither `..`
/// nor a symbolic link can lead outside.
fn allowed_folder(path: &Path, allowed: &[PathBuf]) -> Result<PathBuf, String> {
    if allowed.is_empty() {
        return Err(
            "no server folders are allowed (grounding.allowed_folders is empty)".to_owned(),
        );
    }
    let resolved = std::fs::canonicalize(path)
        .map_err(|e| format!("{} cannot be opened: {e}", path.display()))?;
    let inside = allowed
        .iter()
        .any(|root| std::fs::canonicalize(root).is_ok_and(|root| resolved.starts_with(&root)));
    if inside {
        Ok(resolved)
    } else {
        Err(format!(
            "{} is not inside grounding.allowed_folders",
            path.display()
        ))
    }
}

fn azure_blob(settings: &SourceSettings) -> Result<Box<dyn Connector>, String> {
    let SourceSettings::AzureBlob {
        account_url,
        container,
        prefix,
        account_name,
        account_key_env,
        sas_token_env,
    } = settings
    else {
        return Err("not an Azure Blob Storage source".to_owned());
    };
    let secret = |variable: &str| {
        std::env::var(variable)
            .map_err(|_| format!("the environment variable {variable} is not set"))
    };
    let credential = match (account_name, account_key_env, sas_token_env) {
        (Some(account), Some(variable), None) => AzureBlobCredential::SharedKey(
            SharedKey::new(account.clone(), &secret(variable)?).map_err(|e| e.to_string())?,
        ),
        (_, None, Some(variable)) => {
            AzureBlobCredential::Sas(SasToken::new(&secret(variable)?).map_err(|e| e.to_string())?)
        }
        _ => return Err("no usable credential".to_owned()),
    };
    let connector = AzureBlobConnector::new(AzureBlobConfig {
        account_url: account_url.clone(),
        container: container.clone(),
        prefix: prefix.clone(),
        credential,
    })
    .map_err(|e| e.to_string())?;
    Ok(Box::new(connector))
}
