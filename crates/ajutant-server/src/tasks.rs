//! Work that outlives the request that started it (a turn's stream pump, a credential re-read)
//! is spawned here and nowhere else, so shutdown can wait for it: a detached task would be cut
//! off mid-write when the process exits, and an answer being stored or an audit record being
//! written would be lost. `clippy.toml` forbids `tokio::spawn` elsewhere.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::{AbortHandle, JoinSet};

/// The background tasks of one running server. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    running: Arc<Mutex<JoinSet<()>>>,
}

impl Tasks {
    /// Runs `task` in the background; [`Tasks::join`] waits for it.
    pub fn spawn<F>(&self, task: F) -> AbortHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        // Finished tasks are reaped here, so the set holds only what still runs.
        while running.try_join_next().is_some() {}
        running.spawn(task)
    }

    /// How many tasks are still running.
    pub fn len(&self) -> usize {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        while running.try_join_next().is_some() {}
        running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits up to `grace` for every task, then aborts what is left. Tasks spawned while this
    /// waits are waited for too.
    pub async fn join(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let mut running = {
                let mut shared = self.running.lock().unwrap_or_else(PoisonError::into_inner);
                std::mem::take(&mut *shared)
            };
            if running.is_empty() {
                return;
            }
            let drained = tokio::time::timeout_at(deadline, async {
                while let Some(ended) = running.join_next().await {
                    if let Err(error) = ended
                        && !error.is_cancelled()
                    {
                        tracing::warn!(%error, "a background task ended abnormally");
                    }
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    left = running.len(),
                    "background tasks still running after {grace:?}; stopping them"
                );
                running.abort_all();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn join_waits_for_every_task_and_aborts_the_ones_past_the_grace() {
        let tasks = Tasks::default();
        let done = Arc::new(AtomicUsize::new(0));
        for delay in [10, 30] {
            let done = Arc::clone(&done);
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        tasks.join(Duration::from_secs(5)).await;
        assert_eq!(done.load(Ordering::SeqCst), 2);
        assert!(tasks.is_empty());

        let stuck = Arc::clone(&done);
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            stuck.fetch_add(1, Ordering::SeqCst);
        });
        tasks.join(Duration::from_millis(20)).await;
        assert_eq!(done.load(Ordering::SeqCst), 2, "the stuck task was aborted");
    }
}
