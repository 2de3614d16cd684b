//! `/api/v1/admin/deployments`: platform admins add, change and remove deployments while the
//! platform runs. A change is stored, this instance reloads at once, and every other instance
//! within `registry::WATCH_EVERY`; calls already running finish on the deployment they started
//! with.

use ajutant_core::audit::{AuditAction, Outcome};
use ajutant_core::config::DeploymentConfig;
use ajutant_core::policy::Action;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
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
    Guard::new(&state, &context, &caller)
        .await?
        .require(&Action::ManagePlatform, "deployments")
        .await?;
    let registry = state.gateway.deployments.current();
    Ok(Json(
        registry
            .in_order()
            .map(|d| DeploymentView {
                source: if registry.stored.contains(&d.config.name) {
                    "api"
                } else {
                    "config"
                },
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
    let resource = format!("deployment/{name}");
    Guard::new(&state, &context, &caller)
        .await?
        .require(&Action::ManagePlatform, &resource)
        .await?;
    let config: DeploymentConfig = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("not a deployment: {e}")))?;
    if config.name != name {
        return Err(ApiError::BadRequest(format!(
            "the body names {:?} but the path names {name:?}",
            config.name
        )));
    }
    let mut problems = config.problems();
    // The fallbacks must exist in the set this change produces.
    let deployments = &state.gateway.deployments;
    let registry = deployments.current();
    let names: Vec<&String> = registry.order.iter().collect();
    for fallback in &config.fallbacks {
        if !names.contains(&fallback) && *fallback != name {
            problems.push(format!("fallback {fallback:?} is not a deployment"));
        }
    }
    ajutant_providers::provider_for(&config, reqwest_probe()?)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems.join("; ")));
    }
    let json = serde_json::to_string(&config).map_err(internal)?;
    state
        .store
        .put_deployment(
            &name,
            &json,
            &caller.principal.id,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(internal)?;
    deployments.reload(&state.store).await.map_err(internal)?;
    let event = caller
        .event(
            &context,
            AuditAction::DeploymentPut,
            resource,
            Outcome::Allowed,
        )
        .with_details(serde_json::to_value(&config).unwrap_or_default());
    state.record(event).await?;
    Ok(Json(DeploymentView {
        source: "api",
        deployment: serde_json::to_value(&config).unwrap_or_default(),
    }))
}

/// A client only to check that the adapter can be built; it is not kept.
fn reqwest_probe() -> Result<reqwest::Client, ApiError> {
    ajutant_providers::http_client(std::time::Duration::from_secs(1)).map_err(internal)
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
    let resource = format!("deployment/{name}");
    Guard::new(&state, &context, &caller)
        .await?
        .require(&Action::ManagePlatform, &resource)
        .await?;
    if !state
        .store
        .delete_deployment(&name)
        .await
        .map_err(internal)?
    {
        return Err(ApiError::NotFound(format!(
            "no deployment {name} was added through the API"
        )));
    }
    state
        .gateway
        .deployments
        .reload(&state.store)
        .await
        .map_err(internal)?;
    let event = caller.event(
        &context,
        AuditAction::DeploymentDeleted,
        resource,
        Outcome::Allowed,
    );
    state.record(event).await?;
    Ok(StatusCode::NO_CONTENT)
}
