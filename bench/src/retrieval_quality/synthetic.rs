//! Scale: a deterministic synthetic corpus and search latency at size.

use super::*;

/// SplitMix64: deterministic, seeded, good enough to pick words.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A vocabulary of `size` distinct pronounceable words of 4 to 8 letters (one token each).
pub(super) fn vocabulary(rng: &mut Rng, size: usize) -> Vec<String> {
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
pub(super) fn skewed_word<'v>(rng: &mut Rng, vocabulary: &'v [String]) -> &'v str {
    let index = (rng.unit().powi(3) * vocabulary.len() as f64) as usize;
    &vocabulary[index.min(vocabulary.len() - 1)]
}

/// Document `index` of the synthetic corpus: a title and ~110 words in sentences, about 125
/// tokens, so one chunk.
pub(super) fn synthetic_document(
    rng: &mut Rng,
    vocabulary: &[String],
    index: usize,
) -> (String, String) {
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
pub(super) struct Latency {
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) mean: f64,
    pub(super) max: f64,
}

impl Latency {
    /// Nearest-rank percentiles, ms.
    pub(super) fn of(samples: &mut [Duration]) -> Self {
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

pub(super) async fn scale(api: &Api<'_>, args: &Args) -> anyhow::Result<()> {
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
