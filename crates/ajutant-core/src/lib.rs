//! Ajutant's domain: the configuration tree, audit records and the hash chain that makes them
//! tamper-evident. Nothing here knows about HTTP or SQL; the edges depend on this crate, never
//! the other way round.

pub mod audit;
pub mod audit_export;
pub mod config;
pub mod feedback;
pub mod model;
pub mod policy;
pub mod secret;
