//! Grounding: collections of the organisation's documents, taken in by durable ingestion jobs
//! (`ingest.rs`) and searched with security-trimmed hybrid retrieval (`retrieval.rs`).
//!
//! `/api/v1/collections`: platform admins create collections; a collection's owner group (and
//! admins) upload, sync and delete its documents; its readers search it. A collection someone
//! may not read answers 404, as if it did not exist.

pub(crate) mod ingest;
pub(crate) mod retrieval;
pub(crate) mod sources;

use std::collections::HashSet;

use ajutant_core::audit::Outcome;
use ajutant_core::policy::{AccessScope, Action, Principal, in_owner_group};
use ajutant_store::{Collection, CollectionSpec, IngestionJob, ItemReport, NewItem};
use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::identity::Caller;
use crate::identity::access::{allows, authorize, authorize_owner_or, bindings};
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;
use retrieval::Mode;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_collections, create_collection))
        .routes(routes!(
            get_collection,
            update_collection,
            delete_collection
        ))
        .routes(routes!(list_documents))
        .routes(routes!(delete_document))
        .routes(routes!(sync_collection))
        .routes(routes!(search))
        .routes(routes!(get_job))
        .routes(routes!(list_jobs))
}

/// The upload route, apart because it takes bodies up to `grounding.max_upload_bytes`.
pub(crate) fn upload_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload))
}

/// A collection as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionView {
    pub id: String,
    pub name: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub access: AccessScope,
    pub owner_group: Option<String>,
    /// The deployment that embeds its passages; none: lexical retrieval only.
    pub embedding_deployment: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub source: Option<serde_json::Value>,
    pub document_count: i64,
    pub chunk_count: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    /// Whether the caller may change it and its documents.
    pub can_manage: bool,
}

fn view(collection: Collection, can_manage: bool) -> CollectionView {
    CollectionView {
        access: AccessScope::from_readers(&collection.readers),
        id: collection.id,
        name: collection.name,
        description: collection.description,
        owner_group: collection.owner_group,
        embedding_deployment: collection.embedding_deployment,
        source: collection.source,
        document_count: collection.document_count,
        chunk_count: collection.chunk_count,
        created_at: collection.created_at,
        can_manage,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `{"scope": "organisation"}` or `{"scope": "groups", "groups": ["OBJECT-ID"]}`.
    #[schema(value_type = Object)]
    pub access: AccessScope,
    pub owner_group: Option<String>,
    pub embedding_deployment: Option<String>,
    /// Where `sync` reads from: `{"kind": "folder", "path": "/srv/handbook"}` or
    /// `{"kind": "azure_blob", "account_url": ..., "container": ..., ...}`.
    #[schema(value_type = Option<Object>)]
    pub source: Option<serde_json::Value>,
}

impl CollectionBody {
    fn spec(self, state: &AppState) -> Result<CollectionSpec, ApiError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ApiError::BadRequest(
                "name must be 1 to 200 characters".to_owned(),
            ));
        }
        if let Some(problem) = self.access.problem() {
            return Err(ApiError::BadRequest(format!("access: {problem}")));
        }
        if let Some(deployment) = &self.embedding_deployment
            && !state
                .gateway
                .offers(deployment, ajutant_core::config::Capability::Embeddings)
        {
            return Err(ApiError::BadRequest(format!(
                "embedding_deployment: `{deployment}` is not a deployment offering embeddings"
            )));
        }
        if let Some(source) = &self.source {
            sources::SourceSettings::parse(source, &state.config.grounding)
                .map_err(|e| ApiError::BadRequest(format!("source: {e}")))?;
        }
        Ok(CollectionSpec {
            name,
            description: self.description,
            readers: self.access.readers(),
            owner_group: self.owner_group.filter(|g| !g.trim().is_empty()),
            embedding_deployment: self.embedding_deployment,
            source: self.source,
        })
    }
}

/// Whether `principal` may read passages of `collection` at all (documents may narrow it).
pub(crate) fn can_read(principal: &Principal, collection: &Collection) -> bool {
    AccessScope::from_readers(&collection.readers).admits(principal)
}

fn owns(principal: &Principal, collection: &Collection) -> bool {
    in_owner_group(principal, collection.owner_group.as_deref())
}

