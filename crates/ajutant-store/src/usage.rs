//! Model usage: a row per call (tokens, cost, latency), written in batches off the request
//! path, and the reports and month-to-date totals that budgets and `/api/v1/usage` read.

use time::OffsetDateTime;

use sqlx::{Postgres, Sqlite};
use tokio::sync::mpsc;

use crate::{Pool, Store, StoreError, on_pool};

/// Most usage rows in one multi-row INSERT (16 parameters each, well inside both databases'
/// limits on bound parameters).
pub(crate) const MAX_ROWS: usize = 500;

/// One model call's usage.
#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub id: uuid::Uuid,
    pub occurred_at: OffsetDateTime,
    pub principal_id: String,
    pub principal_name: String,
    pub groups: Vec<String>,
    pub deployment: String,
    pub served_by: String,
    /// `chat` or `embeddings`.
    pub operation: &'static str,
    /// `ok`, `failed` or `cancelled`.
    pub outcome: &'static str,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost: f64,
    pub latency_ms: i64,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
}

/// Where calls send their usage: a queue into the audit writer, whose transactions carry the
/// rows. A second writer would cost a commit of its own per batch and, on SQLite, fight the
/// audit writer for the one write lock, the loser sleeping in the busy handler while a request
/// waits on its audit record. Cheap to clone; made by [`crate::AuditLog::usage_log`].
#[derive(Debug, Clone)]
pub struct UsageLog {
    pub(crate) sender: mpsc::Sender<UsageRecord>,
}

impl UsageLog {
    /// Queues a record without waiting. If the queue is full, a task waits for room, so a
    /// slow database delays usage records but never drops them or the call that made them.
    pub fn record(&self, record: UsageRecord) {
        match self.sender.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(record)) => {
                let sender = self.sender.clone();
                #[allow(
                    clippy::disallowed_methods,
                    reason = "waits for room in the usage queue; a row still waiting when the writer stops is counted as lost"
                )]
                tokio::spawn(async move {
                    if sender.send(record).await.is_err() {
                        lost(1);
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => lost(1),
        }
    }
}

/// Counts usage rows that will never be written (the writer has stopped).
pub(crate) fn lost(rows: usize) {
    tracing::error!(rows, "the audit writer has stopped; usage records are lost");
    metrics::counter!("ajutant_usage_records_lost_total").increment(rows as u64);
}

/// Inserts `$records` (at most [`MAX_ROWS`]) on `$conn` inside the caller's transaction: one
/// multi-row INSERT for the calls and one for their groups. A macro because the same code runs
/// against either database's connection type.
macro_rules! insert_usage_rows {
    ($db:ty, $conn:expr, $records:expr) => {{
        let records: &[$crate::usage::UsageRecord] = $records;
        if !records.is_empty() {
            let mut calls = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO model_usage (id, occurred_at, day, month, principal_id, \
                 principal_name, deployment, served_by, operation, outcome, input_tokens, \
                 output_tokens, cost, latency_ms, request_id, trace_id) ",
            );
            calls.push_values(records, |mut row, record| {
                let (day, month) = $crate::usage::day_of(record.occurred_at);
                row.push_bind(record.id.to_string())
                    .push_bind($crate::db_time::DbTime(record.occurred_at))
                    .push_bind(day)
                    .push_bind(month)
                    .push_bind(record.principal_id.clone())
                    .push_bind(record.principal_name.clone())
                    .push_bind(record.deployment.clone())
                    .push_bind(record.served_by.clone())
                    .push_bind(record.operation)
                    .push_bind(record.outcome)
                    .push_bind(record.input_tokens)
                    .push_bind(record.output_tokens)
                    .push_bind(record.cost)
                    .push_bind(record.latency_ms)
                    .push_bind(record.request_id.clone())
                    .push_bind(record.trace_id.clone());
            });
            calls.build().execute(&mut *$conn).await?;
            let memberships: Vec<(String, &str)> = records
                .iter()
                .flat_map(|r| r.groups.iter().map(|g| (r.id.to_string(), g.as_str())))
                .collect();
            // Two parameters a row: chunked to stay inside SQLite's limit on parameters.
            for chunk in memberships.chunks(4 * $crate::usage::MAX_ROWS) {
                let mut groups = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO model_usage_groups (usage_id, group_id) ",
                );
                groups.push_values(chunk, |mut row, (id, group)| {
                    row.push_bind(id.clone()).push_bind(*group);
                });
                groups.build().execute(&mut *$conn).await?;
            }
        }
    }};
}
pub(crate) use insert_usage_rows;

