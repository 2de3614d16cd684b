//! The latency Ajutant's OpenAI-compatible gateway adds over calling the model server directly.
//! One process holds four parts, each on a runtime of its own (as if each were its own process
//! on this machine) so their threads can be charged CPU separately: a fixed-latency fake model
//! server, Ajutant itself (`TestApp`: the real `ajutant_server::run`, API-key authentication and
//! audit on), a bare reverse proxy as the reference for what any HTTP hop costs, and the load
//! generator. Every figure is direct-to-fake, via the bare proxy and via Ajutant side by side
//! from the same run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ajutant_core::audit::{Actor, ActorKind, AuditAction, AuditEvent, Outcome};
use ajutant_core::config::{
    Capability, Config, DeploymentConfig, LogConfig, LogFormat, ProviderKind, TelemetryConfig,
};
use ajutant_server::identity::api_keys::{self, NewApiKey};
use ajutant_store::AuditLog;
use ajutant_testkit::{Backend, TestApp, TestDatabase};
use anyhow::{Context, bail};
use axum::body::Bytes;
use clap::Parser;
use serde_json::json;

// The binary's own modules live in a folder named after it, beside the other benchmarks.
#[path = "gateway_latency/bare_proxy.rs"]
mod bare_proxy;
#[path = "gateway_latency/fake_model.rs"]
mod fake_model;
#[path = "gateway_latency/load.rs"]
mod load;
#[path = "gateway_latency/output.rs"]
mod output;
#[path = "gateway_latency/process.rs"]
mod process;
#[path = "gateway_latency/target.rs"]
mod target;

use fake_model::PIECES;
use load::*;
use process::{Cpu, memory};
use target::*;

/// Requests per path before any series is timed: connections open, caches fill.
const WARM_UP: usize = 50;
/// Sequential series alternate direct and via in blocks of this many, so drift on a noisy
/// machine falls on both alike while each block's CPU time is still charged to one path.
const BLOCK: usize = 50;
/// Open-loop phases send at the rate for this long before timing starts, so connection pools
/// have grown to what the rate needs.
const LEAD_IN: Duration = Duration::from_millis(500);
/// An open-loop request still unanswered after this long counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Above this many requests in flight the generator stops sending and counts each send it
/// skips as failed, rather than opening sockets without end.
const MAX_IN_FLIGHT: usize = 4000;

#[derive(Debug, Parser)]
#[command(about = "The latency Ajutant's gateway adds over calling the model server directly")]
struct Args {
    /// Sequential requests per path (direct, via) at concurrency 1, per upstream delay; the
    /// streaming series sends as many.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Seconds each open-loop rate is timed, per path.
    #[arg(long, default_value_t = 5.0)]
    seconds_per_rate: f64,
    /// Open-loop rates, requests per second.
    #[arg(long, value_delimiter = ',', default_values_t = [500, 1000, 2000, 5000])]
    rates: Vec<u32>,
    /// Upstream delays, ms: the fake's time to answer, or to its first streamed chunk.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 50])]
    delay_ms: Vec<u64>,
    /// The database Ajutant runs on: sqlite or postgres (TEST_POSTGRES_URL).
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// A short smoke run: 100 requests, 1 s per rate at 500 and 1000/s, 0 ms delay only
    /// (overrides the other options).
    #[arg(long)]
    quick: bool,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.requests = 100;
        args.seconds_per_rate = 1.0;
        args.rates = vec![500, 1000];
        args.delay_ms = vec![0];
    }
    let backend = match args.database.as_str() {
        "sqlite" => Backend::Sqlite,
        "postgres" => Backend::Postgres,
        other => bail!("unknown database {other:?}: use sqlite or postgres"),
    };
    // As `ajutant serve` does, before any runtime: the process-wide subscriber whose
    // OpenTelemetry layer records every request's spans. Logs only warnings, so the per-request
    // log line is not part of what is measured.
    let log = LogConfig {
        format: LogFormat::Human,
        filter: "warn".to_owned(),
    };
    let telemetry = ajutant_server::telemetry::init(&log, &TelemetryConfig::default())?;
    let server_runtime = runtime("ajutant-server")?;
    let fake_runtime = runtime("fake-upstream")?;
    let load_runtime = runtime("load-gen")?;
    let proxy_runtime = runtime("bare-proxy")?;

    let fake = fake_runtime.block_on(fake_model::start())?;
    let proxy = proxy_runtime.block_on(bare_proxy::start(fake.address, MAX_IN_FLIGHT))?;
    let endpoint = reqwest::Url::parse(&format!("http://{}/v1", fake.address))?;
    let rss_before = memory("VmRSS")?;
    let app = server_runtime.block_on(TestApp::spawn_with(backend, |config| {
        configure(config, &args.delay_ms, &endpoint)
    }));
    let key = server_runtime.block_on(issue_key(&app))?;
    // The client's connection pool belongs to the load generator's runtime.
    let client = {
        let _entered = load_runtime.enter();
        load_client()?
    };
    let bench = Bench {
        client,
        fake: fake.address,
        proxy: proxy.address,
        app: app.address,
        key,
        runtime: load_runtime.handle().clone(),
        args: &args,
    };
    let outcome = load_runtime.block_on(bench.run(backend, rss_before));
    fake.server.abort();
    proxy.server.abort();
    let stopped = server_runtime.block_on(app.stop());
    telemetry.shutdown();
    let report = outcome?;
    stopped?;
    report.print(&args, backend)
}

