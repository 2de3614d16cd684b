//! Test support shared by every crate's integration tests: a fresh database per test (a SQLite
//! file in a temporary folder, or a new PostgreSQL database that is dropped afterwards) and
//! [`TestApp`], the real server on port 0.
//!
//! PostgreSQL tests connect to `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5433/postgres`, the PostgreSQL with pgvector that
//! `scripts/prepare-test-services` runs) as a user allowed to create databases;
//! `scripts/test` starts the server when it is down. They fail, rather than skip, when it is
//! unreachable: a green run must mean both databases were tested.

pub mod fake_idp;
pub mod fake_upstream;
pub mod fake_webhook;
pub mod identity;
pub mod sse;

use std::net::SocketAddr;
use std::sync::Arc;

use ajutant_core::config::{Config, DatabaseConfig, DatabaseKind};
use ajutant_store::Store;
use anyhow::Context;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
                 DROP TRIGGER IF EXISTS audit_events_refuse_delete;"
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

fn url_parse(text: &str) -> anyhow::Result<reqwest::Url> {
    reqwest::Url::parse(text).with_context(|| format!("{text} is not a URL"))
}

/// The real server on `127.0.0.1:0` against a fresh database.
#[derive(Debug)]
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub config: Arc<Config>,
    /// Always `Some` until [`TestApp::stop`] hands it over.
    database: Option<TestDatabase>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), ajutant_server::ServeError>>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns with the configuration adjusted by `adjust` (limits, timeouts, ...).
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::try_spawn(backend, adjust)
            .await
            .unwrap_or_else(|error| panic!("cannot start the test app: {error:#}"))
    }

    /// Spawns on an existing database, e.g. one a stopped app handed over: a restart.
    pub async fn spawn_on(database: TestDatabase, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::try_spawn_on(database, adjust)
            .await
            .unwrap_or_else(|error| panic!("cannot start the test app: {error:#}"))
    }

    async fn try_spawn(backend: Backend, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        Self::try_spawn_on(TestDatabase::create(backend).await?, adjust).await
    }

    async fn try_spawn_on(
        database: TestDatabase,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let mut config = Config::default();
        config.database = database.config()?;
        config.server.shutdown_grace_secs = 5;
        // The demo assistant and its handbook would be ingested by every test app; the tests
        // that are about the demo switch it back on.
        config.grounding.demo = false;
        adjust(&mut config);
        Self::start(config, Some(database)).await
    }

    /// A second instance on this app's database, as replicas run in production (meant for
    /// PostgreSQL). Its configuration starts from this app's, adjusted by `adjust`. Stop it
    /// with [`TestApp::shutdown`] before the app that owns the database.
    pub async fn spawn_beside(&self, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = (*self.config).clone();
        adjust(&mut config);
        Self::start(config, None)
            .await
            .unwrap_or_else(|error| panic!("cannot start the second instance: {error:#}"))
    }

    async fn start(config: Config, database: Option<TestDatabase>) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(ajutant_server::run(
            Arc::clone(&config),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        let app = Self {
            address,
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            config,
            database,
            stop: Some(stop),
            server: Some(server),
        };
        app.wait_until_ready().await?;
        Ok(app)
    }

    /// Polls `/readyz`: `run` migrates before it accepts, so readiness means the app is up.
    async fn wait_until_ready(&self) -> anyhow::Result<()> {
        for _ in 0..200 {
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        anyhow::bail!("the app did not become ready within 5 s")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn database_kind(&self) -> DatabaseKind {
        self.config.database.url.kind()
    }

    /// The app's database (for tests that act on it directly).
    pub fn database(&self) -> &TestDatabase {
        match &self.database {
            Some(database) => database,
            None => panic!("the app was stopped"),
        }
    }

    /// A store of its own on the app's database, for assertions.
    pub async fn store(&self) -> Store {
        let opened = match &self.database {
            Some(database) => database.store().await,
            // A second instance: the same database through its configuration.
            None if self.server.is_some() => Store::connect(&self.config.database)
                .await
                .map_err(anyhow::Error::from),
            None => Err(anyhow::anyhow!("the app was stopped")),
        };
        opened.unwrap_or_else(|error| panic!("cannot open the app's database: {error:#}"))
    }

    /// Stops the server the way SIGTERM does, waits until it has finished, and hands over the
    /// database so a test can inspect what the app left behind.
    pub async fn stop(mut self) -> anyhow::Result<TestDatabase> {
        self.stop_server().await?;
        self.database
            .take()
            .ok_or_else(|| anyhow::anyhow!("the app was already stopped, or is a second instance"))
    }

    /// Stops the server the way SIGTERM does and waits until it has finished; for a second
    /// instance, or when the database is not needed afterwards.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop_server().await
    }

    async fn stop_server(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await??;
        }
        Ok(())
    }
}

impl Drop for TestApp {
    /// A test that panics before [`TestApp::stop`] still stops its server.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
