//! Grounding's rules, in one place for the API and the console: platform admins create and
//! remove collections; a collection's owner group (and admins) change it, upload, sync and
//! remove its documents and follow its jobs; its readers search it; for anyone else it does not
//! exist.

use ajutant_core::audit::Outcome;
use ajutant_core::audit_action::AuditAction;
use ajutant_core::config::{Capability, ConnectionConfig};
use ajutant_core::grounding::JobKind;
use ajutant_core::id::{CollectionId, DocumentId, JobId};
use ajutant_core::policy::{AccessScope, Action, Owned, Standing};
use ajutant_store::{Collection, CollectionSpec, Document, IngestionJob, ItemReport};
use serde_json::json;
use time::OffsetDateTime;

use super::retrieval::{self, Mode, Retrieved};
use super::sources;
use super::uploads::Upload;
use crate::access::Guard;
use crate::problem::ApiError;

/// A collection as one caller sees it.
pub(crate) struct Seen {
    pub collection: Collection,
    pub standing: Standing,
}

/// What a collection is to be: name, access, owners, embeddings, source.
pub(crate) struct Settings {
    pub name: String,
    pub description: String,
    pub access: AccessScope,
    pub owner_group: Option<String>,
    pub embedding_deployment: Option<String>,
    pub source: Option<serde_json::Value>,
}

/// Most documents one listing returns.
const MAX_DOCUMENTS_PAGE: i64 = 10_000;

fn resource(id: &str) -> String {
    format!("collection/{id}")
}

/// What the policy's rule for owned resources needs of a collection: its readers as the scope,
/// and managing it as the action (`Owned` borrows both).
struct Policy {
    scope: AccessScope,
    manage: Action,
}

impl Policy {
    fn of(collection: &Collection) -> Self {
        Self {
            scope: AccessScope::from_readers(&collection.readers),
            manage: Action::ManageCollection(collection.id.clone()),
        }
    }

    fn owned<'a>(&'a self, collection: &'a Collection) -> Owned<'a> {
        Owned {
            owner_group: collection.owner_group.as_deref(),
            scope: &self.scope,
            manage: &self.manage,
        }
    }
}

async fn standing(guard: &Guard<'_>, collection: &Collection) -> Result<Standing, ApiError> {
    guard
        .standing(Policy::of(collection).owned(collection))
        .await
}

async fn load(guard: &Guard<'_>, id: &str) -> Result<Collection, ApiError> {
    if CollectionId::parse(id).is_err() {
        return Err(guard.not_found());
    }
    guard
        .state
        .store
        .collection(id)
        .await?
        .ok_or_else(|| guard.not_found())
}

/// The collections the caller may read or manage.
pub(crate) async fn list(guard: &Guard<'_>) -> Result<Vec<Seen>, ApiError> {
    let mut out = Vec::new();
    for collection in guard.state.store.collections().await? {
        let standing = standing(guard, &collection).await?;
        if standing.sees() {
            out.push(Seen {
                collection,
                standing,
            });
        }
    }
    Ok(out)
}

/// A collection the caller may read or manage.
pub(crate) async fn get(guard: &Guard<'_>, id: &str) -> Result<Seen, ApiError> {
    let collection = load(guard, id).await?;
    let standing = standing(guard, &collection).await?;
    if !standing.sees() {
        return Err(guard.hidden(&resource(id)).await);
    }
    Ok(Seen {
        collection,
        standing,
    })
}

/// Whether the collection exists and the caller may read (or manage) it; records nothing.
pub(crate) async fn readable(guard: &Guard<'_>, id: &str) -> Result<bool, ApiError> {
    if CollectionId::parse(id).is_err() {
        return Ok(false);
    }
    match guard.state.store.collection(id).await? {
        Some(collection) => Ok(standing(guard, &collection).await?.sees()),
        None => Ok(false),
    }
}

/// The collection, if the caller may manage it (audited either way); the 404 otherwise.
pub(crate) async fn managed(guard: &Guard<'_>, id: &str) -> Result<Collection, ApiError> {
    let collection = load(guard, id).await?;
    guard
        .manage(
            Policy::of(&collection).owned(&collection),
            &resource(&collection.id),
        )
        .await?;
    Ok(collection)
}

