//! `/api/v1/assistants`: extract, call the service, render. The rules are in `service.rs`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{self, Seen};
use super::views::{AssistantView, CreateBody, EditBody, VersionView};
use crate::AppState;
use crate::access::Guard;
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, edit))
        .routes(routes!(versions))
        .routes(routes!(version))
}

pub(crate) fn view(seen: Seen) -> AssistantView {
    let can_edit = seen.standing.manages();
    AssistantView::new(seen.assistant, seen.killed, can_edit)
}

/// The assistants the caller may use or edit.
#[utoipa::path(operation_id = "list_assistants", get, path = "/api/v1/assistants", tag = "assistants",
    responses((status = 200, description = "Assistants the caller may use or edit", body = [AssistantView])))]
async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
) -> Result<Json<Vec<AssistantView>>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let listed = service::list(&guard).await?;
    Ok(Json(listed.into_iter().map(view).collect()))
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
    let guard = Guard::new(&state, &context, &caller);
    let created = service::create(&guard, &body.id, body.definition.into()).await?;
    Ok((StatusCode::CREATED, Json(view(created))))
}

/// An assistant, if the caller may use or edit it.
#[utoipa::path(operation_id = "get_assistant", get, path = "/api/v1/assistants/{id}", tag = "assistants",
    params(("id" = String, Path, description = "The assistant's id")),
    responses((status = 200, description = "The assistant", body = AssistantView),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn get_one(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AssistantView>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    Ok(Json(view(service::get(&guard, &id).await?)))
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
    let guard = Guard::new(&state, &context, &caller);
    let edited = service::edit(&guard, &id, body.base_version, body.definition.into()).await?;
    Ok(Json(view(edited)))
}

/// Every version of an assistant (its editors).
#[utoipa::path(operation_id = "list_assistant_versions", get, path = "/api/v1/assistants/{id}/versions", tag = "assistants",
    params(("id" = String, Path, description = "The assistant's id")),
    responses((status = 200, description = "Oldest first", body = [VersionView]),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn versions(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let versions = service::versions(&guard, &id).await?;
    Ok(Json(versions.into_iter().map(VersionView::from).collect()))
}

/// One version of an assistant (its editors).
#[utoipa::path(operation_id = "get_assistant_version", get, path = "/api/v1/assistants/{id}/versions/{version}", tag = "assistants",
    params(("id" = String, Path, description = "The assistant's id"),
        ("version" = i64, Path, description = "The version")),
    responses((status = 200, description = "The version", body = VersionView),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn version(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path((id, version)): Path<(String, i64)>,
) -> Result<Json<VersionView>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    Ok(Json(service::version(&guard, &id, version).await?.into()))
}
