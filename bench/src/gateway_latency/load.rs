//! The open-loop load: the plan of requests per second, the samples it takes and how a
//! request can fail.

use super::*;

/// When a request was due and when it finished, both from the phase's start.
#[derive(Debug)]
pub(super) struct Sample {
    pub(super) due: Duration,
    pub(super) done: Duration,
    pub(super) result: Result<(), Failure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// An error status or a transport error.
    Error,
    TimedOut,
    /// Not sent: too many requests were already in flight.
    NotSent,
}

pub(super) enum Launch {
    Sent(tokio::task::JoinHandle<Sample>),
    Skipped(Sample),
}

pub(super) struct Plan {
    pub(super) interval: Duration,
    pub(super) count: usize,
    pub(super) target: Arc<Target>,
    pub(super) client: reqwest::Client,
    pub(super) runtime: tokio::runtime::Handle,
}

impl Plan {
    /// Runs on a thread of its own: tokio's timer rounds to whole milliseconds, which at
    /// 5,000/s would send in bursts of five and charge both paths up to 1 ms of its own lag.
    #[allow(
        clippy::disallowed_methods,
        reason = "a dedicated blocking thread, not an async worker, keeps the send clock"
    )]
    /// Returns the sends and the process's resident memory as the last one went out, when
    /// the most requests are in flight.
    pub(super) fn send_all(self, started: Instant) -> anyhow::Result<(Vec<Launch>, f64)> {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut sends = Vec::with_capacity(self.count);
        for n in 0..self.count {
            let due = self.interval * n as u32;
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                sends.push(Launch::Skipped(Sample {
                    due,
                    done: due,
                    result: Err(Failure::NotSent),
                }));
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let in_flight = Arc::clone(&in_flight);
            let target = Arc::clone(&self.target);
            let client = self.client.clone();
            sends.push(Launch::Sent(self.runtime.spawn(async move {
                let result =
                    match tokio::time::timeout(REQUEST_TIMEOUT, target.complete(&client)).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(error)) if is_timeout(&error) => Err(Failure::TimedOut),
                        Ok(Err(_)) => Err(Failure::Error),
                        Err(_) => Err(Failure::TimedOut),
                    };
                in_flight.fetch_sub(1, Ordering::Relaxed);
                Sample {
                    due,
                    done: started.elapsed(),
                    result,
                }
            })));
        }
        Ok((sends, memory("VmRSS")?))
    }
}

pub(super) fn is_timeout(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<reqwest::Error>()
        .is_some_and(reqwest::Error::is_timeout)
}
