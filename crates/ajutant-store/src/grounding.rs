//! Collections, documents and their passages (chunks), and the two retrieval queries over them:
//! full-text (SQLite FTS5's BM25; PostgreSQL's `ts_rank` over a GIN-indexed tsvector) and
//! vector similarity (SQLite: an exact scan of an in-memory copy of the collection's vectors;
//! PostgreSQL: pgvector's HNSW index with an iterative scan). Both trim by the reader's groups
//! inside the query: a passage the reader may not see is never scored, ranked or counted.
//!
//! Who may read a document is stored once, in `document_readers`: the collection's readers
//! intersected with the document's own ACL from its source, `*` meaning everyone signed in.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::{Postgres, QueryBuilder, Sqlite};
use time::OffsetDateTime;

use crate::db_time::DbTime;
use crate::{Pool, Store, StoreError, on_pool};

pub use ajutant_core::policy::EVERYONE;

/// Most chunks in one multi-row INSERT (11 parameters each).
const CHUNKS_PER_INSERT: usize = 400;

#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Group ids, or `["*"]` for the whole organisation.
    pub readers: Vec<String>,
    pub owner_group: Option<String>,
    pub embedding_deployment: Option<String>,
    /// Connector settings as JSON, when the collection syncs from a source.
    pub source: Option<serde_json::Value>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub document_count: i64,
    pub chunk_count: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct CollectionRow {
    id: String,
    name: String,
    description: String,
    readers: String,
    owner_group: Option<String>,
    embedding_deployment: Option<String>,
    source: Option<String>,
    created_by: String,
    #[sqlx(try_from = "DbTime")]
    created_at: OffsetDateTime,
    #[sqlx(try_from = "DbTime")]
    updated_at: OffsetDateTime,
    document_count: i64,
    chunk_count: i64,
}

impl TryFrom<CollectionRow> for Collection {
    type Error = StoreError;
    fn try_from(row: CollectionRow) -> Result<Self, StoreError> {
        Ok(Self {
            readers: json_list(&row.readers, "collection readers")?,
            source: row
                .source
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| StoreError::Invalid {
                    what: format!("collection {} source: {e}", row.id),
                })?,
            id: row.id,
            name: row.name,
            description: row.description,
            owner_group: row.owner_group,
            embedding_deployment: row.embedding_deployment,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            document_count: row.document_count,
            chunk_count: row.chunk_count,
        })
    }
}

/// What a collection is made of; the id and times are the store's.
#[derive(Debug, Clone)]
pub struct CollectionSpec {
    pub name: String,
    pub description: String,
    pub readers: Vec<String>,
    pub owner_group: Option<String>,
    pub embedding_deployment: Option<String>,
    pub source: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Document {
    pub id: String,
    pub collection_id: String,
    pub source_key: String,
    pub title: String,
    pub kind: Option<String>,
    pub size_bytes: i64,
    pub content_hash: String,
    pub url: Option<String>,
    /// `ready` or `failed`.
    pub status: String,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub chunk_count: i64,
    #[sqlx(try_from = "DbTime")]
    pub created_at: OffsetDateTime,
    #[sqlx(try_from = "DbTime")]
    pub updated_at: OffsetDateTime,
}

/// A document to store, with its passages. Replaces the document of the same key.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub collection_id: String,
    pub source_key: String,
    pub title: String,
    pub kind: Option<String>,
    pub size_bytes: i64,
    pub content_hash: String,
    pub url: Option<String>,
    /// Groups from the source's own ACL; `None` when the source has none.
    pub acl: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct NewChunk {
    pub ordinal: i64,
    pub heading: String,
    pub page: Option<i64>,
    pub text: String,
    pub indexed_text: String,
    pub tokens: i64,
    pub embedding: Option<Vec<f32>>,
}

/// A passage as retrieval returns it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Passage {
    pub chunk_id: i64,
    pub document_id: String,
    pub collection_id: String,
    pub title: String,
    pub source_key: String,
    pub url: Option<String>,
    pub heading: String,
    pub page: Option<i64>,
    pub ordinal: i64,
    pub text: String,
}

/// Where a search may look and for whom: the collections, and the reader's groups. `*` is
/// added by the store; callers pass only real group ids.
#[derive(Debug, Clone, Copy)]
pub struct SearchScope<'a> {
    pub collections: &'a [String],
    pub groups: &'a [String],
}

