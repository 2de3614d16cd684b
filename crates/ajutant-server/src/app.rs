//! Assembles the HTTP application: every feature's router, the API description, and the layers
//! every request passes through (outermost first): the request envelope, panic capture, the
//! timeout, the body-size limit.

use std::time::Duration;

use ajutant_core::config::{Config, ServerConfig};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::identity::scim::{self, ScimState};
use crate::identity::{dev_idp, routes as identity_routes, sessions};
use crate::problem::{ApiError, Problem};
use crate::{AppState, gateway, health, request};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ajutant API",
        description = "Self-hosted enterprise AI platform. Every error is an RFC 9457 problem \
            document (application/problem+json) carrying the request id and trace id.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "operations", description = "Health, readiness, metrics; kill switches, incidents, the escalation feed and notifications"),
        (name = "identity", description = "Who is calling"),
        (name = "audit", description = "The tamper-evident audit trail"),
        (name = "admin", description = "Role bindings and platform API keys"),
        (name = "usage", description = "Model usage and cost"),
        (name = "feedback", description = "Feedback on answers, the owners' inbox and figures"),
    ),
    components(schemas(Problem)),
)]
struct ApiDoc;

/// The application's routes and their OpenAPI description, before layers.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(identity_routes::router())
        .merge(gateway::reports::router())
        .merge(gateway::admin::router())
        .merge(crate::grounding::router())
        .merge(crate::assistants::router())
        .merge(crate::chat::router())
        .merge(crate::feedback::router())
        .merge(crate::ops::router())
        .split_for_parts()
}

/// Routes that take large bodies (document uploads), with their OpenAPI description.
fn large_body_api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::new()
        .merge(crate::grounding::upload_router())
        .split_for_parts()
}

/// The complete application for `state`.
pub fn router(state: AppState, config: &Config) -> Router {
    let server = &config.server;
    let (api, mut openapi) = api();
    let (large, large_openapi) = large_body_api();
    openapi.merge(large_openapi);
    let large = large
        .with_state(state.clone())
        .layer(RequestBodyLimitLayer::new(
            config.grounding.max_upload_bytes,
        ));
    let mut routes = Router::new()
        .merge(
            api.merge(sessions::router())
                .merge(gateway::router())
                .merge(crate::web::router())
                .with_state(state.clone()),
        )
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi));
    if let Some(idp) = state.identity.dev_idp() {
        routes = routes.merge(dev_idp::router(idp.clone()));
    }
    if let Some(secret) = state.identity.scim_secret() {
        routes = routes.merge(scim::router(ScimState {
            store: state.store.clone(),
            audit: state.audit.clone(),
            bearer_secret: secret.clone(),
            credentials: state.identity.cache().clone(),
        }));
    }
    with_layers_and(routes, large, server)
}

/// Wraps `routes` in the layers every request passes through. Public so tests can check the
/// layers' behaviour on routes of their own.
pub fn with_layers(routes: Router, server: &ServerConfig) -> Router {
    with_layers_and(routes, Router::new(), server)
}

/// As [`with_layers`], with `large` routes that bring their own body limit.
fn with_layers_and(routes: Router, large: Router, server: &ServerConfig) -> Router {
    routes
        // One limit per route, enforced by the layer (413 from Content-Length before any byte
        // is read, or while streaming); the extractors' own default would be a second one.
        .layer(RequestBodyLimitLayer::new(server.body_limit_bytes))
        .merge(large)
        .fallback(crate::problem::no_route)
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(server.request_timeout_secs),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a request handler panicked".to_owned()).into_response()
        }))
        .layer(axum::middleware::from_fn(request::envelope))
}
