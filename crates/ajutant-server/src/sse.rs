//! Server-Sent Events as this server writes them: one `event:`/`data:` block per event, and a
//! response that proxies pass through unbuffered.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Serialize;

/// One event block.
pub(crate) fn event(name: &str, data: &impl Serialize) -> String {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    format!("event: {name}\ndata: {data}\n\n")
}

/// A `text/event-stream` response of `body`'s blocks, each sent as it comes.
pub(crate) fn response(
    body: impl futures::Stream<Item = Result<String, Infallible>> + Send + 'static,
) -> Response {
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx buffers responses unless told not to, which would hold every event back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
