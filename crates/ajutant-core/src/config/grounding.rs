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
    /// Folders on this server that collections may sync from (with everything under them).
    /// Empty: no server-side folder may be used, so an API caller cannot read the server's
    /// disk.
    pub allowed_folders: Vec<PathBuf>,
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
            allowed_folders: Vec::new(),
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
        for folder in &self.allowed_folders {
            if !folder.is_absolute() {
                problems.push(format!(
                    "grounding.allowed_folders: {} must be an absolute path",
                    folder.display()
                ));
            }
        }
        problems
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
