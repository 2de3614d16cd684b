//! A collection's `source`, as stored JSON: a connection an operator declared
//! (`[[grounding.connections]]`) and a path within it, turned into a connector. Owners never
//! give an address or a credential, so a source cannot send the server's secrets elsewhere or
//! reach into its network; the connector still goes out through the egress check.

use std::path::{Component, Path, PathBuf};

use ajutant_core::config::{ConnectionConfig, ConnectionKind, GroundingConfig};
use ajutant_egress::Egress;
use ajutant_ingest::connector::{
    AzureBlobConfig, AzureBlobConnector, AzureBlobCredential, Connector, FolderConnector, SasToken,
    SharedKey,
};
use serde::{Deserialize, Serialize};

/// Longest path within a connection.
const MAX_PATH_CHARS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceSettings {
    /// The name of a connection in `grounding.connections`.
    pub connection: String,
    /// A relative path within it: a sub-folder, or a blob-name prefix. None: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl SourceSettings {
    /// Parses and checks stored or submitted settings against today's connections.
    pub(crate) fn parse(
        value: &serde_json::Value,
        config: &GroundingConfig,
    ) -> Result<Self, String> {
        let settings: Self = serde_json::from_value(value.clone()).map_err(|e| {
            if value.get("kind").is_some() || value.get("account_url").is_some() {
                "a source names a connection an admin declared and a path within it, \
                 {\"connection\": NAME, \"path\": \"sub/folder\"}; addresses and credentials \
                 are not accepted"
                    .to_owned()
            } else {
                format!("{e} (expected {{\"connection\": NAME, \"path\": \"sub/folder\"}})")
            }
        })?;
        settings.connection_in(config)?;
        if let Some(path) = &settings.path {
            relative_path(path)?;
        }
        Ok(settings)
    }

    /// The connection this source names.
    pub(crate) fn connection_in<'a>(
        &self,
        config: &'a GroundingConfig,
    ) -> Result<&'a ConnectionConfig, String> {
        config.connection(&self.connection).ok_or_else(|| {
            format!(
                "there is no connection named {:?} (see GET /api/v1/connections)",
                self.connection
            )
        })
    }

    /// The connector that reads this source, going out through `egress`.
    pub(crate) fn connector(
        &self,
        config: &GroundingConfig,
        egress: &Egress,
    ) -> Result<Box<dyn Connector>, String> {
        let connection = self.connection_in(config)?;
        let path = match &self.path {
            Some(path) => Some(relative_path(path)?),
            None => None,
        };
        match connection.kind {
            ConnectionKind::Folder => folder(connection, path.as_deref()),
            ConnectionKind::AzureBlob => azure_blob(connection, path.as_deref(), egress),
        }
    }
}

/// `path` as the relative, downward-only path it must be: no root, no `..`, no `.`, no
/// backslashes or control characters, so it can only name something inside its connection.
fn relative_path(path: &str) -> Result<PathBuf, String> {
    let trimmed = path.trim_matches('/');
    if path.chars().count() > MAX_PATH_CHARS {
        return Err(format!("path must be at most {MAX_PATH_CHARS} characters"));
    }
    if path.starts_with('/') || path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(
            "path must be relative to the connection, without control characters or \
                    backslashes"
                .to_owned(),
        );
    }
    let relative = Path::new(trimmed);
    let downward = trimmed
        .split('/')
        .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !trimmed.is_empty() && !downward {
        return Err(
            "path must stay inside the connection (no `..`, `.` or empty segments)".to_owned(),
        );
    }
    Ok(relative.to_path_buf())
}

/// The folder connector for `path` under the connection's folder. Resolving first means no
/// symbolic link can lead outside the connection.
fn folder(
    connection: &ConnectionConfig,
    path: Option<&Path>,
) -> Result<Box<dyn Connector>, String> {
    let Some(root) = &connection.path else {
        return Err(format!("connection {:?} has no folder", connection.name));
    };
    let root = std::fs::canonicalize(root).map_err(|e| {
        format!(
            "the folder of connection {:?} cannot be opened: {e}",
            connection.name
        )
    })?;
    let wanted = match path {
        Some(path) => root.join(path),
        None => root.clone(),
    };
    let resolved = std::fs::canonicalize(&wanted).map_err(|e| {
        format!(
            "{} cannot be opened in connection {:?}: {e}",
            path.unwrap_or(Path::new("")).display(),
            connection.name
        )
    })?;
    if !resolved.starts_with(&root) {
        return Err(format!(
            "{} leads outside connection {:?}",
            path.unwrap_or(Path::new("")).display(),
            connection.name
        ));
    }
    Ok(Box::new(FolderConnector::new(resolved)))
}

fn azure_blob(
    connection: &ConnectionConfig,
    path: Option<&Path>,
    egress: &Egress,
) -> Result<Box<dyn Connector>, String> {
    let (Some(account_url), Some(container)) = (&connection.account_url, &connection.container)
    else {
        return Err(format!(
            "connection {:?} lacks account_url or container",
            connection.name
        ));
    };
    let secret = |variable: &str| {
        std::env::var(variable).map_err(|_| {
            format!(
                "connection {:?}: the environment variable {variable} is not set",
                connection.name
            )
        })
    };
    let credential = match (
        &connection.account_name,
        &connection.account_key_env,
        &connection.sas_token_env,
    ) {
        (Some(account), Some(variable), None) => AzureBlobCredential::SharedKey(
            SharedKey::new(account.clone(), &secret(variable)?).map_err(|e| e.to_string())?,
        ),
        (_, None, Some(variable)) => {
            AzureBlobCredential::Sas(SasToken::new(&secret(variable)?).map_err(|e| e.to_string())?)
        }
        _ => {
            return Err(format!(
                "connection {:?} has no usable credential",
                connection.name
            ));
        }
    };
    // The owner's path narrows the connection's prefix; blob names are flat, so "a folder" is a
    // prefix ending in `/`.
    let mut prefix = connection.prefix.clone().unwrap_or_default();
    if let Some(path) = path.and_then(Path::to_str).filter(|p| !p.is_empty()) {
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        prefix.push_str(path);
        prefix.push('/');
    }
    let connector = AzureBlobConnector::new(AzureBlobConfig {
        account_url: account_url.to_string(),
        container: container.clone(),
        prefix: Some(prefix).filter(|p| !p.is_empty()),
        credential,
        egress: egress.clone(),
    })
    .map_err(|e| e.to_string())?;
    Ok(Box::new(connector))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn paths_only_go_down() {
        for good in ["", "hr", "hr/policies", "hr/policies/", "Ünïcode dir/x"] {
            assert!(relative_path(good).is_ok(), "{good}");
        }
        for bad in [
            "/etc",
            "..",
            "hr/../..",
            "./hr",
            "hr//x",
            "hr\\..\\x",
            "hr\u{0}x",
            "hr\nx",
            &"a".repeat(MAX_PATH_CHARS + 1),
        ] {
            assert!(relative_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses_and_credentials_are_not_a_source() {
        let config = GroundingConfig::default();
        let old = serde_json::json!({ "kind": "azure_blob", "account_url": "http://x",
                                      "container": "c", "sas_token_env": "PATH" });
        let problem = SourceSettings::parse(&old, &config).unwrap_err();
        assert!(problem.contains("connection"), "{problem}");
        let unknown = serde_json::json!({ "connection": "nope" });
        let problem = SourceSettings::parse(&unknown, &config).unwrap_err();
        assert!(problem.contains("no connection named"), "{problem}");
    }
}
