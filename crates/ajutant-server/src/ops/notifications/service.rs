//! The notification outbox as IT operations sees it: deliveries to their channels, and dead
//! letters put back in the queue. For IT operations and platform admins only.

use ajutant_core::audit::Outcome;
use ajutant_core::audit_action::AuditAction;
use ajutant_core::notification::DeliveryStatus;
use ajutant_core::policy::Action;
use ajutant_store::Notification;
use serde_json::json;
use time::OffsetDateTime;

use crate::access::Guard;
use crate::paging;
use crate::problem::ApiError;

/// A page of notifications, newest first, optionally in one status; the next page's cursor.
pub(crate) async fn list(
    guard: &Guard<'_>,
    status: Option<&str>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<(Vec<Notification>, Option<String>), ApiError> {
    guard
        .require(&Action::HandleIncidents, "notifications")
        .await?;
    let status = status
        .map(|s| {
            s.parse::<DeliveryStatus>()
                .map_err(|e| ApiError::not_one_of("status", &e))
        })
        .transpose()?;
    let (before, limit) = paging::window(cursor, limit)?;
    let rows = guard
        .state
        .store
        .notifications(status.map(DeliveryStatus::as_str), before, limit + 1)
        .await?;
    Ok(paging::page(rows, limit, |n: &Notification| {
        (n.created_at, n.id.as_str())
    }))
}

/// Puts a dead letter back in the queue with a fresh set of attempts.
pub(crate) async fn retry(guard: &Guard<'_>, id: &str) -> Result<Notification, ApiError> {
    let resource = format!("notification/{id}");
    guard.require(&Action::HandleIncidents, &resource).await?;
    let store = &guard.state.store;
    if !store
        .requeue_notification(id, OffsetDateTime::now_utc())
        .await?
    {
        return Err(match store.notification(id).await? {
            None => ApiError::NotFound(format!("no notification {id}")),
            Some(n) => ApiError::Conflict(format!("the notification is {}, not dead", n.status)),
        });
    }
    guard.state.notifier.poke();
    guard
        .record(
            AuditAction::NotificationRetried,
            &resource,
            Outcome::Allowed,
            json!({}),
        )
        .await?;
    store
        .notification(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no notification {id}")))
}
