//! `[grounding]` and `[chat]`: how documents are taken in and how turns are assembled.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroundingConfig {
    /// Largest document accepted, by upload or from a source.
    pub max_document_bytes: u64,
    /// Largest upload request (all its files together).
    pub max_upload_bytes: usize,
    /// `[[grounding.connections]]`: the places collections may sync from, declared here so that
    /// owners pick a connection and a path within it, never an address or a credential.
    pub connections: Vec<ConnectionConfig>,
    /// Replaced by `connections`; read only to say so.
    #[serde(default, skip_serializing)]
    pub allowed_folders: Option<serde::de::IgnoredAny>,
    /// Passage size and the overlap between consecutive passages of one section, in tokens.
    pub chunk_max_tokens: usize,
    pub chunk_overlap_tokens: usize,
    /// Texts sent to the embedding deployment per call.
    pub embedding_batch: usize,
    /// Ingestion workers per instance (each works one job at a time).
    pub workers: usize,
    /// Seed, once, a demo collection and assistant from the bundled documents, scoped to the
    /// demo employees group. Only with the development identity provider.
    pub demo: bool,
    /// The embedding deployment the demo collection uses, if it exists; otherwise the demo
    /// collection is searched lexically only.
    pub demo_embedding_deployment: String,
}

impl Default for GroundingConfig {
    fn default() -> Self {
        Self {
            max_document_bytes: 50 * 1024 * 1024,
            max_upload_bytes: 100 * 1024 * 1024,
            connections: Vec::new(),
            allowed_folders: None,
            chunk_max_tokens: 200,
            chunk_overlap_tokens: 40,
            embedding_batch: 32,
            workers: 1,
            demo: true,
            demo_embedding_deployment: "local-embeddings".to_owned(),
        }
    }
}

impl GroundingConfig {
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_document_bytes == 0 || self.max_upload_bytes == 0 {
            problems.push("grounding: document and upload limits must be above 0".to_owned());
        }
        if self.chunk_max_tokens < 16 {
            problems.push("grounding.chunk_max_tokens must be at least 16".to_owned());
        }
        if self.chunk_overlap_tokens >= self.chunk_max_tokens {
            problems.push(
                "grounding.chunk_overlap_tokens must be smaller than chunk_max_tokens".to_owned(),
            );
        }
        if !(1..=2048).contains(&self.embedding_batch) {
            problems.push("grounding.embedding_batch must be between 1 and 2048".to_owned());
        }
        if self.workers > 64 {
            problems.push("grounding.workers must be at most 64".to_owned());
        }
        if self.allowed_folders.is_some() {
            problems.push(
                "grounding.allowed_folders is replaced by connections: declare each folder as \
                 [[grounding.connections]] with name, kind = \"folder\", path and the groups \
                 whose collection owners may use it"
                    .to_owned(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for connection in &self.connections {
            if !names.insert(connection.name.as_str()) {
                problems.push(format!(
                    "grounding.connections: the name {:?} is used twice",
                    connection.name
                ));
            }
            problems.extend(connection.problems());
        }
        problems
    }

    /// The connection called `name`.
    pub fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections.iter().find(|c| c.name == name)
    }
}

/// What a connection reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// A folder on this server (everything under `path`).
    Folder,
    /// An Azure Blob Storage container (everything under `prefix`, when given).
    AzureBlob,
}

/// A source of documents an operator declared: where it is and how the server authenticates
/// to it. Credentials are named (environment variables), never written here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// What owners pick: 1 to 64 letters, digits, `_`, `.` or `-`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub kind: ConnectionKind,
    /// Groups whose members may point collections they manage at this connection. Platform
    /// admins always may; empty: only they may.
    #[serde(default)]
    pub groups: Vec<String>,
    /// `folder`: an absolute path on this server.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `azure_blob`: `https://ACCOUNT.blob.core.windows.net` (or an emulator's URL), the
    /// container, and optionally the part of it owners may choose within.
    #[serde(default)]
    pub account_url: Option<url::Url>,
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    /// Shared Key: the account name and the variable holding its key; or a SAS token's
    /// variable.
    #[serde(default)]
    pub account_name: Option<String>,
    #[serde(default)]
    pub account_key_env: Option<String>,
    #[serde(default)]
    pub sas_token_env: Option<String>,
}

impl ConnectionConfig {
    fn problems(&self) -> Vec<String> {
        let at = format!("grounding.connections {:?}", self.name);
        let mut problems = Vec::new();
        let named = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !named {
            problems.push(format!(
                "{at}: the name must be 1 to 64 letters, digits, `_`, `.` or `-`"
            ));
        }
        let blob_fields = self.account_url.is_some()
            || self.container.is_some()
            || self.prefix.is_some()
            || self.account_name.is_some()
            || self.account_key_env.is_some()
            || self.sas_token_env.is_some();
        match self.kind {
            ConnectionKind::Folder => {
                match &self.path {
                    Some(path) if path.is_absolute() => {}
                    _ => problems.push(format!("{at}: a folder needs an absolute path")),
                }
                if blob_fields {
                    problems.push(format!("{at}: a folder takes only a path"));
                }
            }
            ConnectionKind::AzureBlob => {
                if self.path.is_some() {
                    problems.push(format!(
                        "{at}: Azure Blob Storage takes account_url and container, not path"
                    ));
                }
                match &self.account_url {
                    Some(url) if matches!(url.scheme(), "http" | "https") => {}
                    _ => problems.push(format!("{at}: account_url must be an http(s) URL")),
                }
                if self
                    .container
                    .as_deref()
                    .is_none_or(|c| c.trim().is_empty())
                {
                    problems.push(format!("{at}: container is required"));
                }
                let shared_key = self.account_name.is_some() && self.account_key_env.is_some();
                let sas = self.sas_token_env.is_some();
                if shared_key == sas || (sas && self.account_key_env.is_some()) {
                    problems.push(format!(
                        "{at}: give account_name with account_key_env (Shared Key), or \
                         sas_token_env (SAS)"
                    ));
                }
            }
        }
        problems
    }

    /// Whether a caller in `groups` may use this connection (platform admins are decided by
    /// the caller's role, before this).
    pub fn usable_by(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Earlier messages sent with a turn, newest first, until this many tokens.
    pub history_tokens: usize,
    /// Passages retrieved for a turn when the assistant does not say.
    pub default_top_k: usize,
    /// A turn's whole answer, streamed, may take this long before it is ended as failed.
    pub turn_timeout_secs: u64,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            history_tokens: 3000,
            default_top_k: 6,
            turn_timeout_secs: 300,
        }
    }
}