/// One of the benchmark's own HTTP servers (the fake, the bare proxy) on `127.0.0.1:0`.
pub struct LocalServer {
    pub address: SocketAddr,
    pub server: tokio::task::JoinHandle<()>,
}

impl LocalServer {
    /// Serves `app` on a fresh loopback port, with `TCP_NODELAY` on every connection: streamed
    /// chunks are small writes, and Nagle would hold each until the last one is acked.
    async fn start(app: axum::Router) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        #[allow(
            clippy::disallowed_methods,
            reason = "a benchmark peer that ends with the run"
        )]
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { address, server })
    }
}

/// A multi-threaded runtime with as many workers as `ajutant serve` gets (one per core), its
/// threads named so `/proc` can tell whose CPU time is whose.
fn runtime(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .build()
        .with_context(|| format!("cannot start the {name} runtime"))
}

/// One deployment per delay, each naming the fake model that waits that long.
fn configure(config: &mut Config, delays: &[u64], endpoint: &reqwest::Url) {
    config.deployments = delays
        .iter()
        .map(|delay| DeploymentConfig {
            name: format!("bench-{delay}ms"),
            provider: ProviderKind::OpenAiCompatible,
            endpoint: Some(endpoint.clone()),
            model: format!("delay-{delay}"),
            capabilities: vec![Capability::Chat],
            // A retry would hide a failure the benchmark must count.
            retries: 0,
            ..DeploymentConfig::offline()
        })
        .collect();
}

async fn issue_key(app: &TestApp) -> anyhow::Result<String> {
    let store = app.store().await;
    let (_, secret) = api_keys::issue(&store, new_key()).await?;
    store.close().await;
    Ok(secret)
}

fn new_key() -> NewApiKey {
    NewApiKey {
        name: "gateway-bench".to_owned(),
        groups: vec!["g-bench".to_owned()],
        expires_at: None,
        owner_subject: None,
        created_by: "bench".to_owned(),
    }
}

/// The load generator's client: a pool as large as the load needs, no Nagle delay, HTTP/1.1
/// as OpenAI clients speak it.
fn load_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tcp_nodelay(true)
        .http1_only()
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .pool_idle_timeout(Duration::from_secs(60))
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

// ---- requests ----------------------------------------------------------------------------

/// One row of the results: a phase measured on both paths.
#[derive(Debug)]
struct Row {
    delay_ms: u64,
    load: String,
    direct: Series,
    /// Through the bare proxy.
    proxy: Series,
    via: Series,
}

#[derive(Debug)]
struct Step {
    name: &'static str,
    series: Series,
}

#[derive(Debug)]
struct Report {
    rows: Vec<Row>,
    steps: Vec<Step>,
    rss_before: f64,
    rss_idle: f64,
    rss_peak: f64,
}

struct Bench<'a> {
    client: reqwest::Client,
    fake: SocketAddr,
    proxy: SocketAddr,
    app: SocketAddr,
    key: String,
    runtime: tokio::runtime::Handle,
    args: &'a Args,
}

