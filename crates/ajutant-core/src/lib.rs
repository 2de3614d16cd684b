//! Ajutant's domain: the entities' ids, statuses and the rules between them (one module per
//! feature), who may do what (`policy`), the configuration tree, and audit records with the hash
//! chain that makes them tamper-evident. Nothing here knows about HTTP or SQL; the edges depend
//! on this crate, never the other way round.

pub mod text_enum;

pub mod assistant;
pub mod audit;
pub mod audit_action;
pub mod audit_checkpoint;
pub mod audit_export;
pub mod chat;
pub mod config;
pub mod feedback;
pub mod grounding;
pub mod id;
pub mod incident;
pub mod model;
pub mod notification;
pub mod policy;
pub mod secret;
pub mod switch;
