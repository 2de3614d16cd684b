//! The audit trail's storage: a group-commit writer that appends hash-chained records, and the
//! reads that `audit verify` and `audit export` walk.
//!
//! Appends go through one writer task per process. It takes every event waiting in its queue
//! (up to `max_batch`), writes them with one INSERT (one commit) and only then answers each
//! caller, so a request still waits until its record is durable while a busy server pays one
//! commit for many records.
//!
//! The same transactions carry the gateway's usage rows ([`UsageLog`]), which need no caller
//! to wait: they ride along with the next audit commit, or go alone after a short wait when
//! the server is idle. One writer per database means no second transaction queueing for
//! SQLite's write lock while a request waits on its audit record.
//!
//! Writers on one database take turns: SQLite's `BEGIN IMMEDIATE` takes the write lock, and on
//! PostgreSQL the first statement of the transaction takes a transaction-scoped advisory lock
//! (waiters queue in order). The writer remembers the chain head it last
//! wrote and seals the next batch after it without reading it again. The INSERT itself checks
//! that the newest stored hash is still that head and inserts nothing otherwise (another
//! instance appended, or the database lost commits in a fail-over or restore); the writer then
//! reads the head under the lock and seals again. A steady-state append is four round trips on
//! PostgreSQL: BEGIN, lock, INSERT, COMMIT.

/// Every column, in the order the inserts bind and the reads decode them. A macro so the SQL
/// below can be assembled with `concat!` at compile time.
macro_rules! columns {
    () => {
        "seq, id, occurred_at, actor_id, actor_name, actor_kind, action, resource, outcome, \
         request_id, trace_id, client_addr, details, prev_hash, hash"
    };
}

/// The newest stored hash: NULL for an empty chain.
macro_rules! newest_hash {
    () => {
        "(SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1)"
    };
}

mod chain;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use ajutant_core::audit::{AuditEvent, ChainHash};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::usage::{UsageLog, UsageRecord};
use crate::{Store, StoreError};
use writer::write_loop;

pub use chain::{AuditQuery, ChainStatus};

/// What an appender learns once its record is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReceipt {
    pub seq: i64,
    pub id: Uuid,
    pub hash: ChainHash,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("the audit writer has stopped")]
    WriterStopped,
    #[error("writing the audit record failed: {0}")]
    WriteFailed(Arc<StoreError>),
}

impl AuditError {
    /// Whether the record could not be written because the database is out of reach.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::WriteFailed(error) => error.is_unavailable(),
            Self::WriterStopped => false,
        }
    }
}

struct Pending {
    id: Uuid,
    occurred_at: OffsetDateTime,
    event: AuditEvent,
    reply: oneshot::Sender<Result<AuditReceipt, AuditError>>,
}

/// The handle request handlers append through. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
    usage: mpsc::Sender<UsageRecord>,
}

/// The writer task. [`AuditWriter::finish`] stops it taking new events, lets it write what is
/// already queued, and waits for that. Dropping it unfinished closes the queue the same way,
/// without waiting.
#[derive(Debug)]
pub struct AuditWriter {
    task: JoinHandle<()>,
    close: oneshot::Sender<()>,
}

/// Usage rows queued before their senders wait for room.
const USAGE_QUEUE: usize = 10_000;
/// How long usage rows wait for an audit commit to ride in before they are written alone. Only
/// an idle server gets there; a busy one commits audit records far more often.
const RIDE_FOR: Duration = Duration::from_millis(250);
/// After a failed write, usage rows are retried (on their own) this much later.
const USAGE_RETRY_AFTER: Duration = Duration::from_secs(1);

impl AuditLog {
    /// Starts the writer for `store`.
    pub fn start(store: Store, max_batch: usize) -> (AuditLog, AuditWriter) {
        let max_batch = max_batch.max(1);
        let (queue, receiver) = mpsc::channel(max_batch * 4);
        let (usage, usage_receiver) = mpsc::channel(USAGE_QUEUE);
        let (close, closed) = oneshot::channel();
        #[allow(
            clippy::disallowed_methods,
            reason = "the writer task: AuditWriter::finish joins it"
        )]
        let task = tokio::spawn(write_loop(
            store,
            receiver,
            usage_receiver,
            closed,
            max_batch,
        ));
        (AuditLog { queue, usage }, AuditWriter { task, close })
    }

    /// Appends `event` and returns once it is committed to the database.
    pub async fn append(&self, event: AuditEvent) -> Result<AuditReceipt, AuditError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            id: Uuid::now_v7(),
            occurred_at: OffsetDateTime::now_utc(),
            event,
            reply,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        answer.await.map_err(|_| AuditError::WriterStopped)?
    }

    /// Where model calls record their usage: the rows are written by this writer, in the same
    /// transactions as audit records (or alone after [`RIDE_FOR`] when none come).
    pub fn usage_log(&self) -> UsageLog {
        UsageLog {
            sender: self.usage.clone(),
        }
    }
}

impl AuditWriter {
    /// Closes the queue (later appends get [`AuditError::WriterStopped`]), writes what is in it
    /// and the usage rows waiting, and waits up to `deadline` for that.
    pub async fn finish(self, deadline: Duration) {
        let _ = self.close.send(());
        let abort = self.task.abort_handle();
        if tokio::time::timeout(deadline, self.task).await.is_err() {
            tracing::error!("audit writer did not drain within {deadline:?}; stopping it");
            abort.abort();
        }
    }
}
