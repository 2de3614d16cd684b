//! The export format of the audit trail, shared by `ajutant audit export` and
//! `GET /api/v1/audit/export` so a file from either reads the same. (The one wire shape that
//! lives in core: two crates serve it.)
//!
//! JSON Lines carry every field exactly as stored, so a file can be checked against the hash
//! chain. CSV is for people and spreadsheets: a cell that a spreadsheet would take for a
//! formula (`=`, `+`, `-`, `@`, tab, carriage return first) gets a leading `'`, because actor
//! names, resources and details come from users and directories.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::audit::AuditRecord;

/// The CSV header: the columns, in order, named as the JSON Lines fields.
pub const COLUMNS: [&str; 15] = [
    "seq",
    "id",
    "occurred_at",
    "actor_id",
    "actor_name",
    "actor_kind",
    "action",
    "resource",
    "outcome",
    "request_id",
    "trace_id",
    "client_addr",
    "details",
    "prev_hash",
    "hash",
];

/// One exported record. `details` stays the stored JSON text, which the record's hash covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedRecord {
    pub seq: i64,
    pub id: String,
    pub occurred_at: String,
    pub actor_id: String,
    pub actor_name: String,
    pub actor_kind: &'static str,
    pub action: String,
    pub resource: String,
    pub outcome: &'static str,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub client_addr: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditRecord> for ExportedRecord {
    fn from(record: AuditRecord) -> Self {
        Self {
            seq: record.seq,
            id: record.id.to_string(),
            occurred_at: record
                .occurred_at
                .format(&Rfc3339)
                .unwrap_or_else(|_| record.occurred_at.to_string()),
            actor_id: record.actor.id,
            actor_name: record.actor.display_name,
            actor_kind: record.actor.kind.as_str(),
            action: record.action,
            resource: record.resource,
            outcome: record.outcome.as_str(),
            request_id: record.origin.request_id,
            trace_id: record.origin.trace_id,
            client_addr: record.origin.client_addr,
            details: record.details,
            prev_hash: record.prev_hash.to_hex(),
            hash: record.hash.to_hex(),
        }
    }
}

impl ExportedRecord {
    /// The CSV cells, in [`COLUMNS`] order, made safe to open in a spreadsheet.
    pub fn csv_cells(&self) -> [String; 15] {
        let optional = |value: &Option<String>| value.clone().unwrap_or_default();
        [
            self.seq.to_string(),
            self.id.clone(),
            self.occurred_at.clone(),
            self.actor_id.clone(),
            self.actor_name.clone(),
            self.actor_kind.to_owned(),
            self.action.clone(),
            self.resource.clone(),
            self.outcome.to_owned(),
            optional(&self.request_id),
            optional(&self.trace_id),
            optional(&self.client_addr),
            self.details.clone(),
            self.prev_hash.clone(),
            self.hash.clone(),
        ]
        .map(|cell| defuse_formula(&cell))
    }
}

/// `'` before a cell a spreadsheet would evaluate as a formula.
fn defuse_formula(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_other_cells_kept() {
        assert_eq!(
            defuse_formula("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(defuse_formula("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defuse_formula("-2+3"), "'-2+3");
        assert_eq!(defuse_formula("Ada Admin"), "Ada Admin");
        assert_eq!(defuse_formula("{\"a\":1}"), "{\"a\":1}");
    }
}
