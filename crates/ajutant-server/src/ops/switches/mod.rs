//! Kill switches: the platform, one assistant, one deployment. The stored rows are the truth
//! (they survive restarts); each instance keeps them in a [`Switchboard`] that every request and
//! every running stream consults. An instance reloads the rows when the switch revision moves,
//! checked at once when the operations bus announces a switch (PostgreSQL `NOTIFY`) and every
//! [`POLL_EVERY`] in any case, so every instance obeys well within two seconds. A running
//! stream waits on [`Switchboard::disabled`] beside its model stream and ends when it resolves.
//! Who may flip which switch is `service.rs`; the API is `routes.rs`.

pub(crate) mod routes;
pub(crate) mod service;

pub(crate) use routes::switch_view;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ajutant_core::switch::{SwitchState, SwitchTarget};
use ajutant_store::{KillSwitch, Store};
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

use super::bus::OpsEvent;

/// The longest an instance goes without checking the switch revision.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(500);

/// Who pulled something, and why; shown to IT operations, never to end users.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pulled {
    pub reason: String,
    pub by_name: String,
    pub at: OffsetDateTime,
}

/// The switches in force, as loaded from the store.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct InForce {
    platform: Option<Pulled>,
    assistants: HashMap<String, Pulled>,
    deployments: HashMap<String, Pulled>,
}

impl InForce {
    fn from_rows(rows: &[KillSwitch]) -> Self {
        let mut state = Self::default();
        for row in rows.iter().filter(|row| row.state == SwitchState::Killed) {
            let pulled = Pulled {
                reason: row.reason.clone(),
                by_name: row.changed_by_name.clone(),
                at: row.changed_at,
            };
            match row.target {
                SwitchTarget::Platform => state.platform = Some(pulled),
                SwitchTarget::Assistant => {
                    state.assistants.insert(row.target_id.clone(), pulled);
                }
                SwitchTarget::Deployment => {
                    state.deployments.insert(row.target_id.clone(), pulled);
                }
            }
        }
        state
    }

    pub(crate) fn assistant(&self, id: &str) -> Option<&Pulled> {
        self.assistants.get(id)
    }

    pub(crate) fn deployment(&self, name: &str) -> Option<&Pulled> {
        self.deployments.get(name)
    }

    /// What stops a call for this assistant and deployment, as a message for its user.
    pub(crate) fn blocks(
        &self,
        assistant: Option<&str>,
        deployment: Option<&str>,
    ) -> Option<Disabled> {
        if self.platform.is_some() {
            return Some(Disabled {
                code: "platform_disabled",
                message: "Ajutant has been switched off by IT operations".to_owned(),
            });
        }
        if let Some(id) = assistant
            && self.assistants.contains_key(id)
        {
            return Some(Disabled {
                code: "assistant_disabled",
                message: format!("the assistant {id} has been disabled"),
            });
        }
        if let Some(name) = deployment
            && self.deployments.contains_key(name)
        {
            return Some(Disabled {
                code: "deployment_disabled",
                message: format!("the model deployment {name} has been disabled"),
            });
        }
        None
    }
}

/// Why a call may not run, for the user: a stable code and a message without the internal
/// reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Disabled {
    pub code: &'static str,
    pub message: String,
}

/// This instance's view of the kill switches. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Switchboard {
    state: Arc<watch::Sender<Arc<InForce>>>,
}

impl Switchboard {
    /// Loads the stored switches; called before the instance serves anything.
    pub async fn load(store: &Store) -> Result<Self, ajutant_store::StoreError> {
        let rows = store.kill_switches().await?;
        let (sender, _) = watch::channel(Arc::new(InForce::from_rows(&rows)));
        Ok(Self {
            state: Arc::new(sender),
        })
    }

    pub(crate) fn current(&self) -> Arc<InForce> {
        Arc::clone(&self.state.borrow())
    }

