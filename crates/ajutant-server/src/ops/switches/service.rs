//! Kill switches' rules: IT operations switch off anything; an assistant's owners switch off
//! their own and bring it back if they were the ones who pulled it; bringing back what IT
//! operations pulled is theirs (or an admin's); bringing back the platform is for platform
//! admins. A kill never weakens a stricter one: what IT operations hold off, owners can neither
//! pull again nor bring back (`switch::may_overwrite`, decided in the store's transaction so a
//! concurrent change cannot slip between check and write). A change is stored, applied on this instance before the answer, announced to the
//! others, and audited.

use ajutant_core::audit::Outcome;
use ajutant_core::audit_action::AuditAction;
use ajutant_core::policy::Action;
use ajutant_core::switch::{SwitchState, SwitchTarget};
use ajutant_store::{KillSwitch, SwitchChange};
use serde_json::json;
use time::OffsetDateTime;

use crate::access::Guard;
use crate::problem::ApiError;

/// Longest reason recorded with a switch.
const MAX_REASON_CHARS: usize = 1000;

/// A switch someone wants to flip.
pub(crate) struct Flip<'a> {
    pub target: SwitchTarget,
    /// The assistant's id or the deployment's name; empty for the platform.
    pub id: &'a str,
    pub state: SwitchState,
    pub reason: &'a str,
}

/// Flips a switch; the stored row.
pub(crate) async fn set(guard: &Guard<'_>, flip: Flip<'_>) -> Result<KillSwitch, ApiError> {
    let reason = flip.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::BadRequest(format!(
            "reason must be 1 to {MAX_REASON_CHARS} characters: say why"
        )));
    }
    let id = flip.id.trim();
    let resource = match flip.target {
        SwitchTarget::Platform if !id.is_empty() => {
            return Err(ApiError::BadRequest(
                "the platform switch takes no id".to_owned(),
            ));
        }
        SwitchTarget::Platform => "platform".to_owned(),
        target if id.is_empty() => {
            return Err(ApiError::BadRequest(format!(
                "id is required: which {}",
                target.as_str()
            )));
        }
        target => format!("{}/{id}", target.as_str()),
    };
    let role = allowed(guard, flip.target, flip.state, id, &resource).await?;
    let state = guard.state;
    let principal = &guard.caller.principal;
    let stored = state
        .store
        .set_kill_switch(
            SwitchChange {
                target: flip.target,
                target_id: id,
                state: flip.state,
                reason,
                changed_by: &principal.id,
                changed_by_name: &principal.display_name,
                changed_by_role: role,
            },
            OffsetDateTime::now_utc(),
        )
        .await?;
    // This instance obeys before it answers; the others hear of it through the bus.
    state.switches.reload(&state.store).await?;
    state.bus.poke();
    guard
        .record(
            AuditAction::KillSwitchSet,
            &resource,
            Outcome::Allowed,
            json!({
                "target": flip.target.as_str(),
                "id": (!id.is_empty()).then_some(id),
                "state": flip.state.as_str(),
                "reason": reason,
                "role": role,
            }),
        )
        .await?;
    metrics::counter!(
        "ajutant_kill_switch_changes_total",
        "target" => flip.target.as_str(),
        "state" => flip.state.as_str()
    )
    .increment(1);
    Ok(stored)
}

/// Checks the target exists and the caller may switch it; what allowed them.
async fn allowed(
    guard: &Guard<'_>,
    target: SwitchTarget,
    asked: SwitchState,
    id: &str,
    resource: &str,
) -> Result<&'static str, ApiError> {
    let state = guard.state;
    match (target, asked) {
        (SwitchTarget::Platform, SwitchState::Killed) => Ok(guard
            .require(&Action::KillPlatform, resource)
            .await?
            .as_str()),
        (SwitchTarget::Platform, SwitchState::Active) => Ok(guard
            .require(&Action::RevivePlatform, resource)
            .await?
            .as_str()),
        (SwitchTarget::Deployment, _) => {
            if !state.gateway.has_deployment(id) {
                return Err(ApiError::NotFound(format!("no deployment {id:?}")));
            }
            let action = Action::KillDeployment(id.to_owned());
            Ok(guard.require(&action, resource).await?.as_str())
        }
        (SwitchTarget::Assistant, asked) => {
            let Some(assistant) = crate::assistants::service::load(state, id).await? else {
                return Err(ApiError::NotFound(format!("no assistant {id:?}")));
            };
            let pulled_by_owners = state
                .store
                .kill_switch(SwitchTarget::Assistant.as_str(), id)
                .await?
                .is_some_and(|row| {
                    row.state == SwitchState::Killed
                        && matches!(
                            row.changed_by_role.as_str(),
                            "owner_group" | "assistant_owner"
                        )
                });
            if asked == SwitchState::Active && !pulled_by_owners {
                // What IT operations pulled, only they (or an admin) bring back.
                let action = Action::ReviveAssistant(id.to_owned());
                return Ok(guard.require(&action, resource).await?.as_str());
            }
            let kill = Action::KillAssistant(id.to_owned());
            let owned = crate::assistants::service::owned(&assistant, &kill);
            Ok(guard.manage(owned, resource).await?.as_str())
        }
    }
}

/// Every switch ever flipped, most recent first (IT operations).
pub(crate) async fn list(guard: &Guard<'_>) -> Result<Vec<KillSwitch>, ApiError> {
    guard
        .require(&Action::HandleIncidents, "kill-switches")
        .await?;
    Ok(guard.state.store.kill_switches().await?)
}
