//! Sources of documents. A connector lists what a source holds now and fetches one item's
//! bytes; the ingestion worker compares the listing with what is stored (by key and content
//! hash) to add, replace and remove documents. Upload through the API is not a connector: the
//! bytes arrive with the request.

mod azure_blob;
mod folder;

use futures::future::BoxFuture;

pub use azure_blob::{
    AzureBlobConfig, AzureBlobConnector, AzureBlobCredential, SasToken, SharedKey,
};
pub use folder::FolderConnector;

/// Largest file a connector will fetch, unless configured otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 50 * 1024 * 1024;

/// One document as a source lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceItem {
    /// Stable within the source: a relative path, a blob name, a URL, a Graph item id.
    pub key: String,
    /// What people call it: a file name or a page title.
    pub name: String,
    /// Size in bytes, when the source says.
    pub size: Option<u64>,
    /// The source's own change marker (ETag, modification time), when it has one. Sync still
    /// decides by content hash; this only lets a connector skip a fetch it knows is unchanged.
    pub version: Option<String>,
    /// Where a reader can open the original, when there is such a place.
    pub url: Option<String>,
    /// Groups allowed to read this item, when the source carries its own ACL. `None` means the
    /// collection's access scope applies unchanged.
    pub acl: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("the source cannot be reached: {0}")]
    Unreachable(String),
    #[error("the egress check refused to connect to the source: {0}")]
    Refused(String),
    #[error("the source refused access: {0}")]
    Denied(String),
    #[error("{0} no longer exists at the source")]
    Gone(String),
    #[error("{key} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { key: String, size: u64, limit: u64 },
    #[error("the source answered something unexpected: {0}")]
    Protocol(String),
    #[error("the source is misconfigured: {0}")]
    Config(String),
}

/// A source of documents: a server-side folder, Azure Blob Storage, and later web pages and
/// SharePoint/OneDrive through Microsoft Graph.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// `folder`, `azure_blob`, ...: recorded on each document it brings.
    fn kind(&self) -> &'static str;

    /// Everything the source holds now. An item missing from the listing is removed from the
    /// collection at the next sync, so a listing must be complete or fail.
    fn list(&self) -> BoxFuture<'_, Result<Vec<SourceItem>, ConnectorError>>;

    /// One item's bytes, refusing more than `max_bytes`.
    fn fetch<'a>(
        &'a self,
        item: &'a SourceItem,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, ConnectorError>>;
}
