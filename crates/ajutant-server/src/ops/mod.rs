//! IT operations: kill switches (`switches/`), incidents and the live escalation feed
//! (`incidents/`), the bus that carries operations events between instances (`bus.rs`), and
//! the notification outbox's dead letters (`notifications/`). Each feature's rules are in its
//! `service.rs`.

pub(crate) mod bus;
pub(crate) mod incidents;
pub(crate) mod notifications;
pub(crate) mod switches;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(switches::routes::set, switches::routes::list))
        .routes(routes!(incidents::list))
        .routes(routes!(incidents::get, incidents::change))
        .routes(routes!(incidents::stream))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::retry))
}
