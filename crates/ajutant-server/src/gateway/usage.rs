//! Usage records, written off the request path: calls hand their record to a channel and go on;
//! one task writes what has queued in a single transaction, so a busy gateway costs the
//! database one commit per batch, not one per call. At shutdown the queue is drained.

use std::time::Duration;

use ajutant_store::{Store, UsageRecord};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Calls waiting to be written before callers wait for room (backpressure, never loss).
const QUEUE: usize = 10_000;
/// Most records in one transaction.
const MAX_BATCH: usize = 500;
/// A failed batch is retried after this long, with the records kept.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Where calls send their usage. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UsageLog {
    sender: mpsc::Sender<UsageRecord>,
}

/// The writer task; [`UsageWriter::finish`] drains it.
#[derive(Debug)]
pub struct UsageWriter {
    task: JoinHandle<()>,
}

impl UsageLog {
    pub fn start(store: Store) -> (UsageLog, UsageWriter) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let task = tokio::spawn(write_loop(store, receiver));
        (UsageLog { sender }, UsageWriter { task })
    }

    /// Queues a record without waiting. If the queue is full, a task waits for room, so a
    /// slow database delays usage records but never drops them or the call that made them.
    pub fn record(&self, record: UsageRecord) {
        match self.sender.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(record)) => {
                let sender = self.sender.clone();
                tokio::spawn(async move {
                    if sender.send(record).await.is_err() {
                        lost();
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => lost(),
        }
    }
}

impl UsageWriter {
    /// Waits (up to `deadline`) for everything queued to be written. Every [`UsageLog`] clone
    /// must be dropped first, which closes the queue.
    pub async fn finish(self, deadline: Duration) {
        if tokio::time::timeout(deadline, self.task).await.is_err() {
            tracing::warn!("usage records still queued at exit were not written");
        }
    }
}

fn lost() {
    tracing::error!("the usage writer has stopped; a usage record is lost");
    metrics::counter!("ajutant_usage_records_lost_total").increment(1);
}

async fn write_loop(store: Store, mut receiver: mpsc::Receiver<UsageRecord>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        loop {
            match store.insert_usage(&batch).await {
                Ok(()) => {
                    metrics::counter!("ajutant_usage_records_total").increment(batch.len() as u64);
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, records = batch.len(), "cannot write usage records; retrying");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
        batch.clear();
    }
}
