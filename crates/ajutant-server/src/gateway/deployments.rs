//! The rules for changing deployments while the platform runs: platform admins only; a
//! deployment is checked whole (its own problems, fallbacks that exist, an adapter that can be
//! built) before it is stored; this instance reloads at once and others within
//! `registry::WATCH_EVERY`; every change is audited.

use ajutant_core::audit::{AuditAction, Outcome};
use ajutant_core::config::DeploymentConfig;
use ajutant_core::policy::Action;
use serde_json::Value;
use time::OffsetDateTime;

use super::Deployment;
use crate::access::Guard;
use crate::problem::ApiError;

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
}

/// A deployment in force, and whether it was stored through the API (else configured).
pub(crate) struct InForce {
    pub config: DeploymentConfig,
    pub stored: bool,
}

/// Every deployment in force, in order.
pub(crate) async fn list(guard: &Guard<'_>) -> Result<Vec<InForce>, ApiError> {
    guard
        .require(&Action::ManagePlatform, "deployments")
        .await?;
    let registry = guard.state.gateway.deployments.current();
    Ok(registry
        .in_order()
        .map(|d: &std::sync::Arc<Deployment>| InForce {
            stored: registry.stored.contains(&d.config.name),
            config: d.config.clone(),
        })
        .collect())
}

/// Adds or replaces the deployment `name` with `body`; it serves the next call everywhere.
pub(crate) async fn put(
    guard: &Guard<'_>,
    name: &str,
    body: Value,
) -> Result<DeploymentConfig, ApiError> {
    let resource = format!("deployment/{name}");
    guard.require(&Action::ManagePlatform, &resource).await?;
    let state = guard.state;
    let config: DeploymentConfig = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("not a deployment: {e}")))?;
    if config.name != name {
        return Err(ApiError::BadRequest(format!(
            "the body names {:?} but the path names {name:?}",
            config.name
        )));
    }
    // Before anything reads the credential (building the adapter does).
    if let Some(problem) = state
        .config
        .gateway
        .api_credentials
        .problem(&config.credential)
    {
        return Err(ApiError::BadRequest(problem));
    }
    let mut problems = config.problems();
    // The fallbacks must exist in the set this change produces.
    let deployments = &state.gateway.deployments;
    let registry = deployments.current();
    let names: Vec<&String> = registry.order.iter().collect();
    for fallback in &config.fallbacks {
        if !names.contains(&fallback) && fallback != name {
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
            name,
            &json,
            &guard.caller.principal.id,
            OffsetDateTime::now_utc(),
        )
        .await?;
    deployments.reload(&state.store).await.map_err(internal)?;
    guard
        .record(
            AuditAction::DeploymentPut,
            &resource,
            Outcome::Allowed,
            serde_json::to_value(&config).unwrap_or_default(),
        )
        .await?;
    Ok(config)
}

/// A client only to check that the adapter can be built; it is not kept.
fn reqwest_probe() -> Result<reqwest::Client, ApiError> {
    ajutant_providers::http_client(std::time::Duration::from_secs(1)).map_err(internal)
}

/// Removes a deployment added through the API (a configured one of the same name returns).
pub(crate) async fn delete(guard: &Guard<'_>, name: &str) -> Result<(), ApiError> {
    let resource = format!("deployment/{name}");
    guard.require(&Action::ManagePlatform, &resource).await?;
    let state = guard.state;
    if !state.store.delete_deployment(name).await? {
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
    guard
        .record(
            AuditAction::DeploymentDeleted,
            &resource,
            Outcome::Allowed,
            serde_json::json!({}),
        )
        .await
}
