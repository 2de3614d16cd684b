//! IT operations and the feedback loop, over HTTP, on SQLite and PostgreSQL: feedback and the
//! owners' inbox (`feedback.rs`), escalations to IT operations (the live feed on another
//! instance, signed webhooks, retries, dead letters; `escalation.rs`), and kill switches
//! (`kill_switch.rs`). One test binary, so the server is linked once for all of them.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod escalation;
mod feedback;
mod kill_switch;
mod support;
