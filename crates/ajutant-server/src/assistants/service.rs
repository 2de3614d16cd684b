//! Assistants' rules, in one place for the API and the console: platform admins create
//! assistants; the owner group (and admins, and `assistant_owner` bindings) edit them, and every
//! edit is a new immutable version; users see the assistants whose scope includes them; for
//! anyone else an assistant does not exist.

use ajutant_core::assistant::Definition;
use ajutant_core::audit::Outcome;
use ajutant_core::audit_action::AuditAction;
use ajutant_core::config::Capability;
use ajutant_core::id::AssistantId;
use ajutant_core::policy::{Action, Owned, Standing};
use ajutant_store::{Assistant, AssistantVersion};
use serde_json::json;
use time::OffsetDateTime;

use crate::AppState;
use crate::access::Guard;
use crate::problem::ApiError;

/// An assistant as one caller sees it.
pub(crate) struct Seen {
    pub assistant: Assistant,
    pub standing: Standing,
    /// Switched off by its kill switch.
    pub killed: bool,
}

/// The assistant, whoever asks: for the runtime (turns, switches, feedback), which decides
/// access itself.
pub(crate) async fn load(state: &AppState, id: &str) -> Result<Option<Assistant>, ApiError> {
    if AssistantId::parse(id).is_err() {
        return Ok(None);
    }
    Ok(state.store.assistant(id).await?)
}

/// The policy's view of an assistant: its owner group, its scope, and editing as the action
/// that managing it is.
pub(crate) fn owned<'a>(assistant: &'a Assistant, edit: &'a Action) -> Owned<'a> {
    Owned {
        owner_group: assistant.definition.owner_group.as_deref(),
        scope: &assistant.definition.access,
        manage: edit,
    }
}

fn edit_action(assistant: &Assistant) -> Action {
    Action::EditAssistant(assistant.id.clone())
}

fn seen(guard: &Guard<'_>, assistant: Assistant, standing: Standing) -> Seen {
    let killed = guard
        .state
        .switches
        .current()
        .assistant(&assistant.id)
        .is_some();
    Seen {
        assistant,
        standing,
        killed,
    }
}

/// The assistants the caller may use or edit.
pub(crate) async fn list(guard: &Guard<'_>) -> Result<Vec<Seen>, ApiError> {
    let mut out = Vec::new();
    for assistant in guard.state.store.assistants().await? {
        let standing = guard
            .standing(owned(&assistant, &edit_action(&assistant)))
            .await?;
        if standing.sees() {
            out.push(seen(guard, assistant, standing));
        }
    }
    Ok(out)
}

/// One assistant, if the caller may use or edit it.
pub(crate) async fn get(guard: &Guard<'_>, id: &str) -> Result<Seen, ApiError> {
    let assistant = load(guard.state, id)
        .await?
        .ok_or_else(|| guard.not_found())?;
    let standing = guard
        .visible(owned(&assistant, &edit_action(&assistant)), &resource(id))
        .await?;
    Ok(seen(guard, assistant, standing))
}

/// The assistant if the caller may see it, recording nothing: for pages that show an
/// assistant's name beside something the caller owns (their conversation), where an assistant
/// out of reach is shown by its id rather than refused.
pub(crate) async fn peek(guard: &Guard<'_>, id: &str) -> Result<Option<Seen>, ApiError> {
    let Some(assistant) = load(guard.state, id).await? else {
        return Ok(None);
    };
    let standing = guard
        .standing(owned(&assistant, &edit_action(&assistant)))
        .await?;
    Ok(standing.sees().then(|| seen(guard, assistant, standing)))
}

/// The assistant, if the caller may edit it (its versions, its feedback); the 404 otherwise.
/// `resource` names what is being reached for the audit record.
pub(crate) async fn editable(
    guard: &Guard<'_>,
    id: &str,
    resource: &str,
) -> Result<Assistant, ApiError> {
    let assistant = load(guard.state, id)
        .await?
        .ok_or_else(|| guard.not_found())?;
    guard
        .manage(owned(&assistant, &edit_action(&assistant)), resource)
        .await?;
    Ok(assistant)
}