/// The collection if the caller may read or manage it; 404 otherwise.
async fn visible(
    state: &AppState,
    context: &RequestContext,
    caller: &Caller,
    id: &str,
) -> Result<(Collection, bool), ApiError> {
    let not_found = || ApiError::NotFound(format!("no resource at {}", context.path));
    let collection = state.store.collection(id).await?.ok_or_else(not_found)?;
    let manages = owns(&caller.principal, &collection)
        || allows(
            caller,
            &bindings(state).await?,
            &Action::ManageCollection(collection.id.clone()),
        );
    if manages || can_read(&caller.principal, &collection) {
        Ok((collection, manages))
    } else {
        Err(not_found())
    }
}

/// The collection if the caller may manage it (audited); 404 otherwise.
async fn managed(
    state: &AppState,
    context: &RequestContext,
    caller: &Caller,
    id: &str,
) -> Result<Collection, ApiError> {
    let collection = state
        .store
        .collection(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no resource at {}", context.path)))?;
    authorize_owner_or(
        state,
        context,
        caller,
        collection.owner_group.as_deref(),
        (
            Action::ManageCollection(collection.id.clone()),
            &format!("collection/{}", collection.id),
        ),
    )
    .await?;
    Ok(collection)
}

/// Collections the caller may read or manage.
#[utoipa::path(operation_id = "list_collections", get, path = "/api/v1/collections", tag = "grounding",
    responses((status = 200, description = "Collections the caller may read or manage", body = [CollectionView])))]
pub(crate) async fn list_collections(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CollectionView>>, ApiError> {
    let bindings = bindings(&state).await?;
    let mut out = Vec::new();
    for collection in state.store.collections().await? {
        let manages = owns(&caller.principal, &collection)
            || allows(
                &caller,
                &bindings,
                &Action::ManageCollection(collection.id.clone()),
            );
        if manages || can_read(&caller.principal, &collection) {
            out.push(view(collection, manages));
        }
    }
    Ok(Json(out))
}

/// Create a collection (platform admins).
#[utoipa::path(operation_id = "create_collection", post, path = "/api/v1/collections", tag = "grounding",
    request_body = CollectionBody,
    responses((status = 201, description = "Created", body = CollectionView),
        (status = 400, description = "Invalid", body = Problem),
        (status = 409, description = "The name is taken", body = Problem)))]
async fn create_collection(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Json(body): Json<CollectionBody>,
) -> Result<(StatusCode, Json<CollectionView>), ApiError> {
    authorize(
        &state,
        &context,
        &caller,
        Action::CreateCollection,
        "collections",
    )
    .await?;
    let spec = body.spec(&state)?;
    let collection = state
        .store
        .create_collection(&spec, &caller.principal.id, OffsetDateTime::now_utc())
        .await?;
    state
        .record(
            caller
                .event(
                    &context,
                    "collection.created",
                    format!("collection/{}", collection.id),
                    Outcome::Allowed,
                )
                .with_details(json!({ "name": collection.name, "readers": collection.readers })),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(collection, true))))
}

