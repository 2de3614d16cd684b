//! Retrieval's two queries, per backend: full-text (SQLite FTS5's BM25; PostgreSQL's `ts_rank`)
//! and vector similarity (SQLite: the in-memory copy in `vectors`; PostgreSQL: pgvector's HNSW
//! index, created here per dimension on first use), both trimmed by the reader's groups.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::vectors::TopK;
use super::{EVERYONE, to_json};
use crate::{Pool, Store, StoreError};

/// A passage as retrieval returns it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Passage {
    pub chunk_id: i64,
    pub document_id: String,
    pub collection_id: String,
    pub title: String,
    pub source_key: String,
    pub url: Option<String>,
    pub heading: String,
    pub page: Option<i64>,
    pub ordinal: i64,
    pub text: String,
}

/// Where a search may look and for whom: the collections, and the reader's groups. `*` is
/// added by the store; callers pass only real group ids.
#[derive(Debug, Clone, Copy)]
pub struct SearchScope<'a> {
    pub collections: &'a [String],
    pub groups: &'a [String],
}

impl SearchScope<'_> {
    fn readers(&self) -> Vec<String> {
        let mut readers: Vec<String> = self.groups.to_vec();
        readers.push(EVERYONE.to_owned());
        readers
    }
}

const PASSAGE_COLUMNS: &str = "k.id AS chunk_id, k.document_id, k.collection_id, d.title, \
     d.source_key, d.url, k.heading, k.page, k.ordinal, k.text";

impl Store {
    /// Passages by id, in the order given; ids the store no longer has are left out.
    pub async fn passages(&self, ids: &[i64]) -> Result<Vec<Passage>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: HashMap<i64, Passage> = match &self.pool {
            Pool::Sqlite(pool) => {
                let mut query = QueryBuilder::<Sqlite>::new(format!(
                    "SELECT {PASSAGE_COLUMNS} FROM chunks k JOIN documents d ON d.id = k.document_id \
                     WHERE k.id IN ("
                ));
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(")");
                query.build_query_as::<Passage>().fetch_all(pool).await?
            }
            Pool::Postgres(pool) => {
                sqlx::query_as::<_, Passage>(&format!(
                    "SELECT {PASSAGE_COLUMNS} FROM chunks k JOIN documents d ON d.id = k.document_id \
                     WHERE k.id = ANY($1)"
                ))
                .bind(ids)
                .fetch_all(pool)
                .await?
            }
        }
        .into_iter()
        .map(|p| (p.chunk_id, p))
        .collect();
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Full-text search: chunk ids with their score, best first, at most `limit`. Terms are
    /// OR-ed (ranked retrieval, not a filter). Only passages the scope's reader may read, in
    /// the scope's collections, are considered.
    pub async fn search_lexical(
        &self,
        scope: SearchScope<'_>,
        query: &str,
        limit: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let terms = search_terms(query);
        if terms.is_empty() || scope.collections.is_empty() {
            return Ok(Vec::new());
        }
        let readers = scope.readers();
        Ok(match &self.pool {
            Pool::Sqlite(pool) => {
                let matched = terms
                    .iter()
                    .map(|t| format!("\"{t}\""))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                // bm25() is lower-is-better; negate so every score here is higher-is-better.
                sqlx::query_as(
                    "SELECT k.id, -bm25(chunks_fts) AS score FROM chunks_fts \
                     JOIN chunks k ON k.id = chunks_fts.rowid \
                     WHERE chunks_fts MATCH $1 \
                       AND k.collection_id IN (SELECT value FROM json_each($2)) \
                       AND EXISTS (SELECT 1 FROM document_readers r \
                                   WHERE r.document_id = k.document_id \
                                     AND r.reader IN (SELECT value FROM json_each($3))) \
                     ORDER BY bm25(chunks_fts) LIMIT $4",
                )
                .bind(matched)
                .bind(to_json(&scope.collections)?)
                .bind(to_json(&readers)?)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
            Pool::Postgres(pool) => {
                let matched = terms.join(" | ");
                let rows: Vec<(i64, f32)> = sqlx::query_as(
                    "SELECT k.id, ts_rank(k.tsv, q, 1) AS score \
                     FROM chunks k, to_tsquery('english', $1) q \
                     WHERE k.tsv @@ q AND k.collection_id = ANY($2) \
                       AND EXISTS (SELECT 1 FROM document_readers r \
                                   WHERE r.document_id = k.document_id AND r.reader = ANY($3)) \
                     ORDER BY score DESC, k.id LIMIT $4",
                )
                .bind(matched)
                .bind(scope.collections)
                .bind(&readers)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.into_iter().map(|(id, s)| (id, f64::from(s))).collect()
            }
        })
    }

    /// Vector search: chunk ids with their cosine similarity, best first, at most `limit`,
    /// among passages embedded with `vector.len()` dimensions that the reader may read.
    pub async fn search_vector(
        &self,
        scope: SearchScope<'_>,
        vector: &[f32],
        limit: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        if scope.collections.is_empty() || vector.is_empty() {
            return Ok(Vec::new());
        }
        let readers = scope.readers();
        let dims = vector.len();
        match &self.pool {
            Pool::Sqlite(pool) => {
                let permitted: Vec<String> = sqlx::query_scalar(
                    "SELECT d.id FROM documents d \
                     WHERE d.collection_id IN (SELECT value FROM json_each($1)) \
                       AND EXISTS (SELECT 1 FROM document_readers r WHERE r.document_id = d.id \
                                   AND r.reader IN (SELECT value FROM json_each($2)))",
                )
                .bind(to_json(&scope.collections)?)
                .bind(to_json(&readers)?)
                .fetch_all(pool)
                .await?;
                let permitted: HashSet<String> = permitted.into_iter().collect();
                let mut best = TopK::new(usize::try_from(limit).unwrap_or(0));
                for collection in scope.collections {
                    let vectors = self.collection_vectors(pool, collection).await?;
                    vectors.score(vector, &permitted, &mut best);
                }
                Ok(best.into_sorted())
            }
            Pool::Postgres(pool) => {
                ensure_vector_index(pool, dims).await?;
                let mut tx = pool.begin().await?;
                // Without an iterative scan, HNSW hands the filter its first ef_search
                // candidates only, and a reader who may see few documents gets fewer hits
                // than exist (or none). pgvector 0.8 keeps scanning until enough pass.
                sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("SET LOCAL hnsw.ef_search = 100")
                    .execute(&mut *tx)
                    .await?;
                let rows: Vec<(i64, f64)> = sqlx::query_as(&format!(
                    "SELECT k.id, 1 - ((k.embedding::vector({dims})) <=> $1::real[]::vector({dims})) \
                     AS similarity FROM chunks k \
                     WHERE k.dims = {dims} AND k.collection_id = ANY($2) \
                       AND EXISTS (SELECT 1 FROM document_readers r \
                                   WHERE r.document_id = k.document_id AND r.reader = ANY($3)) \
                     ORDER BY (k.embedding::vector({dims})) <=> $1::real[]::vector({dims}) \
                     LIMIT $4"
                ))
                .bind(vector)
                .bind(scope.collections)
                .bind(&readers)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                // relaxed_order may return neighbours slightly out of order.
                let mut rows = rows;
                rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                Ok(rows)
            }
        }
    }
}

/// The words of a query, safe to put in an FTS5 MATCH or a tsquery: runs of letters and
/// digits only, lower-cased, deduplicated, at most 64 of them.
pub fn search_terms(query: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| seen.insert(w.clone()))
        .take(64)
        .collect()
}

