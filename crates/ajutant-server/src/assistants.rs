//! `/api/v1/assistants`: what an assistant is (instructions, deployment, grounding, scope,
//! owners) and its versions. Platform admins create assistants; the owner group (and admins,
//! and `assistant_owner` bindings) edit them, and every edit is a new immutable version.
//! Users see the assistants whose scope includes them; others answer 404.

use ajutant_core::audit::Outcome;
use ajutant_core::config::Capability;
use ajutant_core::policy::{AccessScope, Action, Principal, in_owner_group};
use ajutant_store::Assistant;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::identity::Caller;
use crate::identity::access::{allows, authorize, authorize_owner_or, bindings};
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, edit))
        .routes(routes!(versions))
        .routes(routes!(version))
}

/// Sampling settings passed to the deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Most tokens in one answer (the gateway's cap still applies).
    pub max_tokens: Option<u32>,
}

/// Everything a version fixes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The system instructions.
    #[serde(default)]
    pub instructions: String,
    /// The chat deployment that answers.
    pub deployment: String,
    #[serde(default)]
    pub generation: Generation,
    /// Collection ids the answers are grounded in.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Passages retrieved per turn (default `chat.default_top_k`).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Who may use it.
    #[schema(value_type = Object)]
    pub access: AccessScope,
    /// Members may edit it and read its feedback.
    #[serde(default)]
    pub owner_group: Option<String>,
    /// Suggested first questions.
    #[serde(default)]
    pub starters: Vec<String>,
}

impl Definition {
    async fn check(&self, state: &AppState) -> Result<(), ApiError> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            problems.push("name must be 1 to 200 characters".to_owned());
        }
        if self.instructions.chars().count() > 20_000 {
            problems.push("instructions must be at most 20,000 characters".to_owned());
        }
        if !state.gateway.offers(&self.deployment, Capability::Chat) {
            problems.push(format!(
                "deployment `{}` is not a deployment offering chat",
                self.deployment
            ));
        }
        if let Some(t) = self.generation.temperature
            && !(0.0..=2.0).contains(&t)
        {
            problems.push("generation.temperature must be between 0 and 2".to_owned());
        }
        if let Some(p) = self.generation.top_p
            && !(0.0..=1.0).contains(&p)
        {
            problems.push("generation.top_p must be between 0 and 1".to_owned());
        }
        if let Some(k) = self.top_k
            && !(1..=50).contains(&k)
        {
            problems.push("top_k must be between 1 and 50".to_owned());
        }
        if let Some(problem) = self.access.problem() {
            problems.push(format!("access: {problem}"));
        }
        if self.starters.len() > 10 || self.starters.iter().any(|s| s.chars().count() > 300) {
            problems.push("at most 10 starters of at most 300 characters".to_owned());
        }
        if self.collections.len() > 20 {
            problems.push("at most 20 collections".to_owned());
        }
        for id in &self.collections {
            if state.store.collection(id).await?.is_none() {
                problems.push(format!("collection {id:?} does not exist"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::BadRequest(problems.join("; ")))
        }
    }
}

/// A stored assistant with its current definition.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub row: Assistant,
    pub definition: Definition,
}

impl Loaded {
    fn new(row: Assistant) -> Result<Self, ApiError> {
        let definition = serde_json::from_str(&row.definition)
            .map_err(|e| ApiError::Internal(format!("assistant {} cannot be read: {e}", row.id)))?;
        Ok(Self { row, definition })
    }

    pub(crate) fn usable_by(&self, principal: &Principal) -> bool {
        self.definition.access.admits(principal)
    }

    fn owned_by(&self, principal: &Principal) -> bool {
        in_owner_group(principal, self.definition.owner_group.as_deref())
    }
}

pub(crate) async fn load(state: &AppState, id: &str) -> Result<Option<Loaded>, ApiError> {
    state
        .store
        .assistant(id)
        .await?
        .map(Loaded::new)
        .transpose()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantView {
    pub id: String,
    pub version: i64,
    /// `active`, or `killed` (switched off by its kill switch).
    pub status: String,
    #[serde(flatten)]
    pub definition: Definition,
    /// Whether the caller may edit it.
    pub can_edit: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

fn view(state: &AppState, loaded: Loaded, can_edit: bool) -> AssistantView {
    let killed = state.switches.current().assistant(&loaded.row.id).is_some();
    AssistantView {
        id: loaded.row.id,
        version: loaded.row.current_version,
        status: if killed { "killed" } else { "active" }.to_owned(),
        definition: loaded.definition,
        can_edit,
        updated_at: loaded.row.updated_at,
        updated_by: loaded.row.updated_by,
    }
}

async fn can_edit(state: &AppState, caller: &Caller, loaded: &Loaded) -> Result<bool, ApiError> {
    Ok(loaded.owned_by(&caller.principal)
        || allows(
            caller,
            &bindings(state).await?,
            &Action::EditAssistant(loaded.row.id.clone()),
        ))
}

/// The assistants the caller may use or edit.
#[utoipa::path(operation_id = "list_assistants", get, path = "/api/v1/assistants", tag = "assistants",
    responses((status = 200, description = "Assistants the caller may use or edit", body = [AssistantView])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AssistantView>>, ApiError> {
    let mut out = Vec::new();
    for row in state.store.assistants().await? {
        let loaded = Loaded::new(row)?;
        let edit = can_edit(&state, &caller, &loaded).await?;
        if edit || loaded.usable_by(&caller.principal) {
            out.push(view(&state, loaded, edit));
        }
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateBody {
    /// A slug: lower-case letters, digits and dashes, e.g. `hr-helpdesk`.
    pub id: String,
    #[serde(flatten)]
    pub definition: Definition,
}

fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = (2..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "id must be 2 to 64 lower-case letters, digits and dashes".to_owned(),
        ))
    }
}

/// Create an assistant (platform admins) at version 1.
#[utoipa::path(operation_id = "create_assistant", post, path = "/api/v1/assistants", tag = "assistants",
    request_body = CreateBody,
    responses((status = 201, description = "Created", body = AssistantView),
        (status = 400, description = "Invalid", body = Problem),
        (status = 409, description = "The id is taken", body = Problem)))]
