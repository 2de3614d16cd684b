//! The writer task: it gathers queued events into one batch, seals them after the chain head
//! and appends them with one guarded INSERT, carrying the waiting usage rows in the same commit.

use std::sync::Arc;
use std::time::Instant;

use ajutant_core::audit::{AuditRecord, ChainHash};
use sqlx::{Postgres, QueryBuilder, Sqlite};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::chain::parse_hash;
use super::{AuditError, AuditReceipt, Pending, RIDE_FOR, USAGE_RETRY_AFTER};
use crate::db_time::DbTime;
use crate::usage::{self, UsageRecord, insert_usage_rows};
use crate::{Pool, Store, StoreError};

/// Key of the PostgreSQL advisory lock that serialises appends across instances (the bytes of
/// "AUDITLOG"). It is taken inside a transaction begun explicitly READ COMMITTED: under a
/// stricter default the head read under the lock would see the snapshot from before the lock
/// was granted. (Sending the lock with the BEGIN would save a round trip, but a failed lock
/// there leaves sqlx unaware of the aborted transaction, and the connection would go back to
/// the pool broken.)
const CHAIN_LOCK_KEY: i64 = 0x4155_4449_544c_4f47;

/// A stale remembered head costs one attempt; the second reads the head under the lock.
const MAX_SEAL_ATTEMPTS: usize = 3;

const HEAD_SQL: &str = "SELECT seq, id, hash FROM audit_events ORDER BY seq DESC LIMIT 1";

/// SQLite's insert is `INSERT_SQL` + `SELECT * FROM (VALUES ...)` + `HEAD_GUARD_SQL` + the head:
/// it inserts only if the newest stored hash is the one the batch was sealed after
/// (`IS NOT DISTINCT FROM` also matches NULL, the empty chain).
const INSERT_SQL: &str = concat!("INSERT INTO audit_events (", columns!(), ") ");
const HEAD_GUARD_SQL: &str = concat!(" WHERE ", newest_hash!(), " IS NOT DISTINCT FROM ");

/// PostgreSQL's: one array per column, the same guard.
const POSTGRES_UNNEST_INSERT_SQL: &str = concat!(
    "INSERT INTO audit_events (",
    columns!(),
    ") SELECT * FROM UNNEST($1::int8[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
     $13::text[], $14::text[], $15::text[]) WHERE ",
    newest_hash!(),
    " IS NOT DISTINCT FROM $16"
);

/// Usage rows waiting for a transaction to carry them.
#[derive(Default)]
struct Riders {
    rows: Vec<UsageRecord>,
    /// When they are written even if no audit record comes.
    due: Option<tokio::time::Instant>,
    /// A transaction carrying them failed: they go on their own from now on, so whatever
    /// failed can never hold up the audit trail.
    alone: bool,
}

impl Riders {
    fn has_room(&self) -> bool {
        self.rows.len() < usage::MAX_ROWS
    }

    /// Takes what is already queued, without waiting.
    fn gather(&mut self, queue: &mut mpsc::Receiver<UsageRecord>) {
        while self.has_room() {
            match queue.try_recv() {
                Ok(row) => self.rows.push(row),
                Err(_) => break,
            }
        }
        if !self.rows.is_empty() {
            self.due
                .get_or_insert_with(|| tokio::time::Instant::now() + RIDE_FOR);
        }
    }

    /// The rows the next audit transaction carries.
    fn carried(&self) -> &[UsageRecord] {
        if self.alone { &[] } else { &self.rows }
    }

    fn written(&mut self) {
        *self = Self::default();
    }

    fn failed(&mut self, error: &StoreError) {
        tracing::error!(%error, rows = self.rows.len(), "cannot write usage records; retrying");
        self.alone = true;
        self.due = Some(tokio::time::Instant::now() + USAGE_RETRY_AFTER);
    }

