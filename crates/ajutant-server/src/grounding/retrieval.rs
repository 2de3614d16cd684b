//! Hybrid retrieval: full-text and vector similarity, each trimmed to what the reader may read
//! inside its query, fused with reciprocal rank fusion. Lexical alone when no collection has
//! an embedding deployment, or when the query cannot be embedded (the turn goes on, and says
//! which mode it used).

use std::collections::{BTreeMap, HashMap};

use ajutant_core::policy::Principal;
use ajutant_store::{Collection, Passage, SearchScope};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::gateway::runtime::{Call, CallIds, RuntimeCallError};
use crate::problem::ApiError;

/// Reciprocal rank fusion's constant, from Cormack, Clarke and Büttcher (SIGIR 2009): a
/// document's fused score is the sum over the rankings of 1 / (60 + rank).
const RRF_K: f64 = 60.0;

/// Candidates taken from each ranking before fusion.
const CANDIDATES: i64 = 50;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Hybrid,
    Lexical,
    Vector,
}

#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub passage: Passage,
    pub score: f64,
    pub lexical_rank: Option<usize>,
    pub vector_rank: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Retrieved {
    pub mode: Mode,
    pub hits: Vec<Hit>,
}

/// Page or section of a passage, for citations.
pub(crate) fn location(passage: &Passage) -> Option<String> {
    match (passage.page, passage.heading.is_empty()) {
        (Some(page), true) => Some(format!("page {page}")),
        (Some(page), false) => Some(format!("page {page}, {}", passage.heading)),
        (None, false) => Some(passage.heading.clone()),
        (None, true) => None,
    }
}

/// What to look for, how, and how many.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Search<'a> {
    pub query: &'a str,
    pub mode: Mode,
    pub limit: usize,
}

/// The `limit` best passages for `query` in `collections` that `principal` may read.
pub(crate) async fn retrieve(
    state: &AppState,
    principal: &Principal,
    collections: &[Collection],
    search: Search<'_>,
    ids: CallIds,
) -> Result<Retrieved, ApiError> {
    let Search { query, mode, limit } = search;
    let groups: Vec<String> = principal.groups.iter().cloned().collect();
    let all: Vec<String> = collections.iter().map(|c| c.id.clone()).collect();
    let scope = SearchScope {
        collections: &all,
        groups: &groups,
    };
    let candidates = CANDIDATES.max(limit as i64);
    // The two rankings are independent: run them at once, so hybrid costs the slower of the
    // two rather than their sum.
    let lexical = async {
        if mode == Mode::Vector {
            return Ok(Vec::new());
        }
        state.store.search_lexical(scope, query, candidates).await
    };
    let vector = vector_ranking(state, principal, collections, search, &ids);
    let (lexical, vector) = futures::join!(lexical, vector);
    let lexical = lexical?;
    let (vector, embedded) = vector?;
    let used = match mode {
        Mode::Hybrid if embedded => Mode::Hybrid,
        Mode::Hybrid | Mode::Lexical => Mode::Lexical,
        Mode::Vector => Mode::Vector,
    };
    let fused = fuse(&lexical, &vector, used, limit);
    let ids: Vec<i64> = fused.iter().map(|f| f.id).collect();
    let mut passages: HashMap<i64, Passage> = state
        .store
        .passages(&ids)
        .await?
        .into_iter()
        .map(|p| (p.chunk_id, p))
        .collect();
    let hits = fused
        .into_iter()
        .filter_map(|f| {
            passages.remove(&f.id).map(|passage| Hit {
                passage,
                score: f.score,
                lexical_rank: f.lexical_rank,
                vector_rank: f.vector_rank,
            })
        })
        .collect();
    Ok(Retrieved { mode: used, hits })
}

