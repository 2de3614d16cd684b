//! Ajutant's HTTP server. [`run`] is the whole service: it opens the store, migrates, starts the
//! audit writer, serves until `shutdown` resolves, drains, and records the stop. The binary and
//! the tests both go through it, so tests exercise exactly what production runs.

mod access;
pub mod app;
mod assistants;
pub mod audit;
mod chat;
mod demo;
mod feedback;
pub mod gateway;
mod grounding;
mod health;
pub mod identity;
pub mod metrics;
mod notify;
pub mod ops;
mod paging;
pub mod problem;
pub mod request;
mod sse;
mod tasks;
pub mod telemetry;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ajutant_core::audit::{Actor, AuditAction, AuditEvent, Outcome};
use ajutant_core::config::{Config, DatabaseKind, DevelopmentIdpConfig, IdentityProviderKind};
use ajutant_store::{AuditError, AuditLog, Store, StoreError};
use metrics_exporter_prometheus::PrometheusHandle;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// How long the audit writer may take to write what is queued at shutdown, and the database
/// pool to close.
const AUDIT_DRAIN: Duration = Duration::from_secs(10);

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub audit: AuditLog,
    pub metrics: PrometheusHandle,
    pub identity: identity::Identity,
    pub gateway: gateway::Gateway,
    pub config: Arc<Config>,
    pub(crate) ingest: grounding::ingest::IngestSignal,
    /// The kill switches in force on this instance.
    pub switches: ops::switches::Switchboard,
    /// Operations events from every instance (escalations, incidents, switches).
    pub(crate) bus: ops::bus::OpsBus,
    pub(crate) notifier: notify::Notifier,
    /// Work that outlives its request; shutdown waits for it.
    pub(crate) tasks: tasks::Tasks,
    /// The one check for outbound calls made on a user's or an owner's behalf.
    pub(crate) egress: ajutant_egress::Egress,
    /// Refused credentials counted per address and reason, so a flood costs few records.
    pub(crate) refusals: identity::refusals::Ledger,
    /// Signs checkpoints of the audit chain; `None` when no key is configured (PostgreSQL).
    pub(crate) checkpoint_key: Option<ajutant_core::audit_checkpoint::CheckpointKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot record the start in the audit trail: {0}")]
    Audit(#[from] AuditError),
    #[error("the listener failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Gateway(#[from] gateway::GatewayError),
    #[error(transparent)]
    CheckpointKey(#[from] audit::checkpoints::CheckpointKeyError),
    #[error("invalid role binding in the configuration: {0}")]
    RoleBinding(String),
}

/// Runs the service on `listener` until `shutdown` resolves, then stops accepting, gives
/// in-flight requests `server.shutdown_grace_secs` to finish, and flushes the audit trail.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = metrics::recorder();
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    let (audit, audit_writer) = AuditLog::start(store.clone(), config.audit.max_batch);
    let address = listener.local_addr()?;
    let public_url = config.public_url(address);
    let identity = identity::Identity::new(&config, public_url.clone())?;
    let deployments = embedded_deployments(&config);
    let gateway = gateway::Gateway::new(&deployments, &config.gateway, audit.usage_log())?;
    gateway.load_stored(&store).await?;
    let stop_watching = Arc::new(Notify::new());
    // The instance's own loops, stopped and joined at shutdown.
    let workers = tasks::Tasks::default();
    workers.spawn({
        let gateway = gateway.clone();
        let store = store.clone();
        let stop = Arc::clone(&stop_watching);
        async move { gateway.watch(store, stop).await }
    });
    let seeded = seed_role_bindings(&config, &store).await?;
    // Loaded before anything is served, so a switch pulled before a restart holds from the
    // first request.
    let switches = ops::switches::Switchboard::load(&store).await?;

    audit
        .append(
            AuditEvent::new(
                Actor::system(),
                AuditAction::ServerStarted,
                "",
                Outcome::Allowed,
            )
            .with_details(serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "listen": address.to_string(),
                "database": match store.kind() {
                    DatabaseKind::Sqlite => "sqlite",
                    DatabaseKind::Postgres => "postgres",
                },
                "mode": config.mode,
                "public_url": public_url.as_str(),
                "identity_provider": config.identity.provider,
                "role_bindings_seeded": seeded,
            })),
        )
        .await?;
    tracing::info!(%address, %public_url, database = %config.database.url.redacted(), "serving");
    if config.identity.provider == IdentityProviderKind::Development {
        tracing::warn!(
            "the built-in development identity provider is signing people in: demo users only, \
             not for production"
        );
    }

    let checkpoint_key = audit::checkpoints::key(&config, true)?;
    if checkpoint_key.is_none() {
        tracing::warn!(
            "no audit.checkpoint_key_file: the audit chain's head is not signed, so a chain \
             rewritten and sealed again would still verify"
        );
    }
    let state = AppState {
        store: store.clone(),
        audit: audit.clone(),
        metrics,
        identity,
        gateway,
        config: Arc::clone(&config),
        ingest: grounding::ingest::IngestSignal::default(),
        switches,
        bus: ops::bus::OpsBus::default(),
        notifier: notify::Notifier::default(),
        tasks: tasks::Tasks::default(),
        egress: ajutant_egress::Egress::new(&config.egress.allow_hosts),
        refusals: identity::refusals::Ledger::default(),
        checkpoint_key: checkpoint_key.clone(),
    };
    if let Err(error) = demo::seed(&state).await {
        tracing::error!(%error, "cannot seed the demo assistant");
    }
    let (stop_workers, workers_stop) = tokio::sync::watch::channel(false);
    for n in 0..config.grounding.workers {
        let name = format!("{}/{}/{n}", address, uuid::Uuid::now_v7());
        workers.spawn(grounding::ingest::work(
            state.clone(),
            name,
            workers_stop.clone(),
        ));
    }
    workers.spawn(
        state
            .bus
            .clone()
            .follow(store.clone(), workers_stop.clone()),
    );
    workers.spawn(state.switches.clone().follow(
        store.clone(),
        state.bus.subscribe(),
        workers_stop.clone(),
    ));
    for n in 0..config.notifications.senders {
        let sender = format!("{}/{}/notify/{n}", address, uuid::Uuid::now_v7());
        workers.spawn(notify::work(state.clone(), sender, workers_stop.clone()));
    }
    if let Some(key) = &checkpoint_key {
        workers.spawn(audit::checkpoints::sign_periodically(
            store.clone(),
            key.clone(),
            Duration::from_secs(config.audit.checkpoint_every_secs),
            workers_stop.clone(),
        ));
    }
    let refusals = state.refusals.clone();
    workers.spawn(
        refusals
            .clone()
            .flush_periodically(audit.clone(), workers_stop.clone()),
    );
    let requests_tasks = state.tasks.clone();
    let app = app::router(state, &config);
    let stopping = Arc::new(Notify::new());
    let signal = {
        let stopping = Arc::clone(&stopping);
        async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections");
            stopping.notify_one();
        }
    };
    // TCP_NODELAY on every accepted connection: without it a small write (a streamed token,
    // a short JSON answer) can wait ~40 ms for the client's delayed ACK.
    let listener =
        axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
            }
        });
    let serve = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let outcome = tokio::select! {
        result = serve => result.map_err(ServeError::Io),
        () = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("in-flight requests still running after {grace:?}; stopping anyway");
            Ok(())
        }
    };

    // Answers still streaming into storage, credential re-reads: finished before the stop is
    // recorded and the audit writer drains.
    requests_tasks.join(AUDIT_DRAIN).await;
    refusals.flush(&audit, true).await;
    let stopped = AuditEvent::new(
        Actor::system(),
        AuditAction::ServerStopped,
        "",
        Outcome::Allowed,
    )
    .with_details(serde_json::json!({ "listen": address.to_string() }));
    if let Err(error) = audit.append(stopped).await {
        tracing::error!(%error, "cannot record the stop in the audit trail");
    }
    // The stop, with everything before it, is covered by the last checkpoint.
    if let Some(key) = &checkpoint_key {
        audit::checkpoints::sign_head(&store, key).await;
    }
    stop_watching.notify_one();
    let _ = stop_workers.send(true);
    // A worker in the middle of a database call against a database that is gone would hold
    // the shutdown; past the drain it is aborted, its job's lease runs out and another worker
    // resumes it.
    workers.join(AUDIT_DRAIN).await;
    audit_writer.finish(AUDIT_DRAIN).await;
    // Requests still running past the grace period may hold pooled connections; do not wait
    // on them forever.
    if tokio::time::timeout(AUDIT_DRAIN, store.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections still busy at exit; closing anyway");
    }
    outcome
}

