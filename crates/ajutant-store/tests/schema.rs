//! The two migration folders must define the same schema: every table and column one backend
//! has, the other has too, so portable SQL written once runs on both. Column types differ by
//! design (TEXT vs timestamptz, BLOB vs bytea) and are not compared; tables that exist for one
//! backend's machinery only (SQLite's FTS5 shadow tables, PostgreSQL's generated tsvector
//! column) are named below with the reason.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::collections::{BTreeMap, BTreeSet};

use ajutant_testdb::{Backend, TestDatabase};
use sqlx::Connection;

type Schema = BTreeMap<String, BTreeSet<String>>;

/// Backend-only parts of the schema, each with why it has no twin.
const SQLITE_ONLY_TABLES: &[&str] = &[
    // FTS5's external-content index over chunks and its shadow tables; PostgreSQL indexes a
    // generated tsvector column instead.
    "chunks_fts",
    "chunks_fts_config",
    "chunks_fts_data",
    "chunks_fts_docsize",
    "chunks_fts_idx",
    "chunks_fts_content",
    "sqlite_sequence",
];
const POSTGRES_ONLY_COLUMNS: &[(&str, &str)] = &[
    // The generated full-text vector PostgreSQL ranks with (FTS5 holds its own on SQLite).
    ("chunks", "tsv"),
];

async fn sqlite_schema(database: &TestDatabase) -> Schema {
    let mut connection = sqlx::sqlite::SqliteConnection::connect(database.url())
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
            .bind(&table)
            .fetch_all(&mut connection)
            .await
            .unwrap();
        schema.insert(table, columns.into_iter().collect());
    }
    schema
}

async fn postgres_schema(database: &TestDatabase) -> Schema {
    let mut connection = sqlx::postgres::PgConnection::connect(database.url())
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for (table, column) in rows {
        schema.entry(table).or_default().insert(column);
    }
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_migration_folders_define_the_same_tables_and_columns() {
    let sqlite = TestDatabase::create(Backend::Sqlite).await.unwrap();
    sqlite.store().await.unwrap();
    let postgres = TestDatabase::create(Backend::Postgres).await.unwrap();
    postgres.store().await.unwrap();

    let mut from_sqlite = sqlite_schema(&sqlite).await;
    from_sqlite.retain(|table, _| !SQLITE_ONLY_TABLES.contains(&table.as_str()));
    let mut from_postgres = postgres_schema(&postgres).await;
    for (table, column) in POSTGRES_ONLY_COLUMNS {
        if let Some(columns) = from_postgres.get_mut(*table) {
            columns.remove(*column);
        }
    }
    assert!(
        from_sqlite.len() > 20,
        "too few tables read: {from_sqlite:?}"
    );

    let mut differences = Vec::new();
    let tables: BTreeSet<&String> = from_sqlite.keys().chain(from_postgres.keys()).collect();
    for table in tables {
        match (from_sqlite.get(table), from_postgres.get(table)) {
            (Some(a), Some(b)) => {
                for column in a.symmetric_difference(b) {
                    let side = if a.contains(column) {
                        "SQLite"
                    } else {
                        "PostgreSQL"
                    };
                    differences.push(format!("{table}.{column} only on {side}"));
                }
            }
            (Some(_), None) => differences.push(format!("table {table} only on SQLite")),
            (None, Some(_)) => differences.push(format!("table {table} only on PostgreSQL")),
            (None, None) => {}
        }
    }
    assert!(differences.is_empty(), "{differences:#?}");
}
