//! Liveness, readiness and Prometheus metrics: what a load balancer, an orchestrator and a
//! monitoring system poll.

use std::time::Duration;

use ajutant_core::config::DatabaseKind;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::problem::{ApiError, Problem};

/// Longest a readiness probe waits for the database before reporting not ready.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process is up and answering.
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    /// Number of database migrations applied.
    pub migrations_applied: usize,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers and its schema matches this binary's migrations.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Database unreachable or migrations pending",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let check = async {
        state.store.ping().await?;
        state.store.migration_status().await
    };
    let status = tokio::time::timeout(READINESS_TIMEOUT, check)
        .await
        .map_err(|_| ApiError::Unavailable("the database did not answer within 2 s".to_owned()))?
        .map_err(|error| {
            tracing::warn!(%error, "readiness check failed");
            ApiError::Unavailable("the database is unreachable".to_owned())
        })?;
    if !status.is_current() {
        return Err(ApiError::Unavailable(format!(
            "database migrations pending: {:?}",
            status.pending
        )));
    }
    Ok(Json(Readiness {
        status: "ready",
        database: match state.store.kind() {
            DatabaseKind::Sqlite => "sqlite",
            DatabaseKind::Postgres => "postgres",
        },
        migrations_applied: status.applied,
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain; version=0.0.4")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
