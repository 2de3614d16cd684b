//! Requests per minute, tokens per minute and monthly token budgets, per principal and per
//! group. Counting happens in memory on this instance so no database work sits on a call's
//! path: a minute's counts live in a fixed one-minute window per key; a month's tokens start
//! from the usage table (read once per key and month, then every [`MONTH_REFRESH`] so other
//! replicas' use is seen) and grow as calls finish.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ajutant_core::config::{GatewayConfig, Limits};
use ajutant_core::policy::Principal;
use ajutant_store::{Store, StoreError, month_of};
use time::OffsetDateTime;

const WINDOW: Duration = Duration::from_secs(60);
/// Past this many keys, windows older than a minute are swept.
const MAX_WINDOWS: usize = 10_000;
/// How often a month-to-date total is re-read, to include other replicas' use.
const MONTH_REFRESH: Duration = Duration::from_secs(60);

/// Why a call is refused, and when trying again makes sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exceeded {
    pub what: String,
    pub retry_after: Duration,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    requests: u64,
    tokens: u64,
}

#[derive(Debug)]
struct Month {
    month: String,
    tokens: u64,
    read_at: Instant,
}

/// A key's limits: `p:{principal id}` or `g:{group id}`.
#[derive(Debug, Clone)]
struct Subject {
    key: String,
    label: String,
    limits: Limits,
}

#[derive(Debug)]
pub(crate) struct Limiter {
    principal: Limits,
    groups: HashMap<String, Limits>,
    windows: Mutex<HashMap<String, Window>>,
    months: Mutex<HashMap<String, Month>>,
}

fn is_unlimited(limits: &Limits) -> bool {
    limits.requests_per_minute == 0 && limits.tokens_per_minute == 0 && limits.monthly_tokens == 0
}

/// Time left until the next calendar month begins (UTC).
fn until_next_month(now: OffsetDateTime) -> Duration {
    let date = now.date();
    let (year, month) = match date.month() {
        time::Month::December => (date.year() + 1, time::Month::January),
        other => (date.year(), other.next()),
    };
    time::Date::from_calendar_date(year, month, 1)
        .map(|first| first.midnight().assume_utc() - now)
        .ok()
        .and_then(|left| Duration::try_from(left).ok())
        .unwrap_or(Duration::from_secs(86_400))
}

impl Limiter {
    pub fn new(config: &GatewayConfig) -> Self {
        Self {
            principal: config.principal_limits,
            groups: config
                .group_limits
                .iter()
                .map(|g| (g.group.clone(), g.limits))
                .collect(),
            windows: Mutex::default(),
            months: Mutex::default(),
        }
    }

    fn subjects(&self, principal: &Principal) -> Vec<Subject> {
        let mut subjects = Vec::new();
        if !is_unlimited(&self.principal) {
            subjects.push(Subject {
                key: format!("p:{}", principal.id),
                label: "your".to_owned(),
                limits: self.principal,
            });
        }
        for group in &principal.groups {
            if let Some(limits) = self.groups.get(group)
                && !is_unlimited(limits)
            {
                subjects.push(Subject {
                    key: format!("g:{group}"),
                    label: format!("group {group}'s"),
                    limits: *limits,
                });
            }
        }
        subjects
    }

    /// Admits a call (counting it) or says which limit it would exceed.
    pub async fn admit(&self, store: &Store, principal: &Principal) -> Result<(), AdmitError> {
        let subjects = self.subjects(principal);
        if subjects.is_empty() {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc();
        for subject in subjects.iter().filter(|s| s.limits.monthly_tokens > 0) {
            let used = self.month_tokens(store, subject, principal, now).await?;
            if used >= subject.limits.monthly_tokens {
                return Err(AdmitError::Exceeded(Exceeded {
                    what: format!(
                        "{} monthly budget of {} tokens is spent",
                        subject.label, subject.limits.monthly_tokens
                    ),
                    retry_after: until_next_month(now),
                }));
            }
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let at = Instant::now();
        if windows.len() > MAX_WINDOWS {
            windows.retain(|_, w| at.duration_since(w.started) < WINDOW);
        }
        for subject in &subjects {
            let window = current(&mut windows, &subject.key, at);
            let retry_after = WINDOW.saturating_sub(at - window.started);
            let limits = subject.limits;
            if limits.requests_per_minute > 0 && window.requests >= limits.requests_per_minute {
                return Err(AdmitError::Exceeded(Exceeded {
                    what: format!(
                        "{} limit of {} requests per minute is reached",
                        subject.label, limits.requests_per_minute
                    ),
                    retry_after,
                }));
            }
            if limits.tokens_per_minute > 0 && window.tokens >= limits.tokens_per_minute {
                return Err(AdmitError::Exceeded(Exceeded {
                    what: format!(
                        "{} limit of {} tokens per minute is reached",
                        subject.label, limits.tokens_per_minute
                    ),
                    retry_after,
                }));
            }
        }
        for subject in &subjects {
            current(&mut windows, &subject.key, at).requests += 1;
        }
        Ok(())
    }

    /// Counts a finished call's tokens against every limit that applies.
    pub fn charge(&self, principal: &Principal, tokens: u64) {
        let subjects = self.subjects(principal);
        if subjects.is_empty() || tokens == 0 {
            return;
        }
        {
            let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            let at = Instant::now();
            for subject in &subjects {
                current(&mut windows, &subject.key, at).tokens += tokens;
            }
        }
        let month = month_of(OffsetDateTime::now_utc());
        let mut months = self.months.lock().unwrap_or_else(|e| e.into_inner());
        for subject in &subjects {
            if let Some(total) = months.get_mut(&subject.key)
                && total.month == month
            {
                total.tokens += tokens;
            }
        }
    }

    async fn month_tokens(
        &self,
        store: &Store,
        subject: &Subject,
        principal: &Principal,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let month = month_of(now);
        {
            let months = self.months.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(total) = months.get(&subject.key)
                && total.month == month
                && total.read_at.elapsed() < MONTH_REFRESH
            {
                return Ok(total.tokens);
            }
        }
        // Read without holding the lock; two callers may both read, which is harmless.
        let used = match subject.key.strip_prefix("g:") {
            Some(group) => store.month_tokens_of_group(group, &month).await?,
            None => {
                store
                    .month_tokens_of_principal(&principal.id, &month)
                    .await?
            }
        };
        let used = u64::try_from(used).unwrap_or(0);
        let mut months = self.months.lock().unwrap_or_else(|e| e.into_inner());
        months.insert(
            subject.key.clone(),
            Month {
                month,
                tokens: used,
                read_at: Instant::now(),
            },
        );
        Ok(used)
    }
}

/// The window for `key` at `at`, started afresh when the last one is a minute old.
fn current<'a>(windows: &'a mut HashMap<String, Window>, key: &str, at: Instant) -> &'a mut Window {
    let window = windows.entry(key.to_owned()).or_insert(Window {
        started: at,
        requests: 0,
        tokens: 0,
    });
    if at.duration_since(window.started) >= WINDOW {
        *window = Window {
            started: at,
            requests: 0,
            tokens: 0,
        };
    }
    window
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AdmitError {
    #[error("{}", .0.what)]
    Exceeded(Exceeded),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_next_month_starts_on_the_first_even_in_december() {
        let left = until_next_month(datetime!(2026-12-31 23:00 UTC));
        assert_eq!(left, Duration::from_secs(3600));
        let left = until_next_month(datetime!(2026-11-28 00:00 UTC));
        assert_eq!(left, Duration::from_secs(3 * 86_400));
    }
}