/// The vector ranking over every collection with an embedding deployment, and whether any
/// query embedding succeeded.
async fn vector_ranking(
    state: &AppState,
    principal: &Principal,
    collections: &[Collection],
    search: Search<'_>,
    ids: &CallIds,
) -> Result<(Vec<(i64, f64)>, bool), ApiError> {
    let groups: Vec<String> = principal.groups.iter().cloned().collect();
    let mut vector: Vec<(i64, f64)> = Vec::new();
    let mut embedded = false;
    if search.mode == Mode::Lexical {
        return Ok((vector, embedded));
    }
    // One query embedding per embedding deployment; collections sharing one are searched
    // together so their similarities are comparable.
    let mut by_deployment: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for collection in collections {
        if let Some(deployment) = &collection.embedding_deployment {
            by_deployment
                .entry(deployment)
                .or_default()
                .push(collection.id.clone());
        }
    }
    for (deployment, members) in by_deployment {
        let call = Call {
            state,
            principal,
            deployment,
            ids,
        };
        let embedding = state
            .gateway
            .embed_texts(call, vec![search.query.to_owned()], true)
            .await;
        let mut vectors = match embedding {
            Ok(vectors) => vectors,
            Err(RuntimeCallError::Refused {
                status,
                message,
                retry_after,
            }) if status == axum::http::StatusCode::TOO_MANY_REQUESTS => {
                return Err(ApiError::TooManyRequests {
                    message,
                    retry_after,
                });
            }
            Err(error) => {
                tracing::warn!(%error, deployment, "cannot embed a query; lexical results only");
                continue;
            }
        };
        let Some(query_vector) = vectors.pop() else {
            continue;
        };
        embedded = true;
        vector.extend(
            state
                .store
                .search_vector(
                    SearchScope {
                        collections: &members,
                        groups: &groups,
                    },
                    &query_vector,
                    CANDIDATES.max(search.limit as i64),
                )
                .await?,
        );
    }
    vector.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok((vector, embedded))
}

#[derive(Debug, Clone, PartialEq)]
struct Fused {
    id: i64,
    score: f64,
    lexical_rank: Option<usize>,
    vector_rank: Option<usize>,
}

/// The final ranking. Hybrid: reciprocal rank fusion of both lists. A single mode keeps its own
/// scores and order.
fn fuse(lexical: &[(i64, f64)], vector: &[(i64, f64)], mode: Mode, limit: usize) -> Vec<Fused> {
    let mut by_id: HashMap<i64, Fused> = HashMap::new();
    let mut add = |list: &[(i64, f64)], lexical: bool| {
        for (index, (id, raw)) in list.iter().enumerate() {
            let rank = index + 1;
            let entry = by_id.entry(*id).or_insert(Fused {
                id: *id,
                score: 0.0,
                lexical_rank: None,
                vector_rank: None,
            });
            if lexical {
                entry.lexical_rank = Some(rank);
            } else {
                entry.vector_rank = Some(rank);
            }
            entry.score += match mode {
                Mode::Hybrid => 1.0 / (RRF_K + rank as f64),
                Mode::Lexical | Mode::Vector => *raw,
            };
        }
    };
    match mode {
        Mode::Hybrid => {
            add(lexical, true);
            add(vector, false);
        }
        Mode::Lexical => add(lexical, true),
        Mode::Vector => add(vector, false),
    }
    let mut fused: Vec<Fused> = by_id.into_values().collect();
    fused.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    fused.truncate(limit);
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement_between_the_rankings() {
        let lexical = [(1, 9.0), (2, 8.0), (3, 7.0)];
        let vector = [(3, 0.9), (4, 0.8), (1, 0.7)];
        let fused = fuse(&lexical, &vector, Mode::Hybrid, 10);
        let order: Vec<i64> = fused.iter().map(|f| f.id).collect();
        // 1: 1/61 + 1/63; 3: 1/63 + 1/61 (tie, lower id first); then 2 (1/62) and 4 (1/62).
        assert_eq!(order, vec![1, 3, 2, 4]);
        assert_eq!(fused[0].lexical_rank, Some(1));
        assert_eq!(fused[0].vector_rank, Some(3));
        assert_eq!(fused[2].vector_rank, None);
    }

    #[test]
    fn a_single_mode_keeps_its_order_and_the_limit_holds() {
        let lexical = [(5, 3.0), (6, 2.0), (7, 1.0)];
        let fused = fuse(&lexical, &[], Mode::Lexical, 2);
        assert_eq!(fused.iter().map(|f| f.id).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(fused[0].score, 3.0);
    }
}