    /// Writes the rows in a transaction of their own. If that fails, each row is tried alone:
    /// when some go in, the ones refused are bad rows (logged in full and counted, not retried
    /// for ever); when none do, the database is the problem and all wait for the next try.
    async fn write_alone(&mut self, store: &Store) {
        let error = match store.insert_usage(&self.rows).await {
            Ok(()) => {
                metrics::counter!("ajutant_usage_records_total").increment(self.rows.len() as u64);
                self.written();
                return;
            }
            Err(error) => error,
        };
        if self.rows.len() > 1 {
            let rows = std::mem::take(&mut self.rows);
            let total = rows.len();
            let mut refused = Vec::new();
            for row in rows {
                if let Err(error) = store.insert_usage(std::slice::from_ref(&row)).await {
                    refused.push((row, error));
                }
            }
            if refused.len() < total {
                metrics::counter!("ajutant_usage_records_total")
                    .increment((total - refused.len()) as u64);
                for (row, error) in refused {
                    tracing::error!(%error, ?row, "the database refuses a usage record; dropped");
                    metrics::counter!("ajutant_usage_records_refused_total").increment(1);
                }
                self.written();
                return;
            }
            self.rows = refused.into_iter().map(|(row, _)| row).collect();
        }
        self.failed(&error);
    }
}

pub(super) async fn write_loop(
    store: Store,
    mut receiver: mpsc::Receiver<Pending>,
    mut usage: mpsc::Receiver<UsageRecord>,
    mut closed: oneshot::Receiver<()>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut riders = Riders::default();
    let mut usage_open = true;
    let mut head = None;
    loop {
        let due = riders.due;
        let room = usage::MAX_ROWS.saturating_sub(riders.rows.len());
        // Audit records first: a caller is waiting on each. Usage rows wait to ride along.
        let received = tokio::select! {
            biased;
            received = receiver.recv_many(&mut batch, max_batch) => received,
            received = usage.recv_many(&mut riders.rows, room), if usage_open && room > 0 =>
            {
                usage_open = received > 0;
                riders.gather(&mut usage);
                if !riders.has_room() && !riders.alone {
                    riders.write_alone(&store).await;
                }
                continue;
            }
            () = sleep_until_due(due), if due.is_some() => {
                riders.write_alone(&store).await;
                continue;
            }
            _ = &mut closed, if !closed.is_terminated() => {
                // New appends are refused from here; what is queued is still written.
                receiver.close();
                continue;
            }
        };
        if received == 0 {
            break;
        }
        riders.gather(&mut usage);
        let carried = riders.carried().len();
        let started = Instant::now();
        let mut result = store
            .append_audit_batch(&mut head, &batch, riders.carried())
            .await;
        if carried > 0
            && let Err(error) = &result
        {
            // Whatever failed, usage rows must never cost a caller its audit record: the rows
            // go alone from now on, and the records are tried once more without them (unless
            // the database is out of reach, where a second try only doubles the callers' wait).
            let unavailable = error.is_unavailable();
            riders.failed(error);
            if !unavailable {
                result = store.append_audit_batch(&mut head, &batch, &[]).await;
            }
        }
        metrics::histogram!("ajutant_audit_batch_size").record(batch.len() as f64);
        metrics::histogram!("ajutant_audit_commit_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(records) => {
                metrics::counter!("ajutant_audit_records_total").increment(records.len() as u64);
                if carried > 0 && !riders.alone {
                    metrics::counter!("ajutant_usage_records_total").increment(carried as u64);
                    riders.written();
                }
                for (pending, record) in batch.drain(..).zip(records) {
                    let receipt = AuditReceipt {
                        seq: record.seq,
                        id: record.id,
                        hash: record.hash,
                    };
                    // The caller may have gone away; its record is written all the same.
                    let _ = pending.reply.send(Ok(receipt));
                }
            }
            Err(error) => {
                metrics::counter!("ajutant_audit_write_failures_total").increment(1);
                tracing::error!(%error, records = batch.len(), "audit batch not written");
                let error = Arc::new(error);
                for pending in batch.drain(..) {
                    let _ = pending
                        .reply
                        .send(Err(AuditError::WriteFailed(Arc::clone(&error))));
                }
            }
        }
    }
    drain_usage(&store, usage, riders).await;
}