/// What a usage report adds up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGrouping {
    Principal,
    Group,
    Deployment,
    Day,
}

impl UsageGrouping {
    fn column(self) -> &'static str {
        match self {
            Self::Principal => "u.principal_id",
            Self::Group => "g.group_id",
            Self::Deployment => "u.deployment",
            Self::Day => "u.day",
        }
    }
}

/// A usage report's filters; days are `YYYY-MM-DD`, inclusive.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub by: UsageGrouping,
    pub from_day: String,
    pub to_day: String,
    pub principal_id: Option<String>,
    pub deployment: Option<String>,
    pub group_id: Option<String>,
}

/// One line of a report.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UsageLine {
    pub key: String,
    pub calls: i64,
    pub failed: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost: f64,
}

pub(crate) fn day_of(at: OffsetDateTime) -> (String, String) {
    let date = at.date();
    (
        format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        ),
        format!("{:04}-{:02}", date.year(), u8::from(date.month())),
    )
}

/// The month key (`YYYY-MM`) budgets count in.
pub fn month_of(at: OffsetDateTime) -> String {
    day_of(at).1
}

impl Store {
    /// Writes a batch in one transaction of its own. The gateway's rows normally ride in the
    /// audit writer's transactions instead (see [`UsageLog`]); this is for rows that could not.
    pub async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                insert_usage_rows!(Sqlite, &mut *tx, records);
                tx.commit().await?;
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                insert_usage_rows!(Postgres, &mut *tx, records);
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Totals by the chosen grouping, largest cost first.
    pub async fn usage_report(&self, query: &UsageQuery) -> Result<Vec<UsageLine>, StoreError> {
        let key = query.by.column();
        // Groups are joined only when they are what is counted or filtered on, so other
        // reports count each call once.
        let join = if query.by == UsageGrouping::Group || query.group_id.is_some() {
            "JOIN model_usage_groups g ON g.usage_id = u.id"
        } else {
            ""
        };
        let group_filter = if join.is_empty() {
            "CAST($5 AS TEXT) IS NULL"
        } else {
            "(CAST($5 AS TEXT) IS NULL OR g.group_id = $5)"
        };
        let sql = format!(
            "SELECT {key} AS key, COUNT(*) AS calls, \
             CAST(SUM(CASE WHEN u.outcome = 'ok' THEN 0 ELSE 1 END) AS BIGINT) AS failed, \
             CAST(SUM(u.input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(u.output_tokens) AS BIGINT) AS output_tokens, \
             SUM(u.cost) AS cost \
             FROM model_usage u {join} \
             WHERE u.day >= $1 AND u.day <= $2 AND ($3 IS NULL OR u.principal_id = $3) \
             AND ($4 IS NULL OR u.deployment = $4) AND {group_filter} \
             GROUP BY {key} ORDER BY cost DESC, key"
        );
        let lines: Vec<UsageLine> = on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(&query.from_day)
                .bind(&query.to_day)
                .bind(&query.principal_id)
                .bind(&query.deployment)
                .bind(&query.group_id)
                .fetch_all(pool)
                .await?
        });
        Ok(lines)
    }

    /// Tokens (input and output) a principal used in `month`.
    pub async fn month_tokens_of_principal(
        &self,
        principal_id: &str,
        month: &str,
    ) -> Result<i64, StoreError> {
        let total: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT CAST(SUM(input_tokens + output_tokens) AS BIGINT) FROM model_usage \
                 WHERE principal_id = $1 AND month = $2",
            )
            .bind(principal_id)
            .bind(month)
            .fetch_one(pool)
            .await?
        });
        Ok(total.unwrap_or(0))
    }

    /// Tokens the members of a group used in `month`.
    pub async fn month_tokens_of_group(
        &self,
        group_id: &str,
        month: &str,
    ) -> Result<i64, StoreError> {
        let total: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT CAST(SUM(u.input_tokens + u.output_tokens) AS BIGINT) FROM model_usage u \
                 JOIN model_usage_groups g ON g.usage_id = u.id \
                 WHERE g.group_id = $1 AND u.month = $2",
            )
            .bind(group_id)
            .bind(month)
            .fetch_one(pool)
            .await?
        });
        Ok(total.unwrap_or(0))
    }
}
