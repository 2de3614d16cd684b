//! Ajutant's storage. One [`Store`] over SQLite (the embedded default) or PostgreSQL (production,
//! several replicas), chosen once from the URL scheme. Portable SQL is written once and run on
//! either pool through [`on_pool!`]; code is split per backend only where the SQL truly differs
//! (bulk inserts, catalogue queries, migrations' DDL).

mod assistants;
mod audit;
mod conversations;
mod db_time;
mod deployments;
mod feedback;
mod grounding;
mod identity;
mod incidents;
mod jobs;
mod ops;
mod outbox;
mod usage;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ajutant_core::config::{DatabaseConfig, DatabaseKind};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use assistants::{Assistant, AssistantVersion};
pub use audit::{AuditError, AuditLog, AuditQuery, AuditReceipt, AuditWriter, ChainStatus};
pub use conversations::{Conversation, Message, NewMessage};
pub use deployments::StoredDeployment;
pub use feedback::{
    Escalation, Feedback, FeedbackFact, FeedbackFilter, NewFeedback, NewNotification, SavedFeedback,
};
pub use grounding::{
    Collection, CollectionSpec, Document, EVERYONE, NewChunk, NewDocument, Passage, SearchScope,
    effective_readers, search_terms,
};
pub use identity::{ApiKey, DirectoryUser, LoginAttempt, NewSession, Session, StoredRoleBinding};
pub use incidents::{ActorRef, Incident, IncidentChange, IncidentEvent};
pub use jobs::{IngestionItem, IngestionJob, ItemOutcome, ItemReport, NewItem};
pub use ops::{KillSwitch, NOTIFY_CHANNEL, OpsEvent, OpsListener, SwitchChange};
pub use outbox::{Attempt, Notification};
pub use usage::{UsageGrouping, UsageLine, UsageLog, UsageQuery, UsageRecord, month_of};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot create the database folder {path}: {source}")]
    CreateFolder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("other instances kept appending to the audit trail first; gave up after retrying")]
    Contention,
    #[error("stored data cannot be read: {what}")]
    Invalid { what: String },
    #[error("{what}")]
    Conflict { what: String },
    #[error("stored audit record {seq} (id {id}) cannot be read: {what}")]
    Corrupt {
        seq: i64,
        id: uuid::Uuid,
        what: String,
    },
}

/// The database connection pool, whichever backend it is. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// SQLite only: in-memory copies of collections' vectors (see `grounding`).
    vectors: std::sync::Arc<grounding::VectorCache>,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same expression against whichever pool the store holds; `$pool` is bound to a
/// `&SqlitePool` in one arm and a `&PgPool` in the other, so portable SQL is written once.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Whether the schema matches the migrations this binary carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub applied: usize,
    /// Versions this binary has that the database has not applied.
    pub pending: Vec<i64>,
}

impl StoreError {
    /// Whether the database is out of reach (down, restarting, refusing connections, or no
    /// connection freed within the acquire timeout) rather than refusing what was asked: the
    /// request may succeed if retried shortly.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Database(error) => unavailable(error),
            _ => false,
        }
    }
}

fn unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        // SQLSTATE class 08 (connection exception) and 57P (operator intervention: shutdown,
        // crash, cannot connect now).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

impl MigrationStatus {
    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
    }
}

impl Store {
    /// Opens a pool; for SQLite, creates the file and its folder if they are missing.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, StoreError> {
        let acquire_timeout = Duration::from_secs(config.acquire_timeout_secs);
        let url = config.url.expose();
        let pool = match config.url.kind() {
            DatabaseKind::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(StoreError::Connect)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // FULL: a commit is on disk before the caller hears it succeeded, which the
                    // audit trail promises. WAL keeps that to one fsync per group commit.
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(config.busy_timeout_secs))
                    .foreign_keys(true);
                create_parent_folder(options.get_filename())?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(acquire_timeout)
                    // A connection to a local file does not go stale, and the check would cost
                    // every query a round trip to the connection's thread.
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await
                    .map_err(StoreError::Connect)?;
                Pool::Sqlite(pool)
            }
            DatabaseKind::Postgres => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(StoreError::Connect)?
                    .application_name("ajutant");
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(StoreError::Connect)?;
                Pool::Postgres(pool)
            }
        };
        Ok(Self {
            pool,
            vectors: std::sync::Arc::default(),
        })
    }

    pub fn kind(&self) -> DatabaseKind {
        match self.pool {
            Pool::Sqlite(_) => DatabaseKind::Sqlite,
            Pool::Postgres(_) => DatabaseKind::Postgres,
        }
    }

    /// Applies the embedded migrations that are not applied yet. Safe to run from several
    /// instances at once (sqlx takes a lock on PostgreSQL).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    pub async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        let migrator = match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        };
        // The catalogues differ, so whether the bookkeeping table exists is asked per backend.
        let has_table: i64 = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
                )
                .bind(MIGRATIONS_TABLE)
                .fetch_one(pool)
                .await?
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = $1",
                )
                .bind(MIGRATIONS_TABLE)
                .fetch_one(pool)
                .await?
            }
        };
        let applied: Vec<i64> = if has_table == 0 {
            Vec::new()
        } else {
            on_pool!(self, pool => {
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await?
            })
        };
        let pending = migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
            .map(|m| m.version)
            .collect();
        Ok(MigrationStatus {
            applied: applied.len(),
            pending,
        })
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

/// sqlx's own bookkeeping table.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

fn create_parent_folder(file: &Path) -> Result<(), StoreError> {
    let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    if file.as_os_str() == ":memory:" {
        return Ok(());
    }
    std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateFolder {
        path: parent.display().to_string(),
        source,
    })
}
