//! The audit trail's rules for reading it: auditors, IT operations and platform admins search,
//! export and verify it; nobody else learns it is there. Every read is itself recorded.

use ajutant_core::audit::{AuditRecord, Outcome};
use ajutant_core::policy::Action;
use ajutant_store::{AuditQuery, ChainStatus};

use crate::access::Guard;
use crate::identity::routes::parse_time;
use crate::problem::ApiError;

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;
/// Records read per page of an export.
pub(crate) const EXPORT_PAGE: i64 = 500;

/// The filters the search and the export share; an empty value means any.
pub(crate) struct AuditFilters {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub outcome: Option<String>,
    pub resource: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

impl AuditFilters {
    /// The store query for these filters: records older than `before_seq`, at most `limit`.
    fn query(self, before_seq: Option<i64>, limit: i64) -> Result<AuditQuery, ApiError> {
        let given = |value: Option<String>| value.filter(|v| !v.is_empty());
        let outcome = given(self.outcome)
            .map(|o| {
                Outcome::parse(&o).ok_or_else(|| {
                    ApiError::BadRequest("outcome must be allowed, denied or failed".to_owned())
                })
            })
            .transpose()?;
        Ok(AuditQuery {
            before_seq,
            action: given(self.action),
            actor_id: given(self.actor),
            outcome,
            resource: given(self.resource),
            since: parse_time("since", given(self.since))?,
            until: parse_time("until", given(self.until))?,
            limit,
        })
    }
}

/// A page of records, newest first, and the cursor of the next page.
pub(crate) async fn search(
    guard: &Guard<'_>,
    filters: AuditFilters,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<(Vec<AuditRecord>, Option<String>), ApiError> {
    guard.require(&Action::ReadAudit, "audit").await?;
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let before_seq = cursor
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|seq| *seq > 0)
                .ok_or_else(|| ApiError::BadRequest("cursor is not one this API gave".to_owned()))
        })
        .transpose()?;
    // One more than asked tells whether another page exists.
    let query = filters.query(before_seq, limit + 1)?;
    let mut records = guard.state.store.audit_search(&query).await?;
    let more = records.len() as i64 > limit;
    records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = more
        .then(|| records.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok((records, next_cursor))
}

/// Allows an export and gives the query of its first page (newest records first).
pub(crate) async fn export(
    guard: &Guard<'_>,
    filters: AuditFilters,
) -> Result<AuditQuery, ApiError> {
    guard.require(&Action::ReadAudit, "audit/export").await?;
    filters.query(None, EXPORT_PAGE)
}

/// Verifies the hash chain from the first record to the last, and the signed checkpoints when
/// this server holds the key.
pub(crate) async fn verify(guard: &Guard<'_>) -> Result<ChainStatus, ApiError> {
    guard.require(&Action::VerifyAudit, "audit").await?;
    let store = &guard.state.store;
    Ok(match &guard.state.checkpoint_key {
        Some(key) => store.verify_audit_chain_signed(key).await?,
        None => store.verify_audit_chain().await?,
    })
}