/// Creates a collection (platform admins).
pub(crate) async fn create(guard: &Guard<'_>, settings: Settings) -> Result<Seen, ApiError> {
    guard
        .require(&Action::CreateCollection, "collections")
        .await?;
    let spec = spec(guard, settings, None).await?;
    let collection = guard
        .state
        .store
        .create_collection(&spec, &guard.caller.principal.id, OffsetDateTime::now_utc())
        .await?;
    guard
        .record(
            AuditAction::CollectionCreated,
            &resource(&collection.id),
            Outcome::Allowed,
            json!({ "name": collection.name, "readers": collection.readers }),
        )
        .await?;
    let standing = standing(guard, &collection).await?;
    Ok(Seen {
        collection,
        standing,
    })
}

/// Changes a collection's settings; new access applies to every document in the same commit.
pub(crate) async fn update(
    guard: &Guard<'_>,
    id: &str,
    settings: Settings,
) -> Result<Seen, ApiError> {
    let before = managed(guard, id).await?;
    let spec = spec(guard, settings, Some(&before)).await?;
    let collection = guard
        .state
        .store
        .update_collection(&before.id, &spec, OffsetDateTime::now_utc())
        .await?
        .ok_or_else(|| guard.not_found())?;
    guard
        .record(
            AuditAction::CollectionUpdated,
            &resource(&collection.id),
            Outcome::Allowed,
            json!({ "before": settings_record(&before), "after": settings_record(&collection) }),
        )
        .await?;
    let standing = standing(guard, &collection).await?;
    Ok(Seen {
        collection,
        standing,
    })
}

/// Removes a collection with its documents and passages (platform admins).
pub(crate) async fn delete(guard: &Guard<'_>, id: &str) -> Result<(), ApiError> {
    guard
        .require(&Action::CreateCollection, &resource(id))
        .await?;
    let before = load(guard, id).await?;
    if !guard.state.store.delete_collection(&before.id).await? {
        return Err(guard.not_found());
    }
    let mut record = settings_record(&before);
    record["documents"] = json!(before.document_count);
    guard
        .record(
            AuditAction::CollectionDeleted,
            &resource(&before.id),
            Outcome::Allowed,
            json!({ "before": record }),
        )
        .await
}

/// What the trail keeps of a collection's settings. Its source goes with every value whose
/// name suggests a credential replaced, so the trail never becomes a place to read them.
fn settings_record(collection: &Collection) -> serde_json::Value {
    json!({
        "name": collection.name,
        "description": collection.description,
        "readers": collection.readers,
        "owner_group": collection.owner_group,
        "embedding_deployment": collection.embedding_deployment,
        "source": collection.source.as_ref().map(redacted),
    })
}

fn redacted(value: &serde_json::Value) -> serde_json::Value {
    const SECRET_WORDS: [&str; 6] = ["token", "secret", "password", "key", "credential", "sas"];
    match value {
        serde_json::Value::Object(fields) => fields
            .iter()
            .map(|(name, value)| {
                let lower = name.to_ascii_lowercase();
                let kept = if SECRET_WORDS.iter().any(|word| lower.contains(word)) {
                    json!("[redacted]")
                } else {
                    redacted(value)
                };
                (name.clone(), kept)
            })
            .collect(),
        serde_json::Value::Array(items) => items.iter().map(redacted).collect(),
        other => other.clone(),
    }
}

/// A page of a collection's documents in source-key order (its managers; readers search).
pub(crate) async fn documents(
    guard: &Guard<'_>,
    id: &str,
    after: Option<&str>,
    limit: Option<i64>,
) -> Result<Vec<Document>, ApiError> {
    let limit = limit.unwrap_or(MAX_DOCUMENTS_PAGE);
    if !(1..=MAX_DOCUMENTS_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_DOCUMENTS_PAGE}"
        )));
    }
    let collection = managed(guard, id).await?;
    Ok(guard
        .state
        .store
        .documents(&collection.id, after, limit)
        .await?)
}

