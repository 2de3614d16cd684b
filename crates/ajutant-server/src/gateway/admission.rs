//! Whether a call may run: the deployment exists and is granted, offers what is asked, is not
//! switched off, and the caller's limits and budgets allow it. A refusal is audited.

use ajutant_core::audit::AuditAction;
use std::sync::Arc;

use ajutant_core::config::Capability;
use ajutant_core::policy::Principal;
use axum::http::StatusCode;

use super::limits::AdmitError;
use super::metering::refused;
use super::wire::OpenAiError;
use super::{CallOrigin, Deployment, Gateway};
use crate::AppState;
use crate::ops::switches::InForce;

impl Gateway {
    /// Why a call to `deployment` may not run now, if it may not: the platform switched off
    /// (configuration or kill switch), or the deployment.
    pub(super) fn switched_off(
        &self,
        state: &AppState,
        deployment: &Deployment,
    ) -> Option<OpenAiError> {
        let unavailable = |message: String| {
            OpenAiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                message,
            )
        };
        if !self.settings.enabled {
            return Some(unavailable(
                "model calls are switched off platform-wide".to_owned(),
            ));
        }
        if let Some(disabled) = state
            .switches
            .current()
            .blocks(None, Some(&deployment.config.name))
        {
            return Some(unavailable(disabled.message).with_code(disabled.code));
        }
        if !deployment.config.enabled {
            return Some(unavailable(format!(
                "the deployment `{}` is switched off",
                deployment.config.name
            )));
        }
        None
    }

    /// The checks every call passes before it reaches a provider: the switches, then the
    /// caller's limits and budgets.
    pub(super) async fn admit(
        &self,
        state: &AppState,
        deployment: &Deployment,
        principal: &Principal,
    ) -> Result<(), OpenAiError> {
        if let Some(refused) = self.switched_off(state, deployment) {
            return Err(refused);
        }
        match self.limiter.admit(&state.store, principal).await {
            Ok(()) => Ok(()),
            Err(AdmitError::Exceeded(exceeded)) => Err(OpenAiError {
                retry_after: Some(exceeded.retry_after.as_secs().max(1)),
                code: Some("rate_limit_exceeded"),
                ..OpenAiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    exceeded.what,
                )
            }),
            Err(AdmitError::Store(error)) if error.is_unavailable() => {
                tracing::warn!(%error, "the database is unavailable; a model call is refused");
                Err(super::metering::database_unavailable())
            }
            Err(AdmitError::Store(error)) => {
                tracing::error!(%error, "cannot read usage for a budget");
                Err(OpenAiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error",
                ))
            }
        }
    }

    /// The deployment a call may go to, after every check: it exists and the caller is granted
    /// it, it offers `capability`, it and the platform are switched on, and the caller's limits
    /// allow another call. A refusal is audited.
    pub(super) async fn open(
        &self,
        state: &AppState,
        origin: CallOrigin<'_>,
        name: &str,
        capability: Capability,
    ) -> Result<Arc<Deployment>, OpenAiError> {
        let caller = origin.caller;
        let action = match capability {
            Capability::Chat => AuditAction::ModelChat,
            Capability::Embeddings => AuditAction::ModelEmbeddings,
        };
        let checked = async {
            let deployment = self.granted(name, &caller.principal)?;
            if !deployment.offers(capability) {
                let what = match capability {
                    Capability::Chat => "chat completions",
                    Capability::Embeddings => "embeddings",
                };
                return Err(OpenAiError::invalid(
                    format!("`{name}` does not offer {what}"),
                    Some("model"),
                ));
            }
            self.admit(state, &deployment, &caller.principal).await?;
            Ok(deployment)
        };
        match checked.await {
            Ok(deployment) => Ok(deployment),
            // Recording the refusal would wait for the same database once more; an outage is
            // no one's attempt at anything.
            Err(error) if error.code == Some(super::metering::DATABASE_UNAVAILABLE) => Err(error),
            Err(error) => Err(refused(state, origin, action, name, error).await),
        }
    }

    /// The output tokens a call may use: what it asked, within the cap.
    pub(super) fn capped(&self, asked: Option<u32>) -> Option<u32> {
        match self.settings.max_tokens_cap {
            0 => asked,
            cap => Some(asked.map_or(cap, |asked| asked.min(cap))),
        }
    }

    /// The deployment a caller named, if it exists and they may use it; otherwise the same
    /// "does not exist" either way, so names do not leak.
    fn granted(&self, name: &str, principal: &Principal) -> Result<Arc<Deployment>, OpenAiError> {
        self.deployments
            .current()
            .get(name)
            .filter(|d| d.permits(principal))
            .cloned()
            .ok_or_else(|| {
                OpenAiError::new(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    format!("The model `{name}` does not exist or you do not have access to it."),
                )
                .with_code("model_not_found")
            })
    }

    /// `first`, then its fallbacks in order: those that exist, offer `capability`, are granted
    /// to `principal`, are enabled and are not switched off. A fallback is a deployment like
    /// any: reaching it through another's failure must not skip what calling it directly checks.
    pub(super) fn chain(
        &self,
        first: Arc<Deployment>,
        capability: Capability,
        switches: &InForce,
        principal: &Principal,
    ) -> Vec<Arc<Deployment>> {
        let registry = self.deployments.current();
        let mut chain = vec![Arc::clone(&first)];
        for name in &first.config.fallbacks {
            if let Some(next) = registry.get(name)
                && next.offers(capability)
                && next.permits(principal)
                && next.config.enabled
                && switches.deployment(name).is_none()
                && !chain.iter().any(|d| d.config.name == *name)
            {
                chain.push(Arc::clone(next));
            }
        }
        chain
    }
}
