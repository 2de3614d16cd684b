//! Short-lived memory of what the database said about a credential, so that a busy API key or
//! token caller does not cost a database read on every request. Entries live at most
//! [`FRESH_FOR`]; what deprovisions or revokes on this instance (SCIM, the admin API) clears
//! them at once, and other instances notice within [`FRESH_FOR`], inside the one second the
//! product promises.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ajutant_store::ApiKey;

/// How long a cached answer is trusted.
pub(crate) const FRESH_FOR: Duration = Duration::from_millis(500);
/// `last_used_at` is written at most this often per key.
const MARK_USED_EVERY: Duration = Duration::from_secs(60);
/// Past this many entries, stale ones are swept.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
struct CachedKey {
    key: ApiKey,
    at: Instant,
    marked_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<String, CachedKey>,
    deprovisioned: HashMap<String, (bool, Instant)>,
}

/// Cheap to clone; clones share the memory.
#[derive(Debug, Clone, Default)]
pub struct CredentialCache {
    inner: Arc<Mutex<Inner>>,
}

impl CredentialCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key with this public id, if it was read within [`FRESH_FOR`].
    pub(crate) fn key(&self, id: &str) -> Option<ApiKey> {
        let inner = self.lock();
        inner
            .keys
            .get(id)
            .filter(|cached| cached.at.elapsed() < FRESH_FOR)
            .map(|cached| cached.key.clone())
    }

    pub(crate) fn remember_key(&self, key: &ApiKey) {
        let mut inner = self.lock();
        if inner.keys.len() > MAX_ENTRIES {
            inner
                .keys
                .retain(|_, cached| cached.at.elapsed() < FRESH_FOR);
        }
        let marked_at = inner.keys.get(&key.id).and_then(|cached| cached.marked_at);
        inner.keys.insert(
            key.id.clone(),
            CachedKey {
                key: key.clone(),
                at: Instant::now(),
                marked_at,
            },
        );
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
    pub(crate) fn deprovisioned(&self, subject: &str) -> Option<bool> {
        let inner = self.lock();
        inner
            .deprovisioned
            .get(subject)
            .filter(|(_, at)| at.elapsed() < FRESH_FOR)
            .map(|(gone, _)| *gone)
    }

    pub(crate) fn remember_deprovisioned(&self, subject: &str, gone: bool) {
        let mut inner = self.lock();
        if inner.deprovisioned.len() > MAX_ENTRIES {
            inner
                .deprovisioned
                .retain(|_, (_, at)| at.elapsed() < FRESH_FOR);
        }
        inner
            .deprovisioned
            .insert(subject.to_owned(), (gone, Instant::now()));
    }

    /// Forgets everything: after a deprovisioning or a revocation on this instance.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.keys.clear();
        inner.deprovisioned.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_and_clearing_forgets_them() {
        let cache = CredentialCache::default();
        cache.remember_deprovisioned("u1", false);
        assert_eq!(cache.deprovisioned("u1"), Some(false));
        cache.clear();
        assert_eq!(cache.deprovisioned("u1"), None);
        assert!(cache.due_for_mark("k1"), "an unknown key is due");
    }
}
