//! The console: one module per section, each visible only to the roles that use it
//! (`page::Access::sees`). A section's pages read through the JSON API's handlers and change
//! things through the JSON API from the browser.

mod admin;
mod assistants;
mod audit;
mod collections;
mod deployments;
mod feedback;
mod ops;
mod usage;

use askama::Template;
use axum::Router;
use axum::response::Response;
use axum::routing::get;

use super::page::{Layout, PageError, Viewer, render};
use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(index))
        .merge(assistants::router())
        .merge(collections::router())
        .merge(deployments::router())
        .merge(ops::router())
        .merge(feedback::router())
        .merge(usage::router())
        .merge(audit::router())
        .merge(admin::router())
}

#[derive(Template)]
#[template(path = "console/index.html")]
struct Index {
    layout: Layout,
}

/// The console's start page: the sections the viewer may use. Someone with none gets the same
/// 404 as a page that does not exist.
async fn index(viewer: Viewer) -> Result<Response, PageError> {
    if viewer.access.sections().is_empty() {
        return Err(PageError(crate::problem::ApiError::NotFound(
            "no such page".to_owned(),
        )));
    }
    Ok(render(&Index {
        layout: Layout::new(&viewer, "Console", "/console"),
    }))
}
