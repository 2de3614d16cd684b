//! The Users endpoints: list, read, create, replace and delete, and what every write then
//! does: lock the user out when it deprovisions them, and audit it.

use ajutant_core::audit::{AuditAction, AuditEvent, Outcome};
use ajutant_store::{DirectoryUser, Store, StoreError};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::patch::keep_external_id;
use super::request::{Attributes, UserFilter, json_object, parse_filter};
use super::views::{UserResource, user_location, user_response};
use super::{
    DEFAULT_COUNT, INVALID_VALUE, KEYS_REVOKE_REASON, LIST_SCHEMA, ListResponse, MAX_RESULTS,
    SESSIONS_END_REASON, ScimError, ScimState, scim_actor, scim_response,
};
use crate::request::RequestContext;

/// Numbers arrive as text so a bad one is answered in SCIM's shape, not the framework's.
#[derive(Deserialize)]
pub(super) struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
}

fn query_number(name: &str, text: Option<&str>, default: i64) -> Result<i64, ScimError> {
    match text {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| ScimError::bad(INVALID_VALUE, format!("{name} must be an integer"))),
    }
}

pub(super) async fn list_users(
    State(state): State<ScimState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ScimError> {
    let Query(query) =
        query.map_err(|rejection| ScimError::bad(INVALID_VALUE, rejection.body_text()))?;
    let filter = query.filter.as_deref().map(parse_filter).transpose()?;
    // RFC 7644 section 3.4.2.4: below 1 means 1, negative counts mean 0.
    let start_index = query_number("startIndex", query.start_index.as_deref(), 1)?.max(1);
    let count = query_number("count", query.count.as_deref(), DEFAULT_COUNT)?.clamp(0, MAX_RESULTS);
    let (user_name, external_id) = match &filter {
        Some(UserFilter::UserName(name)) => (Some(name.as_str()), None),
        Some(UserFilter::ExternalId(id)) => (None, Some(id.as_str())),
        None => (None, None),
    };
    let (total, users) = state
        .store
        .directory_users(user_name, external_id, start_index - 1, count)
        .await?;
    let resources = users
        .iter()
        .map(UserResource::of)
        .collect::<Result<Vec<_>, _>>()?;
    let list = ListResponse {
        schemas: [LIST_SCHEMA],
        total_results: total,
        start_index,
        items_per_page: resources.len(),
        resources,
    };
    Ok(scim_response(StatusCode::OK, &list))
}

pub(super) async fn get_user(
    State(state): State<ScimState>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let user = existing_user(&state.store, &id).await?;
    user_response(StatusCode::OK, &user)
}

pub(super) async fn existing_user(store: &Store, id: &str) -> Result<DirectoryUser, ScimError> {
    store
        .directory_user(id)
        .await?
        .ok_or_else(|| ScimError::no_user(id))
}

/// userName is unique per RFC 7643; the database does not enforce it, so it is checked here.
/// Two concurrent requests can still both pass; directories provision one user at a time.
async fn ensure_user_name_free(
    store: &Store,
    user_name: &str,
    except_id: Option<&str>,
) -> Result<(), ScimError> {
    let (_, users) = store.directory_users(Some(user_name), None, 0, 2).await?;
    if users.iter().any(|user| Some(user.id.as_str()) != except_id) {
        return Err(ScimError::Conflict(format!(
            "a user with userName {user_name} exists"
        )));
    }
    Ok(())
}

/// Stored time has microsecond precision; a response should show what a later read will.
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_microsecond(now.microsecond()).unwrap_or(now)
}

