//! The command line: `serve`, `migrate`, `config check|example`, `audit verify|export`,
//! `apikey create|list|revoke`, and the clients of a running server: `ingest`,
//! `kill|revive assistant|deployment|platform`, `switches`.
//! Exit codes: 0 success, 1 a check failed (a broken audit chain), 2 bad configuration or
//! arguments, 3 anything else went wrong.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use ajutant_core::config::{self, Config, DatabaseUrl, Overrides};
use ajutant_core::config::{LogConfig, TelemetryConfig};
use ajutant_server::telemetry;
use ajutant_store::Store;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::apikey_commands::{self, CreateArgs, RevokeArgs};
use crate::audit_commands::{self, ExportArgs, Verdict, VerifyArgs};
use crate::switch_commands::{self, Direction, SwitchError};

#[derive(Debug, Parser)]
#[command(
    name = "ajutant",
    version,
    about = "Self-hosted enterprise AI platform"
)]
pub struct Cli {
    /// TOML configuration file; every key may also come from AJUTANT_* variables.
    #[arg(
        long,
        short,
        global = true,
        env = "AJUTANT_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,

    /// Database URL (sqlite://PATH or postgres://...); wins over the file and AJUTANT_DATABASE__URL.
    #[arg(
        long,
        global = true,
        env = "AJUTANT_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    // Taken as text and parsed afterwards, so a bad value is never echoed with its password.
    database_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run migrations, then serve the API, the UI and the operations endpoints.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check or print configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Verify or export the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Create, list or revoke platform API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Upload a file or folder to a collection of a running server and follow the ingestion.
    Ingest(crate::ingest_command::IngestArgs),
    /// Switch off an assistant, a deployment or the whole platform on a running server.
    #[command(
        subcommand,
        subcommand_value_name = "TARGET",
        subcommand_help_heading = "Targets"
    )]
    Kill(switch_commands::Target),
    /// Switch an assistant, a deployment or the platform back on, on a running server.
    #[command(
        subcommand,
        subcommand_value_name = "TARGET",
        subcommand_help_heading = "Targets"
    )]
    Revive(switch_commands::Target),
    /// List a running server's kill switches and their states.
    Switches(switch_commands::ListArgs),
}

#[derive(Debug, Subcommand)]
enum ApikeyCommand {
    /// Create a key; prints the key alone on standard output, details on standard error.
    Create(CreateArgs),
    /// List keys (never their secrets).
    List,
    /// Revoke a key; it is refused from the next request on.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080; wins over the file and AJUTANT_SERVER__LISTEN.
    #[arg(long, env = "AJUTANT_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load the configuration from every source, report every problem, print it (secrets redacted).
    Check,
    /// Print a commented example configuration with every key and its default.
    Example,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; name the first record that does not fit.
    Verify(VerifyArgs),
    /// Write records as JSON Lines or CSV.
    Export(ExportArgs),
}

pub fn run(cli: Cli) -> ExitCode {
    if let Command::Config(ConfigCommand::Example) = cli.command {
        return write_stdout(config::EXAMPLE);
    }
    if let Command::Ingest(args) = cli.command {
        return ingest(args);
    }
    if let Command::Kill(target) = cli.command {
        return switch(switch_commands::change(target, Direction::Kill));
    }
    if let Command::Revive(target) = cli.command {
        return switch(switch_commands::change(target, Direction::Revive));
    }
    if let Command::Switches(args) = cli.command {
        return switch(switch_commands::list(args));
    }
    let config = match load_config(&cli) {
        Ok(config) => config,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "ajutant: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Config(ConfigCommand::Check) => write_stdout(&format!(
            "# configuration OK\n{}",
            config.to_redacted_toml()
        )),
        Command::Config(ConfigCommand::Example) => write_stdout(config::EXAMPLE),
        Command::Serve(_) => report(serve(config)),
        Command::Ingest(_) | Command::Kill(_) | Command::Revive(_) | Command::Switches(_) => {
            ExitCode::from(2)
        }
        Command::Migrate => report(with_runtime(&config, migrate)),
        Command::Audit(AuditCommand::Verify(args)) => {
            // Never made here: a key that is missing was never used to sign anything.
            let key = match ajutant_server::audit::checkpoints::key(&config, false) {
                Ok(key) => key,
                Err(error) => return report(Err(error.into())),
            };
            match with_runtime(&config, |store| audit_commands::verify(store, args, key)) {
                Ok(Verdict::Intact(message)) => write_stdout(&message),
                Ok(Verdict::Broken(message)) => {
                    let _ = writeln!(std::io::stderr(), "{message}");
                    ExitCode::from(1)
                }
                Err(error) => report(Err(error)),
            }
        }
        Command::Audit(AuditCommand::Export(args)) => report(with_runtime(&config, |store| {
            audit_commands::export(store, args)
        })),
        Command::Apikey(ApikeyCommand::Create(args)) => {
            match with_runtime(&config, |store| apikey_commands::create(store, args)) {
                Err(error) if apikey_commands::is_invalid_request(&error) => {
                    let _ = writeln!(std::io::stderr(), "ajutant: {error}");
                    ExitCode::from(2)
                }
                result => report(result),
            }
        }
        Command::Apikey(ApikeyCommand::List) => {
            report(with_runtime(&config, apikey_commands::list))
        }
        Command::Apikey(ApikeyCommand::Revoke(args)) => report(with_runtime(&config, |store| {
            apikey_commands::revoke(store, args)
        })),
    }
}

