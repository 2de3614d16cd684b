//! `/api/v1/collections` and `/api/v1/ingestion-jobs`: extract, call the service, render. The
//! rules are in `service.rs`; reading an upload's parts is `uploads.rs`.

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::retrieval;
use super::service::{self, Seen, Settings};
use super::uploads;
use super::views::{
    CollectionBody, CollectionView, ConnectionView, DocumentView, DocumentsParams, JobView,
    JobsParams, SearchBody, SearchHit, SearchResult, job_view, view,
};
use crate::AppState;
use crate::access::Guard;
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

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
        .routes(routes!(list_connections))
}

/// The upload route, apart because it takes bodies up to `grounding.max_upload_bytes`.
pub(crate) fn upload_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload))
}

fn seen_view(seen: Seen) -> CollectionView {
    let manages = seen.standing.manages();
    view(seen.collection, manages)
}

impl From<CollectionBody> for Settings {
    fn from(body: CollectionBody) -> Self {
        Self {
            name: body.name,
            description: body.description,
            access: body.access,
            owner_group: body.owner_group,
            embedding_deployment: body.embedding_deployment,
            source: body.source,
        }
    }
}

/// Collections the caller may read or manage.
#[utoipa::path(operation_id = "list_collections", get, path = "/api/v1/collections", tag = "grounding",
    responses((status = 200, description = "Collections the caller may read or manage", body = [CollectionView])))]
async fn list_collections(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
) -> Result<Json<Vec<CollectionView>>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let listed = service::list(&guard).await?;
    Ok(Json(listed.into_iter().map(seen_view).collect()))
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
    let guard = Guard::new(&state, &context, &caller);
    let created = service::create(&guard, body.into()).await?;
    Ok((StatusCode::CREATED, Json(view(created.collection, true))))
}

#[utoipa::path(operation_id = "get_collection", get, path = "/api/v1/collections/{id}", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id")),
    responses((status = 200, description = "The collection", body = CollectionView),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn get_collection(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CollectionView>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    Ok(Json(seen_view(service::get(&guard, &id).await?)))
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
    let guard = Guard::new(&state, &context, &caller);
    let updated = service::update(&guard, &id, body.into()).await?;
    Ok(Json(view(updated.collection, true)))
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
    let guard = Guard::new(&state, &context, &caller);
    service::delete(&guard, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The collection's documents in source-key order (managers; readers use search). Pages with
/// `after` and `limit`.
#[utoipa::path(operation_id = "list_documents", get, path = "/api/v1/collections/{id}/documents", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id"), DocumentsParams),
    responses((status = 200, description = "Its documents, with their ingestion status", body = [DocumentView]),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn list_documents(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<DocumentsParams>,
) -> Result<Json<Vec<DocumentView>>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let documents = service::documents(&guard, &id, params.after.as_deref(), params.limit).await?;
    Ok(Json(
        documents.into_iter().map(DocumentView::from).collect(),
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
    let guard = Guard::new(&state, &context, &caller);
    service::delete_document(&guard, &id, &document).await?;
    Ok(StatusCode::NO_CONTENT)
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
    multipart: Multipart,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    // Who may upload is decided before a byte of the body is read.
    let collection = service::managed(&guard, &id).await?;
    let upload = uploads::read(multipart, state.config.grounding.max_document_bytes).await?;
    let (job, items) = service::upload(&guard, &collection, upload).await?;
    Ok((StatusCode::ACCEPTED, Json(job_view(job, items))))
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
    let guard = Guard::new(&state, &context, &caller);
    let job = service::sync(&guard, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(job_view(job, Vec::new()))))
}

/// The connections the caller may point collections they manage at (all, for platform
/// admins): names and kinds, never addresses or credentials.
#[utoipa::path(operation_id = "list_connections", get, path = "/api/v1/connections", tag = "grounding",
    responses((status = 200, description = "Connections the caller may use", body = [ConnectionView])))]
async fn list_connections(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
) -> Result<Json<Vec<ConnectionView>>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let usable = service::connections(&guard).await?;
    Ok(Json(usable.into_iter().map(ConnectionView::from).collect()))
}

/// An ingestion job's progress and each document's outcome.
#[utoipa::path(operation_id = "get_ingestion_job", get, path = "/api/v1/ingestion-jobs/{id}", tag = "grounding",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = JobView),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn get_job(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let (job, items) = service::job(&guard, &id).await?;
    Ok(Json(job_view(job, items)))
}

/// A collection's latest ingestion jobs (uploads and syncs), newest first, without their
/// items (`GET /api/v1/ingestion-jobs/{id}` has those). For the collection's managers.
#[utoipa::path(operation_id = "list_ingestion_jobs", get, path = "/api/v1/collections/{id}/jobs", tag = "grounding",
    params(("id" = String, Path, description = "The collection's id"), JobsParams),
    responses((status = 200, description = "Its latest jobs", body = [JobView]),
        (status = 400, description = "Bad limit", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn list_jobs(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<JobsParams>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let jobs = service::jobs(&guard, &id, params.limit).await?;
    Ok(Json(
        jobs.into_iter()
            .map(|job| job_view(job, Vec::new()))
            .collect(),
    ))
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
    let guard = Guard::new(&state, &context, &caller);
    let outcome = service::search(&guard, &id, &body.query, body.mode, body.limit).await?;
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
