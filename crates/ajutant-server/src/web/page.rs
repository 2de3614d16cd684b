//! What every page needs: the signed-in viewer (a browser session; anyone else is sent to sign
//! in), which parts of the console they may see, the layout's data, rendering, and errors as
//! pages rather than problem documents.

use ajutant_core::policy::{Action, Principal, Role, in_owner_group, roles_of, standing};
use askama::Template;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::AppState;
use crate::access::bindings;
use crate::assistants;
use crate::identity::Caller;
use crate::problem::ApiError;

/// A signed-in person looking at a page, with what they may see.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub caller: Caller,
    pub access: Access,
    /// The session's CSRF token, which `app.js` sends with every change.
    pub csrf: String,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let wanted = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |uri| uri.0.clone());
        let sign_in = || {
            let target = wanted
                .path_and_query()
                .map_or("/chat", |p| p.as_str())
                .to_owned();
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", &target)
                .finish();
            Redirect::to(&format!("/auth/login?{query}")).into_response()
        };
        let Ok(caller) = Caller::from_request_parts(parts, state).await else {
            return Err(sign_in());
        };
        // Pages are for browser sessions; a bearer credential has no CSRF token to make
        // changes with.
        let Some(csrf) = caller.csrf_token.clone() else {
            return Err(sign_in());
        };
        let access = Access::of(state, &caller.principal)
            .await
            .map_err(|e| PageError(e).into_response())?;
        Ok(Self {
            caller,
            access,
            csrf,
        })
    }
}

/// The parts of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Assistants,
    Collections,
    Deployments,
    Switches,
    Incidents,
    Feedback,
    Usage,
    Audit,
    ApiKeys,
    RoleBindings,
}

impl Section {
    const ALL: [Section; 10] = [
        Section::Assistants,
        Section::Feedback,
        Section::Collections,
        Section::Deployments,
        Section::Switches,
        Section::Incidents,
        Section::Usage,
        Section::Audit,
        Section::ApiKeys,
        Section::RoleBindings,
    ];

    pub(crate) fn title(self) -> &'static str {
        match self {
            Self::Assistants => "Assistants",
            Self::Collections => "Collections",
            Self::Deployments => "Deployments",
            Self::Switches => "Kill switches",
            Self::Incidents => "Escalations",
            Self::Feedback => "Feedback",
            Self::Usage => "Usage",
            Self::Audit => "Audit trail",
            Self::ApiKeys => "API keys",
            Self::RoleBindings => "Role bindings",
        }
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::Assistants => "/console/assistants",
            Self::Collections => "/console/collections",
            Self::Deployments => "/console/deployments",
            Self::Switches => "/console/switches",
            Self::Incidents => "/console/incidents",
            Self::Feedback => "/console/feedback",
            Self::Usage => "/console/usage",
            Self::Audit => "/console/audit",
            Self::ApiKeys => "/console/api-keys",
            Self::RoleBindings => "/console/role-bindings",
        }
    }
}

/// What the viewer's roles and owner groups let them see. Seeing a section is not being
/// allowed everything in it: each action is still decided by the API it calls.
#[derive(Debug, Clone, Default)]
pub(crate) struct Access {
    roles: Vec<Role>,
    /// Assistants the viewer may edit (owner group, an `assistant_owner` binding, or admin).
    pub owned_assistants: Vec<String>,
    owns_collections: bool,
}

impl Access {
    async fn of(state: &AppState, principal: &Principal) -> Result<Self, ApiError> {
        let bindings = bindings(state).await?;
        let held = roles_of(principal, &bindings);
        let admin = held.iter().any(|(role, _)| *role == Role::PlatformAdmin);
        let mut owned_assistants = Vec::new();
        for assistant in state.store.assistants().await? {
            let edit = Action::EditAssistant(assistant.id.clone());
            let owned = assistants::service::owned(&assistant, &edit);
            if standing(principal, &bindings, owned).manages() {
                owned_assistants.push(assistant.id);
            }
        }
        let owns_collections = admin
            || state
                .store
                .collections()
                .await?
                .iter()
                .any(|c| in_owner_group(principal, c.owner_group.as_deref()));
        Ok(Self {
            roles: held.into_iter().map(|(role, _)| role).collect(),
            owned_assistants,
            owns_collections,
        })
    }

    pub(crate) fn is(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub(crate) fn sees(&self, section: Section) -> bool {
        let admin = self.is(Role::PlatformAdmin);
        let ops = admin || self.is(Role::ItOps);
        match section {
            Section::Assistants | Section::Feedback => admin || !self.owned_assistants.is_empty(),
            Section::Collections => self.owns_collections,
            Section::Deployments | Section::ApiKeys | Section::RoleBindings => admin,
            Section::Switches | Section::Incidents | Section::Usage => ops,
            Section::Audit => ops || self.is(Role::Auditor),
        }
    }

    /// The sections shown in the console's navigation; empty: no console at all.
    pub(crate) fn sections(&self) -> Vec<Section> {
        Section::ALL.into_iter().filter(|s| self.sees(*s)).collect()
    }
}

/// One link of the navigation.
#[derive(Debug, Clone)]
pub(crate) struct NavItem {
    pub title: &'static str,
    pub path: &'static str,
    pub current: bool,
}

/// What the layout (`templates/base.html`) shows around every page.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub title: String,
    pub user: String,
    pub csrf: String,
    /// `chat`, or a console section's path.
    pub current: String,
    pub console: Vec<NavItem>,
    pub version: &'static str,
}

impl Layout {
    pub(crate) fn new(viewer: &Viewer, title: impl Into<String>, current: &str) -> Self {
        let console = viewer
            .access
            .sections()
            .into_iter()
            .map(|s| NavItem {
                title: s.title(),
                path: s.path(),
                current: s.path() == current,
            })
            .collect();
        Self {
            title: title.into(),
            user: viewer.caller.principal.display_name.clone(),
            csrf: viewer.csrf.clone(),
            current: current.to_owned(),
            console,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    pub(crate) fn in_chat(&self) -> bool {
        self.current == "chat"
    }

    pub(crate) fn in_console(&self) -> bool {
        self.current.starts_with("/console")
    }
}

/// Refuses a console section the viewer may not see, with the same 404 as a missing page.
pub(crate) fn require(viewer: &Viewer, section: Section) -> Result<(), PageError> {
    if viewer.access.sees(section) {
        Ok(())
    } else {
        Err(PageError(ApiError::NotFound("no such page".to_owned())))
    }
}

/// A template rendered into a page, never cached (pages show who is signed in).
pub(crate) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = Html(html).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => PageError(ApiError::Internal(format!(
            "a page cannot be rendered: {error}"
        )))
        .into_response(),
    }
}

/// An API error shown as a page.
#[derive(Debug)]
pub(crate) struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<ajutant_store::StoreError> for PageError {
    fn from(error: ajutant_store::StoreError) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        // Internal details stay in the log, as in problem documents.
        let message = if status.is_server_error() {
            tracing::error!(error = %self.0, "a page failed");
            "Something went wrong on our side. Try again in a moment.".to_owned()
        } else {
            self.0.to_string()
        };
        let page = ErrorPage {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            message,
        };
        let html = page.render().unwrap_or_else(|_| message_only(status));
        (status, Html(html)).into_response()
    }
}

fn message_only(status: StatusCode) -> String {
    format!("<!doctype html><title>{status}</title><p>{status}</p>")
}

#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub status: u16,
    pub title: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub(crate) struct SignIn {
    pub return_to: String,
}
