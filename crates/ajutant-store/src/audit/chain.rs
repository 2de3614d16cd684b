//! Reading the chain back: pages in chain order (what `audit verify` and `audit export` walk),
//! filtered search for the API, and the verification walk itself.

use ajutant_core::audit::{
    Actor, ActorKind, AuditRecord, ChainBreak, ChainBreakReason, ChainHash, ChainVerifier, Outcome,
    RequestOrigin,
};
use ajutant_core::audit_checkpoint::{Checkpoint, CheckpointKey};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db_time::DbTime;
use crate::{Store, StoreError, on_pool};

const PAGE_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM audit_events WHERE seq > $1 AND ($2 IS NULL OR occurred_at >= $2) ORDER BY seq LIMIT $3"
);

/// Newest first, before a cursor, each filter applied only when given. `action` matches
/// exactly or, ending in `.`, as a prefix (`auth.` finds every sign-in event).
const SEARCH_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM audit_events WHERE ($1 IS NULL OR seq < $1) \
     AND ($2 IS NULL OR action = $2 OR (substr($2, length($2), 1) = '.' \
          AND substr(action, 1, length($2)) = $2)) \
     AND ($3 IS NULL OR actor_id = $3) AND ($4 IS NULL OR outcome = $4) \
     AND ($5 IS NULL OR resource = $5) \
     AND ($6 IS NULL OR occurred_at >= $6) AND ($7 IS NULL OR occurred_at < $7) \
     ORDER BY seq DESC LIMIT $8"
);

const VERIFY_PAGE: i64 = 1000;

/// What `GET /api/v1/audit` filters on; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only records older than this chain position (the cursor).
    pub before_seq: Option<i64>,
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub outcome: Option<Outcome>,
    pub resource: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub limit: i64,
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    /// Every record links to the one before; `head` is the last record's hash, worth keeping
    /// outside the database to detect a truncated tail later.
    Intact {
        records: i64,
        head: ChainHash,
        /// Signed checkpoints found in place (0 when verified without the key).
        checkpoints: usize,
    },
    Broken(ChainBreak),
}

