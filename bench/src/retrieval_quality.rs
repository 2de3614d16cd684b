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

#[path = "retrieval_quality/api.rs"]
mod api;
#[path = "retrieval_quality/scifact.rs"]
mod scifact;
#[path = "retrieval_quality/synthetic.rs"]
mod synthetic;

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

use api::*;
use scifact::*;
use synthetic::*;

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
