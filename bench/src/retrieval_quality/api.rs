//! The HTTP API as the benchmark drives it: sign-in, collections, uploads and waiting for jobs.

use super::*;

pub(super) struct Api<'a> {
    pub(super) app: &'a TestApp,
    pub(super) client: reqwest::Client,
    pub(super) token: std::sync::Mutex<String>,
}

impl<'a> Api<'a> {
    pub(super) async fn new(app: &'a TestApp) -> anyhow::Result<Self> {
        let token = access_token(app, &demo_user("ada@example.org")).await?;
        Ok(Self {
            app,
            client: reqwest::Client::builder()
                .tcp_nodelay(true)
                .timeout(Duration::from_secs(600))
                .build()?,
            token: std::sync::Mutex::new(token),
        })
    }

    pub(super) fn token(&self) -> String {
        self.token
            .lock()
            .map(|token| token.clone())
            .unwrap_or_default()
    }

    /// Sends the request `build` makes with the bearer token; on 401 gets a fresh token and
    /// sends it once more (a long run can outlive a token).
    pub(super) async fn call(
        &self,
        expect: u16,
        build: impl Fn(&reqwest::Client) -> anyhow::Result<reqwest::RequestBuilder>,
    ) -> anyhow::Result<Value> {
        for attempt in 0..2 {
            let response = build(&self.client)?
                .bearer_auth(self.token())
                .send()
                .await?;
            let status = response.status().as_u16();
            if status == 401 && attempt == 0 {
                let fresh = access_token(self.app, &demo_user("ada@example.org")).await?;
                if let Ok(mut token) = self.token.lock() {
                    *token = fresh;
                }
                continue;
            }
            let body = response.text().await?;
            if status != expect {
                bail!("expected {expect}, got {status}: {body}");
            }
            return Ok(serde_json::from_str(&body)?);
        }
        bail!("unauthorised even with a fresh token")
    }

    pub(super) fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    pub(super) async fn create_collection(
        &self,
        name: &str,
        embedding: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut body = json!({ "name": name, "access": { "scope": "organisation" } });
        if let Some(deployment) = embedding {
            body["embedding_deployment"] = json!(deployment);
        }
        let url = self.url("/api/v1/collections");
        let created = self
            .call(201, |client| Ok(client.post(&url).json(&body)))
            .await
            .with_context(|| format!("cannot create collection {name}"))?;
        id_of(&created)
    }

    pub(super) async fn upload(
        &self,
        collection: &str,
        files: &[(String, String)],
    ) -> anyhow::Result<String> {
        let url = self.url(&format!("/api/v1/collections/{collection}/documents"));
        let accepted = self
            .call(202, |client| {
                let mut form = reqwest::multipart::Form::new();
                for (name, text) in files {
                    let part = reqwest::multipart::Part::text(text.clone())
                        .file_name(name.clone())
                        .mime_str("text/markdown")?;
                    form = form.part("file", part);
                }
                Ok(client.post(&url).multipart(form))
            })
            .await
            .context("upload refused")?;
        id_of(&accepted)
    }

    pub(super) async fn job(&self, job: &str) -> anyhow::Result<Value> {
        let url = self.url(&format!("/api/v1/ingestion-jobs/{job}"));
        self.call(200, |client| Ok(client.get(&url))).await
    }

    pub(super) async fn wait_job(&self, job: &str) -> anyhow::Result<JobOutcome> {
        loop {
            let state = self.job(job).await?;
            match state["status"].as_str() {
                Some("succeeded" | "failed") => return JobOutcome::from_json(&state),
                Some(_) => tokio::time::sleep(POLL).await,
                None => bail!("job {job} has no status: {state}"),
            }
        }
    }

