//! Collections, documents and their passages (chunks), and the two retrieval queries over them:
//! full-text (SQLite FTS5's BM25; PostgreSQL's `ts_rank` over a GIN-indexed tsvector) and
//! vector similarity (SQLite: an exact scan of an in-memory copy of the collection's vectors;
//! PostgreSQL: pgvector's HNSW index with an iterative scan). Both trim by the reader's groups
//! inside the query: a passage the reader may not see is never scored, ranked or counted.
//!
//! Who may read a document is stored once, in `document_readers`: the collection's readers
//! intersected with the document's own ACL from its source, `*` meaning everyone signed in.

mod collections;
mod documents;
mod search;
mod vectors;

use crate::StoreError;

pub use ajutant_core::policy::EVERYONE;
pub use collections::{Collection, CollectionSpec};
pub use documents::{Document, NewChunk, NewDocument, effective_readers};
pub use search::{Passage, SearchScope, search_terms};
pub(crate) use vectors::VectorCache;

fn json_list(text: &str, what: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Invalid {
        what: format!("{what}: {e}"),
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid {
        what: e.to_string(),
    })
}

/// PostgreSQL text cannot hold NUL; extracted text from a hostile file might.
fn clean(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}