impl SearchScope<'_> {
    fn readers(&self) -> Vec<String> {
        let mut readers: Vec<String> = self.groups.to_vec();
        readers.push(EVERYONE.to_owned());
        readers
    }
}

/// The readers of a document: the collection's, narrowed by the document's own ACL.
pub fn effective_readers(collection: &[String], acl: Option<&[String]>) -> Vec<String> {
    let collection: BTreeSet<&String> = collection.iter().collect();
    let everyone = collection.iter().any(|r| *r == EVERYONE);
    let readers: BTreeSet<&String> = match acl {
        None => collection,
        Some(acl) if everyone => acl.iter().collect(),
        Some(acl) => acl.iter().filter(|g| collection.contains(g)).collect(),
    };
    readers.into_iter().cloned().collect()
}

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

fn embedding_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn embedding_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

const COLLECTION_COLUMNS: &str = "c.id, c.name, c.description, c.readers, c.owner_group, \
     c.embedding_deployment, c.source, c.created_by, c.created_at, c.updated_at, \
     (SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id) AS document_count, \
     (SELECT COUNT(*) FROM chunks k WHERE k.collection_id = c.id) AS chunk_count";

const DOCUMENT_COLUMNS: &str = "id, collection_id, source_key, title, kind, size_bytes, \
     content_hash, url, status, error_code, error, chunk_count, created_at, updated_at";

const PASSAGE_COLUMNS: &str = "k.id AS chunk_id, k.document_id, k.collection_id, d.title, \
     d.source_key, d.url, k.heading, k.page, k.ordinal, k.text";

impl Store {
    pub async fn create_collection(
        &self,
        spec: &CollectionSpec,
        created_by: &str,
        now: OffsetDateTime,
    ) -> Result<Collection, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let readers = to_json(&spec.readers)?;
        let source = spec.source.as_ref().map(to_json).transpose()?;
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO collections (id, name, description, readers, owner_group, \
                 embedding_deployment, source, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&id)
            .bind(&spec.name)
            .bind(&spec.description)
            .bind(&readers)
            .bind(&spec.owner_group)
            .bind(&spec.embedding_deployment)
            .bind(&source)
            .bind(created_by)
            .bind(DbTime(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(StoreError::Conflict {
                what: format!("a collection named {:?} already exists", spec.name),
            });
        }
        self.collection(&id)
            .await?
            .ok_or_else(|| StoreError::Invalid {
                what: format!("collection {id} vanished after insert"),
            })
    }

