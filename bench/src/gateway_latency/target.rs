//! What a load is sent to (the fake model directly, the bare proxy, or Ajutant) and how the
//! latencies of one series are summarised.

use super::*;

/// Where a series sends: the fake itself, or Ajutant with the API key.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) url: String,
    pub(super) key: Option<String>,
    pub(super) body: Bytes,
}

impl Target {
    pub(super) fn chat(base: SocketAddr, key: Option<&str>, model: &str, stream: bool) -> Self {
        let body = json!({ "model": model, "stream": stream, "max_tokens": 16,
                           "messages": [{ "role": "user", "content": "Say hello." }] });
        Self {
            url: format!("http://{base}/v1/chat/completions"),
            key: key.map(str::to_owned),
            body: Bytes::from(body.to_string()),
        }
    }

    pub(super) fn get(base: SocketAddr, key: Option<&str>, path: &str) -> Self {
        Self {
            url: format!("http://{base}{path}"),
            key: key.map(str::to_owned),
            body: Bytes::new(),
        }
    }

    pub(super) async fn send(&self, client: &reqwest::Client) -> anyhow::Result<reqwest::Response> {
        let mut request = if self.body.is_empty() {
            client.get(&self.url)
        } else {
            client
                .post(&self.url)
                .header("content-type", "application/json")
                .body(self.body.clone())
        };
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await?;
        if !response.status().is_success() {
            bail!("{} answered {}", self.url, response.status());
        }
        Ok(response)
    }

    /// Sends and reads the whole answer; returns how long that took.
    pub(super) async fn complete(&self, client: &reqwest::Client) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.send(client).await?.bytes().await?;
        Ok(started.elapsed())
    }

    pub(super) async fn answer(&self, client: &reqwest::Client) -> anyhow::Result<Timing> {
        let whole = self.complete(client).await?;
        Ok(Timing {
            first: whole,
            whole,
        })
    }

    /// Sends a streaming request and reads it to its `[DONE]`.
    pub(super) async fn stream(&self, client: &reqwest::Client) -> anyhow::Result<Timing> {
        let started = Instant::now();
        let mut response = self.send(client).await?;
        let needle = format!("\"content\":\"{}\"", PIECES[0]);
        let mut seen = Vec::new();
        let mut first = None;
        while let Some(chunk) = response.chunk().await? {
            seen.extend_from_slice(&chunk);
            if first.is_none() && contains(&seen, needle.as_bytes()) {
                first = Some(started.elapsed());
            }
        }
        if !seen.ends_with(b"data: [DONE]\n\n") {
            bail!("the stream from {} did not end with [DONE]", self.url);
        }
        let first = first.with_context(|| format!("no first token from {}", self.url))?;
        Ok(Timing {
            first,
            whole: started.elapsed(),
        })
    }
}

/// When the first content arrived and when the answer was complete (the same for an answer
/// that is not streamed).
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub(super) first: Duration,
    pub(super) whole: Duration,
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

// ---- measurement -------------------------------------------------------------------------

/// What one path (direct or via) did in one phase.
#[derive(Debug, Default)]
pub(super) struct Series {
    pub(super) latencies: Vec<Duration>,
    /// For streams: when each answer was complete (`latencies` holds the first token).
    pub(super) whole: Vec<Duration>,
    /// Failed requests: error status, transport error, timeout or not sent (too many in flight).
    pub(super) failed: usize,
    pub(super) timed_out: usize,
    pub(super) not_sent: usize,
    /// Successful answers per second that completed inside the timed window (open loop only).
    pub(super) achieved: Option<f64>,
    /// Unknown for a row derived from another's requests.
    pub(super) cpu: Option<Cpu>,
    /// The process's resident memory, MiB, as the last open-loop request was sent.
    pub(super) rss: Option<f64>,
}

impl Series {
    pub(super) fn percentile(&self, q: f64) -> Option<Duration> {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted.get(rank.max(1) - 1).copied()
    }

    pub(super) fn cpu_per_request(&self, part: impl Fn(Cpu) -> Duration) -> Option<f64> {
        let requests = self.latencies.len() + self.failed - self.not_sent;
        let cpu = part(self.cpu?);
        (requests > 0).then(|| cpu.as_secs_f64() * 1e6 / requests as f64)
    }

    /// The same requests, timed to their last byte.
    pub(super) fn whole_answers(&self) -> Self {
        Self {
            latencies: self.whole.clone(),
            ..Self::default()
        }
    }
}
