//! Assistants: what an assistant is (instructions, deployment, grounding, scope, owners) and
//! its versions. `service.rs` holds the rules, `routes.rs` the `/api/v1/assistants` handlers,
//! `views.rs` the wire shapes; the console's pages call the same service.

mod routes;
pub(crate) mod service;
mod views;

pub(crate) use routes::{router, view};
pub use views::{AssistantView, Definition, VersionView};