/// Every source, then the checks only the edges can make (the log filter's syntax).
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let database_url = match &cli.database_url {
        Some(raw) => Some(
            raw.parse::<DatabaseUrl>()
                .map_err(|error| anyhow::anyhow!("--database-url: {error}"))?,
        ),
        None => None,
    };
    let overrides = Overrides {
        listen: match &cli.command {
            Command::Serve(args) => args.listen,
            _ => None,
        },
        database_url,
    };
    // Variables that are not UTF-8 cannot be Ajutant's; skipping them beats a panic.
    let env = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)));
    let config = Config::load(cli.config.as_deref(), env, &overrides)?;
    telemetry::check_filter(&config.log.filter)?;
    Ok(config)
}

fn serve(config: Config) -> anyhow::Result<()> {
    let telemetry = telemetry::init(&config.log, &config.telemetry)?;
    if config.mode == config::Mode::Development {
        tracing::warn!(
            "development mode: not for production (set mode = \"production\" to enforce safe settings)"
        );
    }
    let config = Arc::new(config);
    let result = runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        ajutant_server::run(Arc::clone(&config), listener, shutdown_signal()).await?;
        anyhow::Ok(())
    });
    telemetry.shutdown();
    result
}

async fn migrate(store: Store) -> anyhow::Result<()> {
    store.migrate().await?;
    let status = store.migration_status().await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "migrations applied: {}", status.applied)?;
    Ok(())
}

/// Opens the store (without migrating) and runs one command on it, for the commands that are
/// not `serve`. Their logs are warnings and errors only, on stderr.
fn with_runtime<T, F, Fut>(config: &Config, command: F) -> anyhow::Result<T>
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let quiet = LogConfig {
        filter: "warn".to_owned(),
        ..config.log.clone()
    };
    let telemetry = telemetry::init(&quiet, &TelemetryConfig::default())?;
    let result = runtime()?.block_on(async {
        let store = Store::connect(&config.database)
            .await
            .with_context(|| format!("opening {}", config.database.url.redacted()))?;
        let result = command(store.clone()).await;
        store.close().await;
        result
    });
    telemetry.shutdown();
    result
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn write_stdout(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(3),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "ajutant: {error:#}");
            ExitCode::from(3)
        }
    }
}

/// `ajutant ingest`: a client of a running server, so it needs no configuration of its own.
fn ingest(args: crate::ingest_command::IngestArgs) -> ExitCode {
    use crate::ingest_command::IngestError;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "ajutant: {error}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(crate::ingest_command::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "ajutant: {error}");
            ExitCode::from(match error {
                IngestError::SomeFailed { .. } => 1,
                IngestError::Usage(_) => 2,
                IngestError::Server(_) => 3,
            })
        }
    }
}

/// `ajutant kill | revive | switches`: clients of a running server like `ingest`, so they need
/// no configuration of their own.
fn switch(command: impl Future<Output = Result<String, SwitchError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "ajutant: {error}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(command) {
        Ok(text) => write_stdout(&text),
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "ajutant: {error}");
            ExitCode::from(match error {
                SwitchError::Usage(_) => 2,
                SwitchError::Server(_) => 3,
            })
        }
    }
}
