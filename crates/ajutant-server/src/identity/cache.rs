//! Short-lived memory of what the database said about a credential, so that a busy API key or
//! token caller does not cost a database read on every request. Entries live at most
//! [`FRESH_FOR`]; what deprovisions or revokes on this instance (SCIM, the admin API) clears
//! them at once, and other instances notice within [`FRESH_FOR`], inside the one second the
//! product promises.
//!
//! Past [`REFRESH_AFTER`] an entry is still served, and the one caller told so re-reads it in
//! the background: a credential in steady use never waits on the database (measured in the
//! gateway benchmark: the synchronous re-read every half second was the tail of its latency).
//! A re-read that began before a [`CredentialCache::clear`] is not stored, so a revocation on
//! this instance cannot be undone by an answer read just before it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ajutant_store::ApiKey;

/// How long a cached answer is trusted.
pub(crate) const FRESH_FOR: Duration = Duration::from_millis(500);
/// From this age a cached answer is re-read in the background while it is still served.
pub(crate) const REFRESH_AFTER: Duration = Duration::from_millis(250);
/// `last_used_at` is written at most this often per key.
const MARK_USED_EVERY: Duration = Duration::from_secs(60);
/// Past this many entries, stale ones are swept.
const MAX_ENTRIES: usize = 10_000;

/// One answer from the database, and when it was read.
#[derive(Debug)]
struct Entry<T> {
    value: T,
    at: Instant,
    /// A caller has been told to re-read it.
    refreshing: bool,
}

impl<T: Clone> Entry<T> {
    fn new(value: T) -> Self {
        Self {
            value,
            at: Instant::now(),
            refreshing: false,
        }
    }

    fn is_fresh(&self) -> bool {
        self.at.elapsed() < FRESH_FOR
    }

    /// The answer while it is trusted; the first caller past [`REFRESH_AFTER`] is told to
    /// re-read it.
    fn serve(&mut self) -> Option<Cached<T>> {
        let age = self.at.elapsed();
        if age >= FRESH_FOR {
            return None;
        }
        let refresh = age >= REFRESH_AFTER && !self.refreshing;
        self.refreshing |= refresh;
        Some(Cached {
            value: self.value.clone(),
            refresh,
        })
    }
}

#[derive(Debug)]
struct CachedKey {
    entry: Entry<ApiKey>,
    marked_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<String, CachedKey>,
    deprovisioned: HashMap<String, Entry<bool>>,
    /// Moves on every [`CredentialCache::clear`].
    generation: u64,
}

/// A cached answer, and whether the caller should re-read it in the background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cached<T> {
    pub value: T,
    pub refresh: bool,
}

/// Which clearing an answer was read after; see [`CredentialCache::generation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation(u64);

/// Cheap to clone; clones share the memory.
#[derive(Debug, Clone, Default)]
pub struct CredentialCache {
    inner: Arc<Mutex<Inner>>,
}

impl CredentialCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take it before reading the database; answers remembered with an older one are dropped.
    pub(crate) fn generation(&self) -> Generation {
        Generation(self.lock().generation)
    }

    /// The lock, unless a [`CredentialCache::clear`] came after `read_at`: an answer read
    /// before it must not be stored.
    fn lock_if_current(&self, read_at: Generation) -> Option<std::sync::MutexGuard<'_, Inner>> {
        Some(self.lock()).filter(|inner| inner.generation == read_at.0)
    }

    /// The key with this public id, if it was read within [`FRESH_FOR`].
    pub(crate) fn key(&self, id: &str) -> Option<Cached<ApiKey>> {
        self.lock().keys.get_mut(id)?.entry.serve()
    }

    pub(crate) fn remember_key(&self, key: &ApiKey, read_at: Generation) {
        let Some(mut inner) = self.lock_if_current(read_at) else {
            return;
        };
        if inner.keys.len() > MAX_ENTRIES {
            inner.keys.retain(|_, cached| cached.entry.is_fresh());
        }
        let marked_at = inner.keys.get(&key.id).and_then(|cached| cached.marked_at);
        let entry = Entry::new(key.clone());
        inner
            .keys
            .insert(key.id.clone(), CachedKey { entry, marked_at });
    }

    /// A key the database no longer has.
    pub(crate) fn forget_key(&self, id: &str) {
        self.lock().keys.remove(id);
    }

    /// Whether it is time to write the key's `last_used_at` again (and notes that it is done).
    pub(crate) fn due_for_mark(&self, id: &str) -> bool {
        let mut inner = self.lock();
        match inner.keys.get_mut(id) {
            Some(cached)
                if cached
                    .marked_at
                    .is_some_and(|at| at.elapsed() < MARK_USED_EVERY) =>
            {
                false
            }
            Some(cached) => {
                cached.marked_at = Some(Instant::now());
                true
            }
            None => true,
        }
    }

    /// Whether the directory had deprovisioned `subject`, if that was read within [`FRESH_FOR`].
    pub(crate) fn deprovisioned(&self, subject: &str) -> Option<Cached<bool>> {
        self.lock().deprovisioned.get_mut(subject)?.serve()
    }

    pub(crate) fn remember_deprovisioned(&self, subject: &str, gone: bool, read_at: Generation) {
        let Some(mut inner) = self.lock_if_current(read_at) else {
            return;
        };
        if inner.deprovisioned.len() > MAX_ENTRIES {
            inner.deprovisioned.retain(|_, entry| entry.is_fresh());
        }
        inner
            .deprovisioned
            .insert(subject.to_owned(), Entry::new(gone));
    }

    /// Forgets everything: after a deprovisioning or a revocation on this instance.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.keys.clear();
        inner.deprovisioned.clear();
        inner.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(value: bool) -> Option<Cached<bool>> {
        Some(Cached {
            value,
            refresh: false,
        })
    }

    #[test]
    fn clearing_forgets_answers_and_refuses_those_read_before_it() {
        let cache = CredentialCache::default();
        let before = cache.generation();
        cache.remember_deprovisioned("u1", false, before);
        assert_eq!(cache.deprovisioned("u1"), fresh(false));
        cache.clear();
        assert_eq!(cache.deprovisioned("u1"), None);
        // A re-read that began before the clearing comes back after it: not stored.
        cache.remember_deprovisioned("u1", false, before);
        assert_eq!(cache.deprovisioned("u1"), None);
        cache.remember_deprovisioned("u1", true, cache.generation());
        assert_eq!(cache.deprovisioned("u1"), fresh(true));
        assert!(cache.due_for_mark("k1"), "an unknown key is due");
    }

    #[tokio::test]
    async fn an_ageing_answer_is_refreshed_by_one_caller_then_expires() {
        let cache = CredentialCache::default();
        cache.remember_deprovisioned("u1", false, cache.generation());
        tokio::time::sleep(REFRESH_AFTER).await;
        let first = cache.deprovisioned("u1").unwrap();
        assert!(
            first.refresh,
            "the first caller past REFRESH_AFTER re-reads it"
        );
        assert_eq!(
            cache.deprovisioned("u1"),
            fresh(false),
            "only one caller does"
        );
        tokio::time::sleep(FRESH_FOR - REFRESH_AFTER).await;
        assert_eq!(
            cache.deprovisioned("u1"),
            None,
            "never served past FRESH_FOR"
        );
    }
}
