//! Kill switches: the platform, one assistant, one deployment. The stored rows are the truth
//! (they survive restarts); each instance keeps them in a [`Switchboard`] that every request and
//! every running stream consults. An instance reloads the rows when the switch revision moves,
//! checked at once when the operations bus announces a switch (PostgreSQL `NOTIFY`) and every
//! [`POLL_EVERY`] in any case, so every instance obeys well within two seconds. A running
//! stream waits on [`Switchboard::disabled`] beside its model stream and ends when it resolves.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ajutant_core::audit::Outcome;
use ajutant_core::policy::Action;
use ajutant_store::{KillSwitch, Store, SwitchChange};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;

use super::bus::OpsEvent;
use crate::AppState;
use crate::identity::Caller;
use crate::identity::access::{authorized_as, owner_or_authorized_as};
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

/// The longest an instance goes without checking the switch revision.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(500);
/// Longest reason accepted, in characters.
const MAX_REASON_CHARS: usize = 1000;

/// Who pulled something, and why; shown to IT operations, never to end users.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pulled {
    pub reason: String,
    pub by_name: String,
    pub at: OffsetDateTime,
}

/// The switches in force, as loaded from the store.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct InForce {
    platform: Option<Pulled>,
    assistants: HashMap<String, Pulled>,
    deployments: HashMap<String, Pulled>,
}

impl InForce {
    fn from_rows(rows: &[KillSwitch]) -> Self {
        let mut state = Self::default();
        for row in rows.iter().filter(|row| row.state == "killed") {
            let pulled = Pulled {
                reason: row.reason.clone(),
                by_name: row.changed_by_name.clone(),
                at: row.changed_at,
            };
            match row.target.as_str() {
                "platform" => state.platform = Some(pulled),
                "assistant" => {
                    state.assistants.insert(row.target_id.clone(), pulled);
                }
                "deployment" => {
                    state.deployments.insert(row.target_id.clone(), pulled);
                }
                other => tracing::warn!(target = other, "unknown kill switch target"),
            }
        }
        state
    }

    pub(crate) fn assistant(&self, id: &str) -> Option<&Pulled> {
        self.assistants.get(id)
    }

    pub(crate) fn deployment(&self, name: &str) -> Option<&Pulled> {
        self.deployments.get(name)
    }

    /// What stops a call for this assistant and deployment, as a message for its user.
    pub(crate) fn blocks(
        &self,
        assistant: Option<&str>,
        deployment: Option<&str>,
    ) -> Option<Disabled> {
        if self.platform.is_some() {
            return Some(Disabled {
                code: "platform_disabled",
                message: "Ajutant has been switched off by IT operations".to_owned(),
            });
        }
        if let Some(id) = assistant
            && self.assistants.contains_key(id)
        {
            return Some(Disabled {
                code: "assistant_disabled",
                message: format!("the assistant {id} has been disabled"),
            });
        }
        if let Some(name) = deployment
            && self.deployments.contains_key(name)
        {
            return Some(Disabled {
                code: "deployment_disabled",
                message: format!("the model deployment {name} has been disabled"),
            });
        }
        None
    }
}

/// Why a call may not run, for the user: a stable code and a message without the internal
/// reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Disabled {
    pub code: &'static str,
    pub message: String,
}

/// This instance's view of the kill switches. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Switchboard {
    state: Arc<watch::Sender<Arc<InForce>>>,
}

impl Switchboard {
    /// Loads the stored switches; called before the instance serves anything.
    pub async fn load(store: &Store) -> Result<Self, ajutant_store::StoreError> {
        let rows = store.kill_switches().await?;
        let (sender, _) = watch::channel(Arc::new(InForce::from_rows(&rows)));
        Ok(Self {
            state: Arc::new(sender),
        })
    }

    pub(crate) fn current(&self) -> Arc<InForce> {
        Arc::clone(&self.state.borrow())
    }

    /// Reads the stored switches again and publishes them if they changed.
    pub(crate) async fn reload(&self, store: &Store) -> Result<(), ajutant_store::StoreError> {
        let fresh = InForce::from_rows(&store.kill_switches().await?);
        self.state.send_if_modified(|state| {
            if **state == fresh {
                false
            } else {
                *state = Arc::new(fresh);
                true
            }
        });
        Ok(())
    }

