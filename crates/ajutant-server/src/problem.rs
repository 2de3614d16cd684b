//! RFC 9457 problem details: the one shape every error response takes. Handlers return
//! [`ApiError`]; the request envelope (see `request.rs`) renders it with the request id and trace
//! id, and also turns any other error response (a framework rejection, 413, 405, a timeout) into
//! the same shape, so no error leaves in another format.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::request::RequestContext;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Largest framework error text carried over into `detail`.
const MAX_DETAIL_BYTES: usize = 1024;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The status code's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person; absent for server errors, whose cause is only logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path.
    pub instance: String,
    /// Quote this to an operator: it finds the request in logs and the audit trail.
    pub request_id: String,
    /// The W3C trace id of the request.
    pub trace_id: String,
}

/// The error a handler returns. Each variant picks the status; the message becomes `detail`
/// (for server errors it is logged instead).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request itself is wrong; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// No valid credential: the message says why, and the response asks for a bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// Also what a caller gets for a resource they may not see, so existence does not leak.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what exists (a duplicate).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    /// The body is larger than this route accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The file is not of a kind this route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Over a limit; `retry_after` in seconds when known.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: Option<u64>,
    },
    #[error("{0}")]
    Internal(String),
    /// The database is out of reach: 503 with `Retry-After`, so clients back off and retry.
    #[error("the database is unavailable; try again in a few seconds")]
    DatabaseUnavailable,
}

/// Seconds a client is asked to wait when the database is out of reach.
pub(crate) const DATABASE_RETRY_AFTER_SECS: u64 = 2;

impl From<ajutant_store::AuditError> for ApiError {
    fn from(error: ajutant_store::AuditError) -> Self {
        if error.is_unavailable() {
            return Self::DatabaseUnavailable;
        }
        Self::Internal(format!("cannot write the audit trail: {error}"))
    }
}

impl From<ajutant_store::StoreError> for ApiError {
    fn from(error: ajutant_store::StoreError) -> Self {
        match error {
            ajutant_store::StoreError::Conflict { what } => Self::Conflict(what),
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "the database is unavailable");
                Self::DatabaseUnavailable
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) | Self::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A problem waiting for the envelope to add the request's identity and render it.
#[derive(Debug, Clone)]
pub(crate) struct PendingProblem {
    detail: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            // The span carries the request id, so this line and the response can be matched.
            tracing::error!(error = %self, "request failed");
            None
        } else {
            Some(self.to_string())
        };
        let mut response = status.into_response();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } => *retry_after,
            Self::DatabaseUnavailable => Some(DATABASE_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(seconds) = retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750: say which scheme is expected; the reason is in the problem's detail.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response.extensions_mut().insert(PendingProblem { detail });
        response
    }
}

/// Renders `response` as problem details if it is an error not yet in that shape.
pub(crate) async fn finish(response: Response, context: &RequestContext, path: &str) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let detail = match parts.extensions.remove::<PendingProblem>() {
        Some(pending) => pending.detail,
        // Already a problem, or a protocol's own JSON error (OAuth's token endpoint, SCIM) that
        // its clients parse.
        None if is_json(&parts.headers) => {
            return Response::from_parts(parts, body);
        }
        // A page's error, rendered for people by the web UI.
        None if is_html(&parts.headers) => {
            return Response::from_parts(parts, body);
        }
        None if status.is_client_error() && is_plain_text(&parts.headers) => {
            // Framework rejections explain themselves in plain text ("missing field `x`").
            axum::body::to_bytes(body, MAX_DETAIL_BYTES)
                .await
                .ok()
                .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
                .filter(|text| !text.is_empty())
        }
        None => None,
    };
    let problem = Problem {
        problem_type: "about:blank".to_owned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        instance: path.to_owned(),
        request_id: context.request_id.clone(),
        trace_id: context.trace_id.clone(),
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, Body::from(body))
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime == "application/json" || mime.ends_with("+json")
        })
}

fn is_html(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"))
}

fn is_plain_text(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"))
}

impl ApiError {
    /// The one "not found": for a path that names nothing, and for one the caller may not see,
    /// so the two cannot be told apart.
    pub(crate) fn no_resource(path: &str) -> Self {
        Self::NotFound(format!("no resource at {path}"))
    }

    /// A request field that names none of a closed set's values.
    pub(crate) fn not_one_of(field: &str, error: &ajutant_core::text_enum::UnknownValue) -> Self {
        Self::BadRequest(format!("{field} must be one of {}", error.expected))
    }
}

/// The answer for a path no route matches.
pub(crate) async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::no_resource(uri.path())
}
