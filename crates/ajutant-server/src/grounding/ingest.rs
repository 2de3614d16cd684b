//! The ingestion worker: claims a job, and for each of its documents fetches the bytes (from
//! the upload or the source), skips it when its content hash is unchanged, extracts its text,
//! cuts passages, embeds them in batches with the collection's embedding deployment, and
//! stores document and passages in one transaction. One bad document fails alone, with a
//! status saying why; the job and the server go on.
//!
//! Jobs are durable: the claim is a lease renewed while the worker runs, items are marked as
//! they finish, and a job whose worker died is taken up again (by any instance) where it
//! stopped.

use ajutant_core::grounding::{DocumentStatus, JobKind};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ajutant_core::policy::{Principal, PrincipalKind};
use ajutant_ingest::chunk::{ChunkSettings, chunk};
use ajutant_ingest::connector::{Connector, ConnectorError, SourceItem};
use ajutant_ingest::extract::{ExtractError, Limits, extract};
use ajutant_store::{
    Collection, IngestionItem, IngestionJob, ItemOutcome, NewChunk, NewDocument, NewItem,
};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};

use super::sources::SourceSettings;
use crate::AppState;
use crate::gateway::runtime::{Call, CallIds};

/// How long a claim holds without renewal, and how often it is renewed.
const LEASE: Duration = Duration::from_secs(60);
const RENEW_EVERY: Duration = Duration::from_secs(15);
/// How often an idle worker looks for jobs queued by other instances.
const POLL_EVERY: Duration = Duration::from_secs(2);
/// Items read per page (uploads carry their bytes).
const ITEMS_PER_PAGE: i64 = 8;

/// Wakes this instance's workers when a job is queued here.
#[derive(Debug, Clone, Default)]
pub(crate) struct IngestSignal {
    notify: Arc<Notify>,
}

impl IngestSignal {
    pub(crate) fn wake(&self) {
        self.notify.notify_waiters();
    }
}

/// The identity ingestion's model calls are recorded under.
fn ingestion_principal() -> Principal {
    Principal {
        id: "system:ingestion".to_owned(),
        subject: "ingestion".to_owned(),
        display_name: "Ajutant ingestion".to_owned(),
        kind: PrincipalKind::Service,
        groups: Default::default(),
        app_roles: Default::default(),
        tenant: None,
    }
}

/// Runs one worker until `stop` turns true. A `watch` rather than a `Notify`: a stop that comes
/// while the worker is busy (not waiting) must still be seen.
pub(crate) async fn work(state: AppState, worker: String, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let now = OffsetDateTime::now_utc();
        let claimed = state.store.claim_job(&worker, now, now + LEASE).await;
        match claimed {
            Ok(Some(job)) => {
                tracing::info!(job = %job.id, kind = %job.kind, "ingestion job claimed");
                let run = run_job(&state, &worker, &job);
                tokio::select! {
                    _ = stop.changed() => return,
                    () = run => {}
                }
                continue;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot look for ingestion jobs"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = state.ingest.notify.notified() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

async fn run_job(state: &AppState, worker: &str, job: &IngestionJob) {
    let renew = async {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let until = OffsetDateTime::now_utc() + LEASE;
            match state.store.renew_job_lease(&job.id, worker, until).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job = %job.id, "lost the ingestion job's lease; stopping");
                    return;
                }
                Err(error) => tracing::warn!(%error, job = %job.id, "cannot renew the lease"),
            }
        }
    };
    let outcome = tokio::select! {
        () = renew => return,
        outcome = process(state, job) => outcome,
    };
    let error = outcome.err();
    if let Some(error) = &error {
        tracing::warn!(job = %job.id, %error, "ingestion job failed");
    }
    if let Err(failure) = state
        .store
        .finish_job(&job.id, error.as_deref(), OffsetDateTime::now_utc())
        .await
    {
        tracing::error!(%failure, job = %job.id, "cannot record the end of an ingestion job");
    }
}