    /// Resolves when the platform, `assistant` or `deployment` is switched off (at once if it
    /// already is). Owns what it needs, so a stream can keep it.
    pub(crate) fn disabled(
        &self,
        assistant: Option<String>,
        deployment: Option<String>,
    ) -> impl Future<Output = Disabled> + Send + 'static {
        let mut receiver = self.state.subscribe();
        async move {
            let found = receiver
                .wait_for(|state| {
                    state
                        .blocks(assistant.as_deref(), deployment.as_deref())
                        .is_some()
                })
                .await
                .ok()
                .and_then(|state| state.blocks(assistant.as_deref(), deployment.as_deref()));
            match found {
                Some(disabled) => disabled,
                // The switchboard is gone: the server is stopping; nothing more to wait for.
                None => std::future::pending().await,
            }
        }
    }

    /// Keeps this instance's switches current until `stop` is set: reloads when the revision
    /// moves, looked at every [`POLL_EVERY`] and at once when the bus announces a switch.
    pub(crate) async fn follow(
        self,
        store: Store,
        mut events: broadcast::Receiver<OpsEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut seen = store.switch_revision().await.ok();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                event = events.recv() => match event {
                    Ok(event) if event.kind != "switch" => continue,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
            match store.switch_revision().await {
                Ok(revision) if Some(revision) == seen => {}
                Ok(revision) => match self.reload(&store).await {
                    Ok(()) => seen = Some(revision),
                    Err(error) => tracing::warn!(%error, "cannot reload the kill switches"),
                },
                Err(error) => tracing::warn!(%error, "cannot read the kill switch revision"),
            }
        }
    }
}

/// What can be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Platform,
    Assistant,
    Deployment,
}

impl Target {
    fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Assistant => "assistant",
            Self::Deployment => "deployment",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SwitchState {
    Killed,
    Active,
}

impl SwitchState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Killed => "killed",
            Self::Active => "active",
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
        target: row.target,
        state: row.state,
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
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::BadRequest(format!(
            "reason must be 1 to {MAX_REASON_CHARS} characters: say why"
        )));
    }
    let id = body.id.as_deref().map(str::trim).unwrap_or_default();
    let resource = match body.target {
        Target::Platform if !id.is_empty() => {
            return Err(ApiError::BadRequest(
                "the platform switch takes no id".to_owned(),
            ));
        }
        Target::Platform => "platform".to_owned(),
        Target::Assistant | Target::Deployment if id.is_empty() => {
            return Err(ApiError::BadRequest(format!(
                "id is required: which {}",
                body.target.as_str()
            )));
        }
        target => format!("{}/{id}", target.as_str()),
    };
    let wanted = Wanted {
        target: body.target,
        state: body.state,
        id,
        resource: &resource,
    };
    let role = authorize_switch(&state, &context, &caller, wanted).await?;
    let stored = state
        .store
        .set_kill_switch(
            SwitchChange {
                target: body.target.as_str(),
                target_id: id,
                state: body.state.as_str(),
                reason,
                changed_by: &caller.principal.id,
                changed_by_name: &caller.principal.display_name,
                changed_by_role: role,
            },
            OffsetDateTime::now_utc(),
        )
        .await?;
    // This instance obeys before it answers; the others hear of it through the bus.
    state.switches.reload(&state.store).await?;
    state.bus.poke();
    state
        .record(
            caller
                .event(&context, "kill_switch.set", resource, Outcome::Allowed)
                .with_details(json!({
                    "target": body.target.as_str(),
                    "id": (!id.is_empty()).then_some(id),
                    "state": body.state.as_str(),
                    "reason": reason,
                    "role": role,
                })),
        )
        .await?;
    metrics::counter!(
        "ajutant_kill_switch_changes_total",
        "target" => body.target.as_str(),
        "state" => body.state.as_str()
    )
    .increment(1);
    Ok(Json(switch_view(stored)))
}

/// A switch someone wants to flip.
#[derive(Debug, Clone, Copy)]
struct Wanted<'a> {
    target: Target,
    state: SwitchState,
    id: &'a str,
    resource: &'a str,
}

