//! The one access guard. Every service asks it "may this caller do this, see this, manage
//! this?": it decides with `ajutant_core::policy` and the role bindings in force (read at most
//! once per request, so a binding changed on any instance applies to the next request), writes the
//! decision to the audit trail, and turns every refusal into the same 404 an absent resource
//! gets, so a caller learns nothing about what they may not see.
//!
//! Lists and views ask without recording ([`Guard::standing`]): a row shown or left out of a
//! list is not an access of its own.

use ajutant_core::audit::{AuditEvent, Outcome};
use ajutant_core::audit_action::AuditAction;
use ajutant_core::policy::{Action, Decision, Grant, Owned, Role, RoleBinding, Standing, decide};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::AppState;
use crate::identity::Caller;
use crate::problem::ApiError;
use crate::request::RequestContext;

/// One caller's request. The role bindings in force are read at the first decision that
/// needs them and kept for the rest of the request; requests that only check ownership (a
/// conversation, a turn) never read them.
pub(crate) struct Guard<'a> {
    pub state: &'a AppState,
    pub context: &'a RequestContext,
    pub caller: &'a Caller,
    bindings: OnceCell<Vec<RoleBinding>>,
}

/// The role bindings in force now.
pub(crate) async fn bindings(state: &AppState) -> Result<Vec<RoleBinding>, ApiError> {
    Ok(state
        .store
        .role_bindings()
        .await?
        .into_iter()
        .map(|stored| stored.binding)
        .collect())
}

impl<'a> Guard<'a> {
    pub(crate) fn new(
        state: &'a AppState,
        context: &'a RequestContext,
        caller: &'a Caller,
    ) -> Self {
        Self {
            state,
            context,
            caller,
            bindings: OnceCell::new(),
        }
    }

    async fn bindings(&self) -> Result<&[RoleBinding], ApiError> {
        self.bindings
            .get_or_try_init(|| bindings(self.state))
            .await
            .map(Vec::as_slice)
    }

    /// The 404 for this request's path: what a missing resource and a hidden one both answer.
    pub(crate) fn not_found(&self) -> ApiError {
        ApiError::no_resource(&self.context.path)
    }

    /// Where the caller stands towards an owned resource, recording nothing.
    pub(crate) async fn standing(&self, owned: Owned<'_>) -> Result<Standing, ApiError> {
        let bindings = self.bindings().await?;
        Ok(ajutant_core::policy::standing(
            &self.caller.principal,
            bindings,
            owned,
        ))
    }

    /// Whether the caller's roles grant `action`, recording nothing: for what a caller is
    /// offered to choose from; the choice itself is decided (and audited) when made.
    pub(crate) async fn allows(&self, action: &Action) -> Result<bool, ApiError> {
        Ok(matches!(
            decide(&self.caller.principal, self.bindings().await?, action),
            Decision::Allowed(_)
        ))
    }

    /// Allows `action` on `resource` (audited either way) and returns the role that allowed
    /// it; a denial is the 404.
    pub(crate) async fn require(&self, action: &Action, resource: &str) -> Result<Role, ApiError> {
        match decide(&self.caller.principal, self.bindings().await?, action) {
            Decision::Allowed(role) => {
                self.decision(action, resource, Outcome::Allowed, json!({ "role": role }))
                    .await?;
                Ok(role)
            }
            Decision::Denied => {
                self.decision(action, resource, Outcome::Denied, json!({}))
                    .await?;
                Err(self.not_found())
            }
        }
    }

    /// Allows managing an owned resource (its owner group, else the roles for `owned.manage`),
    /// audited either way; a denial is the 404.
    pub(crate) async fn manage(&self, owned: Owned<'_>, resource: &str) -> Result<Grant, ApiError> {
        let bindings = self.bindings().await?;
        match ajutant_core::policy::manage_grant(&self.caller.principal, bindings, owned) {
            Some(grant) => {
                let details = match &grant {
                    Grant::OwnerGroup(group) => json!({ "role": "owner_group", "group": group }),
                    Grant::Role(role) => json!({ "role": role }),
                };
                self.decision(owned.manage, resource, Outcome::Allowed, details)
                    .await?;
                Ok(grant)
            }
            None => {
                self.decision(owned.manage, resource, Outcome::Denied, json!({}))
                    .await?;
                Err(self.not_found())
            }
        }
    }

    /// The caller's standing when they may see the resource; otherwise [`Guard::hidden`].
    pub(crate) async fn visible(
        &self,
        owned: Owned<'_>,
        resource: &str,
    ) -> Result<Standing, ApiError> {
        let standing = self.standing(owned).await?;
        if standing.sees() {
            Ok(standing)
        } else {
            Err(self.hidden(resource).await)
        }
    }

    /// The 404 for a resource that exists but that the caller may not see, recorded
    /// (`access.hidden`): probing for what one may not see is worth knowing about.
    pub(crate) async fn hidden(&self, resource: &str) -> ApiError {
        let recorded = self
            .record(
                AuditAction::AccessHidden,
                resource,
                Outcome::Denied,
                json!({ "path": self.context.path }),
            )
            .await;
        match recorded {
            Ok(()) => self.not_found(),
            Err(error) => error,
        }
    }

    /// Appends what the caller did to the audit trail; a failure fails the request, since an
    /// action that cannot be recorded must not look successful.
    pub(crate) async fn record(
        &self,
        action: AuditAction,
        resource: &str,
        outcome: Outcome,
        details: Value,
    ) -> Result<(), ApiError> {
        self.state
            .record(self.event(action, resource, outcome).with_details(details))
            .await
    }

    /// An audit event by this caller for this request, to complete and record.
    fn event(&self, action: AuditAction, resource: &str, outcome: Outcome) -> AuditEvent {
        self.caller.event(self.context, action, resource, outcome)
    }

    async fn decision(
        &self,
        action: &Action,
        resource: &str,
        outcome: Outcome,
        details: Value,
    ) -> Result<(), ApiError> {
        self.record(action.audit_action(), resource, outcome, details)
            .await
    }
}