async fn sleep_until_due(due: Option<tokio::time::Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// At shutdown: writes every usage row still queued (later ones count as lost).
async fn drain_usage(store: &Store, mut usage: mpsc::Receiver<UsageRecord>, mut riders: Riders) {
    usage.close();
    loop {
        riders.gather(&mut usage);
        if riders.rows.is_empty() {
            return;
        }
        riders.write_alone(store).await;
        if !riders.rows.is_empty() {
            usage::lost(riders.rows.len());
            return;
        }
    }
}

/// The last record of the chain: `None` while the chain is empty.
type ChainHead = Option<(i64, ChainHash)>;

/// How one try at appending a batch went.
enum Attempt {
    Written(Vec<AuditRecord>),
    /// Another instance appended since this writer last did; its remembered head is stale.
    StaleHead,
}

impl Store {
    /// Appends `batch` after the chain head; `known_head` is the writer's memory of it (`None`
    /// when unknown).
    async fn append_audit_batch(
        &self,
        known_head: &mut Option<ChainHead>,
        batch: &[Pending],
        riders: &[UsageRecord],
    ) -> Result<Vec<AuditRecord>, StoreError> {
        for _ in 0..MAX_SEAL_ATTEMPTS {
            match self.try_append(*known_head, batch, riders).await {
                Ok(Attempt::Written(records)) => {
                    *known_head = Some(records.last().map(|r| (r.seq, r.hash)));
                    return Ok(records);
                }
                Ok(Attempt::StaleHead) => {
                    metrics::counter!("ajutant_audit_stale_head_total").increment(1);
                    *known_head = None;
                }
                Err(error) => {
                    // The outcome may be unknown (a commit can land unacknowledged): re-read.
                    *known_head = None;
                    return Err(error);
                }
            }
        }
        Err(StoreError::Contention)
    }

    /// One transaction under the chain lock: head (remembered or read), seal, insert (with the
    /// usage rows riding along), commit.
    async fn try_append(
        &self,
        known_head: Option<ChainHead>,
        batch: &[Pending],
        riders: &[UsageRecord],
    ) -> Result<Attempt, StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let head = match known_head {
                    Some(head) => head,
                    None => chain_head(sqlx::query_as(HEAD_SQL).fetch_optional(&mut *tx).await?)?,
                };
                let records = seal_batch(head, batch);
                let inserted = sqlite_insert(head, &records)
                    .build()
                    .execute(&mut *tx)
                    .await;
                let attempt = settle(inserted.map(|done| done.rows_affected()), records)?;
                if matches!(attempt, Attempt::Written(_)) {
                    insert_usage_rows!(Sqlite, &mut *tx, riders);
                    tx.commit().await?;
                }
                Ok(attempt)
            }
            Pool::Postgres(pool) => {
                let mut tx = pool
                    .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
                    .await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(CHAIN_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                let head = match known_head {
                    Some(head) => head,
                    None => chain_head(sqlx::query_as(HEAD_SQL).fetch_optional(&mut *tx).await?)?,
                };
                let records = seal_batch(head, batch);
                let inserted = postgres_insert(head, &records).execute(&mut *tx).await;
                let attempt = settle(inserted.map(|done| done.rows_affected()), records)?;
                if matches!(attempt, Attempt::Written(_)) {
                    insert_usage_rows!(Postgres, &mut *tx, riders);
                    tx.commit().await?;
                }
                Ok(attempt)
            }
        }
    }
}

/// The head row as read, checked.
fn chain_head(row: Option<(i64, Uuid, String)>) -> Result<ChainHead, StoreError> {
    match row {
        Some((seq, id, hash)) => Ok(Some((seq, parse_hash(seq, id, "hash", &hash)?))),
        None => Ok(None),
    }
}

