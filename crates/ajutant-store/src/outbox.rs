//! The notification outbox. Rows are written in the transaction of what they announce (see
//! `feedback.rs`); a sender claims due rows with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`,
//! so instances never send the same row at once), and records each attempt's outcome. A sender
//! that dies leaves a lease that runs out, and the row is sent again: receivers see the same id
//! and can drop the duplicate.

use ajutant_core::notification::DeliveryStatus;
use time::OffsetDateTime;

use crate::db_time::{DbTime, MaybeDbTime};
use crate::{Pool, Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Notification {
    /// The `webhook-id`, the same on every attempt.
    pub id: String,
    pub target: String,
    pub event: String,
    pub subject: String,
    pub payload: String,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    #[sqlx(try_from = "DbTime")]
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    #[sqlx(try_from = "DbTime")]
    pub created_at: OffsetDateTime,
    #[sqlx(try_from = "MaybeDbTime")]
    pub finished_at: Option<OffsetDateTime>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    Delivered,
    /// Failed; tried again at the given time.
    Retry {
        error: &'a str,
        at: OffsetDateTime,
    },
    /// Failed for the last time: the row becomes a dead letter.
    Dead {
        error: &'a str,
    },
}

const COLUMNS: &str = "id, target, event, subject, payload, status, attempts, next_attempt_at, \
     last_error, created_at, finished_at";

impl Store {
    /// Leases up to `limit` due notifications to `worker` until `lease_until`.
    pub async fn claim_notifications(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<Notification>, StoreError> {
        let pick = match self.pool {
            Pool::Sqlite(_) => "",
            Pool::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE outbox SET leased_by = $1, leased_until = $2 \
             WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' \
                          AND next_attempt_at <= $3 \
                          AND (leased_until IS NULL OR leased_until < $3) \
                          ORDER BY next_attempt_at, id LIMIT $4{pick}) \
             RETURNING {COLUMNS}"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(worker)
                .bind(DbTime(lease_until))
                .bind(DbTime(now))
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Records an attempt by `worker`; false when the row is no longer leased to it (its lease
    /// ran out and another sender took it).
    pub async fn record_attempt(
        &self,
        id: &str,
        worker: &str,
        attempt: Attempt<'_>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (status, error, next) = match attempt {
            Attempt::Delivered => (DeliveryStatus::Delivered, None, now),
            Attempt::Retry { error, at } => (DeliveryStatus::Pending, Some(error), at),
            Attempt::Dead { error } => (DeliveryStatus::Dead, Some(error), now),
        };
        let finished = (status != DeliveryStatus::Pending).then_some(DbTime(now));
        let status = status.as_str();
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET status = $3, attempts = attempts + 1, next_attempt_at = $4, \
                 last_error = COALESCE($5, last_error), finished_at = $6, leased_by = NULL, \
                 leased_until = NULL WHERE id = $1 AND leased_by = $2 AND status = 'pending'",
            )
            .bind(id)
            .bind(worker)
            .bind(status)
            .bind(DbTime(next))
            .bind(error.map(|e| e.replace('\0', "")))
            .bind(finished)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Notifications, newest first, optionally only those in `status`; `before` is the
    /// cursor: the (created_at, id) of the last one already seen.
    pub async fn notifications(
        &self,
        status: Option<&str>,
        before: Option<(OffsetDateTime, String)>,
        limit: i64,
    ) -> Result<Vec<Notification>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let (at, id) = crate::db_time::cursor_binds(before);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(status)
                .bind(at)
                .bind(id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn notification(&self, id: &str) -> Result<Option<Notification>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        }))
    }

    /// Puts a dead letter back in the queue with a fresh set of attempts; false when it is not
    /// a dead letter.
    pub async fn requeue_notification(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2, \
                 finished_at = NULL WHERE id = $1 AND status = 'dead'",
            )
            .bind(id)
            .bind(DbTime(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed > 0)
    }

    /// How many notifications are in each status, for metrics.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status")
                .fetch_all(pool)
                .await?
        }))
    }
}