    /// Changes a collection's settings. New readers apply to every document at once (in the
    /// same transaction), so narrowing a scope never leaves a window of wider access.
    pub async fn update_collection(
        &self,
        id: &str,
        spec: &CollectionSpec,
        now: OffsetDateTime,
    ) -> Result<Option<Collection>, StoreError> {
        let readers = to_json(&spec.readers)?;
        let source = spec.source.as_ref().map(to_json).transpose()?;
        let documents: Vec<(String, Option<String>)> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE collections SET name = $2, description = $3, readers = $4, \
                 owner_group = $5, embedding_deployment = $6, source = $7, updated_at = $8 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&spec.name)
            .bind(&spec.description)
            .bind(&readers)
            .bind(&spec.owner_group)
            .bind(&spec.embedding_deployment)
            .bind(&source)
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Ok(None);
            }
            let documents: Vec<(String, Option<String>)> =
                sqlx::query_as("SELECT id, acl FROM documents WHERE collection_id = $1")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            for (document, acl) in &documents {
                let acl = acl.as_deref().map(|a| json_list(a, "document acl")).transpose()?;
                sqlx::query("DELETE FROM document_readers WHERE document_id = $1")
                    .bind(document)
                    .execute(&mut *tx)
                    .await?;
                for reader in effective_readers(&spec.readers, acl.as_deref()) {
                    sqlx::query("INSERT INTO document_readers (document_id, reader) VALUES ($1, $2)")
                        .bind(document)
                        .bind(reader)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            documents
        });
        tracing::debug!(
            collection = id,
            documents = documents.len(),
            "readers re-applied"
        );
        self.collection(id).await
    }

    pub async fn collection(&self, id: &str) -> Result<Option<Collection>, StoreError> {
        let sql = format!("SELECT {COLLECTION_COLUMNS} FROM collections c WHERE c.id = $1");
        let row: Option<CollectionRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(Collection::try_from).transpose()
    }

    pub async fn collections(&self) -> Result<Vec<Collection>, StoreError> {
        let sql = format!("SELECT {COLLECTION_COLUMNS} FROM collections c ORDER BY c.name");
        let rows: Vec<CollectionRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).fetch_all(pool).await?
        });
        rows.into_iter().map(Collection::try_from).collect()
    }

    /// Removes a collection with its documents, passages and jobs.
    pub async fn delete_collection(&self, id: &str) -> Result<bool, StoreError> {
        let removed = on_pool!(self, pool => {
            sqlx::query("DELETE FROM collections WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.vectors.forget(id);
        Ok(removed > 0)
    }

    /// The collection's documents in source-key order, after `after` (a key already seen),
    /// at most `limit`.
    pub async fn documents(
        &self,
        collection_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Document>, StoreError> {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = $1 \
             AND ($2 IS NULL OR source_key > $2) ORDER BY source_key LIMIT $3"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(collection_id)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn document_by_key(
        &self,
        collection_id: &str,
        source_key: &str,
    ) -> Result<Option<Document>, StoreError> {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = $1 AND source_key = $2"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(collection_id).bind(source_key).fetch_optional(pool).await?
        }))
    }

    /// Stores a document and its passages in one transaction, replacing the document of the
    /// same key (its passages go with it). Readers are derived from the collection's current
    /// readers, read inside the same transaction. Returns the new document's id.
    pub async fn put_document(
        &self,
        document: &NewDocument,
        chunks: &[NewChunk],
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let acl = document.acl.as_ref().map(to_json).transpose()?;
        match &self.pool {
            Pool::Sqlite(pool) => {
                // IMMEDIATE: take the write lock (waiting for it) before reading. A deferred
                // transaction that starts by reading, or by a DELETE that finds nothing,
                // cannot wait when it later writes: it fails with "database is locked".
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                put_document_rows!(Sqlite, tx, id, document, acl, chunks, now);
                insert_chunks_sqlite(&mut tx, &id, &document.collection_id, chunks).await?;
                tx.commit().await?;
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                put_document_rows!(Postgres, tx, id, document, acl, chunks, now);
                insert_chunks_postgres(&mut tx, &id, &document.collection_id, chunks).await?;
                tx.commit().await?;
            }
        }
        self.vectors.forget(&document.collection_id);
        Ok(id)
    }

    /// Records a document that could not be ingested, so its status shows in the collection.
    /// A document already stored under the key is left as it was: a bad new version never
    /// costs the good old one.
    pub async fn put_failed_document(
        &self,
        document: &NewDocument,
        error_code: &str,
        error: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO documents (id, collection_id, source_key, title, kind, size_bytes, \
                 content_hash, url, acl, status, error_code, error, chunk_count, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 'failed', $9, $10, 0, \
                 $11, $11) ON CONFLICT (collection_id, source_key) DO UPDATE SET \
                 status = CASE WHEN documents.status = 'ready' THEN documents.status ELSE 'failed' END, \
                 error_code = excluded.error_code, error = excluded.error, \
                 updated_at = excluded.updated_at",
            )
            .bind(&id)
            .bind(&document.collection_id)
            .bind(&document.source_key)
            .bind(clean(&document.title))
            .bind(&document.kind)
            .bind(document.size_bytes)
            .bind(&document.content_hash)
            .bind(&document.url)
            .bind(error_code)
            .bind(clean(error))
            .bind(DbTime(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Removes a document and its passages; they leave retrieval with this commit.
    pub async fn delete_document(&self, collection_id: &str, id: &str) -> Result<bool, StoreError> {
        let removed = on_pool!(self, pool => {
            sqlx::query("DELETE FROM documents WHERE collection_id = $1 AND id = $2")
                .bind(collection_id)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.vectors.forget(collection_id);
        Ok(removed > 0)
    }

    /// Removes the documents whose keys the source no longer lists; returns how many.
    pub async fn delete_documents_except(
        &self,
        collection_id: &str,
        keep: &HashSet<String>,
    ) -> Result<u64, StoreError> {
        let stored: Vec<(String, String)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, source_key FROM documents WHERE collection_id = $1")
                .bind(collection_id)
                .fetch_all(pool)
                .await?
        });
        let mut removed = 0;
        for (id, key) in stored {
            if !keep.contains(&key) && self.delete_document(collection_id, &id).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Passages by id, in the order given; ids the store no longer has are left out.
    pub async fn passages(&self, ids: &[i64]) -> Result<Vec<Passage>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: HashMap<i64, Passage> = match &self.pool {
            Pool::Sqlite(pool) => {
                let mut query = QueryBuilder::<Sqlite>::new(format!(
                    "SELECT {PASSAGE_COLUMNS} FROM chunks k JOIN documents d ON d.id = k.document_id \
                     WHERE k.id IN ("
                ));
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(")");
                query.build_query_as::<Passage>().fetch_all(pool).await?
            }
            Pool::Postgres(pool) => {
                sqlx::query_as::<_, Passage>(&format!(
                    "SELECT {PASSAGE_COLUMNS} FROM chunks k JOIN documents d ON d.id = k.document_id \
                     WHERE k.id = ANY($1)"
                ))
                .bind(ids)
                .fetch_all(pool)
                .await?
            }
        }
        .into_iter()
        .map(|p| (p.chunk_id, p))
        .collect();
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Full-text search: chunk ids with their score, best first, at most `limit`. Terms are
    /// OR-ed (ranked retrieval, not a filter). Only passages the scope's reader may read, in
    /// the scope's collections, are considered.
    pub async fn search_lexical(
        &self,
        scope: SearchScope<'_>,
        query: &str,
        limit: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let terms = search_terms(query);
        if terms.is_empty() || scope.collections.is_empty() {
            return Ok(Vec::new());
        }
        let readers = scope.readers();
        Ok(match &self.pool {
            Pool::Sqlite(pool) => {
                let matched = terms
                    .iter()
                    .map(|t| format!("\"{t}\""))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                // bm25() is lower-is-better; negate so every score here is higher-is-better.
                sqlx::query_as(
                    "SELECT k.id, -bm25(chunks_fts) AS score FROM chunks_fts \
                     JOIN chunks k ON k.id = chunks_fts.rowid \
                     WHERE chunks_fts MATCH $1 \
                       AND k.collection_id IN (SELECT value FROM json_each($2)) \
                       AND EXISTS (SELECT 1 FROM document_readers r \
                                   WHERE r.document_id = k.document_id \
                                     AND r.reader IN (SELECT value FROM json_each($3))) \
                     ORDER BY bm25(chunks_fts) LIMIT $4",
                )
                .bind(matched)
                .bind(to_json(&scope.collections)?)
                .bind(to_json(&readers)?)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
            Pool::Postgres(pool) => {
                let matched = terms.join(" | ");
                let rows: Vec<(i64, f32)> = sqlx::query_as(
                    "SELECT k.id, ts_rank(k.tsv, q, 1) AS score \
                     FROM chunks k, to_tsquery('english', $1) q \
                     WHERE k.tsv @@ q AND k.collection_id = ANY($2) \
                       AND EXISTS (SELECT 1 FROM document_readers r \
                                   WHERE r.document_id = k.document_id AND r.reader = ANY($3)) \
                     ORDER BY score DESC, k.id LIMIT $4",
                )
                .bind(matched)
                .bind(scope.collections)
                .bind(&readers)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.into_iter().map(|(id, s)| (id, f64::from(s))).collect()
            }
        })
    }

    /// Vector search: chunk ids with their cosine similarity, best first, at most `limit`,
    /// among passages embedded with `vector.len()` dimensions that the reader may read.
    pub async fn search_vector(
        &self,
        scope: SearchScope<'_>,
        vector: &[f32],
        limit: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        if scope.collections.is_empty() || vector.is_empty() {
            return Ok(Vec::new());
        }
        let readers = scope.readers();
        let dims = vector.len();
        match &self.pool {
            Pool::Sqlite(pool) => {
                let permitted: Vec<String> = sqlx::query_scalar(
                    "SELECT d.id FROM documents d \
                     WHERE d.collection_id IN (SELECT value FROM json_each($1)) \
                       AND EXISTS (SELECT 1 FROM document_readers r WHERE r.document_id = d.id \
                                   AND r.reader IN (SELECT value FROM json_each($2)))",
                )
                .bind(to_json(&scope.collections)?)
                .bind(to_json(&readers)?)
                .fetch_all(pool)
                .await?;
                let permitted: HashSet<String> = permitted.into_iter().collect();
                let mut best = TopK::new(usize::try_from(limit).unwrap_or(0));
                for collection in scope.collections {
                    let vectors = self.collection_vectors(pool, collection).await?;
                    vectors.score(vector, &permitted, &mut best);
                }
                Ok(best.into_sorted())
            }
            Pool::Postgres(pool) => {
                ensure_vector_index(pool, dims).await?;
                let mut tx = pool.begin().await?;
                // Without an iterative scan, HNSW hands the filter its first ef_search
                // candidates only, and a reader who may see few documents gets fewer hits
                // than exist (or none). pgvector 0.8 keeps scanning until enough pass.
                sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("SET LOCAL hnsw.ef_search = 100")
                    .execute(&mut *tx)
                    .await?;
                let rows: Vec<(i64, f64)> = sqlx::query_as(&format!(
                    "SELECT k.id, 1 - ((k.embedding::vector({dims})) <=> $1::real[]::vector({dims})) \
                     AS similarity FROM chunks k \
                     WHERE k.dims = {dims} AND k.collection_id = ANY($2) \
                       AND EXISTS (SELECT 1 FROM document_readers r \
                                   WHERE r.document_id = k.document_id AND r.reader = ANY($3)) \
                     ORDER BY (k.embedding::vector({dims})) <=> $1::real[]::vector({dims}) \
                     LIMIT $4"
                ))
                .bind(vector)
                .bind(scope.collections)
                .bind(&readers)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                // relaxed_order may return neighbours slightly out of order.
                let mut rows = rows;
                rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                Ok(rows)
            }
        }
    }

    async fn collection_vectors(
        &self,
        pool: &sqlx::SqlitePool,
        collection: &str,
    ) -> Result<Arc<CollectionVectors>, StoreError> {
        if let Some(cached) = self.vectors.get(collection) {
            return Ok(cached);
        }
        let generation = self.vectors.generation();
        let rows: Vec<(i64, String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, document_id, dims, embedding FROM chunks \
             WHERE collection_id = $1 AND embedding IS NOT NULL",
        )
        .bind(collection)
        .fetch_all(pool)
        .await?;
        let loaded = Arc::new(CollectionVectors::from_rows(rows));
        self.vectors
            .store_if_current(collection, Arc::clone(&loaded), generation);
        Ok(loaded)
    }
}

/// The words of a query, safe to put in an FTS5 MATCH or a tsquery: runs of letters and
/// digits only, lower-cased, deduplicated, at most 64 of them.
pub fn search_terms(query: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| seen.insert(w.clone()))
        .take(64)
        .collect()
}

/// The shared part of [`Store::put_document`]: replace the row, its readers and its old
/// passages. A macro because it runs on either database's transaction.
macro_rules! put_document_rows {
    ($db:ty, $tx:ident, $id:ident, $document:ident, $acl:ident, $chunks:ident, $now:ident) => {{
        sqlx::query("DELETE FROM documents WHERE collection_id = $1 AND source_key = $2")
            .bind(&$document.collection_id)
            .bind(&$document.source_key)
            .execute(&mut *$tx)
            .await?;
        let collection_readers: String =
            sqlx::query_scalar("SELECT readers FROM collections WHERE id = $1")
                .bind(&$document.collection_id)
                .fetch_optional(&mut *$tx)
                .await?
                .ok_or_else(|| StoreError::Conflict {
                    what: format!("collection {} no longer exists", $document.collection_id),
                })?;
        let collection_readers = json_list(&collection_readers, "collection readers")?;
        sqlx::query(
            "INSERT INTO documents (id, collection_id, source_key, title, kind, size_bytes, \
             content_hash, url, acl, status, chunk_count, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'ready', $10, $11, $11)",
        )
        .bind(&$id)
        .bind(&$document.collection_id)
        .bind(&$document.source_key)
        .bind(clean(&$document.title))
        .bind(&$document.kind)
        .bind($document.size_bytes)
        .bind(&$document.content_hash)
        .bind(&$document.url)
        .bind(&$acl)
        .bind(i64::try_from($chunks.len()).unwrap_or(i64::MAX))
        .bind(DbTime($now))
        .execute(&mut *$tx)
        .await?;
        for reader in effective_readers(&collection_readers, $document.acl.as_deref()) {
            sqlx::query("INSERT INTO document_readers (document_id, reader) VALUES ($1, $2)")
                .bind(&$id)
                .bind(reader)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
use put_document_rows;

async fn insert_chunks_sqlite(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    document_id: &str,
    collection_id: &str,
    chunks: &[NewChunk],
) -> Result<(), StoreError> {
    for batch in chunks.chunks(CHUNKS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO chunks (document_id, collection_id, ordinal, heading, page, text, \
             indexed_text, tokens, dims, embedding) ",
        );
        insert.push_values(batch, |mut row, chunk| {
            row.push_bind(document_id.to_owned())
                .push_bind(collection_id.to_owned())
                .push_bind(chunk.ordinal)
                .push_bind(clean(&chunk.heading))
                .push_bind(chunk.page)
                .push_bind(clean(&chunk.text))
                .push_bind(clean(&chunk.indexed_text))
                .push_bind(chunk.tokens)
                .push_bind(chunk.embedding.as_ref().map(|e| e.len() as i64))
                .push_bind(chunk.embedding.as_deref().map(embedding_bytes));
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_chunks_postgres(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    document_id: &str,
    collection_id: &str,
    chunks: &[NewChunk],
) -> Result<(), StoreError> {
    if let Some(dims) = chunks
        .iter()
        .find_map(|c| c.embedding.as_ref().map(Vec::len))
    {
        ensure_vector_index_in(tx, dims).await?;
    }
    for batch in chunks.chunks(CHUNKS_PER_INSERT) {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO chunks (document_id, collection_id, ordinal, heading, page, text, \
             indexed_text, tokens, dims, embedding) ",
        );
        insert.push_values(batch, |mut row, chunk| {
            row.push_bind(document_id.to_owned())
                .push_bind(collection_id.to_owned())
                .push_bind(chunk.ordinal)
                .push_bind(clean(&chunk.heading))
                .push_bind(chunk.page)
                .push_bind(clean(&chunk.text))
                .push_bind(clean(&chunk.indexed_text))
                .push_bind(chunk.tokens)
                .push_bind(chunk.embedding.as_ref().map(|e| e.len() as i64))
                .push_bind(chunk.embedding.clone())
                .push_unseparated("::real[]::vector");
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Dimensions whose HNSW index is known to exist, so the check is one lookup per process.
static INDEXED_DIMS: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

fn index_known(dims: usize) -> bool {
    INDEXED_DIMS
        .lock()
        .map(|d| d.contains(&dims))
        .unwrap_or(false)
}

fn remember_index(dims: usize) {
    if let Ok(mut known) = INDEXED_DIMS.lock() {
        known.insert(dims);
    }
}

fn vector_index_sql(dims: usize) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS chunks_embedding_{dims} ON chunks \
         USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
    )
}

/// The HNSW index for `dims` (384 comes with the migration; an embedding deployment with other
/// dimensions gets its own on first use). pgvector's HNSW handles up to 2,000 dimensions.
async fn ensure_vector_index(pool: &sqlx::PgPool, dims: usize) -> Result<(), StoreError> {
    if index_known(dims) {
        return Ok(());
    }
    check_dims(dims)?;
    sqlx::query(&vector_index_sql(dims)).execute(pool).await?;
    remember_index(dims);
    Ok(())
}

async fn ensure_vector_index_in(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    dims: usize,
) -> Result<(), StoreError> {
    if index_known(dims) {
        return Ok(());
    }
    check_dims(dims)?;
    sqlx::query(&vector_index_sql(dims))
        .execute(&mut **tx)
        .await?;
    remember_index(dims);
    Ok(())
}

fn check_dims(dims: usize) -> Result<(), StoreError> {
    if (1..=2000).contains(&dims) {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: format!("embeddings of {dims} dimensions cannot be indexed (1 to 2,000)"),
        })
    }
}

/// One collection's embedded passages, held in memory on SQLite so a query is one pass over
/// contiguous floats instead of a table scan decoding blobs.
#[derive(Debug, Default)]
pub(crate) struct CollectionVectors {
    ids: Vec<i64>,
    document_of: Vec<u32>,
    documents: Vec<String>,
    dims: Vec<usize>,
    offsets: Vec<usize>,
    data: Vec<f32>,
}

impl CollectionVectors {
    fn from_rows(rows: Vec<(i64, String, i64, Vec<u8>)>) -> Self {
        let mut this = Self::default();
        let mut document_index: HashMap<String, u32> = HashMap::new();
        for (id, document, _dims, bytes) in rows {
            let next = u32::try_from(this.documents.len()).unwrap_or(u32::MAX);
            let index = *document_index.entry(document.clone()).or_insert_with(|| {
                this.documents.push(document);
                next
            });
            let vector = embedding_from_bytes(&bytes);
            this.ids.push(id);
            this.document_of.push(index);
            this.dims.push(vector.len());
            this.offsets.push(this.data.len());
            this.data.extend_from_slice(&vector);
        }
        this
    }

    fn score(&self, query: &[f32], permitted: &HashSet<String>, best: &mut TopK) {
        let allowed: Vec<bool> = self
            .documents
            .iter()
            .map(|d| permitted.contains(d))
            .collect();
        for (i, id) in self.ids.iter().enumerate() {
            if self.dims[i] != query.len() || !allowed[self.document_of[i] as usize] {
                continue;
            }
            let start = self.offsets[i];
            let stored = &self.data[start..start + query.len()];
            let dot: f32 = stored.iter().zip(query).map(|(a, b)| a * b).sum();
            best.offer(*id, f64::from(dot));
        }
    }
}

/// The `k` best (id, score) pairs seen.
struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Scored>>,
}

#[derive(PartialEq)]
struct Scored(f64, i64);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: std::collections::BinaryHeap::with_capacity(k + 1),
        }
    }

    fn offer(&mut self, id: i64, score: f64) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(std::cmp::Reverse(Scored(score, id)));
        } else if let Some(worst) = self.heap.peek()
            && Scored(score, id) > worst.0
        {
            self.heap.pop();
            self.heap.push(std::cmp::Reverse(Scored(score, id)));
        }
    }

    fn into_sorted(self) -> Vec<(i64, f64)> {
        let mut all: Vec<(i64, f64)> = self.heap.into_iter().map(|r| (r.0.1, r.0.0)).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all
    }
}

/// The in-memory vector copies, per collection. Any write to a collection's passages drops its
/// copy; a load that began before a drop is not kept (the generation moved), so a query never
/// sees passages of a deleted document after the delete returned.
#[derive(Debug, Default)]
pub(crate) struct VectorCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Arc<CollectionVectors>>>,
}

impl VectorCache {
    fn get(&self, collection: &str) -> Option<Arc<CollectionVectors>> {
        self.entries.lock().ok()?.get(collection).cloned()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn store_if_current(&self, collection: &str, vectors: Arc<CollectionVectors>, seen: u64) {
        if let Ok(mut entries) = self.entries.lock()
            && self.generation.load(Ordering::SeqCst) == seen
        {
            entries.insert(collection.to_owned(), vectors);
        }
    }

    pub(crate) fn forget(&self, collection: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.remove(collection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn readers_are_the_collection_narrowed_by_the_document_acl() {
        assert_eq!(
            effective_readers(&list(&["a", "b"]), None),
            list(&["a", "b"])
        );
        assert_eq!(
            effective_readers(&list(&["a", "b"]), Some(&list(&["b", "c"]))),
            list(&["b"])
        );
        assert_eq!(
            effective_readers(&list(&["*"]), Some(&list(&["c"]))),
            list(&["c"])
        );
        assert_eq!(effective_readers(&list(&["*"]), None), list(&["*"]));
        assert!(effective_readers(&list(&["a"]), Some(&[])).is_empty());
    }

    #[test]
    fn search_terms_strip_query_syntax() {
        assert_eq!(
            search_terms("\"laptop\" OR -NEAR(x: y*) laptop"),
            list(&["laptop", "or", "near", "x", "y"])
        );
        assert!(search_terms("  -- ** ").is_empty());
    }

    #[test]
    fn top_k_keeps_the_best_in_order() {
        let mut best = TopK::new(2);
        for (id, score) in [(1, 0.1), (2, 0.9), (3, 0.5), (4, 0.7)] {
            best.offer(id, score);
        }
        assert_eq!(best.into_sorted(), vec![(2, 0.9), (4, 0.7)]);
    }
}