/// What a guarded INSERT's outcome means. Nothing inserted, or a taken `seq`, means the head the
/// batch was sealed after is no longer the chain's head; the transaction is then rolled back
/// when it is dropped.
fn settle(
    inserted: Result<u64, sqlx::Error>,
    records: Vec<AuditRecord>,
) -> Result<Attempt, StoreError> {
    match inserted {
        Ok(rows) if rows == records.len() as u64 => Ok(Attempt::Written(records)),
        Ok(_) => Ok(Attempt::StaleHead),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(Attempt::StaleHead),
        Err(other) => Err(other.into()),
    }
}

/// Seals `batch` as the records after `head`.
fn seal_batch(head: ChainHead, batch: &[Pending]) -> Vec<AuditRecord> {
    let mut prev = head;
    let mut records = Vec::with_capacity(batch.len());
    for pending in batch {
        let record = AuditRecord::seal(&pending.event, pending.id, pending.occurred_at, prev);
        prev = Some((record.seq, record.hash));
        records.push(record);
    }
    records
}

/// SQLite: one multi-row `INSERT ... SELECT * FROM (VALUES ...)`, guarded by the head.
fn sqlite_insert(head: ChainHead, records: &[AuditRecord]) -> QueryBuilder<'_, Sqlite> {
    let mut insert = QueryBuilder::new(INSERT_SQL);
    insert.push("SELECT * FROM (");
    insert.push_values(records, |mut row, record| {
        row.push_bind(record.seq)
            .push_bind(record.id)
            .push_bind(DbTime(record.occurred_at))
            .push_bind(record.actor.id.as_str())
            .push_bind(record.actor.display_name.as_str())
            .push_bind(record.actor.kind.as_str())
            .push_bind(record.action.as_str())
            .push_bind(record.resource.as_str())
            .push_bind(record.outcome.as_str())
            .push_bind(record.origin.request_id.as_deref())
            .push_bind(record.origin.trace_id.as_deref())
            .push_bind(record.origin.client_addr.as_deref())
            .push_bind(record.details.as_str())
            .push_bind(record.prev_hash.to_hex())
            .push_bind(record.hash.to_hex());
    });
    insert.push(")");
    insert.push(HEAD_GUARD_SQL);
    insert.push_bind(head.map(|(_, hash)| hash.to_hex()));
    insert
}

/// PostgreSQL: one array per column through `UNNEST`, so every batch size is the same
/// statement, prepared once per connection; guarded by the head.
fn postgres_insert(
    head: ChainHead,
    records: &[AuditRecord],
) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
    fn column<T>(records: &[AuditRecord], value: impl Fn(&AuditRecord) -> T) -> Vec<T> {
        records.iter().map(value).collect()
    }
    sqlx::query(POSTGRES_UNNEST_INSERT_SQL)
        .bind(column(records, |r| r.seq))
        .bind(column(records, |r| r.id))
        .bind(column(records, |r| r.occurred_at))
        .bind(column(records, |r| r.actor.id.clone()))
        .bind(column(records, |r| r.actor.display_name.clone()))
        .bind(column(records, |r| r.actor.kind.as_str()))
        .bind(column(records, |r| r.action.clone()))
        .bind(column(records, |r| r.resource.clone()))
        .bind(column(records, |r| r.outcome.as_str()))
        .bind(column(records, |r| r.origin.request_id.clone()))
        .bind(column(records, |r| r.origin.trace_id.clone()))
        .bind(column(records, |r| r.origin.client_addr.clone()))
        .bind(column(records, |r| r.details.clone()))
        .bind(column(records, |r| r.prev_hash.to_hex()))
        .bind(column(records, |r| r.hash.to_hex()))
        .bind(head.map(|(_, hash)| hash.to_hex()))
}