/// Creates an assistant at version 1 (platform admins).
pub(crate) async fn create(
    guard: &Guard<'_>,
    id: &str,
    definition: Definition,
) -> Result<Seen, ApiError> {
    guard
        .require(&Action::CreateAssistant, "assistants")
        .await?;
    let id =
        AssistantId::parse(id).map_err(|_| ApiError::BadRequest(AssistantId::RULE.to_owned()))?;
    validate(guard, &definition, None).await?;
    let assistant = guard
        .state
        .store
        .create_assistant(
            id.as_str(),
            &definition,
            &guard.caller.principal.id,
            OffsetDateTime::now_utc(),
        )
        .await?;
    guard
        .record(
            AuditAction::AssistantCreated,
            &resource(id.as_str()),
            Outcome::Allowed,
            json!({ "version": 1 }),
        )
        .await?;
    let standing = guard
        .standing(owned(&assistant, &edit_action(&assistant)))
        .await?;
    Ok(seen(guard, assistant, standing))
}

/// Edits an assistant: `definition` becomes a new version. `base_version` is the version the
/// editor started from; when another edit landed first, a conflict.
pub(crate) async fn edit(
    guard: &Guard<'_>,
    id: &str,
    base_version: Option<i64>,
    definition: Definition,
) -> Result<Seen, ApiError> {
    let resource = resource(id);
    let assistant = editable(guard, id, &resource).await?;
    validate(guard, &definition, Some(&assistant.definition)).await?;
    let assistant = guard
        .state
        .store
        .add_assistant_version(
            &assistant.id,
            base_version,
            &definition,
            &guard.caller.principal.id,
            OffsetDateTime::now_utc(),
        )
        .await?
        .ok_or_else(|| guard.not_found())?;
    guard
        .record(
            AuditAction::AssistantVersioned,
            &resource,
            Outcome::Allowed,
            json!({ "version": assistant.current_version }),
        )
        .await?;
    let standing = guard
        .standing(owned(&assistant, &edit_action(&assistant)))
        .await?;
    Ok(seen(guard, assistant, standing))
}

/// Every version of an assistant, oldest first (its editors).
pub(crate) async fn versions(
    guard: &Guard<'_>,
    id: &str,
) -> Result<Vec<AssistantVersion>, ApiError> {
    let assistant = visible_to_editor(guard, id).await?;
    Ok(guard.state.store.assistant_versions(&assistant.id).await?)
}

/// One version of an assistant (its editors).
pub(crate) async fn version(
    guard: &Guard<'_>,
    id: &str,
    version: i64,
) -> Result<AssistantVersion, ApiError> {
    let assistant = visible_to_editor(guard, id).await?;
    guard
        .state
        .store
        .assistant_version(&assistant.id, version)
        .await?
        .ok_or_else(|| guard.not_found())
}

/// Reading versions is seeing, not changing: an editor's standing is enough, and anyone else
/// gets the 404 (recorded as hidden).
async fn visible_to_editor(guard: &Guard<'_>, id: &str) -> Result<Assistant, ApiError> {
    let assistant = load(guard.state, id)
        .await?
        .ok_or_else(|| guard.not_found())?;
    if guard
        .standing(owned(&assistant, &edit_action(&assistant)))
        .await?
        .manages()
    {
        Ok(assistant)
    } else {
        Err(guard.hidden(&resource(id)).await)
    }
}

/// The definition's own rules, then what only the running server can say: that its deployment
/// offers chat to the editor and to everyone the assistant serves, and that its collections
/// exist. A collection it did not have before must be one the editor may read (one they may not
/// is reported as missing). Every problem is named at once.
async fn validate(
    guard: &Guard<'_>,
    definition: &Definition,
    previous: Option<&Definition>,
) -> Result<(), ApiError> {
    let state = guard.state;
    let mut problems = definition.problems();
    // `offers` first: a missing deployment has no grant to speak of.
    let deployment = &definition.deployment;
    let deployment_problem = state.gateway.hand_out_problem(
        deployment,
        Capability::Chat,
        &guard.caller.principal,
        &definition.access,
    );
    if let Some(problem) = deployment_problem {
        // After the name and instructions, where it has always been reported.
        let at = problems
            .iter()
            .position(|p| !p.starts_with("name ") && !p.starts_with("instructions "))
            .unwrap_or(problems.len());
        problems.insert(at, problem);
    }
    if definition.collections.len() <= ajutant_core::assistant::MAX_COLLECTIONS {
        for id in &definition.collections {
            let attached_before = previous.is_some_and(|p| p.collections.contains(id));
            let usable = if attached_before {
                state.store.collection(id).await?.is_some()
            } else {
                crate::grounding::service::readable(guard, id).await?
            };
            if !usable {
                problems.push(format!("collection {id:?} does not exist"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::BadRequest(problems.join("; ")))
    }
}

fn resource(id: &str) -> String {
    format!("assistant/{id}")
}
