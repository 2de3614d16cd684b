//! SQLite's vector engine: each collection's embeddings held in memory as contiguous floats,
//! scored by an exact scan, and dropped whenever the collection's passages change.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::{Store, StoreError};

pub(super) fn embedding_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn embedding_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

impl Store {
    pub(super) async fn collection_vectors(
        &self,
        pool: &sqlx::SqlitePool,
        collection: &str,
    ) -> Result<Arc<CollectionVectors>, StoreError> {
        if let Some(cached) = self.vectors.get(collection) {
            return Ok(cached);
        }
        let generation = self.vectors.generation();
        let rows: Vec<(i64, String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, document_id, dims, embedding FROM chunks \
             WHERE collection_id = $1 AND embedding IS NOT NULL",
        )
        .bind(collection)
        .fetch_all(pool)
        .await?;
        let loaded = Arc::new(CollectionVectors::from_rows(rows));
        self.vectors
            .store_if_current(collection, Arc::clone(&loaded), generation);
        Ok(loaded)
    }
}

/// One collection's embedded passages, held in memory on SQLite so a query is one pass over
/// contiguous floats instead of a table scan decoding blobs.
#[derive(Debug, Default)]
pub(crate) struct CollectionVectors {
    ids: Vec<i64>,
    document_of: Vec<u32>,
    documents: Vec<String>,
    dims: Vec<usize>,
    offsets: Vec<usize>,
    data: Vec<f32>,
}

impl CollectionVectors {
    fn from_rows(rows: Vec<(i64, String, i64, Vec<u8>)>) -> Self {
        let mut this = Self::default();
        let mut document_index: HashMap<String, u32> = HashMap::new();
        for (id, document, _dims, bytes) in rows {
            let next = u32::try_from(this.documents.len()).unwrap_or(u32::MAX);
            let index = *document_index.entry(document.clone()).or_insert_with(|| {
                this.documents.push(document);
                next
            });
            let vector = embedding_from_bytes(&bytes);
            this.ids.push(id);
            this.document_of.push(index);
            this.dims.push(vector.len());
            this.offsets.push(this.data.len());
            this.data.extend_from_slice(&vector);
        }
        this
    }

    pub(super) fn score(&self, query: &[f32], permitted: &HashSet<String>, best: &mut TopK) {
        let allowed: Vec<bool> = self
            .documents
            .iter()
            .map(|d| permitted.contains(d))
            .collect();
        for (i, id) in self.ids.iter().enumerate() {
            if self.dims[i] != query.len() || !allowed[self.document_of[i] as usize] {
                continue;
            }
            let start = self.offsets[i];
            let stored = &self.data[start..start + query.len()];
            let dot: f32 = stored.iter().zip(query).map(|(a, b)| a * b).sum();
            best.offer(*id, f64::from(dot));
        }
    }
}

/// The `k` best (id, score) pairs seen.
pub(super) struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Scored>>,
}

#[derive(PartialEq)]
struct Scored(f64, i64);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

impl TopK {
    pub(super) fn new(k: usize) -> Self {
        Self {
            k,
            heap: std::collections::BinaryHeap::with_capacity(k + 1),
        }
    }

    pub(super) fn offer(&mut self, id: i64, score: f64) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(std::cmp::Reverse(Scored(score, id)));
        } else if let Some(worst) = self.heap.peek()
            && Scored(score, id) > worst.0
        {
            self.heap.pop();
            self.heap.push(std::cmp::Reverse(Scored(score, id)));
        }
    }

    pub(super) fn into_sorted(self) -> Vec<(i64, f64)> {
        let mut all: Vec<(i64, f64)> = self.heap.into_iter().map(|r| (r.0.1, r.0.0)).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all
    }
}

/// The in-memory vector copies, per collection. Any write to a collection's passages drops its
/// copy; a load that began before a drop is not kept (the generation moved), so a query never
/// sees passages of a deleted document after the delete returned.
#[derive(Debug, Default)]
pub(crate) struct VectorCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Arc<CollectionVectors>>>,
}

impl VectorCache {
    fn get(&self, collection: &str) -> Option<Arc<CollectionVectors>> {
        self.entries.lock().ok()?.get(collection).cloned()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn store_if_current(&self, collection: &str, vectors: Arc<CollectionVectors>, seen: u64) {
        if let Ok(mut entries) = self.entries.lock()
            && self.generation.load(Ordering::SeqCst) == seen
        {
            entries.insert(collection.to_owned(), vectors);
        }
    }

    pub(crate) fn forget(&self, collection: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.remove(collection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_best_in_order() {
        let mut best = TopK::new(2);
        for (id, score) in [(1, 0.1), (2, 0.9), (3, 0.5), (4, 0.7)] {
            best.offer(id, score);
        }
        assert_eq!(best.into_sorted(), vec![(2, 0.9), (4, 0.7)]);
    }
}