/// Removes a document; its passages leave retrieval before this returns.
pub(crate) async fn delete_document(
    guard: &Guard<'_>,
    id: &str,
    document: &str,
) -> Result<(), ApiError> {
    let collection = managed(guard, id).await?;
    if DocumentId::parse(document).is_err()
        || !guard
            .state
            .store
            .delete_document(&collection.id, document)
            .await?
    {
        return Err(guard.not_found());
    }
    guard
        .record(
            AuditAction::DocumentDeleted,
            &format!("collection/{}/document/{document}", collection.id),
            Outcome::Allowed,
            json!({}),
        )
        .await
}

/// Queues an upload read by `uploads::read` into `collection` (from [`managed`], asked before
/// the body is read so that nobody else's upload is read at all).
pub(crate) async fn upload(
    guard: &Guard<'_>,
    collection: &Collection,
    upload: Upload,
) -> Result<(IngestionJob, Vec<ItemReport>), ApiError> {
    let state = guard.state;
    let job = state
        .store
        .create_job(
            &collection.id,
            JobKind::Upload,
            &upload.items,
            &guard.caller.principal.id,
            OffsetDateTime::now_utc(),
        )
        .await?;
    guard
        .record(
            AuditAction::DocumentsUploaded,
            &resource(&collection.id),
            Outcome::Allowed,
            json!({
                "job": job.id,
                "files": upload.items.iter().map(|i| &i.name).collect::<Vec<_>>(),
                "acl": upload.acl,
            }),
        )
        .await?;
    state.ingest.wake();
    let items = state.store.job_items(&job.id).await?;
    Ok((job, items))
}

/// Queues a sync of the collection with its source.
pub(crate) async fn sync(guard: &Guard<'_>, id: &str) -> Result<IngestionJob, ApiError> {
    let collection = managed(guard, id).await?;
    if collection.source.is_none() {
        return Err(ApiError::BadRequest(
            "this collection has no source to sync from; upload documents instead".to_owned(),
        ));
    }
    let job = guard
        .state
        .store
        .create_job(
            &collection.id,
            JobKind::Sync,
            &[],
            &guard.caller.principal.id,
            OffsetDateTime::now_utc(),
        )
        .await?;
    guard
        .record(
            AuditAction::CollectionSynced,
            &resource(&collection.id),
            Outcome::Allowed,
            json!({ "job": job.id, "source": collection.source.as_ref().map(redacted) }),
        )
        .await?;
    guard.state.ingest.wake();
    Ok(job)
}

/// An ingestion job with its items: for the collection's managers and whoever started it.
pub(crate) async fn job(
    guard: &Guard<'_>,
    id: &str,
) -> Result<(IngestionJob, Vec<ItemReport>), ApiError> {
    if JobId::parse(id).is_err() {
        return Err(guard.not_found());
    }
    let store = &guard.state.store;
    let job = store.job(id).await?.ok_or_else(|| guard.not_found())?;
    let collection = store
        .collection(&job.collection_id)
        .await?
        .ok_or_else(|| guard.not_found())?;
    if !standing(guard, &collection).await?.manages() && job.created_by != guard.caller.principal.id
    {
        return Err(guard.hidden(&format!("ingestion-job/{}", job.id)).await);
    }
    let items = store.job_items(&job.id).await?;
    Ok((job, items))
}

/// A collection's latest jobs, newest first (its managers).
pub(crate) async fn jobs(
    guard: &Guard<'_>,
    id: &str,
    limit: Option<i64>,
) -> Result<Vec<IngestionJob>, ApiError> {
    let limit = limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 50".to_owned()));
    }
    let collection = managed(guard, id).await?;
    Ok(guard
        .state
        .store
        .collection_jobs(&collection.id, limit)
        .await?)
}

