//! Sends the notification outbox to IT operations' webhooks. Rows are written with what they
//! announce (so nothing is lost between commit and send); each instance runs a sender that
//! leases due rows, renders each for its target's format (`format.rs`: Standard Webhooks-signed
//! JSON, Microsoft Teams, Slack) and records the outcome. A failure is retried after a delay
//! that doubles each time (or the receiver's `Retry-After`), up to
//! `notifications.max_attempts`; then the row is a dead letter, counted in
//! `ajutant_notifications_dead_letters_total` and audited, and IT operations can requeue it.

pub(crate) mod format;

use std::sync::Arc;
use std::time::Duration;

use ajutant_core::audit::{Actor, AuditAction, AuditEvent, Outcome};
use ajutant_core::config::{NotificationsConfig, WebhookConfig, WebhookKind};
use ajutant_store::{Attempt, Notification};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};

use crate::AppState;
use format::{EscalationNotice, WebhookSecret};

/// How long a sender holds the rows it claimed; longer than one attempt can take.
const LEASE: time::Duration = time::Duration::seconds(120);
const BATCH: i64 = 16;
/// How often an idle sender looks for due rows (retries come due without a poke).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Characters of a receiver's error kept with the row.
const ERROR_CHARS: usize = 300;

/// Wakes this instance's sender when a row was just written. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    wake: Arc<Notify>,
}

impl Notifier {
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }
}

/// Why an attempt failed, and whether another could succeed.
#[derive(Debug)]
struct Failure {
    error: String,
    /// Trying again cannot help (no such target any more, the receiver refused the request).
    permanent: bool,
    /// The receiver's `Retry-After`, in seconds.
    retry_after: Option<u64>,
}

impl Failure {
    fn retry(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            permanent: false,
            retry_after: None,
        }
    }

    fn permanent(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            permanent: true,
            retry_after: None,
        }
    }
}

