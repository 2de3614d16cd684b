//! The console's collections: those the viewer manages, a new collection (admins), and one
//! collection's documents, upload form (`static/upload.js`), source and sync, and recent
//! ingestion jobs with each failed document's reason. Reads go through `crate::grounding`'s
//! handlers; changes are the browser's calls to the same API.

use ajutant_core::config::{Capability, ConnectionKind, GroundingConfig};
use ajutant_core::policy::{AccessScope, Role};
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;

use super::assistants::{deployments_offering, rfc3339, scope_text};
use crate::AppState;
use crate::access::Guard;
use crate::grounding::service;
use crate::grounding::views::{CollectionView, DocumentView, JobView, job_view, view};
use crate::problem::ApiError;
use crate::request::RequestContext;
use crate::web::page::{Layout, PageError, Section, Viewer, render, require};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/console/collections", get(list))
        .route("/console/collections/{id}", get(show))
}

/// How many of a collection's latest upload jobs its page shows.
const RECENT_JOBS: i64 = 5;
/// Documents per page of a collection's page.
const DOCUMENTS_PAGE: i64 = 100;

/// One collection in the list.
struct Row {
    id: String,
    name: String,
    scope: String,
    owner_group: String,
    documents: i64,
    chunks: i64,
    embedding: String,
    created_at: String,
}