pub(super) async fn create_user(
    State(state): State<ScimState>,
    context: RequestContext,
    body: Bytes,
) -> Result<Response, ScimError> {
    let attributes = Attributes::from_object(&json_object(&body)?)?;
    let user_name = attributes
        .user_name
        .clone()
        .ok_or_else(|| ScimError::bad(INVALID_VALUE, "userName is required"))?;
    let external_id = attributes.external_id.clone().ok_or_else(|| {
        ScimError::bad(
            INVALID_VALUE,
            "externalId is required: map the directory's object id to it",
        )
    })?;
    ensure_user_name_free(&state.store, &user_name, None).await?;
    let now = now();
    let user = DirectoryUser {
        id: Uuid::now_v7().to_string(),
        external_id,
        display_name: attributes.display_name_or(&user_name),
        user_name,
        active: attributes.active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    state.store.insert_directory_user(&user).await?;
    // Created inactive still locks out: the person may have signed in before provisioning.
    let change = Change {
        kind: ChangeKind::Created,
        locks_out: !user.active,
        was_active: false,
        changed: Vec::new(),
    };
    settle(&state, &context, &user, change).await?;
    let mut response = user_response(StatusCode::CREATED, &user)?;
    if let Ok(location) = HeaderValue::from_str(&user_location(&user.id)) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

pub(super) async fn replace_user(
    State(state): State<ScimState>,
    context: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let attributes = Attributes::from_object(&json_object(&body)?)?;
    let before = existing_user(&state.store, &id).await?;
    let user_name = attributes
        .user_name
        .clone()
        .ok_or_else(|| ScimError::bad(INVALID_VALUE, "userName is required"))?;
    let mut after = before.clone();
    after.display_name = attributes.display_name_or(&user_name);
    after.user_name = user_name;
    // A replacement that leaves `active` out keeps the stored value: reading its absence as
    // the default `true` would quietly lift a lock-out.
    after.active = attributes.active.unwrap_or(before.active);
    if let Some(external_id) = &attributes.external_id {
        keep_external_id(&before, external_id)?;
    }
    let set_inactive = attributes.active == Some(false);
    update(&state, &context, &before, after, set_inactive).await
}

/// Stores a PUT's or PATCH's result, locks the user out if this request deprovisions them, and
/// audits it. A request that changes nothing stored (attributes kept elsewhere) writes nothing.
pub(super) async fn update(
    state: &ScimState,
    context: &RequestContext,
    before: &DirectoryUser,
    mut after: DirectoryUser,
    set_inactive: bool,
) -> Result<Response, ScimError> {
    let changed = changed_attributes(before, &after);
    // Asserting inactive again still locks out: a retry after a failed audit must redo it.
    let locks_out = !after.active && (before.active || set_inactive);
    if changed.is_empty() && !locks_out {
        return user_response(StatusCode::OK, before);
    }
    if changed.contains(&"userName") {
        ensure_user_name_free(&state.store, &after.user_name, Some(&after.id)).await?;
    }
    if !changed.is_empty() {
        after.updated_at = now();
        if !state.store.update_directory_user(&after).await? {
            return Err(ScimError::no_user(&after.id));
        }
    }
    let change = Change {
        kind: ChangeKind::Updated,
        locks_out,
        was_active: before.active,
        changed,
    };
    settle(state, context, &after, change).await?;
    user_response(StatusCode::OK, &after)
}

fn changed_attributes(before: &DirectoryUser, after: &DirectoryUser) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if before.user_name != after.user_name {
        changed.push("userName");
    }
    if before.display_name != after.display_name {
        changed.push("displayName");
    }
    if before.active != after.active {
        changed.push("active");
    }
    changed
}

pub(super) async fn delete_user(
    State(state): State<ScimState>,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let before = existing_user(&state.store, &id).await?;
    // The store keeps the row as an inactive tombstone, so the lock-out outlives the user.
    if state
        .store
        .delete_directory_user(&id, now())
        .await?
        .is_none()
    {
        return Err(ScimError::no_user(&id));
    }
    let change = Change {
        kind: ChangeKind::Deleted,
        locks_out: true,
        was_active: before.active,
        changed: Vec::new(),
    };
    let mut deleted = before;
    deleted.active = false;
    settle(&state, &context, &deleted, change).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

/// What a write did, for locking out and the audit record.
struct Change {
    kind: ChangeKind,
    /// End the user's sessions and revoke their keys.
    locks_out: bool,
    was_active: bool,
    changed: Vec<&'static str>,
}

/// After a user's new state is stored: lock them out if the change calls for it, then audit.
/// The lock-out comes first and waits on nothing else; if the audit then fails, the directory
/// gets a 500, because an unaudited change must not look successful (its retry redoes both).
async fn settle(
    state: &ScimState,
    context: &RequestContext,
    user: &DirectoryUser,
    change: Change,
) -> Result<(), ScimError> {
    let mut details = json!({
        "externalId": user.external_id,
        "userName": user.user_name,
        "active": user.active,
    });
    let mut action = match change.kind {
        ChangeKind::Created => AuditAction::ScimUserCreated,
        ChangeKind::Updated => AuditAction::ScimUserUpdated,
        ChangeKind::Deleted => AuditAction::ScimUserDeleted,
    };
    if !change.changed.is_empty() {
        details["changed"] = json!(change.changed);
    }
    if change.locks_out {
        let locked = lock_out(&state.store, &user.external_id).await;
        state.credentials.clear();
        let (sessions_ended, api_keys_revoked) = locked?;
        tracing::info!(
            user = %user.id,
            sessions_ended,
            api_keys_revoked,
            "directory deprovisioned a user"
        );
        details["sessions_ended"] = json!(sessions_ended);
        details["api_keys_revoked"] = json!(api_keys_revoked);
        details["was_active"] = json!(change.was_active);
        // Deleting a user who was already locked out, with nothing left to end, is a deletion.
        let nothing_to_end = sessions_ended == 0 && api_keys_revoked == 0;
        if !(change.kind == ChangeKind::Deleted && !change.was_active && nothing_to_end) {
            action = AuditAction::ScimUserDeprovisioned;
        }
        if change.kind == ChangeKind::Deleted {
            details["deleted"] = json!(true);
        }
    }
    let resource = format!("directory_user/{}", user.id);
    let event = AuditEvent::new(scim_actor(), action, resource.as_str(), Outcome::Allowed)
        .with_origin(context.origin())
        .with_details(details);
    if let Err(error) = state.audit.append(event).await {
        // The change stands; the log keeps what the trail could not.
        tracing::error!(%error, action = action.as_str(), %resource, "a SCIM change could not be audited");
        return Err(error.into());
    }
    Ok(())
}

/// Ends the subject's sessions and revokes their keys; both are tried even if one fails.
async fn lock_out(store: &Store, subject: &str) -> Result<(u64, u64), StoreError> {
    let now = now();
    let sessions = store
        .end_sessions_of(subject, SESSIONS_END_REASON, now)
        .await;
    let keys = store
        .revoke_api_keys_of(subject, KEYS_REVOKE_REASON, now)
        .await;
    Ok((sessions?, keys?))
}
