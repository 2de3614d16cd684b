//! The browser UI: pages rendered on the server from askama templates (`templates/`, compiled
//! in and HTML-escaped by default) and a little JavaScript (`static/`, embedded in the binary,
//! no build step, no CDN). Pages read through the same handlers as the JSON API, so they get
//! the same authorization, validation and audit; every change a page makes is a `fetch` to the
//! JSON API with the session's CSRF token (`static/app.js`).
//!
//! Every page is served with a strict Content-Security-Policy (scripts and styles from this
//! origin only, no inline script, no remote images, no framing): model output, document text and
//! anything users typed are untrusted, and the browser is the last line of defence.
//!
//! - `page.rs`: the signed-in viewer, what parts of the console they see, the layout, errors;
//! - `assets.rs`: the embedded static files;
//! - `chat.rs`: the chat;
//! - `console/`: the console, one module per section.

mod assets;
pub(crate) mod charts;
pub(crate) mod chat;
pub(crate) mod console;
pub(crate) mod page;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::AppState;
use page::{Viewer, render};

/// The policy every page carries. `img-src` allows `data:` for the inline SVG charts' icons
/// only; `connect-src 'self'` keeps fetches and event streams on this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/{file}", get(assets::serve))
        .merge(chat::router())
        .merge(console::router())
        .layer(axum::middleware::map_response(secure))
}

/// Headers every page and asset carries.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    response
}

/// `/`: the chat for someone signed in; the sign-in page otherwise.
async fn home(viewer: Result<Viewer, Response>) -> Response {
    match viewer {
        Ok(_) => Redirect::to("/chat").into_response(),
        Err(_) => render(&page::SignIn {
            return_to: "/chat".to_owned(),
        }),
    }
}