#[utoipa::path(operation_id = "get_collection", get, path = "/api/v1/collections/{id}", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id")),
    responses((status = 200, description = "The collection", body = CollectionView),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn get_collection(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CollectionView>, ApiError> {
    let (collection, manages) = visible(&state, &context, &caller, &id).await?;
    Ok(Json(view(collection, manages)))
}

/// Change a collection's settings; new access applies to every document in the same commit.
#[utoipa::path(operation_id = "update_collection", put, path = "/api/v1/collections/{id}", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id")),
    request_body = CollectionBody,
    responses((status = 200, description = "Changed", body = CollectionView),
        (status = 400, description = "Invalid", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn update_collection(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<CollectionBody>,
) -> Result<Json<CollectionView>, ApiError> {
    managed(&state, &context, &caller, &id).await?;
    let spec = body.spec(&state)?;
    let collection = state
        .store
        .update_collection(&id, &spec, OffsetDateTime::now_utc())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no resource at {}", context.path)))?;
    Ok(Json(view(collection, true)))
}

/// Remove a collection with its documents and passages (platform admins).
#[utoipa::path(operation_id = "delete_collection", delete, path = "/api/v1/collections/{id}", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn delete_collection(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &state,
        &context,
        &caller,
        Action::CreateCollection,
        &format!("collection/{id}"),
    )
    .await?;
    if state.store.delete_collection(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no resource at {}",
            context.path
        )))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: String,
    pub source_key: String,
    pub title: String,
    /// What the content really is (sniffed): text, markdown, html, pdf, docx, csv, json.
    pub kind: Option<String>,
    pub size_bytes: i64,
    pub content_hash: String,
    pub url: Option<String>,
    /// `ready` or `failed`.
    pub status: String,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub chunk_count: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentsParams {
    /// Only documents whose source key sorts after this one (the last key of the page before).
    pub after: Option<String>,
    /// 1 to 10,000, default 10,000.
    pub limit: Option<i64>,
}

/// Most documents one request returns.
const MAX_DOCUMENTS_PAGE: i64 = 10_000;

/// The collection's documents in source-key order (managers; readers use search). Pages with
/// `after` and `limit`.
#[utoipa::path(operation_id = "list_documents", get, path = "/api/v1/collections/{id}/documents", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id"), DocumentsParams),
    responses((status = 200, description = "Its documents, with their ingestion status", body = [DocumentView]),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn list_documents(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<DocumentsParams>,
) -> Result<Json<Vec<DocumentView>>, ApiError> {
    let limit = params.limit.unwrap_or(MAX_DOCUMENTS_PAGE);
    if !(1..=MAX_DOCUMENTS_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_DOCUMENTS_PAGE}"
        )));
    }
    let collection = managed(&state, &context, &caller, &id).await?;
    let documents = state
        .store
        .documents(&collection.id, params.after.as_deref(), limit)
        .await?;
    Ok(Json(
        documents
            .into_iter()
            .map(|d| DocumentView {
                id: d.id,
                source_key: d.source_key,
                title: d.title,
                kind: d.kind,
                size_bytes: d.size_bytes,
                content_hash: d.content_hash,
                url: d.url,
                status: d.status,
                error_code: d.error_code,
                error: d.error,
                chunk_count: d.chunk_count,
                updated_at: d.updated_at,
            })
            .collect(),
    ))
}

/// Remove a document; its passages leave retrieval before this returns.
#[utoipa::path(operation_id = "delete_document", delete, path = "/api/v1/collections/{id}/documents/{document}", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id"),
        ("document" = String, Path, description = "The document's id")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn delete_document(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path((id, document)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let collection = managed(&state, &context, &caller, &id).await?;
    if !state
        .store
        .delete_document(&collection.id, &document)
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "no resource at {}",
            context.path
        )));
    }
    state
        .record(caller.event(
            &context,
            "document.deleted",
            format!("collection/{}/document/{document}", collection.id),
            Outcome::Allowed,
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An ingestion job: its progress, and each document's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub collection_id: String,
    /// `upload` or `sync`.
    pub kind: String,
    /// `queued`, `running`, `succeeded` or `failed` (the job as a whole; documents fail alone).
    pub status: String,
    pub total: i64,
    pub processed: i64,
    pub added: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub removed: i64,
    pub failed: i64,
    /// Passages written.
    pub chunks: i64,
    pub error: Option<String>,
    pub attempts: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<OffsetDateTime>,
    pub items: Vec<ItemView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    pub seq: i64,
    pub source_key: String,
    pub name: String,
    /// `pending`, `added`, `updated`, `unchanged`, `removed` or `failed`.
    pub status: String,
    /// Why it failed: `empty`, `too_large`, `unsupported_type`, `invalid_utf8`, `corrupt`,
    /// `encrypted`, `zip_bomb`, `timeout`, `no_text`, `embedding_failed`, `source_error`, ...
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub document_id: Option<String>,
}

fn job_view(job: IngestionJob, items: Vec<ItemReport>) -> JobView {
    JobView {
        id: job.id,
        collection_id: job.collection_id,
        kind: job.kind,
        status: job.status,
        total: job.total,
        processed: job.processed,
        added: job.added,
        updated: job.updated,
        unchanged: job.unchanged,
        removed: job.removed,
        failed: job.failed,
        chunks: job.chunks,
        error: job.error,
        attempts: job.attempts,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
        items: items
            .into_iter()
            .map(|i| ItemView {
                seq: i.seq,
                source_key: i.source_key,
                name: i.name,
                status: i.status,
                error_code: i.error_code,
                error: i.error,
                document_id: i.document_id,
            })
            .collect(),
    }
}

/// Upload documents (multipart: one or more `file` parts; an optional `acl` part holding a JSON
/// array of group ids narrows who may read them). The documents are ingested by a durable
/// job; poll it at `GET /api/v1/ingestion-jobs/{id}`. A file over the size limit fails on its
/// own; the rest go on.
#[utoipa::path(operation_id = "upload_documents", post, path = "/api/v1/collections/{id}/documents", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id")),
    request_body(content_type = "multipart/form-data", content = Object),
    responses((status = 202, description = "Queued", body = JobView),
        (status = 400, description = "No files, or a malformed request", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem),
        (status = 413, description = "The request is over grounding.max_upload_bytes", body = Problem)))]
