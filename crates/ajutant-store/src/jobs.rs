//! Durable ingestion jobs. A job and its items (uploaded bytes included) are written before the
//! request that made them returns; a worker claims a job with a lease (PostgreSQL: `FOR UPDATE
//! SKIP LOCKED`, so any instance can take any job and two never take the same), renews the
//! lease while it works, and marks each item done as it goes. A worker that dies leaves a lease
//! that runs out; the next claim resumes the items still pending.

pub use ajutant_core::grounding::ItemOutcome;
use ajutant_core::grounding::{JobKind, JobStatus};
use time::OffsetDateTime;

use crate::db_time::DbTime;
use crate::{Pool, Store, StoreError, on_pool};

/// How many times a job is claimed before it is failed for good (a job that kills its worker,
/// say, must not do so forever).
pub const MAX_ATTEMPTS: i64 = 5;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IngestionJob {
    pub id: String,
    pub collection_id: String,
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub total: i64,
    pub processed: i64,
    pub added: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub removed: i64,
    pub failed: i64,
    pub chunks: i64,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_by: String,
    #[sqlx(try_from = "DbTime")]
    pub created_at: OffsetDateTime,
    #[sqlx(try_from = "crate::db_time::MaybeDbTime")]
    pub started_at: Option<OffsetDateTime>,
    #[sqlx(try_from = "crate::db_time::MaybeDbTime")]
    pub finished_at: Option<OffsetDateTime>,
}

