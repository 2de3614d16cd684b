//! Retrieval quality and scale, through the real HTTP API of an in-process Ajutant
//! (`TestApp`: the real `ajutant_server::run` on a fresh SQLite file or PostgreSQL database).
//!
//! 1. Quality: SciFact (BEIR layout, training split) is uploaded as one markdown file per
//!    abstract into a lexical-only collection and into one with the `local-embeddings`
//!    deployment (all-MiniLM-L6-v2 in process); every judged claim is searched in lexical,
//!    vector and hybrid mode (limit 100, hits deduplicated by document) and scored with
//!    nDCG@10 and recall@20 against the relevance judgements.
//! 2. Scale: a deterministic synthetic corpus (one chunk per document) is uploaded into a
//!    collection with the `offline` deployment's hashed bag-of-words embeddings until it holds
//!    `--scale-chunks` chunks; then random word queries are timed in each mode.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ajutant_core::config::{Config, DeploymentConfig, LOCAL_EMBEDDING_MODEL_DIR};
use ajutant_testkit::identity::{access_token, demo_user};
use ajutant_testkit::{Backend, TestApp};
use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// BM25 on this training split, from the data set's README.
const BM25_REFERENCE_NDCG10: f64 = 0.69;
/// How often a job's state is read while waiting for it.
const POLL: Duration = Duration::from_millis(200);
/// Hits asked for per search; documents are ranked after deduplicating chunks.
const SEARCH_LIMIT: usize = 100;

#[derive(Debug, Parser)]
#[command(about = "Retrieval quality on SciFact and search latency at 100k chunks")]
struct Args {
    /// The database Ajutant runs on: sqlite or postgres (TEST_POSTGRES_URL).
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// The SciFact folder (BEIR layout: corpus.jsonl, queries-train.jsonl, qrels-train.tsv).
    #[arg(long, default_value = "/work/shared/data/scifact")]
    data: PathBuf,
    /// Evaluate only the first N judged queries (all by default).
    #[arg(long)]
    queries: Option<usize>,
    /// Files per upload request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Ingestion workers (`grounding.workers`). More than 1 on SQLite makes concurrent jobs
    /// fail documents with "database is locked" (seen 2026-11-29).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Skip the embedding collection (lexical quality only), e.g. for a quick run.
    #[arg(long)]
    lexical_only: bool,
    /// Skip the quality part.
    #[arg(long)]
    skip_quality: bool,
    /// Skip the scale part.
    #[arg(long)]
    skip_scale: bool,
    /// Chunks the scale collection must hold.
    #[arg(long, default_value_t = 100_000)]
    scale_chunks: usize,
    /// Timed queries per mode at scale.
    #[arg(long, default_value_t = 300)]
    scale_queries: usize,
    /// Files per upload request at scale.
    #[arg(long, default_value_t = 2000)]
    scale_batch: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let backend = match args.database.as_str() {
        "sqlite" => Backend::Sqlite,
        "postgres" => Backend::Postgres,
        other => bail!("unknown database {other:?}: use sqlite or postgres"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(run(&args, backend))
}

fn note(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "[retrieval-quality] {message}");
}

fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

async fn run(args: &Args, backend: Backend) -> anyhow::Result<()> {
    let model_present = Path::new(LOCAL_EMBEDDING_MODEL_DIR)
        .join("model.safetensors")
        .is_file();
    if !model_present && !args.skip_quality {
        note(&format!(
            "the embedding model is missing from {LOCAL_EMBEDDING_MODEL_DIR} (run \
             scripts/fetch-embedding-model): lexical quality only"
        ));
    }
    let embeddings = model_present && !args.lexical_only;
    let workers = args.workers;
    let app = TestApp::spawn_with(backend, |config| configure(config, workers, embeddings)).await;
    let api = Api::new(&app).await?;
    let outcome = async {
        emit(&format!(
            "retrieval-quality on {} ({} cores), {} ingestion workers, {}\n\n",
            args.database,
            std::thread::available_parallelism().map_or(0, usize::from),
            args.workers,
            OffsetDateTime::now_utc().format(&Rfc3339)?,
        ))?;
        if !args.skip_quality {
            quality(&api, args, embeddings).await?;
        }
        if !args.skip_scale {
            scale(&api, args).await?;
        }
        anyhow::Ok(())
    }
    .await;
    let stopped = app.stop().await;
    outcome?;
    stopped?;
    Ok(())
}

fn configure(config: &mut Config, workers: usize, embeddings: bool) {
    config.grounding.workers = workers;
    config.grounding.max_upload_bytes = 256 * 1024 * 1024;
    config.server.body_limit_bytes = 256 * 1024 * 1024;
    config.deployments = vec![DeploymentConfig::offline()];
    if embeddings {
        config
            .deployments
            .push(DeploymentConfig::local_embeddings());
    }
}

// ---- the API -----------------------------------------------------------------------------

struct Api<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    token: std::sync::Mutex<String>,
}