async fn upload(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let collection = managed(&state, &context, &caller, &id).await?;
    let limit = state.config.grounding.max_document_bytes;
    let mut items = Vec::new();
    let mut acl: Option<Vec<String>> = None;
    let mut names = HashSet::new();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("the multipart body cannot be read: {e}")))?
    {
        match field.name() {
            Some("acl") => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| ApiError::BadRequest(format!("acl: {e}")))?;
                let groups: Vec<String> = serde_json::from_str(&text).map_err(|e| {
                    ApiError::BadRequest(format!("acl must be a JSON array of group ids: {e}"))
                })?;
                acl = Some(groups);
            }
            Some("file") => {
                let name = field
                    .file_name()
                    .map(sanitize_name)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        ApiError::BadRequest("every file part needs a file name".to_owned())
                    })?;
                if !names.insert(name.clone()) {
                    return Err(ApiError::BadRequest(format!(
                        "{name} is in the upload twice"
                    )));
                }
                let content_type = field.content_type().map(str::to_owned);
                let mut bytes = Vec::new();
                let mut size: u64 = 0;
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))?
                {
                    size += chunk.len() as u64;
                    // Keep reading past the limit (the next part follows), but keep nothing.
                    if size <= limit {
                        bytes.extend_from_slice(&chunk);
                    }
                }
                let refused = (size > limit).then(|| {
                    (
                        "too_large".to_owned(),
                        format!("{name} is {size} bytes, over the limit of {limit} bytes"),
                    )
                });
                items.push(NewItem {
                    source_key: name.clone(),
                    name,
                    content_type,
                    acl: None,
                    url: None,
                    content: if refused.is_some() { None } else { Some(bytes) },
                    refused,
                });
            }
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected part {other:?}: send `file` parts and an optional `acl`"
                )));
            }
            None => return Err(ApiError::BadRequest("a part has no name".to_owned())),
        }
    }
    if items.is_empty() {
        return Err(ApiError::BadRequest(
            "no files: send one or more `file` parts".to_owned(),
        ));
    }
    if let Some(groups) = &acl {
        if let Some(bad) = groups.iter().find(|g| g.trim().is_empty() || g.len() > 200) {
            return Err(ApiError::BadRequest(format!(
                "acl: {bad:?} is not a group id"
            )));
        }
        for item in &mut items {
            item.acl = Some(groups.clone());
        }
    }
    let job = state
        .store
        .create_job(
            &collection.id,
            "upload",
            &items,
            &caller.principal.id,
            OffsetDateTime::now_utc(),
        )
        .await?;
    state
        .record(
            caller
                .event(
                    &context,
                    "documents.uploaded",
                    format!("collection/{}", collection.id),
                    Outcome::Allowed,
                )
                .with_details(json!({
                    "job": job.id,
                    "files": items.iter().map(|i| &i.name).collect::<Vec<_>>(),
                    "acl": acl,
                })),
        )
        .await?;
    state.ingest.wake();
    let items = state.store.job_items(&job.id).await?;
    Ok((StatusCode::ACCEPTED, Json(job_view(job, items))))
}

