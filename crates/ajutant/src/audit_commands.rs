//! `ajutant audit verify` and `ajutant audit export`: read the trail page by page, so a trail of
//! any length runs in constant memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use ajutant_core::audit::{AuditRecord, ChainHash};
use ajutant_core::audit_checkpoint::CheckpointKey;
use ajutant_core::audit_export::{self, ExportedRecord};
use ajutant_store::{ChainStatus, Store};
use anyhow::Context;
use clap::{Args, ValueEnum};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

const EXPORT_PAGE: i64 = 1000;

pub enum Verdict {
    Intact(String),
    Broken(String),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A head hash printed by an earlier `audit verify` and kept outside the database. The
    /// chain alone cannot show that records were cut off its end; the anchor can: it must
    /// still be in the chain.
    #[arg(long, value_name = "HASH", value_parser = parse_hash)]
    anchor: Vec<ChainHash>,
}

fn parse_hash(text: &str) -> Result<ChainHash, String> {
    ChainHash::from_hex(text).ok_or_else(|| format!("{text:?} is not a SHA-256 hash in hex"))
}

/// Verifies the chain, and with `key` (`audit.checkpoint_key_file`, or the embedded default's
/// key file beside the SQLite database) every signed checkpoint.
pub async fn verify(
    store: Store,
    args: VerifyArgs,
    key: Option<CheckpointKey>,
) -> anyhow::Result<Verdict> {
    let status = match &key {
        Some(key) => store.verify_audit_chain_signed(key).await?,
        None => store.verify_audit_chain().await?,
    };
    let (records, head, checkpoints) = match status {
        ChainStatus::Intact {
            records,
            head,
            checkpoints,
        } => (records, head, checkpoints),
        ChainStatus::Broken(broken) => return Ok(Verdict::Broken(broken.to_string())),
    };
    for anchor in &args.anchor {
        if store.audit_seq_of_hash(*anchor).await?.is_none() {
            return Ok(Verdict::Broken(format!(
                "audit chain intact but anchor {anchor} is missing: records were removed from \
                 its end, or the trail was replaced"
            )));
        }
    }
    let signed = match key {
        Some(_) => format!("{checkpoints} signed checkpoints in place"),
        None => "no checkpoint key, so a rewritten and re-sealed chain is not detected".to_owned(),
    };
    Ok(Verdict::Intact(format!(
        "audit chain intact: {records} records, head hash {head}; {signed}\n"
    )))
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only records at or after this time: RFC 3339 (2026-05-01T12:00:00Z) or a date (2026-05-01, UTC).
    #[arg(long, value_parser = parse_since)]
    since: Option<OffsetDateTime>,
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    format: ExportFormat,
    /// Write here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

fn parse_since(text: &str) -> Result<OffsetDateTime, String> {
    if let Ok(time) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(time);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, date_format)
        .map(|date| date.midnight().assume_utc())
        .map_err(|_| {
            format!("{text:?} is neither RFC 3339 (2026-05-01T12:00:00Z) nor a date (2026-05-01)")
        })
}

pub async fn export(store: Store, args: ExportArgs) -> anyhow::Result<()> {
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = BufWriter::new(sink);
    let mut pages = Pages {
        store,
        since: args.since,
        after: 0,
    };
    match args.format {
        ExportFormat::Jsonl => {
            while let Some(page) = pages.next().await? {
                for record in page {
                    serde_json::to_writer(&mut sink, &ExportedRecord::from(record))?;
                    sink.write_all(b"\n")?;
                }
            }
            sink.flush()?;
        }
        ExportFormat::Csv => {
            // The header is written up front so an empty export is still a valid CSV.
            let mut csv = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(sink);
            csv.write_record(audit_export::COLUMNS)?;
            while let Some(page) = pages.next().await? {
                for record in page {
                    csv.write_record(ExportedRecord::from(record).csv_cells())?;
                }
            }
            csv.flush()?;
        }
    }
    Ok(())
}

/// Keyset pagination over the chain.
struct Pages {
    store: Store,
    since: Option<OffsetDateTime>,
    after: i64,
}

impl Pages {
    async fn next(&mut self) -> anyhow::Result<Option<Vec<AuditRecord>>> {
        let page = self
            .store
            .audit_page(self.after, self.since, EXPORT_PAGE)
            .await?;
        Ok(page.last().map(|last| last.seq).map(|last| {
            self.after = last;
            page
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_header_names_every_field_in_order() {
        let record = ExportedRecord {
            seq: 1,
            id: "i".to_owned(),
            occurred_at: "t".to_owned(),
            actor_id: "a".to_owned(),
            actor_name: "n".to_owned(),
            actor_kind: "system",
            action: "x".to_owned(),
            resource: "r".to_owned(),
            outcome: "allowed",
            request_id: Some("q".to_owned()),
            trace_id: Some("tr".to_owned()),
            client_addr: Some("c".to_owned()),
            details: "{}".to_owned(),
            prev_hash: "p".to_owned(),
            hash: "h".to_owned(),
        };
        let json = serde_json::to_value(&record).unwrap();
        // Each CSV cell is the JSON field of the same name: the same columns in the same order.
        let cells = record.csv_cells();
        for (column, cell) in audit_export::COLUMNS.iter().zip(cells.iter()) {
            let field = match &json[*column] {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            assert_eq!(&field, cell, "{column}");
        }
    }

    #[test]
    fn since_accepts_a_timestamp_or_a_date() {
        let at = parse_since("2026-05-01T12:30:00+02:00").unwrap();
        assert_eq!(at.unix_timestamp(), 1_777_631_400);
        let day = parse_since("2026-05-01").unwrap();
        assert_eq!(day.unix_timestamp(), 1_777_593_600);
        assert!(parse_since("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
