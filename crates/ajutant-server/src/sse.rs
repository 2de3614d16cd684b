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

/// How often an open stream re-checks that its caller may still have it.
pub(crate) const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// `body`, ended with `ending(reason)` (an `ended` event: [`ended`]) when `still_allowed`
/// stops saying `None` (checked every [`RECHECK`]) or after `lifetime`. A revoked key, an ended session or a
/// removed role ends a stream as fast as it refuses a new request; the cap means no stream
/// outlives its credential by being left open (clients reconnect, and are checked anew).
pub(crate) fn guarded<B, C, F>(
    body: B,
    still_allowed: C,
    lifetime: std::time::Duration,
    ending: fn(&str) -> String,
) -> impl futures::Stream<Item = Result<String, Infallible>> + Send + 'static
where
    B: futures::Stream<Item = Result<String, Infallible>> + Send + 'static,
    C: FnMut() -> F + Send + 'static,
    F: std::future::Future<Output = Option<&'static str>> + Send,
{
    use futures::StreamExt;
    let ends_at = tokio::time::Instant::now() + lifetime;
    // The first check one interval in: the request was authenticated a moment ago.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Some((body.boxed(), still_allowed, tick));
    futures::stream::unfold(start, move |open| async move {
        let (mut body, mut still_allowed, mut tick) = open?;
        loop {
            tokio::select! {
                item = body.next() => {
                    return item.map(|item| (item, Some((body, still_allowed, tick))));
                }
                () = tokio::time::sleep_until(ends_at) => {
                    return Some((Ok(ending("lifetime")), None));
                }
                _ = tick.tick() => {
                    if let Some(reason) = still_allowed().await {
                        return Some((Ok(ending(reason)), None));
                    }
                }
            }
        }
    })
}

/// The `ended` event, with why: `signed_out`, `not_allowed`, `lifetime`.
pub(crate) fn ended(reason: &str) -> String {
    event("ended", &serde_json::json!({ "reason": reason }))
}
