//! Reads a Server-Sent Events response event by event, as it arrives, so a test can act while
//! a stream is still open and time when each event came.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::Value;

/// reqwest's body chunks (`bytes::Bytes`, which axum re-exports).
type Chunks = Pin<Box<dyn Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>;

/// One event: its name (`message` when the stream names none) and its data as JSON (or as a
/// JSON string when the data is not JSON, e.g. `[DONE]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub data: Value,
}

pub struct EventStream {
    chunks: Chunks,
    buffer: String,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl EventStream {
    /// Reads `response`'s body as events; panics when it is not a successful event stream.
    pub fn new(response: reqwest::Response) -> Self {
        let status = response.status();
        assert!(status.is_success(), "not a stream: {status}");
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            kind.starts_with("text/event-stream"),
            "not a stream: {kind}"
        );
        Self {
            chunks: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event (comments such as keep-alives are skipped); `None` when the stream ended
    /// or nothing came within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.chunks.next()).await;
            match chunk {
                Ok(Some(Ok(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Some(Err(_)) | None) | Err(_) => return None,
            }
        }
    }

    /// Reads events until one named `name` arrives (returned) or `within` runs out (`None`).
    pub async fn until(&mut self, name: &str, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await?;
            if event.name == name {
                return Some(event);
            }
        }
    }
}

fn parse(block: &str) -> Option<Event> {
    let mut name = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if name.is_none() && data.is_empty() {
        return None;
    }
    let text = data.join("\n");
    Some(Event {
        name: name.unwrap_or_else(|| "message".to_owned()),
        data: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    })
}
