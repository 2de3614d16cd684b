//! A fresh database per test, with nothing of the server: a SQLite file in a temporary folder,
//! or a new PostgreSQL database that is dropped afterwards, and [`both_databases!`] to run one
//! test on each. The store's own tests use this crate alone, so they build without the server,
//! the providers or the embedding model; `ajutant-testkit` re-exports it for the tests that
//! start the whole app.
//!
//! PostgreSQL tests connect to `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5433/postgres`, the PostgreSQL with pgvector that
//! `scripts/prepare-test-services` runs) as a user allowed to create databases;
//! `scripts/test` starts the server when it is down. They fail, rather than skip, when it is
//! unreachable: a green run must mean both databases were tested.

mod server;

pub use server::PostgresServer;

use ajutant_core::config::DatabaseConfig;
use ajutant_store::Store;
use anyhow::Context;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5433/postgres";

/// Generates one `#[tokio::test]` per database for an async test function taking a [`Backend`]:
/// `both_databases!(appends_survive_restart);` yields `appends_survive_restart::sqlite` and
/// `appends_survive_restart::postgres`.
#[macro_export]
macro_rules! both_databases {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test($crate::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$test($crate::Backend::Postgres).await
            }
        }
    )+};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The administrative URL for PostgreSQL tests.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A database that exists for one test and is removed after it.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    backend: Backend,
    /// Keeps the SQLite file's folder alive; removed on drop.
    _folder: Option<tempfile::TempDir>,
    /// The PostgreSQL database to drop.
    postgres_name: Option<String>,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let folder = tempfile::tempdir()?;
                let url = format!("sqlite://{}", folder.path().join("ajutant.db").display());
                Ok(Self {
                    url,
                    backend,
                    _folder: Some(folder),
                    postgres_name: None,
                })
            }
            Backend::Postgres => {
                let name = format!("ajutant_test_{}", uuid::Uuid::new_v4().simple());
                as_postgres_admin(&format!("CREATE DATABASE {name}")).await?;
                let url = database_url_for(&postgres_admin_url(), &name)?;
                Ok(Self {
                    url,
                    backend,
                    _folder: None,
                    postgres_name: Some(name),
                })
            }
        }
    }

    /// The `postgres` database of a test's own server: nothing to drop afterwards, the server
    /// goes with its folder.
    pub fn on_server(server: &PostgresServer) -> Self {
        Self {
            url: server.url(),
            backend: Backend::Postgres,
            _folder: None,
            postgres_name: None,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn config(&self) -> anyhow::Result<DatabaseConfig> {
        Ok(DatabaseConfig {
            url: self.url.parse()?,
            max_connections: 8,
            ..DatabaseConfig::default()
        })
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> anyhow::Result<Store> {
        let store = Store::connect(&self.config()?).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Runs `statement` on a connection of its own with the application's credentials (in
    /// tests, a superuser's): to prove what the database refuses, and to tamper with data the
    /// way a superuser could.
    pub async fn execute(&self, statement: &str) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => {
                let mut connection = sqlx::sqlite::SqliteConnection::connect(&self.url).await?;
                sqlx::raw_sql(statement).execute(&mut connection).await?;
                connection.close().await?;
            }
            Backend::Postgres => {
                let mut connection = PgConnection::connect(&self.url).await?;
                sqlx::raw_sql(statement).execute(&mut connection).await?;
                connection.close().await?;
            }
        }
        Ok(())
    }

    /// Runs `statement` with the append-only guards out of the way, as a database superuser
    /// could: on PostgreSQL for this session only (`session_replication_role = replica`); on
    /// SQLite the guard triggers are dropped and stay dropped.
    pub async fn execute_bypassing_guards(&self, statement: &str) -> anyhow::Result<()> {
        let bypass = match self.backend {
            Backend::Sqlite => {
                "DROP TRIGGER IF EXISTS audit_events_refuse_update; \
                 DROP TRIGGER IF EXISTS audit_events_refuse_delete; \
                 DROP TRIGGER IF EXISTS audit_checkpoints_refuse_update; \
                 DROP TRIGGER IF EXISTS audit_checkpoints_refuse_delete;"
            }
            Backend::Postgres => "SET session_replication_role = replica;",
        };
        self.execute(&format!("{bypass} {statement}")).await
    }

    /// PostgreSQL only: refuses new connections to this database and ends the open ones, as an
    /// outage would. Returns an error for SQLite, which has no server to lose.
    pub async fn cut_off(&self) -> anyhow::Result<()> {
        let Some(name) = &self.postgres_name else {
            anyhow::bail!("only a PostgreSQL database can be cut off");
        };
        as_postgres_admin(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
        ))
        .await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived thread
        // with its own runtime does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(as_postgres_admin(&format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
        });
        let _ = cleanup.join();
    }
}

/// Runs `statements` on the administrative connection (`TEST_POSTGRES_URL`).
async fn as_postgres_admin(statements: &str) -> anyhow::Result<()> {
    let admin = postgres_admin_url();
    let mut connection = PgConnection::connect(&admin).await.with_context(|| {
        format!(
            "PostgreSQL tests need a server at {admin} (set TEST_POSTGRES_URL, or run scripts/test)"
        )
    })?;
    sqlx::raw_sql(statements).execute(&mut connection).await?;
    connection.close().await?;
    Ok(())
}

fn database_url_for(admin: &str, name: &str) -> anyhow::Result<String> {
    let mut url = url_parse(admin)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

fn url_parse(text: &str) -> anyhow::Result<url::Url> {
    url::Url::parse(text).with_context(|| format!("{text} is not a URL"))
}
