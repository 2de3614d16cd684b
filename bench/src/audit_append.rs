//! Durable audit appends per second: W concurrent writers, each appending and awaiting its own
//! record's commit, on fresh SQLite and PostgreSQL databases. Prints the median of the repeats
//! and the ratio to one writer; every run's chain is verified afterwards (not timed).

use std::time::{Duration, Instant};

use ajutant_core::audit::{Actor, ActorKind, AuditEvent, Outcome, RequestOrigin};
use ajutant_store::{AuditLog, ChainStatus};
use ajutant_testkit::{Backend, TestDatabase};
use anyhow::{Context, bail};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Durable audit appends per second on SQLite and PostgreSQL")]
struct Args {
    /// Databases to measure.
    #[arg(long, value_delimiter = ',', default_values = ["sqlite", "postgres"])]
    databases: Vec<String>,
    /// Concurrent writer counts.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    writers: Vec<usize>,
    /// Records each writer appends per run.
    #[arg(long, default_value_t = 500)]
    per_writer: usize,
    /// Runs per configuration; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Most records per group commit (the server's audit.max_batch).
    #[arg(long, default_value_t = 512)]
    max_batch: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    writeln!(
        out,
        "| database | writers | records/run | median records/s | min | max | vs 1 writer |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    for name in &args.databases {
        let backend = match name.as_str() {
            "sqlite" => Backend::Sqlite,
            "postgres" => Backend::Postgres,
            other => bail!("unknown database {other:?}: use sqlite or postgres"),
        };
        let mut single = None;
        for &writers in &args.writers {
            let mut rates = Vec::with_capacity(args.repeats);
            for _ in 0..args.repeats {
                rates.push(run_once(backend, writers, &args).await?);
            }
            rates.sort_by(f64::total_cmp);
            let median = rates[rates.len() / 2];
            if writers == 1 {
                single = Some(median);
            }
            let ratio = single.map_or("".to_owned(), |one| format!("{:.1}x", median / one));
            writeln!(
                out,
                "| {name} | {writers} | {} | {median:.0} | {:.0} | {:.0} | {ratio} |",
                writers * args.per_writer,
                rates[0],
                rates[rates.len() - 1],
            )?;
            out.flush()?;
        }
    }
    Ok(())
}

/// One timed run on a fresh database; returns records per second.
async fn run_once(backend: Backend, writers: usize, args: &Args) -> anyhow::Result<f64> {
    let database = TestDatabase::create(backend).await?;
    let store = database.store().await?;
    let (log, writer) = AuditLog::start(store.clone(), args.max_batch);
    let per_writer = args.per_writer;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let log = log.clone();
        #[allow(clippy::disallowed_methods, reason = "benchmark writers, each joined")]
        tasks.push(tokio::spawn(async move {
            for n in 0..per_writer {
                log.append(event(w, n)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await.context("writer task")??;
    }
    let elapsed = started.elapsed();
    drop(log);
    writer.finish(Duration::from_secs(30)).await;

    let expected = (writers * per_writer) as i64;
    match store.verify_audit_chain().await? {
        ChainStatus::Intact { records, .. } if records == expected => {}
        other => bail!("chain check failed after the run: {other:?}"),
    }
    store.close().await;
    Ok(expected as f64 / elapsed.as_secs_f64())
}

/// A record of realistic size: a user, a request origin and a few details.
fn event(writer: usize, n: usize) -> AuditEvent {
    AuditEvent::new(
        Actor {
            id: format!("00000000-0000-4000-8000-{writer:012}"),
            display_name: format!("Bench User {writer}"),
            kind: ActorKind::User,
        },
        ajutant_core::audit::AuditAction::ChatTurn,
        format!("assistant/bench-{}", n % 10),
        Outcome::Allowed,
    )
    .with_origin(RequestOrigin {
        request_id: Some(format!("bench-{writer}-{n}")),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        client_addr: Some("192.0.2.10".to_owned()),
    })
    .with_details(serde_json::json!({ "deployment": "gpt-4o", "tokens": 512, "n": n }))
}
