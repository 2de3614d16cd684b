//! Collections: a named set of documents with its readers, owner and embedding deployment.
//! Changing the readers re-derives every document's readers in the same transaction.

use time::OffsetDateTime;

use super::{effective_readers, json_list, to_json};
use crate::db_time::DbTime;
use crate::{Store, StoreError, on_pool};

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

const COLLECTION_COLUMNS: &str = "c.id, c.name, c.description, c.readers, c.owner_group, \
     c.embedding_deployment, c.source, c.created_by, c.created_at, c.updated_at, \
     (SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id) AS document_count, \
     (SELECT COUNT(*) FROM chunks k WHERE k.collection_id = c.id) AS chunk_count";

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
}
