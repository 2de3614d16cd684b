//! Getting an answer despite a failing upstream: retry what may succeed on a second try (429,
//! 5xx, connection failures and timeouts before the first byte) with exponential backoff and
//! full jitter, honouring `Retry-After`; then fall back along the deployment's list; skip a
//! deployment whose circuit breaker is open. A stream is never retried once its first event has
//! been handed on: by then the caller has part of an answer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ajutant_core::model::{
    ChatRequest, ChatResponse, ChatStream, EmbeddingsRequest, EmbeddingsResponse, ProviderError,
};
use futures::future::BoxFuture;

use super::Deployment;
use std::sync::Arc;

/// The first retry waits up to this long; each further one up to twice as long.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// No single wait is longer; a `Retry-After` beyond it sends the call to the next deployment.
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// Consecutive failures that open a deployment's circuit.
const TRIP_AFTER: u32 = 5;
/// How long an open circuit stays open before one call may try again.
const OPEN_FOR: Duration = Duration::from_secs(30);

/// A per-deployment circuit breaker: after [`TRIP_AFTER`] failures in a row the deployment is
/// skipped for [`OPEN_FOR`], then one call is let through to test it (half-open).
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    state: Mutex<BreakerState>,
}

#[derive(Debug, Default)]
struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go to this deployment now.
    pub fn allows(&self) -> bool {
        let mut state = self.lock();
        match state.open_until {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                // Half-open: this call tests the deployment; the next waits for its outcome.
                state.open_until = Some(Instant::now() + OPEN_FOR);
                true
            }
            None => true,
        }
    }

    pub fn succeeded(&self) {
        let mut state = self.lock();
        state.failures = 0;
        state.open_until = None;
    }

    pub fn failed(&self) {
        let mut state = self.lock();
        state.failures += 1;
        if state.failures >= TRIP_AFTER {
            state.open_until = Some(Instant::now() + OPEN_FOR);
        }
    }
}

/// How long to wait before retry number `attempt` (0-based): full jitter over an exponential
/// ceiling, or the upstream's `Retry-After` when it gave one. `None`: not worth waiting.
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
    if let Some(asked) = retry_after {
        return (asked <= BACKOFF_CAP).then_some(asked);
    }
    let ceiling = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(BACKOFF_CAP);
    let mut bytes = [0u8; 8];
    let fraction = if aws_lc_rs::rand::fill(&mut bytes).is_ok() {
        (u64::from_le_bytes(bytes) as f64) / (u64::MAX as f64)
    } else {
        1.0
    };
    Some(ceiling.mul_f64(fraction))
}

/// Runs `call` against each deployment of `chain` in turn, with retries, until one answers.
/// Returns the name of the deployment that answered.
async fn attempt<T>(
    chain: &[Arc<Deployment>],
    mut call: impl for<'a> FnMut(&'a Deployment) -> BoxFuture<'a, Result<T, ProviderError>>,
) -> Result<(String, T), ProviderError> {
    let mut last = ProviderError::Unsupported("no deployment is available".to_owned());
    for deployment in chain {
        if !deployment.breaker.allows() {
            last = ProviderError::Status {
                status: 503,
                message: format!(
                    "deployment {} is failing; its circuit is open",
                    deployment.config.name
                ),
                retry_after: Some(OPEN_FOR),
            };
            continue;
        }
        let mut tries = 0;
        loop {
            match call(deployment).await {
                Ok(answer) => {
                    deployment.breaker.succeeded();
                    return Ok((deployment.config.name.clone(), answer));
                }
                Err(error) if !error.is_retryable() => {
                    // The request itself is at fault (or the upstream's answer is garbage):
                    // another deployment would not do better.
                    if matches!(
                        error,
                        ProviderError::Malformed(_) | ProviderError::Truncated
                    ) {
                        deployment.breaker.failed();
                    }
                    return Err(error);
                }
                Err(error) => {
                    deployment.breaker.failed();
                    tracing::warn!(deployment = %deployment.config.name, %error, tries, "model call failed");
                    let wait = backoff(tries, error.retry_after());
                    last = error;
                    match wait {
                        Some(wait) if tries < deployment.config.retries => {
                            tokio::time::sleep(wait).await;
                            tries += 1;
                        }
                        _ => break,
                    }
                }
            }
        }
    }
    Err(last)
}

pub(super) async fn chat(
    chain: &[Arc<Deployment>],
    request: ChatRequest,
) -> Result<(String, ChatResponse), ProviderError> {
    attempt(chain, |deployment| {
        let mut request = request.clone();
        request.model = deployment.config.model.clone();
        Box::pin(async move { deployment.provider.chat(&request).await })
    })
    .await
}

/// Opens a stream: retries and fallbacks apply until the upstream accepts; after that, the
/// stream's own errors reach the caller as they are.
pub(super) async fn chat_stream(
    chain: &[Arc<Deployment>],
    request: ChatRequest,
) -> Result<(String, ChatStream), ProviderError> {
    attempt(chain, |deployment| {
        let mut request = request.clone();
        request.model = deployment.config.model.clone();
        Box::pin(async move { deployment.provider.chat_stream(&request).await })
    })
    .await
}

pub(super) async fn embed(
    chain: &[Arc<Deployment>],
    request: EmbeddingsRequest,
) -> Result<(String, EmbeddingsResponse), ProviderError> {
    attempt(chain, |deployment| {
        let mut request = request.clone();
        request.model = deployment.config.model.clone();
        Box::pin(async move { deployment.provider.embed(&request).await })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_capped_and_honours_retry_after() {
        for attempt in 0..10 {
            let wait = backoff(attempt, None).unwrap();
            let ceiling = BACKOFF_BASE
                .saturating_mul(1 << attempt.min(20))
                .min(BACKOFF_CAP);
            assert!(wait <= ceiling, "{attempt}: {wait:?}");
        }
        assert_eq!(
            backoff(0, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(backoff(0, Some(Duration::from_secs(60))), None);
    }

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_a_success_closes_it() {
        let breaker = Breaker::default();
        for _ in 0..TRIP_AFTER - 1 {
            breaker.failed();
        }
        assert!(breaker.allows());
        breaker.failed();
        assert!(!breaker.allows());
        breaker.succeeded();
        assert!(breaker.allows());
    }
}
