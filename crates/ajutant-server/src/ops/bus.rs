//! The operations bus: each instance follows the stored operations events (escalations,
//! incident changes, switches) and rebroadcasts them in process, to the live feeds open on it
//! and to its switchboard. Whatever instance wrote an event, every instance hears it:
//!
//! - on PostgreSQL a listener task receives the `NOTIFY` sent in the writing transaction, so
//!   an event is heard as soon as it commits;
//! - every [`POLL_EVERY`] (and at once after a local write, see [`OpsBus::poke`]) the recent
//!   events are read as well, which covers SQLite, a listener connection that dropped, and a
//!   notification missed while reconnecting.
//!
//! An event is broadcast once per instance however it was heard (ids are remembered for a
//! while). The poll looks back [`LOOK_BACK`] beyond the newest event seen, because events are
//! stamped with their writer's clock and commit in a slightly different order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ajutant_store::Store;
use time::OffsetDateTime;
use tokio::sync::{Notify, broadcast, mpsc, watch};

pub(crate) use ajutant_store::OpsEvent;

const POLL_EVERY: Duration = Duration::from_secs(1);
const LOOK_BACK: time::Duration = time::Duration::seconds(10);
/// How long an event id is remembered, to drop a second hearing of it.
const REMEMBER: time::Duration = time::Duration::seconds(120);
/// Events kept in the database; the feed needs only recent ones.
const KEEP: time::Duration = time::Duration::days(1);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// After the listener's connection fails, the wait before connecting again.
const RELISTEN_AFTER: Duration = Duration::from_secs(2);

/// The in-process side of the bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OpsBus {
    sender: broadcast::Sender<OpsEvent>,
    wake: Arc<Notify>,
}

impl Default for OpsBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
            wake: Arc::new(Notify::new()),
        }
    }
}

impl OpsBus {
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<OpsEvent> {
        self.sender.subscribe()
    }

    /// Reads the stored events now rather than at the next poll: this instance just wrote one.
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    /// Follows the stored events until `stop` is set.
    pub(crate) async fn follow(self, store: Store, mut stop: watch::Receiver<bool>) {
        let (heard, mut announcements) = mpsc::channel::<Option<String>>(256);
        #[allow(
            clippy::disallowed_methods,
            reason = "the LISTEN task, aborted when follow ends"
        )]
        let listener = tokio::spawn(listen(store.clone(), heard, stop.clone()));
        let mut seen: HashMap<String, OffsetDateTime> = HashMap::new();
        // Events written before this instance started are not news.
        let mut newest = OffsetDateTime::now_utc();
        let mut last_purge = tokio::time::Instant::now();
        // False once the listener has ended (at once on SQLite): a closed channel is ready on
        // every turn, so asking it again would turn this loop into a busy poll.
        let mut listening = true;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                announced = announcements.recv(), if listening => {
                    match announced {
                        Some(Some(id)) => {
                            match store.ops_event(&id).await {
                                Ok(Some(event)) => self.publish(event, &mut seen, &mut newest),
                                Ok(None) => {}
                                Err(error) => tracing::warn!(%error, "cannot read an operations event"),
                            }
                            continue;
                        }
                        // The listener lost its connection: poll now, and go on listening.
                        Some(None) => {}
                        // The listener has ended: poll from now on.
                        None => listening = false,
                    }
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
            match store.ops_events_after(newest - LOOK_BACK, 500).await {
                Ok(events) => {
                    for event in events {
                        self.publish(event, &mut seen, &mut newest);
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot read the operations events"),
            }
            seen.retain(|_, at| *at > newest - REMEMBER);
            if last_purge.elapsed() >= PURGE_EVERY {
                last_purge = tokio::time::Instant::now();
                if let Err(error) = store
                    .purge_ops_events(OffsetDateTime::now_utc() - KEEP)
                    .await
                {
                    tracing::warn!(%error, "cannot purge old operations events");
                }
            }
        }
        listener.abort();
    }

    fn publish(
        &self,
        event: OpsEvent,
        seen: &mut HashMap<String, OffsetDateTime>,
        newest: &mut OffsetDateTime,
    ) {
        if seen.contains_key(&event.id) {
            return;
        }
        seen.insert(event.id.clone(), event.created_at);
        if event.created_at > *newest {
            *newest = event.created_at;
        }
        // No receivers is fine: no feed is open and the switchboard only polls.
        let _ = self.sender.send(event);
    }
}

/// On PostgreSQL, forwards each announced event id; `None` when the connection was lost (so
/// the follower polls). Reconnects after a failure. Does nothing on SQLite.
async fn listen(
    store: Store,
    heard: mpsc::Sender<Option<String>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let mut listener = match store.ops_listener().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for operations events; polling");
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(RELISTEN_AFTER) => continue,
                }
            }
        };
        loop {
            // The listener runs in this task alone, so nothing it is doing is ever cancelled
            // half-way by the follower's select.
            let next = tokio::select! {
                _ = stop.changed() => return,
                next = listener.next() => next,
            };
            match next {
                Ok(id) => {
                    if heard.send(id).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "the operations listener failed; reconnecting");
                    let _ = heard.send(None).await;
                    tokio::time::sleep(RELISTEN_AFTER).await;
                    break;
                }
            }
        }
    }
}
