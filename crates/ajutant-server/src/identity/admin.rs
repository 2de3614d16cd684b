//! Identity administration's rules: platform admins grant roles to directory groups or app roles
//! and issue and revoke the platform's API keys. Every change is audited; a revocation applies
//! from the next request on every instance (this one at once).

use ajutant_core::audit::{AuditAction, Outcome};
use ajutant_core::config::RoleBindingSeed;
use ajutant_core::policy::{Action, Grantee, PrincipalKind, Role, RoleBinding};
use ajutant_store::{ApiKey, StoredRoleBinding};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::api_keys::{self, ApiKeyError, NewApiKey};
use crate::access::Guard;
use crate::problem::ApiError;

/// Longest reason kept with a revoked key.
const MAX_REASON: usize = 500;

/// A role to grant, as asked for.
pub(crate) struct Grant {
    pub role: String,
    pub group: Option<String>,
    pub app_role: Option<String>,
    pub assistant: Option<String>,
}

/// A key to issue, as asked for.
pub(crate) struct KeyRequest {
    pub name: String,
    pub groups: Vec<String>,
    pub expires_at: Option<OffsetDateTime>,
}

/// Every role binding.
pub(crate) async fn role_bindings(guard: &Guard<'_>) -> Result<Vec<StoredRoleBinding>, ApiError> {
    guard
        .require(&Action::ManageRoleBindings, "role_bindings")
        .await?;
    Ok(guard.state.store.role_bindings().await?)
}

/// Grants a role; a conflict when the same binding exists.
pub(crate) async fn grant(guard: &Guard<'_>, grant: Grant) -> Result<StoredRoleBinding, ApiError> {
    guard
        .require(&Action::ManageRoleBindings, "role_bindings")
        .await?;
    let role = Role::parse(&grant.role).ok_or_else(|| {
        ApiError::BadRequest(
            "role must be assistant_owner, it_ops, auditor or platform_admin".to_owned(),
        )
    })?;
    let seed = RoleBindingSeed {
        role,
        group: grant.group,
        app_role: grant.app_role,
        assistant: grant.assistant,
    };
    let binding: RoleBinding = seed.binding().map_err(ApiError::BadRequest)?;
    let stored = guard
        .state
        .store
        .insert_role_binding(
            &binding,
            "api",
            &guard.caller.principal.id,
            OffsetDateTime::now_utc(),
        )
        .await?
        .ok_or_else(|| ApiError::Conflict("this role binding already exists".to_owned()))?;
    guard
        .record(
            AuditAction::RoleBindingCreated,
            &format!("role_binding/{}", stored.id),
            Outcome::Allowed,
            binding_details(&binding),
        )
        .await?;
    Ok(stored)
}

/// Removes a role binding; the removed binding.
pub(crate) async fn revoke_binding(
    guard: &Guard<'_>,
    id: &str,
) -> Result<StoredRoleBinding, ApiError> {
    let resource = format!("role_binding/{id}");
    guard
        .require(&Action::ManageRoleBindings, &resource)
        .await?;
    let removed = guard
        .state
        .store
        .delete_role_binding(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no role binding {id}")))?;
    guard
        .record(
            AuditAction::RoleBindingDeleted,
            &resource,
            Outcome::Allowed,
            binding_details(&removed.binding),
        )
        .await?;
    Ok(removed)
}

/// A binding as its audit records show it: the role and whom it is granted to.
fn binding_details(binding: &RoleBinding) -> Value {
    let mut details = json!({ "role": binding.role.as_str() });
    match &binding.grantee {
        Grantee::Group(id) => details["group"] = json!(id),
        Grantee::AppRole(name) => details["app_role"] = json!(name),
    }
    if let Some(assistant) = &binding.assistant {
        details["assistant"] = json!(assistant);
    }
    details
}

/// Every API key, without secrets.
pub(crate) async fn api_keys(guard: &Guard<'_>) -> Result<Vec<ApiKey>, ApiError> {
    guard.require(&Action::ManageApiKeys, "api_keys").await?;
    Ok(guard.state.store.api_keys().await?)
}

/// Issues an API key for a service identity; the key and its secret, shown once. A person
/// who creates a key owns it: if the directory deprovisions them, the key is revoked.
pub(crate) async fn issue_key(
    guard: &Guard<'_>,
    request: KeyRequest,
) -> Result<(ApiKey, String), ApiError> {
    guard.require(&Action::ManageApiKeys, "api_keys").await?;
    let principal = &guard.caller.principal;
    let owner_subject = match principal.kind {
        PrincipalKind::User => Some(principal.subject.clone()),
        PrincipalKind::Service => None,
    };
    let (key, secret) = api_keys::issue(
        &guard.state.store,
        NewApiKey {
            name: request.name,
            groups: request.groups,
            expires_at: request.expires_at,
            owner_subject,
            created_by: principal.id.clone(),
        },
    )
    .await
    .map_err(|e| match e {
        ApiKeyError::Invalid(message) => ApiError::BadRequest(message),
        ApiKeyError::Store(error) => ApiError::from(error),
    })?;
    guard
        .record(
            AuditAction::ApiKeyCreated,
            &format!("api_key/{}", key.id),
            Outcome::Allowed,
            json!({ "name": key.name, "groups": key.groups }),
        )
        .await?;
    Ok((key, secret))
}

/// Revokes an API key; refused from the next request on.
pub(crate) async fn revoke_key(
    guard: &Guard<'_>,
    id: &str,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let resource = format!("api_key/{id}");
    guard.require(&Action::ManageApiKeys, &resource).await?;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON) {
        return Err(ApiError::BadRequest(format!(
            "a reason is at most {MAX_REASON} characters"
        )));
    }
    let revoked = guard
        .state
        .store
        .revoke_api_key(
            id,
            reason.unwrap_or("revoked through the admin API"),
            OffsetDateTime::now_utc(),
        )
        .await?;
    if !revoked {
        return Err(ApiError::NotFound(format!("no live API key {id}")));
    }
    guard.state.identity.cache().clear();
    let details = reason.map_or_else(|| json!({}), |reason| json!({ "reason": reason }));
    guard
        .record(
            AuditAction::ApiKeyRevoked,
            &resource,
            Outcome::Allowed,
            details,
        )
        .await
}