/// Works every pending item; `Err` fails the job as a whole (the source cannot be listed).
async fn process(state: &AppState, job: &IngestionJob) -> Result<(), String> {
    let collection = state
        .store
        .collection(&job.collection_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the collection no longer exists".to_owned())?;
    let connector = match &collection.source {
        Some(source) if job.kind == JobKind::Sync => Some(
            SourceSettings::parse(source, &state.config.grounding)
                .and_then(|s| s.connector(&state.config.grounding, &state.egress))
                .map_err(|e| format!("the source cannot be used: {e}"))?,
        ),
        _ => None,
    };
    if job.kind == JobKind::Sync {
        let Some(connector) = &connector else {
            return Err("the collection has no source to sync from".to_owned());
        };
        // A resumed sync already listed its source; listing again would add every item twice.
        if job.total == 0 {
            let listed = connector.list().await.map_err(|e| e.to_string())?;
            let items: Vec<NewItem> = listed
                .into_iter()
                .map(|item| NewItem {
                    source_key: item.key,
                    name: item.name,
                    content_type: None,
                    acl: item.acl,
                    url: item.url,
                    content: None,
                    refused: None,
                })
                .collect();
            state
                .store
                .add_job_items(&job.id, &items)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let mut after = -1;
    loop {
        let page = state
            .store
            .pending_items(&job.id, after, ITEMS_PER_PAGE)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for item in page {
            let seq = item.seq;
            let name = item.name.clone();
            let done = ingest_item(state, &collection, item, connector.as_deref()).await;
            let recorded = match &done {
                Ok(done) => {
                    state
                        .store
                        .finish_item(
                            &job.id,
                            seq,
                            done.outcome,
                            None,
                            done.document_id.as_deref(),
                            done.chunks,
                        )
                        .await
                }
                Err(failure) => {
                    tracing::info!(job = %job.id, document = %name, code = failure.code, "document failed: {}", failure.message);
                    metrics::counter!("ajutant_ingestion_documents_failed_total", "code" => failure.code).increment(1);
                    state
                        .store
                        .finish_item(
                            &job.id,
                            seq,
                            ItemOutcome::Failed,
                            Some((failure.code, &failure.message)),
                            None,
                            0,
                        )
                        .await
                }
            };
            recorded.map_err(|e| e.to_string())?;
        }
    }
    if job.kind == JobKind::Sync {
        let keys: HashSet<String> = state
            .store
            .job_item_keys(&job.id)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        let removed = state
            .store
            .delete_documents_except(&collection.id, &keys)
            .await
            .map_err(|e| e.to_string())?;
        if removed > 0 {
            state
                .store
                .count_removed(&job.id, i64::try_from(removed).unwrap_or(i64::MAX))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

struct Done {
    outcome: ItemOutcome,
    document_id: Option<String>,
    chunks: i64,
}

/// Why one document failed: a stable code and a message for the people who own it.
struct Failure {
    code: &'static str,
    message: String,
}

impl From<ExtractError> for Failure {
    fn from(error: ExtractError) -> Self {
        Self {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl From<ConnectorError> for Failure {
    fn from(error: ConnectorError) -> Self {
        let code = match error {
            ConnectorError::TooLarge { .. } => "too_large",
            ConnectorError::Gone(_) => "gone",
            _ => "source_error",
        };
        Self {
            code,
            message: error.to_string(),
        }
    }
}

fn store_failure(error: impl std::fmt::Display) -> Failure {
    Failure {
        code: "store_error",
        message: format!("cannot store the document: {error}"),
    }
}

async fn ingest_item(
    state: &AppState,
    collection: &Collection,
    item: IngestionItem,
    connector: Option<&dyn Connector>,
) -> Result<Done, Failure> {
    let limit = state.config.grounding.max_document_bytes;
    let acl: Option<Vec<String>> = item
        .acl
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| Failure {
            code: "invalid_acl",
            message: format!("the document's ACL cannot be read: {e}"),
        })?;
    let bytes = match (item.content, connector) {
        (Some(bytes), _) => bytes,
        (None, Some(connector)) => {
            let listed = SourceItem {
                key: item.source_key.clone(),
                name: item.name.clone(),
                size: None,
                version: None,
                url: item.url.clone(),
                acl: acl.clone(),
            };
            connector.fetch(&listed, limit).await?
        }
        (None, None) => {
            return Err(Failure {
                code: "no_content",
                message: "the upload's content is missing".to_owned(),
            });
        }
    };
    let hash = ajutant_ingest::content_hash(&bytes);
    let existing = state
        .store
        .document_by_key(&collection.id, &item.source_key)
        .await
        .map_err(store_failure)?;
    if let Some(existing) = &existing
        && existing.status == DocumentStatus::Ready
        && existing.content_hash == hash
    {
        return Ok(Done {
            outcome: ItemOutcome::Unchanged,
            document_id: Some(existing.id.clone()),
            chunks: 0,
        });
    }
    let mut document = NewDocument {
        collection_id: collection.id.clone(),
        source_key: item.source_key.clone(),
        title: item.name.clone(),
        kind: None,
        size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        content_hash: hash,
        url: item.url.clone(),
        acl,
    };
    let limits = Limits {
        max_bytes: limit,
        ..Limits::default()
    };
    let extracted = match extract(
        &bytes,
        Some(&item.name),
        item.content_type.as_deref(),
        &limits,
    )
    .await
    {
        Ok(extracted) => extracted,
        Err(error) => {
            let failure = Failure::from(error);
            record_failed(state, &document, &failure).await;
            return Err(failure);
        }
    };
    document.kind = Some(extracted.kind.as_str().to_owned());
    if let Some(title) = extracted.title.as_ref().filter(|t| !t.trim().is_empty()) {
        document.title = title.trim().chars().take(300).collect();
    }
    let settings = ChunkSettings {
        max_tokens: state.config.grounding.chunk_max_tokens,
        overlap_tokens: state.config.grounding.chunk_overlap_tokens,
    };
    let chunks = chunk(&extracted, &settings);
    if chunks.is_empty() {
        let failure = Failure {
            code: "no_text",
            message: "the document has no text to search".to_owned(),
        };
        record_failed(state, &document, &failure).await;
        return Err(failure);
    }
    let texts: Vec<String> = chunks.iter().map(|c| c.indexed_text()).collect();
    let embeddings = match &collection.embedding_deployment {
        Some(deployment) => match embed_all(state, deployment, &texts).await {
            Ok(vectors) => vectors.into_iter().map(Some).collect(),
            Err(failure) => {
                record_failed(state, &document, &failure).await;
                return Err(failure);
            }
        },
        None => vec![None; texts.len()],
    };
    let rows: Vec<NewChunk> = chunks
        .iter()
        .zip(texts)
        .zip(embeddings)
        .map(|((chunk, indexed_text), embedding)| NewChunk {
            ordinal: i64::from(chunk.ordinal),
            heading: chunk.headings.join(" > "),
            page: chunk.page.map(i64::from),
            text: chunk.text.clone(),
            indexed_text,
            tokens: i64::from(chunk.tokens),
            embedding,
        })
        .collect();
    let id = state
        .store
        .put_document(&document, &rows, OffsetDateTime::now_utc())
        .await
        .map_err(store_failure)?;
    metrics::counter!("ajutant_ingestion_chunks_total").increment(rows.len() as u64);
    Ok(Done {
        outcome: if existing.is_some() {
            ItemOutcome::Updated
        } else {
            ItemOutcome::Added
        },
        document_id: Some(id),
        chunks: i64::try_from(rows.len()).unwrap_or(i64::MAX),
    })
}

async fn record_failed(state: &AppState, document: &NewDocument, failure: &Failure) {
    if let Err(error) = state
        .store
        .put_failed_document(
            document,
            failure.code,
            &failure.message,
            OffsetDateTime::now_utc(),
        )
        .await
    {
        tracing::error!(%error, "cannot record a failed document");
    }
}

async fn embed_all(
    state: &AppState,
    deployment: &str,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, Failure> {
    let principal = ingestion_principal();
    let ids = CallIds::default();
    let call = Call {
        state,
        principal: &principal,
        deployment,
        ids: &ids,
    };
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(state.config.grounding.embedding_batch.max(1)) {
        let embedded = state
            .gateway
            .embed_texts(call, batch.to_vec(), false)
            .await
            .map_err(|e| Failure {
                code: "embedding_failed",
                message: format!("the passages cannot be embedded: {e}"),
            })?;
        vectors.extend(embedded);
    }
    Ok(vectors)
}
