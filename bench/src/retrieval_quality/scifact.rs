//! Quality: SciFact loaded, searched in each mode and scored with nDCG@10 and recall@20.

use super::*;

pub(super) struct Corpus {
    pub(super) files: Vec<(String, String)>,
    pub(super) queries: Vec<(String, String)>,
    /// query id → document id → graded relevance
    pub(super) qrels: HashMap<String, HashMap<String, u32>>,
}

pub(super) fn read_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .map(|line| line.map_err(anyhow::Error::from))
        .collect()
}

pub(super) fn load_scifact(folder: &Path, limit: Option<usize>) -> anyhow::Result<Corpus> {
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
pub(super) fn score(ranked: &[String], relevant: &HashMap<String, u32>) -> (f64, f64) {
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
pub(super) struct ModeScores {
    pub(super) ndcg: f64,
    pub(super) recall: f64,
    pub(super) queries: usize,
    pub(super) latencies: Vec<Duration>,
}

pub(super) async fn quality(api: &Api<'_>, args: &Args, embeddings: bool) -> anyhow::Result<()> {
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
