//! `/api/v1/kill-switches`: extract, call the service, render.

use ajutant_core::switch;
use ajutant_store::KillSwitch;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::service::{self, Flip};
use crate::AppState;
use crate::access::Guard;
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

/// What can be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Platform,
    Assistant,
    Deployment,
}

impl From<Target> for switch::SwitchTarget {
    fn from(target: Target) -> Self {
        match target {
            Target::Platform => Self::Platform,
            Target::Assistant => Self::Assistant,
            Target::Deployment => Self::Deployment,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SwitchState {
    Killed,
    Active,
}

impl From<SwitchState> for switch::SwitchState {
    fn from(state: SwitchState) -> Self {
        match state {
            SwitchState::Killed => Self::Killed,
            SwitchState::Active => Self::Active,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchBody {
    pub target: Target,
    /// The assistant's id or the deployment's name; absent for the platform.
    #[serde(default)]
    pub id: Option<String>,
    pub state: SwitchState,
    /// Why: recorded with the switch and in the audit trail.
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SwitchView {
    pub target: String,
    pub id: Option<String>,
    pub state: String,
    pub reason: String,
    /// The principal id of who flipped it.
    pub changed_by: String,
    pub changed_by_name: String,
    /// What allowed them: a role, or `owner_group`.
    pub changed_by_role: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub changed_at: OffsetDateTime,
}

pub(crate) fn switch_view(row: KillSwitch) -> SwitchView {
    SwitchView {
        id: (!row.target_id.is_empty()).then_some(row.target_id),
        target: row.target.as_str().to_owned(),
        state: row.state.as_str().to_owned(),
        reason: row.reason,
        changed_by: row.changed_by,
        changed_by_name: row.changed_by_name,
        changed_by_role: row.changed_by_role,
        changed_at: row.changed_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SwitchList {
    pub switches: Vec<SwitchView>,
}

/// Switch the platform, an assistant or a deployment off (`killed`) or back on (`active`).
/// IT operations may switch off anything; an assistant's owners may switch off their own and
/// bring it back if they were the ones who pulled it; bringing back the platform is for
/// platform admins. Takes effect on every instance within two seconds; running answers of a
/// pulled assistant end with an error event.
#[utoipa::path(operation_id = "set_kill_switch", post, path = "/api/v1/kill-switches", tag = "operations",
    request_body = SwitchBody,
    responses((status = 200, description = "The switch as stored", body = SwitchView),
        (status = 400, description = "Invalid", body = Problem),
        (status = 404, description = "No such target, or the caller may not switch it", body = Problem)))]
pub(crate) async fn set(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Json(body): Json<SwitchBody>,
) -> Result<Json<SwitchView>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let flip = Flip {
        target: body.target.into(),
        id: body.id.as_deref().unwrap_or_default(),
        state: body.state.into(),
        reason: &body.reason,
    };
    Ok(Json(switch_view(service::set(&guard, flip).await?)))
}

/// Every switch ever flipped, with who, why and when; most recent first. For IT operations.
#[utoipa::path(operation_id = "list_kill_switches", get, path = "/api/v1/kill-switches", tag = "operations",
    responses((status = 200, description = "The switches", body = SwitchList),
        (status = 404, description = "Not for the caller", body = Problem)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
) -> Result<Json<SwitchList>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let switches = service::list(&guard)
        .await?
        .into_iter()
        .map(switch_view)
        .collect();
    Ok(Json(SwitchList { switches }))
}