    /// Reads the stored switches again and publishes them if they changed.
    pub(crate) async fn reload(&self, store: &Store) -> Result<(), ajutant_store::StoreError> {
        let fresh = InForce::from_rows(&store.kill_switches().await?);
        self.state.send_if_modified(|state| {
            if **state == fresh {
                false
            } else {
                *state = Arc::new(fresh);
                true
            }
        });
        Ok(())
    }

    /// Resolves when the platform, `assistant` or `deployment` is switched off (at once if it
    /// already is). Owns what it needs, so a stream can keep it.
    pub(crate) fn disabled(
        &self,
        assistant: Option<String>,
        deployment: Option<String>,
    ) -> impl Future<Output = Disabled> + Send + 'static {
        let mut receiver = self.state.subscribe();
        async move {
            let found = receiver
                .wait_for(|state| {
                    state
                        .blocks(assistant.as_deref(), deployment.as_deref())
                        .is_some()
                })
                .await
                .ok()
                .and_then(|state| state.blocks(assistant.as_deref(), deployment.as_deref()));
            match found {
                Some(disabled) => disabled,
                // The switchboard is gone: the server is stopping; nothing more to wait for.
                None => std::future::pending().await,
            }
        }
    }

    /// Keeps this instance's switches current until `stop` is set: reloads when the revision
    /// moves, looked at every [`POLL_EVERY`] and at once when the bus announces a switch.
    pub(crate) async fn follow(
        self,
        store: Store,
        mut events: broadcast::Receiver<OpsEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut seen = store.switch_revision().await.ok();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                event = events.recv() => match event {
                    Ok(event) if event.kind != "switch" => continue,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
            match store.switch_revision().await {
                Ok(revision) if Some(revision) == seen => {}
                Ok(revision) => match self.reload(&store).await {
                    Ok(()) => seen = Some(revision),
                    Err(error) => tracing::warn!(%error, "cannot reload the kill switches"),
                },
                Err(error) => tracing::warn!(%error, "cannot read the kill switch revision"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: &str, id: &str, state: &str) -> KillSwitch {
        KillSwitch {
            target: target.parse().unwrap(),
            target_id: id.to_owned(),
            state: state.parse().unwrap(),
            reason: "why".to_owned(),
            changed_by: "p".to_owned(),
            changed_by_name: "P".to_owned(),
            changed_by_role: "it_ops".to_owned(),
            changed_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn only_killed_rows_block_and_the_platform_blocks_everything() {
        let state = InForce::from_rows(&[
            row("assistant", "hr", "killed"),
            row("assistant", "it", "active"),
            row("deployment", "gpt", "killed"),
        ]);
        assert_eq!(
            state.blocks(Some("hr"), Some("offline")).map(|d| d.code),
            Some("assistant_disabled")
        );
        assert_eq!(state.blocks(Some("it"), Some("offline")), None);
        assert_eq!(
            state.blocks(Some("it"), Some("gpt")).map(|d| d.code),
            Some("deployment_disabled")
        );
        let everything = InForce::from_rows(&[row("platform", "", "killed")]);
        assert_eq!(
            everything.blocks(None, None).map(|d| d.code),
            Some("platform_disabled")
        );
    }

    #[tokio::test]
    async fn a_waiting_stream_hears_of_a_kill() {
        let (sender, _) = watch::channel(Arc::new(InForce::default()));
        let board = Switchboard {
            state: Arc::new(sender),
        };
        #[allow(clippy::disallowed_methods, reason = "a waiter the test joins")]
        let waiting = tokio::spawn(board.disabled(Some("hr".to_owned()), None));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        board.state.send_replace(Arc::new(InForce::from_rows(&[row(
            "assistant",
            "it",
            "killed",
        )])));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "another assistant's kill is not ours"
        );
        board.state.send_replace(Arc::new(InForce::from_rows(&[row(
            "assistant",
            "hr",
            "killed",
        )])));
        let disabled = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(
            matches!(
                disabled,
                Ok(Ok(Disabled {
                    code: "assistant_disabled",
                    ..
                }))
            ),
            "{disabled:?}"
        );
    }
}