/// Checks the target exists and the caller may switch it; returns what allowed them.
async fn authorize_switch(
    state: &AppState,
    context: &RequestContext,
    caller: &Caller,
    wanted: Wanted<'_>,
) -> Result<&'static str, ApiError> {
    let Wanted { id, resource, .. } = wanted;
    match (wanted.target, wanted.state) {
        (Target::Platform, SwitchState::Killed) => {
            authorized_as(state, context, caller, Action::KillPlatform, resource).await
        }
        (Target::Platform, SwitchState::Active) => {
            authorized_as(state, context, caller, Action::RevivePlatform, resource).await
        }
        (Target::Deployment, _) => {
            if !state.gateway.has_deployment(id) {
                return Err(ApiError::NotFound(format!("no deployment {id:?}")));
            }
            authorized_as(
                state,
                context,
                caller,
                Action::KillDeployment(id.to_owned()),
                resource,
            )
            .await
        }
        (Target::Assistant, asked) => {
            let Some(assistant) = crate::assistants::load(state, id).await? else {
                return Err(ApiError::NotFound(format!("no assistant {id:?}")));
            };
            let owner_group = assistant.definition.owner_group.as_deref();
            let pulled_by_owners =
                state
                    .store
                    .kill_switch("assistant", id)
                    .await?
                    .is_some_and(|row| {
                        row.state == "killed"
                            && matches!(
                                row.changed_by_role.as_str(),
                                "owner_group" | "assistant_owner"
                            )
                    });
            if asked == SwitchState::Active && !pulled_by_owners {
                // What IT operations pulled, only they (or an admin) bring back.
                return authorized_as(
                    state,
                    context,
                    caller,
                    Action::ReviveAssistant(id.to_owned()),
                    resource,
                )
                .await;
            }
            owner_or_authorized_as(
                state,
                context,
                caller,
                owner_group,
                (Action::KillAssistant(id.to_owned()), resource),
            )
            .await
        }
    }
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
    authorized_as(
        &state,
        &context,
        &caller,
        Action::HandleIncidents,
        "kill-switches",
    )
    .await?;
    let switches = state
        .store
        .kill_switches()
        .await?
        .into_iter()
        .map(switch_view)
        .collect();
    Ok(Json(SwitchList { switches }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: &str, id: &str, state: &str) -> KillSwitch {
        KillSwitch {
            target: target.to_owned(),
            target_id: id.to_owned(),
            state: state.to_owned(),
            reason: "why".to_owned(),
            changed_by: "p".to_owned(),
            changed_by_name: "P".to_owned(),
            changed_by_role: "it_ops".to_owned(),
            changed_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn only_killed_rows_block_and_the_platform_blocks_everything() {
        let state = InForce::from_rows(&[
            row("assistant", "hr", "killed"),
            row("assistant", "it", "active"),
            row("deployment", "gpt", "killed"),
        ]);
        assert_eq!(
            state.blocks(Some("hr"), Some("offline")).map(|d| d.code),
            Some("assistant_disabled")
        );
        assert_eq!(state.blocks(Some("it"), Some("offline")), None);
        assert_eq!(
            state.blocks(Some("it"), Some("gpt")).map(|d| d.code),
            Some("deployment_disabled")
        );
        let everything = InForce::from_rows(&[row("platform", "", "killed")]);
        assert_eq!(
            everything.blocks(None, None).map(|d| d.code),
            Some("platform_disabled")
        );
    }

    #[tokio::test]
    async fn a_waiting_stream_hears_of_a_kill() {
        let (sender, _) = watch::channel(Arc::new(InForce::default()));
        let board = Switchboard {
            state: Arc::new(sender),
        };
        let waiting = tokio::spawn(board.disabled(Some("hr".to_owned()), None));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        board.state.send_replace(Arc::new(InForce::from_rows(&[row(
            "assistant",
            "it",
            "killed",
        )])));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "another assistant's kill is not ours"
        );
        board.state.send_replace(Arc::new(InForce::from_rows(&[row(
            "assistant",
            "hr",
            "killed",
        )])));
        let disabled = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(
            matches!(
                disabled,
                Ok(Ok(Disabled {
                    code: "assistant_disabled",
                    ..
                }))
            ),
            "{disabled:?}"
        );
    }
}
