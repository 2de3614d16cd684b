//! The store conformance suite: every test runs against SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::sync::Arc;

use ajutant_core::audit::{Actor, ActorKind, AuditEvent, ChainBreakReason, Outcome, RequestOrigin};
use ajutant_store::{
    AuditLog, ChainStatus, Store, UsageGrouping, UsageLine, UsageQuery, UsageRecord,
};
use ajutant_testdb::{Backend, TestDatabase, both_databases};
use serde_json::json;

fn event(n: usize) -> AuditEvent {
    AuditEvent::new(
        Actor {
            id: format!("user-{}", n % 7),
            display_name: format!("User {}", n % 7),
            kind: ActorKind::User,
        },
        ajutant_core::audit::AuditAction::ServerStarted,
        format!("thing/{n}"),
        if n.is_multiple_of(3) {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
    )
    .with_details(json!({ "n": n, "note": "ünïcødé ✓" }))
}

async fn database(backend: Backend) -> (TestDatabase, Store) {
    let database = TestDatabase::create(backend).await.unwrap();
    let store = database.store().await.unwrap();
    (database, store)
}

async fn append_many(store: &Store, count: usize) {
    let (log, writer) = AuditLog::start(store.clone(), 512);
    for n in 0..count {
        log.append(event(n)).await.unwrap();
    }
    drop(log);
    writer.finish(std::time::Duration::from_secs(10)).await;
}

both_databases!(
    migrations_are_pending_then_current,
    a_closed_writer_refuses_new_events_after_writing_queued_ones,
    a_head_that_moved_behind_the_writers_back_is_reread,
    appended_records_read_back_exactly,
    concurrent_appends_from_50_tasks_all_verify,
    two_instances_appending_to_one_database_keep_one_chain,
    the_applications_connection_cannot_change_the_trail,
    a_record_altered_behind_the_applications_back_is_named,
    a_record_removed_behind_the_applications_back_is_a_gap,
    since_filters_by_time_in_chain_order,
    usage_rows_ride_in_the_next_audit_commit,
    usage_rows_go_alone_when_no_audit_record_comes_and_are_drained_at_finish,
    a_usage_row_the_database_refuses_costs_no_audit_record_and_no_other_row,
);

async fn migrations_are_pending_then_current(backend: Backend) {
    let database = TestDatabase::create(backend).await.unwrap();
    let store = Store::connect(&database.config().unwrap()).await.unwrap();
    let before = store.migration_status().await.unwrap();
    assert!(!before.is_current());
    assert_eq!(before.applied, 0);
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let after = store.migration_status().await.unwrap();
    assert!(after.is_current(), "{after:?}");
    assert_eq!(after.applied, before.pending.len());
}

async fn appended_records_read_back_exactly(backend: Backend) {
    let (_database, store) = database(backend).await;
    let (log, writer) = AuditLog::start(store.clone(), 16);
    let origin = RequestOrigin {
        request_id: Some("req-1".to_owned()),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        client_addr: Some("192.0.2.7".to_owned()),
    };
    let first = log
        .append(event(1).with_origin(origin.clone()))
        .await
        .unwrap();
    let second = log.append(event(2)).await.unwrap();
    drop(log);
    writer.finish(std::time::Duration::from_secs(5)).await;

    assert_eq!((first.seq, second.seq), (1, 2));
    let records = store.audit_page(0, None, 10).await.unwrap();
    assert_eq!(records.len(), 2);
    let record = &records[0];
    assert_eq!(record.id, first.id);
    assert_eq!(record.hash, first.hash);
    assert_eq!(record.origin, origin);
    assert_eq!(record.actor.id, "user-1");
    assert_eq!(record.actor.kind, ActorKind::User);
    assert_eq!(record.outcome, Outcome::Allowed);
    assert_eq!(record.resource, "thing/1");
    let details: serde_json::Value = serde_json::from_str(&record.details).unwrap();
    assert_eq!(details, json!({ "n": 1, "note": "ünïcødé ✓" }));
    assert_eq!(records[1].prev_hash, first.hash);
    assert_eq!(record.expected_hash(), record.hash);
}

async fn concurrent_appends_from_50_tasks_all_verify(backend: Backend) {
    let (_database, store) = database(backend).await;
    let (log, writer) = AuditLog::start(store.clone(), 512);
    let mut tasks = Vec::new();
    for task in 0..50 {
        let log = log.clone();
        #[allow(
            clippy::disallowed_methods,
            reason = "competing writers, each joined by the test"
        )]
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::with_capacity(200);
            for n in 0..200 {
                seqs.push(log.append(event(task * 200 + n)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    drop(log);
    writer.finish(std::time::Duration::from_secs(10)).await;

    seqs.sort_unstable();
    assert_eq!(seqs, (1..=10_000).collect::<Vec<i64>>());
    assert_eq!(store.audit_count().await.unwrap(), 10_000);
    match store.verify_audit_chain().await.unwrap() {
        ChainStatus::Intact { records, .. } => assert_eq!(records, 10_000),
        broken => panic!("{broken:?}"),
    }
}

async fn two_instances_appending_to_one_database_keep_one_chain(backend: Backend) {
    let (database, first) = database(backend).await;
    let second = database.store().await.unwrap();
    let mut appenders = Vec::new();
    let mut writers = Vec::new();
    for store in [first.clone(), second] {
        let (log, writer) = AuditLog::start(store, 64);
        let log = Arc::new(log);
        for task in 0..8 {
            let log = Arc::clone(&log);
            #[allow(
                clippy::disallowed_methods,
                reason = "competing writers, each joined by the test"
            )]
            appenders.push(tokio::spawn(async move {
                for n in 0..100 {
                    log.append(event(task * 100 + n)).await.unwrap();
                }
            }));
        }
        writers.push(writer);
    }
    for appender in appenders {
        appender.await.unwrap();
    }
    for writer in writers {
        writer.finish(std::time::Duration::from_secs(30)).await;
    }
    assert_eq!(first.audit_count().await.unwrap(), 1600);
    assert!(matches!(
        first.verify_audit_chain().await.unwrap(),
        ChainStatus::Intact { records: 1600, .. }
    ));
}

async fn the_applications_connection_cannot_change_the_trail(backend: Backend) {
    let (database, store) = database(backend).await;
    append_many(&store, 3).await;
    let mut statements = vec![
        "UPDATE audit_events SET action = 'forged' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 3",
        "DELETE FROM audit_events",
    ];
    if backend == Backend::Postgres {
        statements.push("TRUNCATE audit_events");
    }
    for statement in statements {
        let error = database.execute(statement).await.unwrap_err();
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    assert_eq!(store.audit_count().await.unwrap(), 3);
    assert!(matches!(
        store.verify_audit_chain().await.unwrap(),
        ChainStatus::Intact { records: 3, .. }
    ));
}

async fn a_record_altered_behind_the_applications_back_is_named(backend: Backend) {
    let (database, store) = database(backend).await;
    append_many(&store, 20).await;
    database
        .execute_bypassing_guards(
            "UPDATE audit_events SET outcome = 'allowed', actor_name = 'Mallory' WHERE seq = 7",
        )
        .await
        .unwrap();
    let records = store.audit_page(6, None, 1).await.unwrap();
    match store.verify_audit_chain().await.unwrap() {
        ChainStatus::Broken(broken) => {
            assert_eq!(broken.seq, 7);
            assert_eq!(broken.id, records[0].id);
            assert_eq!(broken.reason, ChainBreakReason::Altered);
        }
        intact => panic!("tampering not detected: {intact:?}"),
    }
}

async fn a_record_removed_behind_the_applications_back_is_a_gap(backend: Backend) {
    let (database, store) = database(backend).await;
    append_many(&store, 10).await;
    database
        .execute_bypassing_guards("DELETE FROM audit_events WHERE seq = 4")
        .await
        .unwrap();
    match store.verify_audit_chain().await.unwrap() {
        ChainStatus::Broken(broken) => {
            assert_eq!(broken.seq, 5);
            assert_eq!(
                broken.reason,
                ChainBreakReason::Gap {
                    expected: 4,
                    found: 5
                }
            );
        }
        intact => panic!("removal not detected: {intact:?}"),
    }
}

async fn since_filters_by_time_in_chain_order(backend: Backend) {
    let (_database, store) = database(backend).await;
    append_many(&store, 30).await;
    let all = store.audit_page(0, None, 100).await.unwrap();
    assert_eq!(all.len(), 30);
    let cut = all[11].occurred_at;
    let expected: Vec<i64> = all
        .iter()
        .filter(|r| r.occurred_at >= cut)
        .map(|r| r.seq)
        .collect();
    let since: Vec<i64> = store
        .audit_page(0, Some(cut), 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(since, expected);
    assert!(since.contains(&12));
    assert!(!since.contains(&1));
}

async fn a_closed_writer_refuses_new_events_after_writing_queued_ones(backend: Backend) {
    let (_database, store) = database(backend).await;
    let (log, writer) = AuditLog::start(store.clone(), 8);
    let queued: Vec<_> = (0..20)
        .map(|n| {
            let log = log.clone();
            #[allow(
                clippy::disallowed_methods,
                reason = "competing writers, each joined by the test"
            )]
            tokio::spawn(async move { log.append(event(n)).await })
        })
        .collect();
    // Let every append reach the queue before closing it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    writer.finish(std::time::Duration::from_secs(10)).await;
    for append in queued {
        assert!(append.await.unwrap().is_ok());
    }
    let late = log.append(event(99)).await;
    assert!(
        matches!(late, Err(ajutant_store::AuditError::WriterStopped)),
        "{late:?}"
    );
    assert_eq!(store.audit_count().await.unwrap(), 20);
}

/// Another writer appended, and then the database lost records behind this writer's back (as
/// after a fail-over or restore): its remembered head is wrong both ways, and it must notice.
async fn a_head_that_moved_behind_the_writers_back_is_reread(backend: Backend) {
    let (database, store) = database(backend).await;
    let (log, writer) = AuditLog::start(store.clone(), 8);
    for n in 0..5 {
        log.append(event(n)).await.unwrap();
    }
    // Ahead of the database: the last two records vanish.
    database
        .execute_bypassing_guards("DELETE FROM audit_events WHERE seq > 3")
        .await
        .unwrap();
    let receipt = log.append(event(5)).await.unwrap();
    assert_eq!(receipt.seq, 4);
    // Behind the database: a second instance appends.
    let (other, other_writer) = AuditLog::start(store.clone(), 8);
    assert_eq!(other.append(event(6)).await.unwrap().seq, 5);
    other_writer.finish(std::time::Duration::from_secs(5)).await;
    assert_eq!(log.append(event(7)).await.unwrap().seq, 6);
    writer.finish(std::time::Duration::from_secs(5)).await;
    assert!(matches!(
        store.verify_audit_chain().await.unwrap(),
        ChainStatus::Intact { records: 6, .. }
    ));
}

fn usage(deployment: &str, groups: &[&str]) -> UsageRecord {
    UsageRecord {
        id: uuid::Uuid::now_v7(),
        occurred_at: time::OffsetDateTime::now_utc(),
        principal_id: "user-1".into(),
        principal_name: "User 1".into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        deployment: deployment.into(),
        served_by: deployment.into(),
        operation: "chat",
        outcome: "ok",
        input_tokens: 10,
        output_tokens: 5,
        cost: 0.25,
        latency_ms: 3,
        request_id: Some("req".into()),
        trace_id: None,
    }
}

async fn usage_by(store: &Store, by: UsageGrouping) -> Vec<UsageLine> {
    let today = ajutant_store::month_of(time::OffsetDateTime::now_utc());
    store
        .usage_report(&UsageQuery {
            by,
            from_day: format!("{today}-01"),
            to_day: format!("{today}-31"),
            principal_id: None,
            deployment: None,
            group_id: None,
        })
        .await
        .unwrap()
}

async fn calls_of(store: &Store, deployment: &str) -> i64 {
    usage_by(store, UsageGrouping::Deployment)
        .await
        .iter()
        .find(|line| line.key == deployment)
        .map_or(0, |line| line.calls)
}

/// Rows recorded before an append are in the database once that append is durable: they were
/// committed in its transaction, not by a second writer.
async fn usage_rows_ride_in_the_next_audit_commit(backend: Backend) {
    let (_database, store) = database(backend).await;
    let (log, writer) = AuditLog::start(store.clone(), 8);
    let usage_log = log.usage_log();
    for _ in 0..3 {
        usage_log.record(usage("ride", &["finance", "ops"]));
    }
    log.append(event(1)).await.unwrap();
    assert_eq!(calls_of(&store, "ride").await, 3);
    let groups = usage_by(&store, UsageGrouping::Group).await;
    let finance = groups.iter().find(|l| l.key == "finance").unwrap();
    assert_eq!(
        (finance.calls, finance.input_tokens, finance.output_tokens),
        (3, 30, 15)
    );
    assert!(groups.iter().any(|l| l.key == "ops" && l.calls == 3));
    writer.finish(std::time::Duration::from_secs(5)).await;
    assert!(matches!(
        store.verify_audit_chain().await.unwrap(),
        ChainStatus::Intact { records: 1, .. }
    ));
}

async fn usage_rows_go_alone_when_no_audit_record_comes_and_are_drained_at_finish(
    backend: Backend,
) {
    let (_database, store) = database(backend).await;
    let (log, writer) = AuditLog::start(store.clone(), 8);
    let usage_log = log.usage_log();
    usage_log.record(usage("idle", &[]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while calls_of(&store, "idle").await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a usage row waited more than 5 s for an audit record"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // More than one multi-row insert holds, recorded just before shutdown.
    for _ in 0..1_200 {
        usage_log.record(usage("late", &["g"]));
    }
    writer.finish(std::time::Duration::from_secs(10)).await;
    assert_eq!(calls_of(&store, "late").await, 1_200);
    assert_eq!(store.audit_count().await.unwrap(), 0);
}

/// Two rows with one id: the database refuses the second. The audit record the rows tried to
/// ride with is still written, and so is every other row.
async fn a_usage_row_the_database_refuses_costs_no_audit_record_and_no_other_row(backend: Backend) {
    let (_database, store) = database(backend).await;
    let (log, writer) = AuditLog::start(store.clone(), 8);
    let usage_log = log.usage_log();
    let bad = usage("bad", &[]);
    usage_log.record(bad.clone());
    usage_log.record(bad);
    usage_log.record(usage("good", &[]));
    log.append(event(1)).await.unwrap();
    writer.finish(std::time::Duration::from_secs(10)).await;
    assert_eq!(calls_of(&store, "bad").await, 1);
    assert_eq!(calls_of(&store, "good").await, 1);
    assert!(matches!(
        store.verify_audit_chain().await.unwrap(),
        ChainStatus::Intact { records: 1, .. }
    ));
}