/// Sends due notifications until `stop` is set.
pub(crate) async fn work(state: AppState, worker: String, mut stop: watch::Receiver<bool>) {
    let settings = &state.config.notifications;
    // A webhook answers where it was configured; a redirect elsewhere is not followed.
    let client = match state.egress.client(
        reqwest::Client::builder().timeout(Duration::from_secs(settings.timeout_secs)),
        ajutant_egress::Redirects::Refuse,
    ) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the notification sender's HTTP client");
            return;
        }
    };
    loop {
        let now = OffsetDateTime::now_utc();
        match state
            .store
            .claim_notifications(&worker, now, now + LEASE, BATCH)
            .await
        {
            Ok(batch) if !batch.is_empty() => {
                for notification in batch {
                    deliver(&state, &client, &worker, notification).await;
                }
                continue;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot claim notifications"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = state.notifier.wake.notified() => {}
            () = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
}

/// One attempt at one notification, and its outcome recorded.
async fn deliver(
    state: &AppState,
    client: &ajutant_egress::Client,
    worker: &str,
    notification: Notification,
) {
    let settings = &state.config.notifications;
    let outcome = match settings
        .webhooks
        .iter()
        .find(|w| w.name == notification.target)
    {
        Some(target) => send(client, target, &notification).await,
        None => Err(Failure::permanent(format!(
            "no webhook named {:?} is configured any more",
            notification.target
        ))),
    };
    let attempts = notification.attempts + 1;
    let now = OffsetDateTime::now_utc();
    let attempt = match &outcome {
        Ok(()) => Attempt::Delivered,
        Err(failure) if failure.permanent || attempts >= i64::from(settings.max_attempts) => {
            Attempt::Dead {
                error: &failure.error,
            }
        }
        Err(failure) => Attempt::Retry {
            error: &failure.error,
            at: now + retry_delay(settings, attempts, failure.retry_after),
        },
    };
    let result = match attempt {
        Attempt::Delivered => "delivered",
        Attempt::Retry { .. } => "retry",
        Attempt::Dead { .. } => "dead",
    };
    metrics::counter!(
        "ajutant_notifications_attempts_total",
        "target" => notification.target.clone(),
        "result" => result
    )
    .increment(1);
    match state
        .store
        .record_attempt(&notification.id, worker, attempt, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(id = %notification.id, "a notification's lease ran out during its attempt");
            return;
        }
        Err(error) => {
            // The lease runs out and the row is sent again: a duplicate, with the same id.
            tracing::error!(%error, id = %notification.id, "cannot record a notification attempt");
            return;
        }
    }
    match (&outcome, result) {
        (Err(failure), "dead") => {
            tracing::error!(id = %notification.id, target = %notification.target, error = %failure.error, attempts, "a notification is a dead letter");
            metrics::counter!(
                "ajutant_notifications_dead_letters_total",
                "target" => notification.target.clone()
            )
            .increment(1);
            let event = AuditEvent::new(
                Actor::system(),
                AuditAction::NotificationDeadLettered,
                format!("notification/{}", notification.id),
                Outcome::Failed,
            )
            .with_details(json!({
                "target": notification.target,
                "event": notification.event,
                "incident": notification.subject,
                "attempts": attempts,
                "error": failure.error,
            }));
            if let Err(error) = state.audit.append(event).await {
                tracing::error!(%error, "cannot audit a dead letter");
            }
        }
        (Err(failure), _) => {
            tracing::warn!(id = %notification.id, target = %notification.target, error = %failure.error, attempts, "a notification failed; will retry");
        }
        (Ok(()), _) => {
            tracing::info!(id = %notification.id, target = %notification.target, attempts, "notification delivered");
        }
    }
}

/// The wait before attempt `attempts + 1`: the base doubled per attempt made, or what the
/// receiver asked for, never more than the maximum.
fn retry_delay(
    settings: &NotificationsConfig,
    attempts: i64,
    retry_after: Option<u64>,
) -> time::Duration {
    let doubled = settings
        .retry_base_ms
        .saturating_mul(1u64 << attempts.clamp(1, 30).saturating_sub(1));
    let wanted = retry_after.map_or(doubled, |secs| secs.saturating_mul(1000).max(doubled));
    let millis = wanted.min(settings.retry_max_ms);
    time::Duration::milliseconds(i64::try_from(millis).unwrap_or(i64::MAX))
}

/// Renders the notification for `target` and posts it.
async fn send(
    client: &ajutant_egress::Client,
    target: &WebhookConfig,
    notification: &Notification,
) -> Result<(), Failure> {
    let notice: EscalationNotice = serde_json::from_str(&notification.payload)
        .map_err(|e| Failure::permanent(format!("the stored notification cannot be read: {e}")))?;
    let body = match target.kind {
        WebhookKind::Generic => format::generic_body(&notice, target.include_comment),
        WebhookKind::Teams => format::teams_body(&notice, target.include_comment),
        WebhookKind::Slack => format::slack_body(&notice, target.include_comment),
    };
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| Failure::permanent(format!("cannot render the notification: {e}")))?;
    let url = url::Url::parse(target.url.expose())
        .map_err(|e| Failure::permanent(format!("the webhook's URL is not valid: {e}")))?;
    let mut request = reqwest::Request::new(reqwest::Method::POST, url);
    let header = |value: &str| {
        reqwest::header::HeaderValue::from_str(value)
            .map_err(|e| Failure::permanent(format!("cannot build the request: {e}")))
    };
    let headers = request.headers_mut();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    if target.kind == WebhookKind::Generic {
        let secret = target
            .secret
            .as_ref()
            .ok_or_else(|| Failure::permanent("the webhook has no signing secret"))
            .and_then(|s| {
                WebhookSecret::parse(s.expose()).map_err(|e| Failure::permanent(e.to_string()))
            })?;
        // A fresh timestamp per attempt (receivers reject old ones); the id never changes.
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        headers.insert("webhook-id", header(&notification.id)?);
        headers.insert("webhook-timestamp", header(&timestamp.to_string())?);
        headers.insert(
            "webhook-signature",
            header(&format::signature(
                &secret,
                &notification.id,
                timestamp,
                &bytes,
            ))?,
        );
    }
    *request.body_mut() = Some(bytes.into());
    // The URL of a Teams or Slack webhook is its secret: egress errors carry no URL.
    let response = client.execute(request).await.map_err(|e| match e {
        ajutant_egress::Error::Refused(why) => Failure::permanent(why.to_string()),
        other => Failure::retry(format!("cannot reach the receiver: {other}")),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let text = response.text().await.unwrap_or_default();
    let error = format!(
        "the receiver answered {status}: {}",
        text.chars().take(ERROR_CHARS).collect::<String>()
    );
    // A request the receiver refuses as such will be refused again; anything else may pass
    // later (a server error, a timeout, a rate limit).
    let permanent = status.is_client_error() && !matches!(status.as_u16(), 408 | 409 | 425 | 429);
    Err(Failure {
        error,
        permanent,
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_the_maximum() {
        let settings = NotificationsConfig {
            retry_base_ms: 1000,
            retry_max_ms: 10_000,
            ..NotificationsConfig::default()
        };
        let waits: Vec<i64> = (1..=6)
            .map(|n| retry_delay(&settings, n, None).whole_milliseconds() as i64)
            .collect();
        assert_eq!(waits, vec![1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(
            retry_delay(&settings, 1, Some(7)).whole_milliseconds(),
            7000,
            "a receiver's Retry-After is honoured"
        );
        assert_eq!(
            retry_delay(&settings, 1, Some(3600)).whole_milliseconds(),
            10_000,
            "but not beyond the maximum"
        );
    }
}