impl<'a> Api<'a> {
    async fn new(app: &'a TestApp) -> anyhow::Result<Self> {
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

    fn token(&self) -> String {
        self.token
            .lock()
            .map(|token| token.clone())
            .unwrap_or_default()
    }

    /// Sends the request `build` makes with the bearer token; on 401 gets a fresh token and
    /// sends it once more (a long run can outlive a token).
    async fn call(
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

    fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    async fn create_collection(
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

    async fn upload(&self, collection: &str, files: &[(String, String)]) -> anyhow::Result<String> {
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

    async fn job(&self, job: &str) -> anyhow::Result<Value> {
        let url = self.url(&format!("/api/v1/ingestion-jobs/{job}"));
        self.call(200, |client| Ok(client.get(&url))).await
    }

    async fn wait_job(&self, job: &str) -> anyhow::Result<JobOutcome> {
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
    async fn search(
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

fn id_of(value: &Value) -> anyhow::Result<String> {
    match &value["id"] {
        Value::String(id) => Ok(id.clone()),
        Value::Number(id) => Ok(id.to_string()),
        _ => bail!("no id in {value}"),
    }
}

#[derive(Debug, Default)]
struct JobOutcome {
    succeeded: bool,
    total: u64,
    added: u64,
    failed: u64,
    chunks: u64,
    started: Option<OffsetDateTime>,
    finished: Option<OffsetDateTime>,
    first_error: Option<String>,
    failed_names: Vec<String>,
}

impl JobOutcome {
    fn from_json(state: &Value) -> anyhow::Result<Self> {
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
struct Ingest {
    documents: u64,
    /// Documents still failed after the retries.
    failed: u64,
    /// Documents uploaded again after failing.
    retried: u64,
    chunks: u64,
    /// From the first upload until the last job was seen finished.
    wall: Duration,
    /// From the first job's `started_at` to the last job's `finished_at` (server clock).
    server: Option<Duration>,
}

impl Ingest {
    fn per_second(&self, duration: Duration) -> f64 {
        self.chunks as f64 / duration.as_secs_f64().max(1e-9)
    }
}

/// Uploads `files` in batches (all requests first, so the workers are never idle), then waits
/// for every job.
async fn ingest(
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

struct Corpus {
    files: Vec<(String, String)>,
    queries: Vec<(String, String)>,
    /// query id → document id → graded relevance
    qrels: HashMap<String, HashMap<String, u32>>,
}

fn read_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .map(|line| line.map_err(anyhow::Error::from))
        .collect()
}

fn load_scifact(folder: &Path, limit: Option<usize>) -> anyhow::Result<Corpus> {
    let mut files = Vec::new();
    for line in read_lines(&folder.join("corpus.jsonl"))? {
        if line.trim().is_empty() {
            continue;
        }
        let doc: Value = serde_json::from_str(&line)?;
        let id = doc["_id"].as_str().context("a document without _id")?;
        let title = doc["title"].as_str().unwrap_or_default().trim();
        let text = doc["text"].as_str().unwrap_or_default();
        let title = if title.is_empty() { id } else { title };
        files.push((format!("{id}.md"), format!("# {title}\n\n{text}\n")));
    }
    let mut qrels: HashMap<String, HashMap<String, u32>> = HashMap::new();
    for line in read_lines(&folder.join("qrels-train.tsv"))?.iter().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        if let [query, doc, score] = fields[..]
            && let Ok(score) = score.trim().parse::<u32>()
            && score > 0
        {
            qrels
                .entry(query.to_owned())
                .or_default()
                .insert(doc.to_owned(), score);
        }
    }
    let mut queries = Vec::new();
    for line in read_lines(&folder.join("queries-train.jsonl"))? {
        if line.trim().is_empty() {
            continue;
        }
        let query: Value = serde_json::from_str(&line)?;
        let id = query["_id"].as_str().context("a query without _id")?;
        if qrels.contains_key(id) {
            let text = query["text"].as_str().unwrap_or_default();
            queries.push((id.to_owned(), text.to_owned()));
        }
    }
    if let Some(limit) = limit {
        queries.truncate(limit);
    }
    Ok(Corpus {
        files,
        queries,
        qrels,
    })
}

/// nDCG@10 (gain = graded relevance, discount log2(rank + 1), as trec_eval and BEIR compute
/// it) and recall@20 of one ranking.
fn score(ranked: &[String], relevant: &HashMap<String, u32>) -> (f64, f64) {
    let discount = |index: usize| ((index + 2) as f64).log2();
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(index, doc)| f64::from(relevant.get(doc).copied().unwrap_or(0)) / discount(index))
        .sum();
    let mut ideal: Vec<u32> = relevant.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(10)
        .enumerate()
        .map(|(index, rel)| f64::from(*rel) / discount(index))
        .sum();
    let found = ranked
        .iter()
        .take(20)
        .filter(|doc| relevant.contains_key(*doc))
        .count();
    let ndcg = if idcg > 0.0 { dcg / idcg } else { 0.0 };
    let recall = if relevant.is_empty() {
        0.0
    } else {
        found as f64 / relevant.len() as f64
    };
    (ndcg, recall)
}

#[derive(Debug, Default)]
struct ModeScores {
    ndcg: f64,
    recall: f64,
    queries: usize,
    latencies: Vec<Duration>,
}

async fn quality(api: &Api<'_>, args: &Args, embeddings: bool) -> anyhow::Result<()> {
    let corpus = load_scifact(&args.data, args.queries)?;
    note(&format!(
        "SciFact: {} documents, {} judged queries to run",
        corpus.files.len(),
        corpus.queries.len()
    ));
    let lexical = api.create_collection("scifact-lexical", None).await?;
    note("ingesting into the lexical-only collection");
    let lexical_ingest = ingest(api, &lexical, corpus.files.clone(), args.batch).await?;
    note(&format!(
        "lexical: {} documents, {} chunks in {:.1} s",
        lexical_ingest.documents,
        lexical_ingest.chunks,
        lexical_ingest.wall.as_secs_f64()
    ));
    let mut embedded = None;
    if embeddings {
        let collection = api
            .create_collection("scifact-minilm", Some("local-embeddings"))
            .await?;
        note("ingesting into the local-embeddings collection (all-MiniLM-L6-v2 on the CPU)");
        let done = ingest(api, &collection, corpus.files.clone(), args.batch).await?;
        note(&format!(
            "embedded: {} documents, {} chunks in {:.1} s",
            done.documents,
            done.chunks,
            done.wall.as_secs_f64()
        ));
        embedded = Some((collection, done));
    }

    let mut modes: Vec<(&str, &str)> = vec![("lexical", lexical.as_str())];
    if let Some((collection, _)) = &embedded {
        modes.push(("vector", collection.as_str()));
        modes.push(("hybrid", collection.as_str()));
    }
    let mut results = Vec::new();
    for (mode, collection) in &modes {
        note(&format!("searching: {mode}"));
        let mut scores = ModeScores::default();
        for (id, text) in &corpus.queries {
            let started = Instant::now();
            let ranked = api.search(collection, text, mode).await?;
            scores.latencies.push(started.elapsed());
            if let Some(relevant) = corpus.qrels.get(id) {
                let (ndcg, recall) = score(&ranked, relevant);
                scores.ndcg += ndcg;
                scores.recall += recall;
                scores.queries += 1;
            }
        }
        results.push((*mode, scores));
    }

    let mut out = String::new();
    out.push_str(&format!(
        "SciFact training split: {} documents, {} judged queries, limit {SEARCH_LIMIT}, hits \
         deduplicated by document\n\n",
        corpus.files.len(),
        corpus.queries.len()
    ));
    out.push_str("| mode | nDCG@10 | recall@20 | queries | search p50 ms | search p99 ms |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    for (mode, scores) in &mut results {
        let n = scores.queries.max(1) as f64;
        let latency = Latency::of(&mut scores.latencies);
        out.push_str(&format!(
            "| {mode} | {:.3} | {:.3} | {} | {:.2} | {:.2} |\n",
            scores.ndcg / n,
            scores.recall / n,
            scores.queries,
            latency.p50,
            latency.p99
        ));
    }
    out.push_str(&format!(
        "| reference: BM25 (k1 0.9, b 0.4, stemming, stop words), from the data's README | \
         {BM25_REFERENCE_NDCG10:.2} | – | – | – | – |\n\n"
    ));
    out.push_str("| ingestion | documents | failed (retried) | chunks | wall s | chunks/s (wall) | job span s | chunks/s (job span) |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut row = |label: &str, ingest: &Ingest| {
        let (span, rate) = match ingest.server {
            Some(span) => (
                format!("{:.1}", span.as_secs_f64()),
                format!("{:.0}", ingest.per_second(span)),
            ),
            None => ("–".to_owned(), "–".to_owned()),
        };
        out.push_str(&format!(
            "| {label} | {} | {} ({}) | {} | {:.1} | {:.0} | {span} | {rate} |\n",
            ingest.documents,
            ingest.failed,
            ingest.retried,
            ingest.chunks,
            ingest.wall.as_secs_f64(),
            ingest.per_second(ingest.wall),
        ));
    };
    row("lexical only (no embedding)", &lexical_ingest);
    if let Some((_, done)) = &embedded {
        row("with local-embeddings (all-MiniLM-L6-v2)", done);
    }
    if lexical_ingest.failed > 0 || embedded.as_ref().is_some_and(|(_, done)| done.failed > 0) {
        out.push_str(
            "WARNING: some documents failed to ingest (see the log above); the scores are for \
             an incomplete corpus.\n",
        );
    }
    out.push('\n');
    emit(&out)
}

// ---- scale -------------------------------------------------------------------------------

/// SplitMix64: deterministic, seeded, good enough to pick words.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A vocabulary of `size` distinct pronounceable words of 4 to 8 letters (one token each).
fn vocabulary(rng: &mut Rng, size: usize) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st",
        "tr", "pl",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou"];
    let mut seen = HashSet::new();
    let mut words = Vec::with_capacity(size);
    while words.len() < size {
        let syllables = 2 + rng.below(2);
        let mut word = String::new();
        for _ in 0..syllables {
            word.push_str(ONSETS[rng.below(ONSETS.len())]);
            word.push_str(VOWELS[rng.below(VOWELS.len())]);
        }
        if word.len() <= 8 && seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words
}

/// A word with a skewed (roughly Zipf-like) frequency: low indexes are common.
fn skewed_word<'v>(rng: &mut Rng, vocabulary: &'v [String]) -> &'v str {
    let index = (rng.unit().powi(3) * vocabulary.len() as f64) as usize;
    &vocabulary[index.min(vocabulary.len() - 1)]
}

/// Document `index` of the synthetic corpus: a title and ~110 words in sentences, about 125
/// tokens, so one chunk.
fn synthetic_document(rng: &mut Rng, vocabulary: &[String], index: usize) -> (String, String) {
    let mut text = format!("# Synthetic {index}\n\n");
    let mut words = 0;
    while words < 110 {
        let length = 8 + rng.below(8);
        for position in 0..length {
            if position > 0 {
                text.push(' ');
            }
            text.push_str(skewed_word(rng, vocabulary));
        }
        text.push_str(". ");
        words += length;
    }
    text.push('\n');
    (format!("syn-{index:07}.md"), text)
}

#[derive(Debug, Default)]
struct Latency {
    p50: f64,
    p99: f64,
    mean: f64,
    max: f64,
}

impl Latency {
    /// Nearest-rank percentiles, ms.
    fn of(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let rank = |p: f64| {
            let index = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index].as_secs_f64() * 1000.0
        };
        let total: f64 = samples.iter().map(Duration::as_secs_f64).sum();
        Self {
            p50: rank(0.50),
            p99: rank(0.99),
            mean: total * 1000.0 / samples.len() as f64,
            max: samples[samples.len() - 1].as_secs_f64() * 1000.0,
        }
    }
}

async fn scale(api: &Api<'_>, args: &Args) -> anyhow::Result<()> {
    let mut rng = Rng(0x5EED_A1D7_u64);
    let words = vocabulary(&mut rng, 4000);
    let collection = api
        .create_collection("synthetic-scale", Some("offline"))
        .await?;
    note(&format!(
        "scale: ingesting ≥{} synthetic chunks (offline hashed embeddings), {} files per request",
        args.scale_chunks, args.scale_batch
    ));
    let mut total = Ingest::default();
    let mut next = 0usize;
    while (total.chunks as usize) < args.scale_chunks {
        let missing = args.scale_chunks - total.chunks as usize;
        let files: Vec<(String, String)> = (next..next + missing)
            .map(|index| synthetic_document(&mut rng, &words, index))
            .collect();
        next += missing;
        let round = ingest(api, &collection, files, args.scale_batch).await?;
        if round.chunks == 0 {
            bail!("the scale collection took no chunks");
        }
        total.documents += round.documents;
        total.failed += round.failed;
        total.retried += round.retried;
        total.chunks += round.chunks;
        total.wall += round.wall;
        total.server = match (total.server, round.server) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
    note(&format!(
        "scale: {} documents, {} chunks in {:.1} s",
        total.documents,
        total.chunks,
        total.wall.as_secs_f64()
    ));

    let mut query_rng = Rng(0x0000_C0FF_EE00_u64);
    let queries: Vec<String> = (0..args.scale_queries)
        .map(|_| {
            let length = 2 + query_rng.below(4);
            (0..length)
                .map(|_| words[query_rng.below(words.len())].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut rows = Vec::new();
    for mode in ["lexical", "vector", "hybrid"] {
        let started = Instant::now();
        let warm = api.search(&collection, "warm up query", mode).await?;
        let warm_up = started.elapsed();
        note(&format!(
            "scale: {mode} warm-up took {:.0} ms ({} documents)",
            warm_up.as_secs_f64() * 1000.0,
            warm.len()
        ));
        let mut latencies = Vec::with_capacity(queries.len());
        let mut empty = 0;
        for query in &queries {
            let started = Instant::now();
            let hits = api.search(&collection, query, mode).await?;
            latencies.push(started.elapsed());
            if hits.is_empty() {
                empty += 1;
            }
        }
        rows.push((mode, warm_up, Latency::of(&mut latencies), empty));
    }

    let mut out = String::new();
    out.push_str(&format!(
        "Scale: synthetic corpus (seeded, {}-word vocabulary, ~110 words per document, one chunk \
         each), offline hashed embeddings (384 dims)\n\n",
        words.len()
    ));
    out.push_str("| ingestion | documents | failed (retried) | chunks | wall s | chunks/s (wall) | job span s | chunks/s (job span) |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let (span, rate) = match total.server {
        Some(span) => (
            format!("{:.1}", span.as_secs_f64()),
            format!("{:.0}", total.per_second(span)),
        ),
        None => ("–".to_owned(), "–".to_owned()),
    };
    out.push_str(&format!(
        "| synthetic, offline embeddings | {} | {} ({}) | {} | {:.1} | {:.0} | {span} | {rate} |\n\n",
        total.documents,
        total.failed,
        total.retried,
        total.chunks,
        total.wall.as_secs_f64(),
        total.per_second(total.wall),
    ));
    out.push_str(&format!(
        "{} sequential queries per mode (2-5 random words, limit {SEARCH_LIMIT}), after one \
         untimed warm-up query per mode (SQLite loads the collection's vectors into memory on \
         the first vector query)\n\n",
        queries.len()
    ));
    out.push_str(
        "| mode | warm-up ms | p50 ms | p99 ms | mean ms | max ms | queries with no hit |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for (mode, warm_up, latency, empty) in rows {
        out.push_str(&format!(
            "| {mode} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {empty} |\n",
            warm_up.as_secs_f64() * 1000.0,
            latency.p50,
            latency.p99,
            latency.mean,
            latency.max
        ));
    }
    out.push('\n');
    emit(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_ranking_scores_one() {
        let relevant = HashMap::from([("a".to_owned(), 1), ("b".to_owned(), 1)]);
        let ranked = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let (ndcg, recall) = score(&ranked, &relevant);
        assert!((ndcg - 1.0).abs() < 1e-12);
        assert!((recall - 1.0).abs() < 1e-12);
    }

    #[test]
    fn second_place_is_discounted() {
        let relevant = HashMap::from([("a".to_owned(), 1)]);
        let ranked = vec!["x".to_owned(), "a".to_owned()];
        let (ndcg, _) = score(&ranked, &relevant);
        assert!((ndcg - 1.0 / 3f64.log2()).abs() < 1e-12);
    }
}