impl Bench<'_> {
    async fn run(&self, backend: Backend, rss_before: f64) -> anyhow::Result<Report> {
        // Let start-up work (migrations, the first audit records) settle before "idle".
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_idle = memory("VmRSS")?;
        let mut rows = Vec::new();
        for &delay in &self.args.delay_ms {
            let paths = self.paths(delay, false);
            let series = self.sequential(&paths, Target::answer).await?;
            rows.push(row(delay, "sequential, 1 at a time", series));

            let streams = self.paths(delay, true);
            let series = self.sequential(&streams, Target::stream).await?;
            let whole = row(
                delay,
                "streaming, whole answer",
                series.each_ref().map(Series::whole_answers),
            );
            rows.push(row(delay, "streaming, time to first token", series));
            rows.push(whole);

            for &rate in &self.args.rates {
                let mut series = Vec::with_capacity(paths.len());
                for target in &paths {
                    series.push(self.open_loop(target, rate).await?);
                }
                let Ok(series) = <[Series; 3]>::try_from(series) else {
                    bail!("one series per path");
                };
                rows.push(row(delay, &format!("open loop {rate}/s"), series));
            }
        }
        let steps = self.steps(backend).await?;
        Ok(Report {
            rows,
            steps,
            rss_before,
            rss_idle,
            rss_peak: memory("VmHWM")?,
        })
    }

    /// The same chat request on each path: direct to the fake, through the bare proxy, and
    /// through Ajutant with the API key.
    fn paths(&self, delay: u64, stream: bool) -> [Target; 3] {
        let fake_model = format!("delay-{delay}");
        [
            Target::chat(self.fake, None, &fake_model, stream),
            Target::chat(self.proxy, None, &fake_model, stream),
            Target::chat(
                self.app,
                Some(&self.key),
                &format!("bench-{delay}ms"),
                stream,
            ),
        ]
    }

    /// One request at a time: `requests` on each path, alternating in blocks, after a warm-up.
    async fn sequential<F>(&self, paths: &[Target; 3], measure: F) -> anyhow::Result<[Series; 3]>
    where
        F: AsyncFn(&Target, &reqwest::Client) -> anyhow::Result<Timing>,
    {
        for _ in 0..WARM_UP {
            for target in paths {
                measure(target, &self.client).await?;
            }
        }
        let mut series = [Series::default(), Series::default(), Series::default()];
        let mut sent = 0;
        while sent < self.args.requests {
            let block = BLOCK.min(self.args.requests - sent);
            for (target, series) in paths.iter().zip(series.iter_mut()) {
                let before = Cpu::now()?;
                for _ in 0..block {
                    let timing = measure(target, &self.client).await?;
                    series.latencies.push(timing.first);
                    series.whole.push(timing.whole);
                }
                let spent = Cpu::now()?.since(before);
                series.cpu.get_or_insert_default().add(spent);
            }
            sent += block;
        }
        Ok(series)
    }

    /// Sends at `rate` on a fixed clock whatever the answers do, and times each request from
    /// when it was due, not when it went out: a stalled server cannot hide its stall by
    /// delaying the requests that would have measured it (coordinated omission).
    async fn open_loop(&self, target: &Target, rate: u32) -> anyhow::Result<Series> {
        let timed = Duration::from_secs_f64(self.args.seconds_per_rate);
        let plan = Plan {
            interval: Duration::from_secs_f64(1.0 / f64::from(rate.max(1))),
            count: ((LEAD_IN + timed).as_secs_f64() * f64::from(rate)) as usize,
            target: Arc::new(target.clone()),
            client: self.client.clone(),
            runtime: self.runtime.clone(),
        };
        let before = Cpu::now()?;
        let started = Instant::now();
        let (sends, rss) = tokio::task::spawn_blocking(move || plan.send_all(started)).await??;
        let mut series = Series {
            rss: Some(rss),
            ..Series::default()
        };
        let mut achieved = 0;
        for send in sends {
            let sample = match send {
                Launch::Sent(task) => task.await?,
                Launch::Skipped(sample) => sample,
            };
            // Throughput counts every answer that completed inside the timed window, whenever
            // it was due, so a slow answer is not lost at either edge.
            let in_window = (LEAD_IN..LEAD_IN + timed).contains(&sample.done);
            achieved += usize::from(sample.result.is_ok() && in_window);
            // The lead-in's requests warm the pools; their latency is not timed.
            if sample.due < LEAD_IN {
                continue;
            }
            match sample.result {
                Ok(()) => series.latencies.push(sample.done - sample.due),
                Err(failure) => {
                    series.failed += 1;
                    series.timed_out += usize::from(failure == Failure::TimedOut);
                    series.not_sent += usize::from(failure == Failure::NotSent);
                }
            }
        }
        series.cpu = Some(Cpu::now()?.since(before));
        series.achieved = Some(achieved as f64 / timed.as_secs_f64());
        // The next phase starts on a quiet system.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(series)
    }

    /// Where the added time goes: Ajutant's HTTP hop without authentication, authentication
    /// without an upstream call, and each database step of an API-key request on its own.
    async fn steps(&self, backend: Backend) -> anyhow::Result<Vec<Step>> {
        let hops = [
            (
                "direct: GET /ping on the fake (one HTTP round trip)",
                Target::get(self.fake, None, "/ping"),
            ),
            (
                "via: GET /healthz on Ajutant (HTTP stack and middleware, no auth)",
                Target::get(self.app, None, "/healthz"),
            ),
            (
                "via: GET /v1/models on Ajutant (API-key authentication, no upstream)",
                Target::get(self.app, Some(&self.key), "/v1/models"),
            ),
        ];
        let mut steps = Vec::new();
        for (name, target) in hops {
            let series = timed(self.args.requests, async || {
                target.complete(&self.client).await
            })
            .await?;
            steps.push(Step { name, series });
        }
        steps.extend(database_steps(backend, self.args.requests).await?);
        Ok(steps)
    }
}

