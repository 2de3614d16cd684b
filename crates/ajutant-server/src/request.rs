//! The envelope every request passes through: it settles the request id (accepted from
//! `x-request-id` when well-formed, else a new UUIDv7), joins the caller's W3C trace
//! (`traceparent`), opens the request span, hands handlers a [`RequestContext`], renders errors
//! as problem details, and records the request's metrics and log line.

use std::net::SocketAddr;
use std::time::Instant;

use ajutant_core::audit::RequestOrigin;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::problem::{self, ApiError};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");

/// Longest request id accepted from a caller; longer ones are replaced, not truncated.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Who is asking and how to find this request later. Handlers take it as an extractor and copy
/// it onto audit records with [`RequestContext::origin`].
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    pub client_addr: Option<SocketAddr>,
    /// The request path, for problem details and the 404 a denied caller gets.
    pub path: String,
}

impl RequestContext {
    pub fn origin(&self) -> RequestOrigin {
        RequestOrigin {
            request_id: Some(self.request_id.clone()),
            trace_id: Some(self.trace_id.clone()),
            client_addr: self.client_addr.map(|addr| addr.ip().to_string()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("request envelope missing".to_owned()))
    }
}

pub(crate) async fn envelope(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let request_id =
        accepted_request_id(request.headers()).unwrap_or_else(|| Uuid::now_v7().to_string());
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));

    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        url.path = %path,
        request_id = %request_id,
        http.response.status_code = tracing::field::Empty,
    );
    let parent_trace = parent.span().span_context().trace_id();
    if parent_trace != TraceId::INVALID {
        // Only fails when no OpenTelemetry layer is installed; the fallback below covers it.
        let _ = span.set_parent(parent);
    }
    let trace_id = trace_id_for(&span, parent_trace);

    let context = RequestContext {
        request_id,
        trace_id,
        client_addr: request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0),
        path: path.clone(),
    };
    request.extensions_mut().insert(context.clone());

    let response = next.run(request).instrument(span.clone()).await;
    let mut response = problem::finish(response, &context, &path).await;

    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&context.request_id) {
        headers.insert(REQUEST_ID, value);
    }
    if let Ok(value) = HeaderValue::from_str(&context.trace_id) {
        headers.insert(TRACE_ID, value);
    }

    let elapsed = started.elapsed().as_secs_f64();
    let labels = [
        ("method", method_label(&method).to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("ajutant_http_requests_total", &labels).increment(1);
    metrics::histogram!("ajutant_http_request_duration_seconds", &labels[..2]).record(elapsed);
    span.in_scope(|| tracing::debug!(status, elapsed_ms = elapsed * 1000.0, "request finished"));
    response
}

/// Metric label for a method: any string is a valid HTTP method, so unknown ones are folded
/// into one value to keep the series count bounded.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A caller's request id is kept if it is short, visible ASCII; anything else could smuggle
/// control characters into logs and the audit trail.
fn accepted_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_ID)?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| value.to_owned())
}

/// The span's trace id when OpenTelemetry is recording it, else the caller's, else a new one:
/// every request has a trace id to show, with or without a collector.
fn trace_id_for(span: &tracing::Span, parent: TraceId) -> String {
    let own = span.context().span().span_context().trace_id();
    let id = if own != TraceId::INVALID {
        own
    } else if parent != TraceId::INVALID {
        parent
    } else {
        TraceId::from_bytes(*Uuid::new_v4().as_bytes())
    };
    id.to_string()
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_well_formed_request_id_is_kept() {
        assert_eq!(
            accepted_request_id(&headers("abc-123_X")).as_deref(),
            Some("abc-123_X")
        );
    }

    #[test]
    fn an_oversized_or_spaced_request_id_is_replaced() {
        assert_eq!(accepted_request_id(&headers(&"a".repeat(129))), None);
        assert_eq!(accepted_request_id(&headers("a b")), None);
        assert_eq!(accepted_request_id(&HeaderMap::new()), None);
    }

    #[test]
    fn invented_methods_share_one_metric_label() {
        let invented = axum::http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "other");
        assert_eq!(method_label(&axum::http::Method::GET), "GET");
    }

    #[test]
    fn without_a_tracer_the_callers_trace_id_is_used() {
        let parent = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span = tracing::Span::none();
        assert_eq!(
            trace_id_for(&span, parent),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let fresh = trace_id_for(&span, TraceId::INVALID);
        assert_eq!(fresh.len(), 32);
        assert_ne!(fresh, "0".repeat(32));
    }
}
