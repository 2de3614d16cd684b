//! Grounding: collections of the organisation's documents, taken in by durable ingestion jobs
//! (`ingest.rs`) and searched with security-trimmed hybrid retrieval (`retrieval.rs`).
//! `service.rs` holds the collections' rules (who may read, manage, upload, sync and search),
//! `routes.rs` the `/api/v1/collections` handlers, `uploads.rs` reads multipart uploads,
//! `views.rs` the wire shapes, `sources.rs` the settings of a collection's source.

pub(crate) mod ingest;
pub(crate) mod retrieval;
mod routes;
pub(crate) mod service;
pub(crate) mod sources;
mod uploads;
pub(crate) mod views;

pub(crate) use routes::{router, upload_router};
