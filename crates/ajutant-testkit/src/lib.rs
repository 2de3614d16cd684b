//! Test support for the tests that start the whole app: [`TestApp`], the real server on port 0
//! against a fresh database (from `ajutant-testdb`, re-exported here with `both_databases!`),
//! signing in as the demo's people, and fake peers (identity provider, model upstream, webhook
//! receiver). The model upstream lives in `ajutant-fake-upstream`, server-free, so the
//! providers' conformance suite plays against the same fake.

pub mod fake_idp;
pub use ajutant_fake_upstream as fake_upstream;
pub mod fake_webhook;
pub mod identity;
pub mod sse;

use std::net::SocketAddr;
use std::sync::Arc;

pub use ajutant_testdb::{
    Backend, PostgresServer, TestDatabase, both_databases, postgres_admin_url,
};

use ajutant_core::config::{Config, DatabaseKind};
use ajutant_store::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
        #[allow(
            clippy::disallowed_methods,
            reason = "the app under test: the handle is kept and joined by TestApp::stop"
        )]
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