/// Searches one collection as the caller: only passages they may read are considered, so the
/// result is what an assistant grounded on this collection would see for them.
pub(crate) async fn search(
    guard: &Guard<'_>,
    id: &str,
    query: &str,
    mode: Mode,
    limit: Option<usize>,
) -> Result<Retrieved, ApiError> {
    let collection = get(guard, id).await?.collection;
    let query = query.trim();
    if query.is_empty() || query.chars().count() > 4000 {
        return Err(ApiError::BadRequest(
            "query must be 1 to 4,000 characters".to_owned(),
        ));
    }
    let limit = limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 100".to_owned()));
    }
    let outcome = retrieval::retrieve(
        guard.state,
        &guard.caller.principal,
        std::slice::from_ref(&collection),
        retrieval::Search { query, mode, limit },
        crate::gateway::runtime::CallIds {
            request_id: Some(guard.context.request_id.clone()),
            trace_id: Some(guard.context.trace_id.clone()),
        },
    )
    .await?;
    guard
        .record(
            AuditAction::CollectionSearched,
            &resource(&collection.id),
            Outcome::Allowed,
            json!({ "mode": outcome.mode, "hits": outcome.hits.len() }),
        )
        .await?;
    Ok(outcome)
}

/// The connections the caller may point collections at: all of them for those who may create
/// collections, else those whose groups the caller is in.
pub(crate) async fn connections<'a>(
    guard: &Guard<'a>,
) -> Result<Vec<&'a ConnectionConfig>, ApiError> {
    let every = guard.allows(&Action::CreateCollection).await?;
    let groups: Vec<String> = guard.caller.principal.groups.iter().cloned().collect();
    Ok(guard
        .state
        .config
        .grounding
        .connections
        .iter()
        .filter(|c| every || c.usable_by(&groups))
        .collect())
}

/// A submitted source, checked: it names a connection the caller may use and a path inside it.
/// A source left as it was needs no new permission (an owner renaming a collection an admin
/// pointed at a connection).
async fn checked_source(
    guard: &Guard<'_>,
    source: &serde_json::Value,
    before: Option<&Collection>,
) -> Result<(), ApiError> {
    let config = &guard.state.config.grounding;
    let settings = sources::SourceSettings::parse(source, config)
        .map_err(|e| ApiError::BadRequest(format!("source: {e}")))?;
    let unchanged = before
        .and_then(|b| b.source.as_ref())
        .and_then(|s| sources::SourceSettings::parse(s, config).ok())
        .is_some_and(|b| b == settings);
    if unchanged {
        return Ok(());
    }
    let usable = connections(guard).await?;
    if !usable.iter().any(|c| c.name == settings.connection) {
        return Err(ApiError::BadRequest(format!(
            "source: there is no connection named {:?} that you may use (see GET \
             /api/v1/connections)",
            settings.connection
        )));
    }
    // Building the connector checks that the path exists inside the connection and that its
    // credential is there, so a mistake shows now rather than at the next sync.
    settings
        .connector(config, &guard.state.egress)
        .map_err(|e| ApiError::BadRequest(format!("source: {e}")))?;
    Ok(())
}

/// Settings checked and turned into what the store writes; the first problem is the answer.
async fn spec(
    guard: &Guard<'_>,
    settings: Settings,
    before: Option<&Collection>,
) -> Result<CollectionSpec, ApiError> {
    let state = guard.state;
    let name = settings.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "name must be 1 to 200 characters".to_owned(),
        ));
    }
    if let Some(problem) = settings.access.problem() {
        return Err(ApiError::BadRequest(format!("access: {problem}")));
    }
    // A deployment left as it was needs no new grant (an owner renaming a collection an admin
    // set up).
    let unchanged = |deployment: &str| {
        before.is_some_and(|b| b.embedding_deployment.as_deref() == Some(deployment))
    };
    if let Some(deployment) = &settings.embedding_deployment
        && !unchanged(deployment)
        && let Some(problem) = state.gateway.hand_out_problem(
            deployment,
            Capability::Embeddings,
            &guard.caller.principal,
            &settings.access,
        )
    {
        return Err(ApiError::BadRequest(format!(
            "embedding_deployment: {problem}"
        )));
    }
    if let Some(source) = &settings.source {
        checked_source(guard, source, before).await?;
    }
    Ok(CollectionSpec {
        name,
        description: settings.description,
        readers: settings.access.readers(),
        owner_group: settings.owner_group.filter(|g| !g.trim().is_empty()),
        embedding_deployment: settings.embedding_deployment,
        source: settings.source,
    })
}