async fn create(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<AssistantView>), ApiError> {
    authorize(
        &state,
        &context,
        &caller,
        Action::CreateAssistant,
        "assistants",
    )
    .await?;
    check_id(&body.id)?;
    body.definition.check(&state).await?;
    let definition =
        serde_json::to_string(&body.definition).map_err(|e| ApiError::Internal(e.to_string()))?;
    let row = state
        .store
        .create_assistant(
            &body.id,
            &definition,
            &caller.principal.id,
            OffsetDateTime::now_utc(),
        )
        .await?;
    state
        .record(
            caller
                .event(
                    &context,
                    "assistant.created",
                    format!("assistant/{}", body.id),
                    Outcome::Allowed,
                )
                .with_details(json!({ "version": 1 })),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&state, Loaded::new(row)?, true)),
    ))
}

/// An assistant, if the caller may use or edit it.
#[utoipa::path(operation_id = "get_assistant", get, path = "/api/v1/assistants/{id}", tag = "assistants",
    params(("id" = String, Path, description = "The assistant's id")),
    responses((status = 200, description = "The assistant", body = AssistantView),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AssistantView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no resource at {}", context.path));
    let loaded = load(&state, &id).await?.ok_or_else(not_found)?;
    let edit = can_edit(&state, &caller, &loaded).await?;
    if !edit && !loaded.usable_by(&caller.principal) {
        return Err(not_found());
    }
    Ok(Json(view(&state, loaded, edit)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EditBody {
    /// The version the edit starts from; when given and no longer current, 409.
    pub base_version: Option<i64>,
    #[serde(flatten)]
    pub definition: Definition,
}

/// Edit an assistant: the definition becomes a new version.
#[utoipa::path(operation_id = "edit_assistant", put, path = "/api/v1/assistants/{id}", tag = "assistants",
    params(("id" = String, Path, description = "The assistant's id")),
    request_body = EditBody,
    responses((status = 200, description = "The new version", body = AssistantView),
        (status = 400, description = "Invalid", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem),
        (status = 409, description = "Another edit landed first", body = Problem)))]
async fn edit(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<EditBody>,
) -> Result<Json<AssistantView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no resource at {}", context.path));
    let loaded = load(&state, &id).await?.ok_or_else(not_found)?;
    let resource = format!("assistant/{id}");
    authorize_owner_or(
        &state,
        &context,
        &caller,
        loaded.definition.owner_group.as_deref(),
        (Action::EditAssistant(id.clone()), &resource),
    )
    .await?;
    body.definition.check(&state).await?;
    let definition =
        serde_json::to_string(&body.definition).map_err(|e| ApiError::Internal(e.to_string()))?;
    let row = state
        .store
        .add_assistant_version(
            &id,
            body.base_version,
            &definition,
            &caller.principal.id,
            OffsetDateTime::now_utc(),
        )
        .await?
        .ok_or_else(not_found)?;
    state
        .record(
            caller
                .event(&context, "assistant.versioned", resource, Outcome::Allowed)
                .with_details(json!({ "version": row.current_version })),
        )
        .await?;
    Ok(Json(view(&state, Loaded::new(row)?, true)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub definition: Definition,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
}

async fn editable(
    state: &AppState,
    context: &RequestContext,
    caller: &Caller,
    id: &str,
) -> Result<Loaded, ApiError> {
    let not_found = || ApiError::NotFound(format!("no resource at {}", context.path));
    let loaded = load(state, id).await?.ok_or_else(not_found)?;
    if can_edit(state, caller, &loaded).await? {
        Ok(loaded)
    } else {
        Err(not_found())
    }
}

/// Every version of an assistant (its editors).
#[utoipa::path(operation_id = "list_assistant_versions", get, path = "/api/v1/assistants/{id}/versions", tag = "assistants",
    params(("id" = String, Path, description = "The assistant's id")),
    responses((status = 200, description = "Oldest first", body = [VersionView]),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn versions(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    editable(&state, &context, &caller, &id).await?;
    let mut out = Vec::new();
    for v in state.store.assistant_versions(&id).await? {
        out.push(VersionView {
            version: v.version,
            definition: serde_json::from_str(&v.definition)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
            created_by: v.created_by,
            created_at: v.created_at,
        });
    }
    Ok(Json(out))
}

/// One version of an assistant (its editors).
#[utoipa::path(operation_id = "get_assistant_version", get, path = "/api/v1/assistants/{id}/versions/{version}", tag = "assistants",
    params(("id" = String, Path, description = "The assistant's id"),
        ("version" = i64, Path, description = "The version")),
    responses((status = 200, description = "The version", body = VersionView),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn version(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path((id, version)): Path<(String, i64)>,
) -> Result<Json<VersionView>, ApiError> {
    editable(&state, &context, &caller, &id).await?;
    let v = state
        .store
        .assistant_version(&id, version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no resource at {}", context.path)))?;
    Ok(Json(VersionView {
        version: v.version,
        definition: serde_json::from_str(&v.definition)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
        created_by: v.created_by,
        created_at: v.created_at,
    }))
}
