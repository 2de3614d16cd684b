//! What every networked adapter shares: the deployment's credential, sending a request under the
//! deployment's timeouts, turning upstream failures into [`ProviderError`]s, and reading a
//! server-sent-events body with the idle timeout between events.

use std::time::Duration;

use ajutant_core::config::{Credential, Timeouts};
use ajutant_core::model::{ProviderError, TimeoutKind};
use ajutant_core::secret::SecretString;
use bytes::{Buf, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::time::Instant;

/// Longest upstream error text carried into a [`ProviderError`].
const MAX_ERROR_TEXT: usize = 500;
/// Longest single SSE event accepted; a larger one means the upstream is not speaking SSE.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// Reads the deployment's API key, at each use so a rotated file or variable is picked up.
pub(crate) fn api_key(credential: &Credential) -> Result<Option<SecretString>, ProviderError> {
    match credential {
        // Entra tokens are asked for by `azure_token`, not sent as keys.
        Credential::None
        | Credential::AzureManagedIdentity { .. }
        | Credential::AzureWorkloadIdentity { .. } => Ok(None),
        Credential::ApiKeyEnv { variable } => std::env::var(variable)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| Some(SecretString::new(v.trim())))
            .ok_or_else(|| {
                ProviderError::Credentials(format!("the variable {variable} is not set"))
            }),
        Credential::ApiKeyFile { path } => std::fs::read_to_string(path)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(|v| Some(SecretString::new(v)))
            .ok_or_else(|| {
                ProviderError::Credentials(format!("{} cannot be read", path.display()))
            }),
    }
}

/// The deployment's timeouts as durations, with the moment the call started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    pub first_byte: Duration,
    pub idle: Duration,
    pub total_at: Instant,
}

impl Deadlines {
    pub fn start(timeouts: &Timeouts) -> Self {
        Self {
            first_byte: Duration::from_millis(timeouts.first_byte_ms),
            idle: Duration::from_millis(timeouts.idle_ms),
            total_at: Instant::now() + Duration::from_millis(timeouts.total_ms),
        }
    }

    /// How long the next wait may last: `step`, or less if the total deadline comes first.
    fn limit(&self, step: Duration, kind: TimeoutKind) -> (Duration, TimeoutKind) {
        let left = self.total_at.saturating_duration_since(Instant::now());
        if left < step {
            (left, TimeoutKind::Total)
        } else {
            (step, kind)
        }
    }
}

/// Sends `request` and waits for the response head within the first-byte deadline. A non-2xx
/// answer becomes [`ProviderError::Status`] with the upstream's message and `Retry-After`.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    deadlines: &Deadlines,
) -> Result<reqwest::Response, ProviderError> {
    let (wait, kind) = deadlines.limit(deadlines.first_byte, TimeoutKind::FirstByte);
    let response = match tokio::time::timeout(wait, request.send()).await {
        Err(_) => return Err(ProviderError::Timeout(kind)),
        Ok(Err(error)) if error.is_connect() => {
            return Err(ProviderError::Connect(error.without_url().to_string()));
        }
        Ok(Err(error)) if error.is_timeout() => {
            return Err(ProviderError::Timeout(TimeoutKind::Connect));
        }
        Ok(Err(error)) => return Err(ProviderError::Connect(error.without_url().to_string())),
        Ok(Ok(response)) => response,
    };
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = read_body(response, deadlines).await.unwrap_or_default();
    Err(ProviderError::Status {
        status,
        message: error_message(&body),
        retry_after,
    })
}

/// The upstream's own error message when its body has one (`{"error":{"message":...}}` for
/// OpenAI, `{"error":{"type":..,"message":..}}` for Anthropic), else the start of the text.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error"))
        })
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let mut message = message.trim().to_owned();
    if message.len() > MAX_ERROR_TEXT {
        let mut cut = MAX_ERROR_TEXT;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    if message.is_empty() {
        "no error message".to_owned()
    } else {
        message
    }
}

/// The whole body, within the total deadline.
pub(crate) async fn read_body(
    response: reqwest::Response,
    deadlines: &Deadlines,
) -> Result<bytes::Bytes, ProviderError> {
    let left = deadlines.total_at.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, response.bytes()).await {
        Err(_) => Err(ProviderError::Timeout(TimeoutKind::Total)),
        Ok(Err(error)) => Err(ProviderError::Connect(error.without_url().to_string())),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// Parses a JSON body into `T`, or says the upstream answered something else.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(body)
        .map_err(|error| ProviderError::Malformed(format!("not the expected JSON ({error})")))
}

