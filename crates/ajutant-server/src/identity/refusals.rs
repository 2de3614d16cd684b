//! Refused credentials, on the record without letting anyone fill the disk: per client address
//! and reason, the first few refusals of a window are recorded in full (`auth.rejected` with the
//! request's ids), the rest only counted, and the count is recorded once the window has passed
//! (`auth.rejected` with `repeated`). Forty junk tokens from one address cost a handful of
//! records, not forty fsyncs; a probe from a new address or with a new reason is always seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ajutant_core::audit::{AuditAction, AuditEvent, Outcome, RequestOrigin};
use ajutant_store::AuditLog;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::anonymous;

/// How long one window of counting lasts.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// Refusals per address and reason recorded in full in one window.
pub(crate) const IN_FULL: u32 = 5;
/// Addresses × reasons tracked at once; past this, new ones share one entry per reason, so a
/// spray from many addresses still costs a bounded number of records.
const MAX_TRACKED: usize = 10_000;
/// Stands in for the address once [`MAX_TRACKED`] is reached.
const MANY_ADDRESSES: &str = "(many addresses)";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    address: String,
    method: String,
    reason: String,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    first_at: OffsetDateTime,
    last_at: OffsetDateTime,
    in_full: u32,
    counted: u64,
}

/// Whether a refusal is recorded now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Note {
    InFull,
    Counted,
}

/// The refusals counted in a window that has passed.
#[derive(Debug)]
pub(crate) struct Summary {
    address: String,
    method: String,
    reason: String,
    repeated: u64,
    first_at: OffsetDateTime,
    last_at: OffsetDateTime,
}

impl Summary {
    fn event(&self) -> AuditEvent {
        AuditEvent::new(anonymous(), AuditAction::AuthRejected, "", Outcome::Denied)
            .with_origin(RequestOrigin {
                client_addr: Some(self.address.clone()),
                ..RequestOrigin::default()
            })
            .with_details(serde_json::json!({
                "method": self.method,
                "reason": self.reason,
                "repeated": self.repeated,
                "window_secs": WINDOW.as_secs(),
                "first_at": rfc3339(self.first_at),
                "last_at": rfc3339(self.last_at),
            }))
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// This instance's windows. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    windows: Arc<Mutex<HashMap<Key, Window>>>,
}

impl Ledger {
    /// Notes one refusal from `address` (None: unknown) and says whether to record it in full.
    pub(crate) fn note(&self, address: Option<&str>, method: &str, reason: &str) -> Note {
        let key = Key {
            address: address.unwrap_or("unknown").to_owned(),
            method: method.to_owned(),
            reason: reason.to_owned(),
        };
        self.note_at(key, Instant::now(), OffsetDateTime::now_utc())
    }

    fn note_at(&self, mut key: Key, now: Instant, wall: OffsetDateTime) -> Note {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&key) {
            key.address = MANY_ADDRESSES.to_owned();
        }
        let window = windows.entry(key).or_insert_with(|| Window {
            started: now,
            first_at: wall,
            last_at: wall,
            in_full: 0,
            counted: 0,
        });
        window.last_at = wall;
        if window.in_full < IN_FULL {
            window.in_full += 1;
            Note::InFull
        } else {
            window.counted += 1;
            Note::Counted
        }
    }

    /// Takes the windows that have passed (all of them when `all`), returning the counts to
    /// record; windows with nothing counted are simply forgotten.
    pub(crate) fn take_due(&self, all: bool) -> Vec<Summary> {
        self.take_due_at(all, Instant::now())
    }

    fn take_due_at(&self, all: bool, now: Instant) -> Vec<Summary> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        windows.retain(|key, window| {
            if !all && now.duration_since(window.started) < WINDOW {
                return true;
            }
            if window.counted > 0 {
                due.push(Summary {
                    address: key.address.clone(),
                    method: key.method.clone(),
                    reason: key.reason.clone(),
                    repeated: window.counted,
                    first_at: window.first_at,
                    last_at: window.last_at,
                });
            }
            false
        });
        due
    }

    /// Records the counts of the windows that have passed (all, when `all`).
    pub(crate) async fn flush(&self, audit: &AuditLog, all: bool) {
        for summary in self.take_due(all) {
            if let Err(error) = audit.append(summary.event()).await {
                tracing::error!(%error, repeated = summary.repeated, "cannot record counted refusals");
            }
        }
    }

    /// Records passed windows' counts once a window until `stop`; the last ones are flushed
    /// by the shutdown itself.
    pub(crate) async fn flush_periodically(self, audit: AuditLog, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(WINDOW) => self.flush(&audit, false).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(address: &str, reason: &str) -> Key {
        Key {
            address: address.to_owned(),
            method: "token".to_owned(),
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn the_first_few_are_in_full_then_counted_then_summed_up_per_window() {
        let ledger = Ledger::default();
        let start = Instant::now();
        let wall = OffsetDateTime::now_utc();
        let notes: Vec<Note> = (0..40)
            .map(|_| ledger.note_at(key("10.0.0.9", "malformed"), start, wall))
            .collect();
        assert_eq!(notes.iter().filter(|n| **n == Note::InFull).count(), 5);
        // Another reason, or another address, is seen in full.
        assert_eq!(
            ledger.note_at(key("10.0.0.9", "expired"), start, wall),
            Note::InFull
        );
        assert_eq!(
            ledger.note_at(key("10.0.0.10", "malformed"), start, wall),
            Note::InFull
        );
        assert!(ledger.take_due_at(false, start + WINDOW / 2).is_empty());
        let due = ledger.take_due_at(false, start + WINDOW);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!((due[0].repeated, due[0].reason.as_str()), (35, "malformed"));
        // A new window starts in full again.
        let later = start + WINDOW * 2;
        assert_eq!(
            ledger.note_at(key("10.0.0.9", "malformed"), later, wall),
            Note::InFull
        );
    }

    #[test]
    fn a_spray_from_many_addresses_is_bounded() {
        let ledger = Ledger::default();
        let now = Instant::now();
        let wall = OffsetDateTime::now_utc();
        let in_full = (0..(MAX_TRACKED + 1000))
            .filter(|n| {
                ledger.note_at(key(&format!("a{n}"), "malformed"), now, wall) == Note::InFull
            })
            .count();
        assert_eq!(in_full, MAX_TRACKED + IN_FULL as usize);
        let due = ledger.take_due_at(true, now);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].address, MANY_ADDRESSES);
        assert_eq!(due[0].repeated, 1000 - u64::from(IN_FULL));
    }
}