/// A file name as a document key: the last path component, without control characters.
fn sanitize_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    last.chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Sync the collection with its source: new and changed documents are ingested, unchanged
/// ones skipped by content hash, and documents gone from the source removed.
#[utoipa::path(operation_id = "sync_collection", post, path = "/api/v1/collections/{id}/sync", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id")),
    responses((status = 202, description = "Queued", body = JobView),
        (status = 400, description = "The collection has no source", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn sync_collection(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let collection = managed(&state, &context, &caller, &id).await?;
    if collection.source.is_none() {
        return Err(ApiError::BadRequest(
            "this collection has no source to sync from; upload documents instead".to_owned(),
        ));
    }
    let job = state
        .store
        .create_job(
            &collection.id,
            "sync",
            &[],
            &caller.principal.id,
            OffsetDateTime::now_utc(),
        )
        .await?;
    state.ingest.wake();
    Ok((StatusCode::ACCEPTED, Json(job_view(job, Vec::new()))))
}

/// An ingestion job's progress and each document's outcome.
#[utoipa::path(operation_id = "get_ingestion_job", get, path = "/api/v1/ingestion-jobs/{id}", tag = "grounding",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = JobView),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no resource at {}", context.path));
    let job = state.store.job(&id).await?.ok_or_else(not_found)?;
    let collection = state
        .store
        .collection(&job.collection_id)
        .await?
        .ok_or_else(not_found)?;
    let manages = owns(&caller.principal, &collection)
        || allows(
            &caller,
            &bindings(&state).await?,
            &Action::ManageCollection(collection.id.clone()),
        )
        || job.created_by == caller.principal.id;
    if !manages {
        return Err(not_found());
    }
    let items = state.store.job_items(&job.id).await?;
    Ok(Json(job_view(job, items)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsParams {
    /// 1 to 50, default 10.
    pub limit: Option<i64>,
}

/// A collection's latest ingestion jobs (uploads and syncs), newest first, without their
/// items (`GET /api/v1/ingestion-jobs/{id}` has those). For the collection's managers.
#[utoipa::path(operation_id = "list_ingestion_jobs", get, path = "/api/v1/collections/{id}/jobs", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id"), JobsParams),
    responses((status = 200, description = "Its latest jobs", body = [JobView]),
        (status = 400, description = "Bad limit", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<JobsParams>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    let limit = params.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 50".to_owned()));
    }
    let collection = managed(&state, &context, &caller, &id).await?;
    let jobs = state.store.collection_jobs(&collection.id, limit).await?;
    Ok(Json(
        jobs.into_iter()
            .map(|job| job_view(job, Vec::new()))
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    pub query: String,
    /// `hybrid` (default), `lexical` or `vector`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub mode: Mode,
    /// How many passages, 1 to 100; default 10.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub rank: usize,
    pub score: f64,
    pub lexical_rank: Option<usize>,
    pub vector_rank: Option<usize>,
    pub chunk_id: i64,
    pub document_id: String,
    pub title: String,
    pub source_key: String,
    pub url: Option<String>,
    /// Page or section, when known.
    pub location: Option<String>,
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResult {
    /// The mode actually used (`hybrid` falls back to `lexical` without embeddings).
    #[schema(value_type = String)]
    pub mode: Mode,
    pub hits: Vec<SearchHit>,
}

/// Search one collection as the caller: only passages they may read are considered, so the
/// result is what an assistant grounded on this collection would see for them.
#[utoipa::path(operation_id = "search_collection", post, path = "/api/v1/collections/{id}/search", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id")),
    request_body = SearchBody,
    responses((status = 200, description = "Passages, best first", body = SearchResult),
        (status = 400, description = "Invalid", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn search(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<SearchBody>,
) -> Result<Json<SearchResult>, ApiError> {
    let (collection, _) = visible(&state, &context, &caller, &id).await?;
    let query = body.query.trim();
    if query.is_empty() || query.chars().count() > 4000 {
        return Err(ApiError::BadRequest(
            "query must be 1 to 4,000 characters".to_owned(),
        ));
    }
    let limit = body.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 100".to_owned()));
    }
    let outcome = retrieval::retrieve(
        &state,
        &caller.principal,
        std::slice::from_ref(&collection),
        retrieval::Search {
            query,
            mode: body.mode,
            limit,
        },
        crate::gateway::runtime::CallIds {
            request_id: Some(context.request_id.clone()),
            trace_id: Some(context.trace_id.clone()),
        },
    )
    .await?;
    state
        .record(
            caller
                .event(
                    &context,
                    "collection.searched",
                    format!("collection/{}", collection.id),
                    Outcome::Allowed,
                )
                .with_details(json!({ "mode": outcome.mode, "hits": outcome.hits.len() })),
        )
        .await?;
    Ok(Json(SearchResult {
        mode: outcome.mode,
        hits: outcome
            .hits
            .into_iter()
            .enumerate()
            .map(|(i, hit)| SearchHit {
                rank: i + 1,
                score: hit.score,
                lexical_rank: hit.lexical_rank,
                vector_rank: hit.vector_rank,
                location: retrieval::location(&hit.passage),
                chunk_id: hit.passage.chunk_id,
                document_id: hit.passage.document_id,
                title: hit.passage.title,
                source_key: hit.passage.source_key,
                url: hit.passage.url,
                text: hit.passage.text,
            })
            .collect(),
    }))
}
