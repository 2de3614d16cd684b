//! Logs and traces. Logs go to stderr, human-readable or JSON. Spans always get W3C trace ids
//! (so responses and audit records carry one); they are exported over OTLP/HTTP only when the
//! operator configures a collector: without one nothing leaves the process.

use std::collections::HashMap;

use ajutant_core::config::{LogConfig, LogFormat, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log.filter is not a valid filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes spans still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "flushing traces at shutdown failed");
        }
    }
}

/// Checks `log.filter` the way [`init`] will parse it, so `config check` catches a bad one.
pub fn check_filter(filter: &str) -> Result<(), TelemetryError> {
    EnvFilter::try_new(filter)?;
    Ok(())
}

/// Installs the process-wide subscriber. Call once, before the async runtime starts: the OTLP
/// exporter runs its own blocking HTTP client on its own thread.
pub fn init(log: &LogConfig, telemetry: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let provider = tracer_provider(telemetry)?;
    let tracer = provider.tracer("ajutant");
    let log_filter = EnvFilter::try_new(&log.filter)?;
    let log_layer = match log.format {
        LogFormat::Human => fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // Spans are traced at info and above whatever the log filter says, so quieting logs does
    // not cut traces.
    let trace_layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(log_layer.with_filter(log_filter))
        .with(trace_layer)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(Telemetry { provider })
}

fn tracer_provider(telemetry: &TelemetryConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(telemetry.service_name.clone())
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(resource);
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        let headers: HashMap<String, String> = telemetry
            .otlp_headers
            .iter()
            .map(|(name, value)| (name.clone(), value.expose().to_owned()))
            .collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(traces_url(endpoint))
            .with_headers(headers)
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// The collector's base URL gets the standard traces path; a URL that already names a path is
/// used as given.
fn traces_url(endpoint: &url::Url) -> String {
    if endpoint.path() == "/" || endpoint.path().is_empty() {
        format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'))
    } else {
        endpoint.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_traces_path() {
        let base = url::Url::parse("http://collector:4318").unwrap();
        assert_eq!(traces_url(&base), "http://collector:4318/v1/traces");
        let full = url::Url::parse("https://collector/custom/traces").unwrap();
        assert_eq!(traces_url(&full), "https://collector/custom/traces");
    }
}