/// One document of a job. `content` is the uploaded bytes (cleared once processed); sync items
/// carry none and are fetched from the source.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IngestionItem {
    pub seq: i64,
    pub source_key: String,
    pub name: String,
    pub content_type: Option<String>,
    pub acl: Option<String>,
    pub url: Option<String>,
    pub content: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ItemReport {
    pub seq: i64,
    pub source_key: String,
    pub name: String,
    pub status: String,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub document_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewItem {
    pub source_key: String,
    pub name: String,
    pub content_type: Option<String>,
    pub acl: Option<Vec<String>>,
    pub url: Option<String>,
    pub content: Option<Vec<u8>>,
    /// Refused before the job ran (over the size limit): code and message. The item is
    /// recorded as failed and the job counts it.
    pub refused: Option<(String, String)>,
}

const JOB_COLUMNS: &str = "id, collection_id, kind, status, total, processed, added, updated, \
     unchanged, removed, failed, chunks, error, attempts, created_by, created_at, started_at, \
     finished_at";

impl Store {
    /// Queues a job with its items in one transaction.
    #[allow(
        clippy::too_many_arguments,
        reason = "each is a column of the row written"
    )]
    pub async fn create_job(
        &self,
        collection_id: &str,
        kind: JobKind,
        items: &[NewItem],
        created_by: &str,
        now: OffsetDateTime,
    ) -> Result<IngestionJob, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO ingestion_jobs (id, collection_id, kind, status, total, created_by, \
                 created_at) VALUES ($1, $2, $3, 'queued', $4, $5, $6)",
            )
            .bind(&id)
            .bind(collection_id)
            .bind(kind.as_str())
            .bind(i64::try_from(items.len()).unwrap_or(i64::MAX))
            .bind(created_by)
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
            insert_items!(tx, &id, 0_i64, items);
            let refused = items.iter().filter(|i| i.refused.is_some()).count();
            if refused > 0 {
                sqlx::query(
                    "UPDATE ingestion_jobs SET processed = $2, failed = $2 WHERE id = $1",
                )
                .bind(&id)
                .bind(i64::try_from(refused).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        self.job(&id).await?.ok_or_else(|| StoreError::Invalid {
            what: format!("job {id} vanished after insert"),
        })
    }

    /// Adds items to a running job (a sync lists its source after being claimed).
    pub async fn add_job_items(&self, job_id: &str, items: &[NewItem]) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Writing first takes SQLite's write lock at the start (see `put_document`).
            sqlx::query("UPDATE ingestion_jobs SET total = total + $2 WHERE id = $1")
                .bind(job_id)
                .bind(i64::try_from(items.len()).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            let next: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM ingestion_items WHERE job_id = $1",
            )
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?;
            insert_items!(tx, job_id, next, items);
            tx.commit().await?;
        });
        Ok(())
    }

    /// A collection's latest jobs, newest first.
    pub async fn collection_jobs(
        &self,
        collection_id: &str,
        limit: i64,
    ) -> Result<Vec<IngestionJob>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM ingestion_jobs WHERE collection_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(collection_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn job(&self, id: &str) -> Result<Option<IngestionJob>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM ingestion_jobs WHERE id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        }))
    }

    /// Every key a job lists (a sync keeps these and removes the collection's other documents).
    pub async fn job_item_keys(&self, job_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT source_key FROM ingestion_items WHERE job_id = $1")
                .bind(job_id)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn job_items(&self, job_id: &str) -> Result<Vec<ItemReport>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT seq, source_key, name, status, error_code, error, document_id \
                 FROM ingestion_items WHERE job_id = $1 ORDER BY seq",
            )
            .bind(job_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Claims the oldest job that is queued or whose worker's lease ran out, for `worker`
    /// until `lease_until`. Jobs claimed [`MAX_ATTEMPTS`] times are failed instead.
    pub async fn claim_job(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Option<IngestionJob>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE ingestion_jobs SET status = 'failed', finished_at = $1, \
                 error = 'abandoned: every attempt to work this job ended without finishing' \
                 WHERE status = 'running' AND lease_until < $1 AND attempts >= $2",
            )
            .bind(DbTime(now))
            .bind(MAX_ATTEMPTS)
            .execute(pool)
            .await?;
        });
        let pick = match self.pool {
            Pool::Sqlite(_) => "",
            Pool::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE ingestion_jobs SET status = 'running', claimed_by = $1, lease_until = $2, \
             attempts = attempts + 1, started_at = COALESCE(started_at, $3) \
             WHERE id = (SELECT id FROM ingestion_jobs \
                         WHERE status = 'queued' OR (status = 'running' AND lease_until < $3) \
                         ORDER BY created_at, id LIMIT 1{pick}) \
             RETURNING {JOB_COLUMNS}"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(worker)
                .bind(DbTime(lease_until))
                .bind(DbTime(now))
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Extends the lease; false when the job is no longer this worker's.
    pub async fn renew_job_lease(
        &self,
        job_id: &str,
        worker: &str,
        lease_until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let renewed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE ingestion_jobs SET lease_until = $3 \
                 WHERE id = $1 AND claimed_by = $2 AND status = 'running'",
            )
            .bind(job_id)
            .bind(worker)
            .bind(DbTime(lease_until))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(renewed > 0)
    }

    /// The items not yet done, in order, one page at a time (uploads can be large).
    pub async fn pending_items(
        &self,
        job_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<IngestionItem>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT seq, source_key, name, content_type, acl, url, content \
                 FROM ingestion_items WHERE job_id = $1 AND status = 'pending' AND seq > $2 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(job_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Records what became of an item and counts it on the job, in one transaction; the
    /// uploaded bytes are dropped (the document now holds what was extracted).
    #[allow(
        clippy::too_many_arguments,
        reason = "each is a column of the item or its job"
    )]
    pub async fn finish_item(
        &self,
        job_id: &str,
        seq: i64,
        outcome: ItemOutcome,
        error: Option<(&str, &str)>,
        document_id: Option<&str>,
        chunks: i64,
    ) -> Result<(), StoreError> {
        // The outcome's spelling is also the name of the job's counter column.
        let column = outcome.as_str();
        let count = format!(
            "UPDATE ingestion_jobs SET processed = processed + 1, {column} = {column} + 1, \
             chunks = chunks + $2 WHERE id = $1"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE ingestion_items SET status = $3, error_code = $4, error = $5, \
                 document_id = $6, content = NULL \
                 WHERE job_id = $1 AND seq = $2 AND status = 'pending'",
            )
            .bind(job_id)
            .bind(seq)
            .bind(column)
            .bind(error.map(|e| e.0))
            .bind(error.map(|e| e.1.replace('\0', "")))
            .bind(document_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed > 0 {
                sqlx::query(&count).bind(job_id).bind(chunks).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Counts documents a sync removed (they have no item of their own).
    pub async fn count_removed(&self, job_id: &str, removed: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE ingestion_jobs SET removed = removed + $2 WHERE id = $1")
                .bind(job_id)
                .bind(removed)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Ends a job. `error` is for the job as a whole (the source could not be listed); items
    /// that failed on their own do not fail the job.
    pub async fn finish_job(
        &self,
        job_id: &str,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let status = if error.is_some() {
            JobStatus::Failed
        } else {
            JobStatus::Succeeded
        }
        .as_str();
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE ingestion_jobs SET status = $2, error = $3, finished_at = $4, \
                 lease_until = NULL WHERE id = $1",
            )
            .bind(job_id)
            .bind(status)
            .bind(error)
            .bind(DbTime(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}

/// Inserts `$items` for `$job` numbered from `$first`, inside the caller's transaction.
macro_rules! insert_items {
    ($tx:ident, $job:expr, $first:expr, $items:expr) => {{
        let first: i64 = $first;
        for (offset, item) in $items.iter().enumerate() {
            let acl = item
                .acl
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::Invalid {
                    what: e.to_string(),
                })?;
            let (status, error_code, error) = match &item.refused {
                Some((code, message)) => ("failed", Some(code.as_str()), Some(message.as_str())),
                None => ("pending", None, None),
            };
            sqlx::query(
                "INSERT INTO ingestion_items (job_id, seq, source_key, name, content_type, acl, \
                 url, content, status, error_code, error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind($job)
            .bind(first + i64::try_from(offset).unwrap_or(i64::MAX))
            .bind(&item.source_key)
            .bind(item.name.replace('\0', ""))
            .bind(&item.content_type)
            .bind(acl)
            .bind(&item.url)
            .bind(&item.content)
            .bind(status)
            .bind(error_code)
            .bind(error)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}
use insert_items;