fn row(delay_ms: u64, load: &str, [direct, proxy, via]: [Series; 3]) -> Row {
    Row {
        delay_ms,
        load: load.to_owned(),
        direct,
        proxy,
        via,
    }
}

/// `count` sequential runs of `step` after a warm-up, timed.
async fn timed(
    count: usize,
    step: impl AsyncFn() -> anyhow::Result<Duration>,
) -> anyhow::Result<Series> {
    for _ in 0..WARM_UP {
        step().await?;
    }
    let mut series = Series::default();
    for _ in 0..count {
        series.latencies.push(step().await?);
    }
    Ok(series)
}

/// The database work of one API-key request, each step alone on a fresh database of the same
/// kind: the key lookup, the durable `api_key.used` record, and the last-used update.
async fn database_steps(backend: Backend, count: usize) -> anyhow::Result<Vec<Step>> {
    let database = TestDatabase::create(backend).await?;
    let store = database.store().await?;
    let (key, _) = api_keys::issue(&store, new_key()).await?;
    let (audit, writer) = AuditLog::start(store.clone(), 512);
    let lookup = timed(count, async || {
        let started = Instant::now();
        store.api_key(&key.id).await?;
        Ok(started.elapsed())
    })
    .await?;
    let append = timed(count, async || {
        let started = Instant::now();
        audit.append(key_used(&key.id)).await?;
        Ok(started.elapsed())
    })
    .await?;
    let update = timed(count, async || {
        let started = Instant::now();
        store
            .mark_api_key_used(&key.id, time::OffsetDateTime::now_utc())
            .await?;
        Ok(started.elapsed())
    })
    .await?;
    drop(audit);
    writer.finish(Duration::from_secs(10)).await;
    store.close().await;
    Ok(vec![
        Step {
            name: "database alone: API key lookup (SELECT)",
            series: lookup,
        },
        Step {
            name: "database alone: durable audit append, one writer",
            series: append,
        },
        Step {
            name: "database alone: last-used UPDATE",
            series: update,
        },
    ])
}

/// The record authentication appends for every use of a key.
fn key_used(id: &str) -> AuditEvent {
    let actor = Actor {
        id: "apikey:gateway-bench".to_owned(),
        display_name: "gateway-bench".to_owned(),
        kind: ActorKind::Service,
    };
    AuditEvent::new(
        actor,
        AuditAction::ApiKeyUsed,
        format!("api_key/{id}"),
        Outcome::Allowed,
    )
}

// ---- the open-loop sender ----------------------------------------------------------------
