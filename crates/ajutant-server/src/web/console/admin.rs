//! Platform administration: API keys (list, create with the key shown once, revoke) and role
//! bindings (list, grant, remove). The pages read through the admin API's handlers; the
//! changes go to the same API from the browser (`static/admin.js` for what app.js cannot do).

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use crate::access::Guard;
use crate::identity::admin;
use crate::identity::routes::{ApiKeyView, RoleBindingView};
use crate::request::RequestContext;
use crate::web::page::{Layout, PageError, Section, Viewer, render, require};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/console/api-keys", get(api_keys))
        .route("/console/role-bindings", get(role_bindings))
}

// ---- API keys -------------------------------------------------------------------------------

/// One key as the table shows it.
struct KeyRow {
    key: ApiKeyView,
    /// `active`, `expired` or `revoked`.
    state: &'static str,
}

impl KeyRow {
    fn of(key: ApiKeyView, now: OffsetDateTime) -> Self {
        let expired = key
            .expires_at
            .as_deref()
            .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
            .is_some_and(|at| at <= now);
        let state = if key.revoked_at.is_some() {
            "revoked"
        } else if expired {
            "expired"
        } else {
            "active"
        };
        Self { key, state }
    }

    /// The badge's colour class for the state.
    fn badge(&self) -> &'static str {
        match self.state {
            "active" => "active",
            "expired" => "pending",
            _ => "killed",
        }
    }
}

#[derive(Template)]
#[template(path = "console/api_keys.html")]
struct ApiKeysPage {
    layout: Layout,
    keys: Vec<KeyRow>,
}

/// `/console/api-keys`: every key, newest first, and a form for a new one.
async fn api_keys(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
) -> Result<Response, PageError> {
    require(&viewer, Section::ApiKeys)?;
    let guard = Guard::new(&state, &context, &viewer.caller);
    let keys = admin::api_keys(&guard).await?;
    let now = OffsetDateTime::now_utc();
    Ok(render(&ApiKeysPage {
        layout: Layout::new(&viewer, Section::ApiKeys.title(), Section::ApiKeys.path()),
        keys: keys
            .into_iter()
            .map(|key| KeyRow::of(ApiKeyView::from(key), now))
            .collect(),
    }))
}

// ---- role bindings --------------------------------------------------------------------------

/// The roles a binding can grant, with what each lets people do.
const ROLES: [(&str, &str); 4] = [
    (
        "assistant_owner",
        "Assistant owner: edit an assistant (one, or all), read its feedback, switch it off",
    ),
    (
        "it_ops",
        "IT operations: kill switches, escalations, usage, the audit trail",
    ),
    ("auditor", "Auditor: read and verify the audit trail"),
    ("platform_admin", "Platform admin: everything"),
];

/// One binding as the table shows it.
struct BindingRow {
    binding: RoleBindingView,
}

impl BindingRow {
    /// `Group` or `App role`, and its id.
    fn grantee(&self) -> (&'static str, &str) {
        match (&self.binding.binding.group, &self.binding.binding.app_role) {
            (Some(group), _) => ("Group", group),
            (None, Some(role)) => ("App role", role),
            (None, None) => ("Nobody", ""),
        }
    }

    fn confirm(&self) -> String {
        let (kind, id) = self.grantee();
        let again = if self.binding.source == "config" {
            " It comes from the configuration, so it returns when the server restarts."
        } else {
            ""
        };
        format!(
            "Remove the {} role from {} {}?{again}",
            self.binding.binding.role,
            kind.to_lowercase(),
            id
        )
    }
}

#[derive(Template)]
#[template(path = "console/role_bindings.html")]
struct RoleBindingsPage {
    layout: Layout,
    bindings: Vec<BindingRow>,
    roles: &'static [(&'static str, &'static str)],
    /// Offered as suggestions for an `assistant_owner` binding's assistant.
    assistants: Vec<String>,
}

/// `/console/role-bindings`: who holds which role, and a form to grant one.
async fn role_bindings(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
) -> Result<Response, PageError> {
    require(&viewer, Section::RoleBindings)?;
    let guard = Guard::new(&state, &context, &viewer.caller);
    let bindings: Vec<RoleBindingView> = admin::role_bindings(&guard)
        .await?
        .into_iter()
        .map(RoleBindingView::from)
        .collect();
    Ok(render(&RoleBindingsPage {
        layout: Layout::new(
            &viewer,
            Section::RoleBindings.title(),
            Section::RoleBindings.path(),
        ),
        bindings: bindings
            .into_iter()
            .map(|binding| BindingRow { binding })
            .collect(),
        roles: &ROLES,
        // An admin's "owned" assistants are all of them.
        assistants: viewer.access.owned_assistants.clone(),
    }))
}