/// Dimensions whose HNSW index is known to exist, so the check is one lookup per process.
static INDEXED_DIMS: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

fn index_known(dims: usize) -> bool {
    INDEXED_DIMS
        .lock()
        .map(|d| d.contains(&dims))
        .unwrap_or(false)
}

fn remember_index(dims: usize) {
    if let Ok(mut known) = INDEXED_DIMS.lock() {
        known.insert(dims);
    }
}

fn vector_index_sql(dims: usize) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS chunks_embedding_{dims} ON chunks \
         USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
    )
}

/// The HNSW index for `dims` (384 comes with the migration; an embedding deployment with other
/// dimensions gets its own on first use). pgvector's HNSW handles up to 2,000 dimensions.
async fn ensure_vector_index(pool: &sqlx::PgPool, dims: usize) -> Result<(), StoreError> {
    if index_known(dims) {
        return Ok(());
    }
    check_dims(dims)?;
    sqlx::query(&vector_index_sql(dims)).execute(pool).await?;
    remember_index(dims);
    Ok(())
}

pub(super) async fn ensure_vector_index_in(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    dims: usize,
) -> Result<(), StoreError> {
    if index_known(dims) {
        return Ok(());
    }
    check_dims(dims)?;
    sqlx::query(&vector_index_sql(dims))
        .execute(&mut **tx)
        .await?;
    remember_index(dims);
    Ok(())
}

fn check_dims(dims: usize) -> Result<(), StoreError> {
    if (1..=2000).contains(&dims) {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: format!("embeddings of {dims} dimensions cannot be indexed (1 to 2,000)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn search_terms_strip_query_syntax() {
        assert_eq!(
            search_terms("\"laptop\" OR -NEAR(x: y*) laptop"),
            list(&["laptop", "or", "near", "x", "y"])
        );
        assert!(search_terms("  -- ** ").is_empty());
    }
}