impl From<CollectionView> for Row {
    fn from(c: CollectionView) -> Self {
        Self {
            scope: scope_text(&c.access),
            owner_group: c.owner_group.unwrap_or_default(),
            embedding: c.embedding_deployment.unwrap_or_default(),
            id: c.id,
            name: c.name,
            documents: c.document_count,
            chunks: c.chunk_count,
            created_at: rfc3339(c.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/collections.html")]
struct List {
    layout: Layout,
    rows: Vec<Row>,
    /// For platform admins: the deployments a new collection can embed with.
    new_form: Option<Vec<String>>,
    /// The connections the viewer may use, named for the source hint.
    connections: String,
}

/// `/console/collections`: the collections the viewer manages.
async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
) -> Result<Response, PageError> {
    require(&viewer, Section::Collections)?;
    let guard = Guard::new(&state, &context, &viewer.caller);
    // Readers search collections through assistants; the console is for those who manage them.
    let rows = service::list(&guard)
        .await?
        .into_iter()
        .filter(|seen| seen.standing.manages())
        .map(|seen| Row::from(view(seen.collection, true)))
        .collect();
    let new_form = if viewer.access.is(Role::PlatformAdmin) {
        Some(deployments_offering(&state, &context, &viewer, Capability::Embeddings).await?)
    } else {
        None
    };
    let connections = usable_connections(&guard).await?;
    Ok(render(&List {
        layout: Layout::new(&viewer, "Collections", Section::Collections.path()),
        rows,
        new_form,
        connections,
    }))
}

struct DocumentRow {
    id: String,
    title: String,
    source_key: String,
    kind: String,
    status: String,
    error_code: String,
    error: String,
    chunks: i64,
    updated_at: String,
}

impl From<DocumentView> for DocumentRow {
    fn from(d: DocumentView) -> Self {
        Self {
            id: d.id,
            title: d.title,
            source_key: d.source_key,
            kind: d.kind.unwrap_or_default(),
            status: d.status,
            error_code: d.error_code.unwrap_or_default(),
            error: d.error.unwrap_or_default(),
            chunks: d.chunk_count,
            updated_at: rfc3339(d.updated_at),
        }
    }
}

impl DocumentRow {
    /// The badge class: `ready` is shown as healthy.
    fn badge(&self) -> &'static str {
        if self.status == "ready" {
            "ok"
        } else {
            "failed"
        }
    }
}

struct FailedItem {
    name: String,
    error_code: String,
    error: String,
}

struct JobRow {
    id: String,
    kind: String,
    status: String,
    total: i64,
    processed: i64,
    added: i64,
    updated: i64,
    unchanged: i64,
    removed: i64,
    failed: i64,
    error: String,
    created_at: String,
    finished_at: String,
    failures: Vec<FailedItem>,
}

impl From<JobView> for JobRow {
    fn from(j: JobView) -> Self {
        Self {
            failures: j
                .items
                .into_iter()
                .filter(|i| i.status == "failed")
                .map(|i| FailedItem {
                    name: i.name,
                    error_code: i.error_code.unwrap_or_default(),
                    error: i.error.unwrap_or_default(),
                })
                .collect(),
            id: j.id,
            kind: j.kind,
            status: j.status,
            total: j.total,
            processed: j.processed,
            added: j.added,
            updated: j.updated,
            unchanged: j.unchanged,
            removed: j.removed,
            failed: j.failed,
            error: j.error.unwrap_or_default(),
            created_at: rfc3339(j.created_at),
            finished_at: j.finished_at.map(rfc3339).unwrap_or_default(),
        }
    }
}

impl JobRow {
    fn running(&self) -> bool {
        self.status == "queued" || self.status == "running"
    }
}

/// Where a collection syncs from, in words: the connection's kind and name, and the path
/// within it (where the connection leads is the operator's configuration, not shown here).
struct Source {
    kind: String,
    location: String,
}

fn source(value: &Value, config: &GroundingConfig) -> Source {
    let name = value["connection"].as_str().unwrap_or_default();
    let path = value["path"].as_str().unwrap_or_default().trim_matches('/');
    let kind = match config.connection(name).map(|c| c.kind) {
        Some(ConnectionKind::Folder) => "Server folder",
        Some(ConnectionKind::AzureBlob) => "Azure Blob Storage",
        None if name.is_empty() => "An older kind of source (pick a connection in the settings)",
        None => "A connection that no longer exists",
    };
    Source {
        kind: kind.to_owned(),
        location: if path.is_empty() {
            name.to_owned()
        } else {
            format!("{name}/{path}")
        },
    }
}

/// The names of the connections the viewer may point collections at, for the forms' hints.
async fn usable_connections(guard: &Guard<'_>) -> Result<String, PageError> {
    let names: Vec<&str> = service::connections(guard)
        .await?
        .into_iter()
        .map(|c| c.name.as_str())
        .collect();
    Ok(if names.is_empty() {
        "none (an operator declares them in grounding.connections)".to_owned()
    } else {
        names.join(", ")
    })
}

#[derive(Template)]
#[template(path = "console/collections_show.html")]
struct Show {
    layout: Layout,
    id: String,
    name: String,
    description: String,
    scope: String,
    organisation: bool,
    groups: String,
    owner_group: String,
    embedding: String,
    documents_count: i64,
    chunks_count: i64,
    source: Option<Source>,
    /// The stored source as pretty JSON, for the settings form.
    source_json: String,
    /// The connections the viewer may use, named for the source hint.
    connections: String,
    documents: Vec<DocumentRow>,
    /// The source key the next page of documents starts after, when there is one.
    next_after: Option<String>,
    jobs: Vec<JobRow>,
    admin: bool,
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    /// A job to show first (the one just started).
    job: Option<String>,
    /// The documents page: those after this source key.
    after: Option<String>,
}

/// The ids of the collection's latest jobs (uploads and syncs), newest first, through the
/// jobs API, which decides whether the viewer may see them.
async fn recent_jobs(
    state: &AppState,
    context: &RequestContext,
    viewer: &Viewer,
    collection: &str,
) -> Result<Vec<String>, PageError> {
    let guard = Guard::new(state, context, &viewer.caller);
    let jobs = service::jobs(&guard, collection, Some(RECENT_JOBS)).await?;
    Ok(jobs.into_iter().map(|job| job.id).collect())
}

/// A job of `collection`, if there is one by that id (an id from the address may be stale).
async fn job(
    state: &AppState,
    context: &RequestContext,
    viewer: &Viewer,
    (collection, id): (&str, String),
) -> Result<Option<JobRow>, PageError> {
    let guard = Guard::new(state, context, &viewer.caller);
    match service::job(&guard, &id).await {
        Ok((job, items)) if job.collection_id == collection => {
            Ok(Some(JobRow::from(job_view(job, items))))
        }
        Ok(_) | Err(ApiError::NotFound(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// `/console/collections/{id}`: documents, upload, source and sync, recent jobs.
async fn show(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, PageError> {
    require(&viewer, Section::Collections)?;
    let guard = Guard::new(&state, &context, &viewer.caller);
    let seen = service::get(&guard, &id).await?;
    let manages = seen.standing.manages();
    let collection = view(seen.collection, manages);
    // The documents are for those who manage the collection; the service answers 404 to others.
    let after = query.after.clone().filter(|a| !a.is_empty());
    let mut documents: Vec<DocumentView> =
        service::documents(&guard, &id, after.as_deref(), Some(DOCUMENTS_PAGE + 1))
            .await?
            .into_iter()
            .map(DocumentView::from)
            .collect();
    let next_after = if documents.len() > DOCUMENTS_PAGE as usize {
        documents.truncate(DOCUMENTS_PAGE as usize);
        documents.last().map(|d| d.source_key.clone())
    } else {
        None
    };
    let mut job_ids = Vec::new();
    if let Some(asked) = query.job.filter(|j| !j.trim().is_empty()) {
        job_ids.push(asked);
    }
    for recent in recent_jobs(&state, &context, &viewer, &collection.id).await? {
        if !job_ids.contains(&recent) {
            job_ids.push(recent);
        }
    }
    let mut jobs = Vec::new();
    for job_id in job_ids {
        if let Some(found) = job(&state, &context, &viewer, (&collection.id, job_id)).await? {
            jobs.push(found);
        }
    }
    let (organisation, groups) = match &collection.access {
        AccessScope::Organisation => (true, String::new()),
        AccessScope::Groups { groups } => (false, groups.join("\n")),
    };
    let page = Show {
        layout: Layout::new(
            &viewer,
            format!("Collection {}", collection.name),
            Section::Collections.path(),
        ),
        scope: scope_text(&collection.access),
        organisation,
        groups,
        source: collection
            .source
            .as_ref()
            .map(|s| source(s, &state.config.grounding)),
        connections: usable_connections(&guard).await?,
        source_json: collection
            .source
            .as_ref()
            .and_then(|s| serde_json::to_string_pretty(s).ok())
            .unwrap_or_default(),
        id: collection.id,
        name: collection.name,
        description: collection.description,
        owner_group: collection.owner_group.unwrap_or_default(),
        embedding: collection.embedding_deployment.unwrap_or_default(),
        documents_count: collection.document_count,
        chunks_count: collection.chunk_count,
        documents: documents.into_iter().map(DocumentRow::from).collect(),
        next_after,
        jobs,
        admin: viewer.access.is(Role::PlatformAdmin),
    };
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_source_is_named_by_its_connection_and_path() {
        let mut config = GroundingConfig::default();
        config
            .connections
            .push(ajutant_core::config::ConnectionConfig {
                name: "handbook".to_owned(),
                description: String::new(),
                kind: ConnectionKind::Folder,
                groups: Vec::new(),
                path: Some("/srv/handbook".into()),
                account_url: None,
                container: None,
                prefix: None,
                account_name: None,
                account_key_env: None,
                sas_token_env: None,
            });
        let s = source(&json!({ "connection": "handbook", "path": "hr/" }), &config);
        assert_eq!(
            (s.kind.as_str(), s.location.as_str()),
            ("Server folder", "handbook/hr")
        );
        let gone = source(&json!({ "connection": "old" }), &config);
        assert!(gone.kind.contains("no longer exists"), "{}", gone.kind);
        let older = source(&json!({ "kind": "folder", "path": "/srv" }), &config);
        assert!(older.kind.contains("older kind"), "{}", older.kind);
    }
}
