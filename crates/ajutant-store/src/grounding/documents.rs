//! Documents and their passages as ingestion writes them (one transaction per document, its
//! readers derived from the collection's inside it) and the collection's document lists.

use ajutant_core::grounding::DocumentStatus;
use std::collections::{BTreeSet, HashSet};

use sqlx::{Postgres, QueryBuilder, Sqlite};
use time::OffsetDateTime;

use super::search::ensure_vector_index_in;
use super::vectors::embedding_bytes;
use super::{EVERYONE, clean, json_list, to_json};
use crate::db_time::DbTime;
use crate::{Pool, Store, StoreError, on_pool};

/// Most chunks in one multi-row INSERT (11 parameters each).
const CHUNKS_PER_INSERT: usize = 400;

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
    #[sqlx(try_from = "String")]
    pub status: DocumentStatus,
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

const DOCUMENT_COLUMNS: &str = "id, collection_id, source_key, title, kind, size_bytes, \
     content_hash, url, status, error_code, error, chunk_count, created_at, updated_at";

impl Store {
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
                put_document_rows!(Sqlite, tx, id, document, acl, chunks, now, "");
                insert_chunks_sqlite(&mut tx, &id, &document.collection_id, chunks).await?;
                tx.commit().await?;
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // FOR SHARE: a concurrent update_collection (which narrows the readers and
                // rewrites every document's in its transaction) either finishes first, and this
                // document gets the new readers, or waits for this one and rewrites it too.
                // Unlocked, a document put while the readers narrowed kept the old, wider ones.
                // (SQLite's BEGIN IMMEDIATE already serialises the two.)
                put_document_rows!(Postgres, tx, id, document, acl, chunks, now, " FOR SHARE");
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

    /// Which of `ids` a member of `groups` may read now (the same reader rule as retrieval); a
    /// document that no longer exists is readable by nobody.
    pub async fn readable_documents(
        &self,
        ids: &[String],
        groups: &[String],
    ) -> Result<BTreeSet<String>, StoreError> {
        if ids.is_empty() {
            return Ok(BTreeSet::new());
        }
        let mut readers = groups.to_vec();
        readers.push(EVERYONE.to_owned());
        let rows: Vec<(String,)> = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT DISTINCT document_id FROM document_readers \
                     WHERE document_id IN (SELECT value FROM json_each($1)) \
                       AND reader IN (SELECT value FROM json_each($2))",
                )
                .bind(to_json(&ids)?)
                .bind(to_json(&readers)?)
                .fetch_all(pool)
                .await?
            }
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT DISTINCT document_id FROM document_readers \
                     WHERE document_id = ANY($1) AND reader = ANY($2)",
                )
                .bind(ids)
                .bind(&readers)
                .fetch_all(pool)
                .await?
            }
        };
        Ok(rows.into_iter().map(|(id,)| id).collect())
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
}

/// The shared part of [`Store::put_document`]: replace the row, its readers and its old
/// passages. A macro because it runs on either database's transaction.
macro_rules! put_document_rows {
    ($db:ty, $tx:ident, $id:ident, $document:ident, $acl:ident, $chunks:ident, $now:ident, $lock:expr) => {{
        sqlx::query("DELETE FROM documents WHERE collection_id = $1 AND source_key = $2")
            .bind(&$document.collection_id)
            .bind(&$document.source_key)
            .execute(&mut *$tx)
            .await?;
        let readers_query = format!("SELECT readers FROM collections WHERE id = $1{}", $lock);
        let collection_readers: String = sqlx::query_scalar(&readers_query)
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
}
