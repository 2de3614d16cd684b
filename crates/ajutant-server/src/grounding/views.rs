//! The grounding API's wire shapes: collections, documents, ingestion jobs and search results.

use ajutant_core::policy::AccessScope;
use ajutant_store::{Collection, Document, IngestionJob, ItemReport};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::retrieval::Mode;

/// A collection as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionView {
    pub id: String,
    pub name: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub access: AccessScope,
    pub owner_group: Option<String>,
    /// The deployment that embeds its passages; none: lexical retrieval only.
    pub embedding_deployment: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub source: Option<serde_json::Value>,
    pub document_count: i64,
    pub chunk_count: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    /// Whether the caller may change it and its documents.
    pub can_manage: bool,
}

pub(crate) fn view(collection: Collection, can_manage: bool) -> CollectionView {
    CollectionView {
        access: AccessScope::from_readers(&collection.readers),
        id: collection.id,
        name: collection.name,
        description: collection.description,
        owner_group: collection.owner_group,
        embedding_deployment: collection.embedding_deployment,
        // Where it syncs from (hosts, paths, the names of credentials) is for its managers.
        source: collection.source.filter(|_| can_manage),
        document_count: collection.document_count,
        chunk_count: collection.chunk_count,
        created_at: collection.created_at,
        can_manage,
    }
}

/// A connection a caller may point collections at: what to pick, not where it leads.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// What a source names: `{"connection": NAME, "path": "sub/folder"}`.
    pub name: String,
    pub description: String,
    /// `folder` or `azure_blob`.
    pub kind: String,
}

impl From<&ajutant_core::config::ConnectionConfig> for ConnectionView {
    fn from(connection: &ajutant_core::config::ConnectionConfig) -> Self {
        use ajutant_core::config::ConnectionKind;
        Self {
            name: connection.name.clone(),
            description: connection.description.clone(),
            kind: match connection.kind {
                ConnectionKind::Folder => "folder",
                ConnectionKind::AzureBlob => "azure_blob",
            }
            .to_owned(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `{"scope": "organisation"}` or `{"scope": "groups", "groups": ["OBJECT-ID"]}`.
    #[schema(value_type = Object)]
    pub access: AccessScope,
    pub owner_group: Option<String>,
    pub embedding_deployment: Option<String>,
    /// Where `sync` reads from: `{"kind": "folder", "path": "/srv/handbook"}` or
    /// `{"kind": "azure_blob", "account_url": ..., "container": ..., ...}`.
    #[schema(value_type = Option<Object>)]
    pub source: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: String,
    pub source_key: String,
    pub title: String,
    /// What the content really is (sniffed): text, markdown, html, pdf, docx, csv, json.
    pub kind: Option<String>,
    pub size_bytes: i64,
    pub content_hash: String,
    pub url: Option<String>,
    /// `ready` or `failed`.
    pub status: String,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub chunk_count: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentsParams {
    /// Only documents whose source key sorts after this one (the last key of the page before).
    pub after: Option<String>,
    /// 1 to 10,000, default 10,000.
    pub limit: Option<i64>,
}

impl From<Document> for DocumentView {
    fn from(d: Document) -> Self {
        Self {
            id: d.id,
            source_key: d.source_key,
            title: d.title,
            kind: d.kind,
            size_bytes: d.size_bytes,
            content_hash: d.content_hash,
            url: d.url,
            status: d.status.as_str().to_owned(),
            error_code: d.error_code,
            error: d.error,
            chunk_count: d.chunk_count,
            updated_at: d.updated_at,
        }
    }
}

/// An ingestion job: its progress, and each document's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub collection_id: String,
    /// `upload` or `sync`.
    pub kind: String,
    /// `queued`, `running`, `succeeded` or `failed` (the job as a whole; documents fail alone).
    pub status: String,
    pub total: i64,
    pub processed: i64,
    pub added: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub removed: i64,
    pub failed: i64,
    /// Passages written.
    pub chunks: i64,
    pub error: Option<String>,
    pub attempts: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<OffsetDateTime>,
    pub items: Vec<ItemView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    pub seq: i64,
    pub source_key: String,
    pub name: String,
    /// `pending`, `added`, `updated`, `unchanged`, `removed` or `failed`.
    pub status: String,
    /// Why it failed: `empty`, `too_large`, `unsupported_type`, `invalid_utf8`, `corrupt`,
    /// `encrypted`, `zip_bomb`, `timeout`, `no_text`, `embedding_failed`, `source_error`, ...
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub document_id: Option<String>,
}

pub(crate) fn job_view(job: IngestionJob, items: Vec<ItemReport>) -> JobView {
    JobView {
        id: job.id,
        collection_id: job.collection_id,
        kind: job.kind.as_str().to_owned(),
        status: job.status.as_str().to_owned(),
        total: job.total,
        processed: job.processed,
        added: job.added,
        updated: job.updated,
        unchanged: job.unchanged,
        removed: job.removed,
        failed: job.failed,
        chunks: job.chunks,
        error: job.error,
        attempts: job.attempts,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
        items: items
            .into_iter()
            .map(|i| ItemView {
                seq: i.seq,
                source_key: i.source_key,
                name: i.name,
                status: i.status,
                error_code: i.error_code,
                error: i.error,
                document_id: i.document_id,
            })
            .collect(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsParams {
    /// 1 to 50, default 10.
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    pub query: String,
    /// `hybrid` (default), `lexical` or `vector`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub mode: Mode,
    /// How many passages, 1 to 100; default 10.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub rank: usize,
    pub score: f64,
    pub lexical_rank: Option<usize>,
    pub vector_rank: Option<usize>,
    pub chunk_id: i64,
    pub document_id: String,
    pub title: String,
    pub source_key: String,
    pub url: Option<String>,
    /// Page or section, when known.
    pub location: Option<String>,
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResult {
    /// The mode actually used (`hybrid` falls back to `lexical` without embeddings).
    #[schema(value_type = String)]
    pub mode: Mode,
    pub hits: Vec<SearchHit>,
}