/// One server-sent event: its `event:` name (if any) and its `data:` lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// The events of an SSE body. Each wait for the next bytes is bounded by the idle timeout (and
/// the total deadline); a connection that drops mid-event ends the stream with an error.
pub(crate) fn sse_events(
    response: reqwest::Response,
    deadlines: Deadlines,
) -> BoxStream<'static, Result<SseEvent, ProviderError>> {
    struct State {
        body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
        buffer: BytesMut,
        deadlines: Deadlines,
        done: bool,
    }
    let state = State {
        body: response.bytes_stream().boxed(),
        buffer: BytesMut::new(),
        deadlines,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            if let Some(event) = take_event(&mut state.buffer) {
                return Some((Ok(event), state));
            }
            if state.buffer.len() > MAX_EVENT_BYTES {
                state.done = true;
                let error = ProviderError::Malformed("an event larger than 4 MiB".to_owned());
                return Some((Err(error), state));
            }
            let (wait, kind) = state
                .deadlines
                .limit(state.deadlines.idle, TimeoutKind::Idle);
            match tokio::time::timeout(wait, state.body.next()).await {
                Err(_) => {
                    state.done = true;
                    return Some((Err(ProviderError::Timeout(kind)), state));
                }
                Ok(Some(Ok(bytes))) => state.buffer.extend_from_slice(&bytes),
                Ok(Some(Err(error))) => {
                    state.done = true;
                    let error = ProviderError::Connect(error.without_url().to_string());
                    return Some((Err(error), state));
                }
                Ok(None) => {
                    state.done = true;
                    // A last event without its blank line still counts; a partial one does not.
                    let rest = std::mem::take(&mut state.buffer);
                    let mut rest = BytesMut::from(&rest[..]);
                    rest.extend_from_slice(b"\n\n");
                    return take_event(&mut rest).map(|event| (Ok(event), state));
                }
            }
        }
    })
    .boxed()
}

/// Removes the first complete event (ended by a blank line) from `buffer`.
fn take_event(buffer: &mut BytesMut) -> Option<SseEvent> {
    loop {
        let text = &buffer[..];
        let end = find_blank_line(text)?;
        let (raw, skip) = end;
        let block = String::from_utf8_lossy(&text[..raw]).into_owned();
        buffer.advance(raw + skip);
        let mut event = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(value) = line.strip_prefix("data:") {
                data.push(value.strip_prefix(' ').unwrap_or(value));
            } else if let Some(value) = line.strip_prefix("event:") {
                event = Some(value.trim().to_owned());
            }
            // Comments (`:`), `id:` and `retry:` lines carry nothing an adapter needs.
        }
        if !data.is_empty() || event.is_some() {
            return Some(SseEvent {
                event,
                data: data.join("\n"),
            });
        }
    }
}

/// Where the first blank line is: the event's length and the separator's.
fn find_blank_line(text: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < text.len() {
        if text[i] == b'\n' && text[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if i + 3 < text.len() && &text[i..i + 4] == b"\r\n\r\n" {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_on_blank_lines_and_data_lines_joined() {
        let mut buffer = BytesMut::from(
            &b": keep-alive\n\nevent: message_start\ndata: {\"a\":1}\n\ndata: x\ndata: y\r\n\r\npartial"[..],
        );
        assert_eq!(
            take_event(&mut buffer),
            Some(SseEvent {
                event: Some("message_start".to_owned()),
                data: "{\"a\":1}".to_owned()
            })
        );
        assert_eq!(
            take_event(&mut buffer).map(|e| e.data),
            Some("x\ny".to_owned())
        );
        assert_eq!(take_event(&mut buffer), None);
        assert_eq!(&buffer[..], b"partial");
    }

    #[test]
    fn upstream_error_messages_are_read_from_either_vendor_shape() {
        assert_eq!(
            error_message(br#"{"error":{"message":"Rate limit reached","type":"x"}}"#),
            "Rate limit reached"
        );
        assert_eq!(
            error_message(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            "Overloaded"
        );
        assert_eq!(
            error_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert!(error_message("é".repeat(400).as_bytes()).ends_with('…'));
    }
}