    /// Document keys (file names without `.md`) of the hits, best first, each once.
    pub(super) async fn search(
        &self,
        collection: &str,
        query: &str,
        mode: &str,
    ) -> anyhow::Result<Vec<String>> {
        let url = self.url(&format!("/api/v1/collections/{collection}/search"));
        let body = json!({ "query": query, "mode": mode, "limit": SEARCH_LIMIT });
        let found = self
            .call(200, |client| Ok(client.post(&url).json(&body)))
            .await
            .with_context(|| format!("{mode} search for {query:?} failed"))?;
        let mut hits: Vec<(i64, String)> = found["hits"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .enumerate()
                    .map(|(position, hit)| {
                        let rank = hit["rank"].as_i64().unwrap_or(position as i64 + 1);
                        let key = hit["source_key"].as_str().unwrap_or_default();
                        (rank, key.trim_end_matches(".md").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        hits.sort_by_key(|(rank, _)| *rank);
        let mut seen = HashSet::new();
        Ok(hits
            .into_iter()
            .filter_map(|(_, key)| seen.insert(key.clone()).then_some(key))
            .collect())
    }
}

pub(super) fn id_of(value: &Value) -> anyhow::Result<String> {
    match &value["id"] {
        Value::String(id) => Ok(id.clone()),
        Value::Number(id) => Ok(id.to_string()),
        _ => bail!("no id in {value}"),
    }
}

#[derive(Debug, Default)]
pub(super) struct JobOutcome {
    pub(super) succeeded: bool,
    pub(super) total: u64,
    pub(super) added: u64,
    pub(super) failed: u64,
    pub(super) chunks: u64,
    pub(super) started: Option<OffsetDateTime>,
    pub(super) finished: Option<OffsetDateTime>,
    pub(super) first_error: Option<String>,
    pub(super) failed_names: Vec<String>,
}

impl JobOutcome {
    pub(super) fn from_json(state: &Value) -> anyhow::Result<Self> {
        let time = |field: &str| {
            state[field]
                .as_str()
                .and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok())
        };
        let first_error = state["items"].as_array().and_then(|items| {
            items
                .iter()
                .find(|item| item["status"] == "failed")
                .map(|item| format!("{}: {} {}", item["name"], item["error_code"], item["error"]))
        });
        let failed_names = state["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|item| item["status"] == "failed")
                    .filter_map(|item| item["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            failed_names,
            succeeded: state["status"] == "succeeded",
            total: state["total"].as_u64().unwrap_or_default(),
            added: state["added"].as_u64().unwrap_or_default(),
            failed: state["failed"].as_u64().unwrap_or_default(),
            chunks: state["chunks"].as_u64().unwrap_or_default(),
            started: time("started_at"),
            finished: time("finished_at"),
            first_error: first_error.or_else(|| state["error"].as_str().map(str::to_owned)),
        })
    }
}

/// What uploading a corpus into one collection took.
#[derive(Debug, Default)]
pub(super) struct Ingest {
    pub(super) documents: u64,
    /// Documents still failed after the retries.
    pub(super) failed: u64,
    /// Documents uploaded again after failing.
    pub(super) retried: u64,
    pub(super) chunks: u64,
    /// From the first upload until the last job was seen finished.
    pub(super) wall: Duration,
    /// From the first job's `started_at` to the last job's `finished_at` (server clock).
    pub(super) server: Option<Duration>,
}

impl Ingest {
    pub(super) fn per_second(&self, duration: Duration) -> f64 {
        self.chunks as f64 / duration.as_secs_f64().max(1e-9)
    }
}

/// Uploads `files` in batches (all requests first, so the workers are never idle), then waits
/// for every job.
pub(super) async fn ingest(
    api: &Api<'_>,
    collection: &str,
    files: Vec<(String, String)>,
    batch: usize,
) -> anyhow::Result<Ingest> {
    let begun = Instant::now();
    let mut jobs = Vec::new();
    for part in files.chunks(batch.max(1)) {
        jobs.push(api.upload(collection, part).await?);
    }
    let mut result = Ingest::default();
    let mut failed_names: HashSet<String> = HashSet::new();
    let mut first_started: Option<OffsetDateTime> = None;
    let mut last_finished: Option<OffsetDateTime> = None;
    for job in &jobs {
        let outcome = api.wait_job(job).await?;
        if !outcome.succeeded || outcome.failed > 0 {
            note(&format!(
                "job {job}: succeeded {}, {} of {} failed; first error: {}",
                outcome.succeeded,
                outcome.failed,
                outcome.total,
                outcome.first_error.as_deref().unwrap_or("-")
            ));
        }
        result.documents += outcome.added;
        result.failed += outcome.failed;
        result.chunks += outcome.chunks;
        failed_names.extend(outcome.failed_names.iter().cloned());
        first_started = match (first_started, outcome.started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last_finished = match (last_finished, outcome.finished) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    // Documents that failed (e.g. SQLite "database is locked" under concurrent writes) are
    // uploaded again, up to three times; the wall time includes the retries.
    for _ in 0..3 {
        if failed_names.is_empty() {
            break;
        }
        let retry: Vec<(String, String)> = files
            .iter()
            .filter(|(name, _)| failed_names.contains(name))
            .cloned()
            .collect();
        note(&format!("uploading {} failed documents again", retry.len()));
        result.retried += retry.len() as u64;
        failed_names.clear();
        for part in retry.chunks(batch.max(1)) {
            let job = api.upload(collection, part).await?;
            let outcome = api.wait_job(&job).await?;
            result.documents += outcome.added;
            result.failed = result.failed.saturating_sub(outcome.added);
            result.chunks += outcome.chunks;
            failed_names.extend(outcome.failed_names);
            last_finished = match (last_finished, outcome.finished) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
    result.wall = begun.elapsed();
    if let (Some(start), Some(end)) = (first_started, last_finished) {
        result.server = Duration::try_from(end - start).ok();
    }
    Ok(result)
}

// ---- quality -----------------------------------------------------------------------------
