//! Model usage: a row per call (tokens, cost, latency), written in batches off the request
//! path, and the reports and month-to-date totals that budgets and `/api/v1/usage` read.

use time::OffsetDateTime;

use crate::db_time::DbTime;
use crate::{Store, StoreError, on_pool};

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

fn day_of(at: OffsetDateTime) -> (String, String) {
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
    /// Writes a batch in one transaction (one commit for many calls).
    pub async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for record in records {
                let (day, month) = day_of(record.occurred_at);
                let id = record.id.to_string();
                sqlx::query(
                    "INSERT INTO model_usage (id, occurred_at, day, month, principal_id, \
                     principal_name, deployment, served_by, operation, outcome, input_tokens, \
                     output_tokens, cost, latency_ms, request_id, trace_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(&id)
                .bind(DbTime(record.occurred_at))
                .bind(&day)
                .bind(&month)
                .bind(&record.principal_id)
                .bind(&record.principal_name)
                .bind(&record.deployment)
                .bind(&record.served_by)
                .bind(record.operation)
                .bind(record.outcome)
                .bind(record.input_tokens)
                .bind(record.output_tokens)
                .bind(record.cost)
                .bind(record.latency_ms)
                .bind(&record.request_id)
                .bind(&record.trace_id)
                .execute(&mut *tx)
                .await?;
                for group in &record.groups {
                    sqlx::query("INSERT INTO model_usage_groups (usage_id, group_id) VALUES ($1, $2)")
                        .bind(&id)
                        .bind(group)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
        });
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
