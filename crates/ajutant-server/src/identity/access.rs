//! Enforcement of the policy at the HTTP edge: every protected handler calls [`authorize`],
//! which asks `ajutant_core::policy::decide` with the current role bindings, writes the decision
//! to the audit trail (denials and allowed protected actions alike), and turns a denial into the
//! same 404 an absent resource gets, so a caller learns nothing about what they may not see.

use ajutant_core::audit::Outcome;
use ajutant_core::policy::{Action, Decision, RoleBinding, decide};

use super::Caller;
use crate::AppState;
use crate::problem::ApiError;
use crate::request::RequestContext;

/// The role bindings in force now. Read per decision, so a binding added or removed through the
/// admin API (on any instance) applies to the next request.
pub(crate) async fn bindings(state: &AppState) -> Result<Vec<RoleBinding>, ApiError> {
    Ok(state
        .store
        .role_bindings()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .into_iter()
        .map(|stored| stored.binding)
        .collect())
}

/// Allows `action` on `resource` for `caller`, or answers 404 for `context.path`.
pub(crate) async fn authorize(
    state: &AppState,
    context: &RequestContext,
    caller: &Caller,
    action: Action,
    resource: &str,
) -> Result<(), ApiError> {
    authorized_as(state, context, caller, action, resource)
        .await
        .map(|_| ())
}

/// As [`authorize`], returning the role that allowed it (for records that keep it).
pub(crate) async fn authorized_as(
    state: &AppState,
    context: &RequestContext,
    caller: &Caller,
    action: Action,
    resource: &str,
) -> Result<&'static str, ApiError> {
    let decision = decide(&caller.principal, &bindings(state).await?, &action);
    let (outcome, details) = match decision {
        Decision::Allowed(role) => (Outcome::Allowed, serde_json::json!({ "role": role })),
        Decision::Denied => (Outcome::Denied, serde_json::json!({})),
    };
    let event = caller
        .event(context, action.name(), resource, outcome)
        .with_details(details);
    state.record(event).await?;
    match decision {
        Decision::Allowed(role) => Ok(role.as_str()),
        Decision::Denied => Err(ApiError::NotFound(format!(
            "no resource at {}",
            context.path
        ))),
    }
}