/// The configured deployments, plus, in development mode, the in-process embedding model when
/// its files have been fetched (`scripts/fetch-embedding-model`) and no deployment of that name
/// is configured: the embedded default then gets real vector retrieval with nothing to set up.
fn embedded_deployments(config: &Config) -> Vec<ajutant_core::config::DeploymentConfig> {
    let mut deployments = config.deployments.clone();
    let local = ajutant_core::config::DeploymentConfig::local_embeddings();
    if config.mode == ajutant_core::config::Mode::Development
        && !deployments.iter().any(|d| d.name == local.name)
        && std::path::Path::new(&local.model)
            .join("model.safetensors")
            .is_file()
    {
        tracing::info!(model = %local.model, "using the local embedding model");
        deployments.push(local);
    }
    deployments
}

/// Inserts the configured role bindings that are missing (with the development provider and
/// none configured, the demo groups' roles). Returns how many were added.
async fn seed_role_bindings(config: &Config, store: &Store) -> Result<usize, ServeError> {
    let mut seeds = config.identity.role_bindings.clone();
    if seeds.is_empty() && config.identity.provider == IdentityProviderKind::Development {
        seeds = DevelopmentIdpConfig::demo_bindings();
    }
    let now = OffsetDateTime::now_utc();
    let mut added = 0;
    for seed in &seeds {
        let binding = seed.binding().map_err(ServeError::RoleBinding)?;
        if store
            .insert_role_binding(&binding, "config", "config", now)
            .await?
            .is_some()
        {
            added += 1;
        }
    }
    Ok(added)
}
