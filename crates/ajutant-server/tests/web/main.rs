//! The web UI over HTTP, on SQLite and PostgreSQL: pages render for the people who may see
//! them (and are 404 for everyone else), carry the security headers, and show what the API
//! holds. What needs a real browser (streaming, scripts, XSS) is in `tests/browser.rs`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod chat;
mod console_admin;
mod console_build;
mod console_ops;
mod support;