impl Store {
    /// Up to `limit` records after chain position `after_seq`, in chain order, optionally only
    /// those that occurred at or after `since`.
    pub async fn audit_page(
        &self,
        after_seq: i64,
        since: Option<OffsetDateTime>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let since = since.map(DbTime);
        let rows: Vec<AuditRow> = on_pool!(self, pool => {
            sqlx::query_as(PAGE_SQL)
                .bind(after_seq)
                .bind(since)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(AuditRow::into_record).collect()
    }

    /// Records matching `query`, newest first.
    pub async fn audit_search(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let rows: Vec<AuditRow> = on_pool!(self, pool => {
            sqlx::query_as(SEARCH_SQL)
                .bind(query.before_seq)
                .bind(query.action.as_deref())
                .bind(query.actor_id.as_deref())
                .bind(query.outcome.map(Outcome::as_str))
                .bind(query.resource.as_deref())
                .bind(query.since.map(DbTime))
                .bind(query.until.map(DbTime))
                .bind(query.limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(AuditRow::into_record).collect()
    }

    /// Walks the whole chain in pages and reports the first record that does not fit.
    pub async fn verify_audit_chain(&self) -> Result<ChainStatus, StoreError> {
        self.verify_chain(None).await
    }

    /// Verifies the chain and, with `key`, every signed checkpoint: each must carry the key's
    /// signature, and the record at its position must still have the signed hash (else the
    /// chain was rewritten and sealed again) and still exist (else its tail was cut).
    pub async fn verify_audit_chain_signed(
        &self,
        key: &CheckpointKey,
    ) -> Result<ChainStatus, StoreError> {
        self.verify_chain(Some(key)).await
    }

    async fn verify_chain(&self, key: Option<&CheckpointKey>) -> Result<ChainStatus, StoreError> {
        let mut signed = std::collections::BTreeMap::new();
        if let Some(key) = key {
            for checkpoint in self.audit_checkpoints().await? {
                if !key.verifies(&checkpoint) {
                    return Ok(ChainStatus::Broken(ChainBreak {
                        seq: checkpoint.seq,
                        id: Uuid::nil(),
                        reason: ChainBreakReason::ForgedCheckpoint,
                    }));
                }
                signed.insert(checkpoint.seq, checkpoint.hash);
            }
        }
        let mut checkpoints = 0;
        let mut verifier = ChainVerifier::default();
        loop {
            let (after, _) = verifier.head();
            let page = match self.audit_page(after, None, VERIFY_PAGE).await {
                Ok(page) => page,
                Err(StoreError::Corrupt { seq, id, what }) => {
                    return Ok(ChainStatus::Broken(ChainBreak {
                        seq,
                        id,
                        reason: ChainBreakReason::Unreadable(what),
                    }));
                }
                Err(other) => return Err(other),
            };
            if page.is_empty() {
                let (records, head) = verifier.head();
                if let Some((&seq, _)) = signed.range(records + 1..).next() {
                    return Ok(ChainStatus::Broken(ChainBreak {
                        seq,
                        id: Uuid::nil(),
                        reason: ChainBreakReason::Cut,
                    }));
                }
                return Ok(ChainStatus::Intact {
                    records,
                    head,
                    checkpoints,
                });
            }
            for record in &page {
                if let Err(broken) = verifier.check(record) {
                    return Ok(ChainStatus::Broken(broken));
                }
                if let Some(hash) = signed.get(&record.seq) {
                    if *hash != record.hash {
                        return Ok(ChainStatus::Broken(ChainBreak {
                            seq: record.seq,
                            id: record.id,
                            reason: ChainBreakReason::Resealed,
                        }));
                    }
                    checkpoints += 1;
                }
            }
        }
    }

    /// Adds a signed checkpoint; `false` when that position was signed already (by another
    /// instance).
    pub async fn put_audit_checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO audit_checkpoints (seq, hash, signed_at, signature) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (seq) DO NOTHING",
            )
            .bind(checkpoint.seq)
            .bind(checkpoint.hash.to_hex())
            .bind(checkpoint.signed_at)
            .bind(&checkpoint.signature)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(inserted > 0)
    }

    /// Every signed checkpoint, in chain order.
    pub async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows: Vec<(i64, String, i64, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT seq, hash, signed_at, signature FROM audit_checkpoints ORDER BY seq",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(seq, hash, signed_at, signature)| {
                let hash = ChainHash::from_hex(&hash).ok_or_else(|| StoreError::Invalid {
                    what: format!("audit checkpoint {seq} has a malformed hash"),
                })?;
                Ok(Checkpoint {
                    seq,
                    hash,
                    signed_at,
                    signature,
                })
            })
            .collect()
    }

    /// The newest signed position, if any.
    pub async fn latest_audit_checkpoint_seq(&self) -> Result<Option<i64>, StoreError> {
        let seq = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(seq) FROM audit_checkpoints")
                .fetch_one(pool)
                .await?
        });
        Ok(seq)
    }

    /// The last record's position and hash, if there is one.
    pub async fn audit_head(&self) -> Result<Option<(i64, ChainHash)>, StoreError> {
        let row: Option<(i64, String)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(pool)
                .await?
        });
        row.map(|(seq, hash)| {
            ChainHash::from_hex(&hash)
                .map(|hash| (seq, hash))
                .ok_or_else(|| StoreError::Invalid {
                    what: format!("audit record {seq} has a malformed hash"),
                })
        })
        .transpose()
    }

    /// The position of the record whose hash is `hash`, if the chain holds it.
    pub async fn audit_seq_of_hash(&self, hash: ChainHash) -> Result<Option<i64>, StoreError> {
        let seq = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT seq FROM audit_events WHERE hash = $1")
                .bind(hash.to_hex())
                .fetch_optional(pool)
                .await?
        });
        Ok(seq)
    }

    pub async fn audit_count(&self) -> Result<i64, StoreError> {
        let count = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(pool).await?
        });
        Ok(count)
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    id: Uuid,
    occurred_at: DbTime,
    actor_id: String,
    actor_name: String,
    actor_kind: String,
    action: String,
    resource: String,
    outcome: String,
    request_id: Option<String>,
    trace_id: Option<String>,
    client_addr: Option<String>,
    details: String,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    fn into_record(self) -> Result<AuditRecord, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt {
            seq: self.seq,
            id: self.id,
            what,
        };
        let kind = ActorKind::parse(&self.actor_kind)
            .ok_or_else(|| corrupt(format!("unknown actor kind {:?}", self.actor_kind)))?;
        let outcome = Outcome::parse(&self.outcome)
            .ok_or_else(|| corrupt(format!("unknown outcome {:?}", self.outcome)))?;
        Ok(AuditRecord {
            seq: self.seq,
            id: self.id,
            occurred_at: self.occurred_at.0,
            actor: Actor {
                id: self.actor_id,
                display_name: self.actor_name,
                kind,
            },
            action: self.action,
            resource: self.resource,
            outcome,
            origin: RequestOrigin {
                request_id: self.request_id,
                trace_id: self.trace_id,
                client_addr: self.client_addr,
            },
            details: self.details,
            prev_hash: parse_hash(self.seq, self.id, "prev_hash", &self.prev_hash)?,
            hash: parse_hash(self.seq, self.id, "hash", &self.hash)?,
        })
    }
}

pub(super) fn parse_hash(
    seq: i64,
    id: Uuid,
    column: &str,
    text: &str,
) -> Result<ChainHash, StoreError> {
    ChainHash::from_hex(text).ok_or_else(|| StoreError::Corrupt {
        seq,
        id,
        what: format!("{column} is not a SHA-256 hex digest"),
    })
}
