//! `/api/v1/admin/deployments`: platform admins add, change and remove deployments while the
//! platform runs. A change is stored, this instance reloads at once, and every other instance
//! within `registry::WATCH_EVERY`; calls already running finish on the deployment they started
//! with.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::deployments;
use crate::AppState;
use crate::access::Guard;
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(put, delete))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentView {
    /// `config` (from the configuration file) or `api` (stored through this API, which
    /// overrides a configured deployment of the same name).
    pub source: &'static str,
    /// The deployment as configured; credentials are references (a variable or a file),
    /// never secrets.
    #[schema(value_type = Object)]
    pub deployment: Value,
}

/// Every deployment in force.
#[utoipa::path(get, path = "/api/v1/admin/deployments", tag = "admin",
    responses((status = 200, description = "Every deployment in force", body = [DeploymentView]),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let listed = deployments::list(&guard).await?;
    Ok(Json(
        listed
            .into_iter()
            .map(|d| DeploymentView {
                source: if d.stored { "api" } else { "config" },
                deployment: serde_json::to_value(&d.config).unwrap_or_default(),
            })
            .collect(),
    ))
}

/// Add or replace a deployment; it serves the next call on every instance.
#[utoipa::path(put, path = "/api/v1/admin/deployments/{name}", tag = "admin",
    params(("name" = String, Path, description = "The deployment's name")),
    request_body(content = Object, description = "A deployment, as in [[deployments]]"),
    responses((status = 200, description = "Stored and in force", body = DeploymentView),
        (status = 400, description = "The deployment is invalid", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn put(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<DeploymentView>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let config = deployments::put(&guard, &name, body).await?;
    Ok(Json(DeploymentView {
        source: "api",
        deployment: serde_json::to_value(&config).unwrap_or_default(),
    }))
}

/// Remove a deployment added through this API (a configured one of the same name returns).
#[utoipa::path(delete, path = "/api/v1/admin/deployments/{name}", tag = "admin",
    params(("name" = String, Path, description = "The deployment's name")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such stored deployment, or not visible to the caller", body = Problem)))]
async fn delete(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    deployments::delete(&guard, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
