//! How the product's own features (the chat runtime, ingestion, retrieval) call a deployment.
//! They go through the same governance as the OpenAI-compatible API: the platform and
//! deployment switches, the caller's limits, retries, fallbacks, breakers and a usage row per
//! call. What differs is who decides access: an assistant's or collection's scope, checked by
//! the feature, not the deployment's grants (a user may use an assistant without being granted
//! its model for arbitrary calls).

use ajutant_core::config::Capability;
use ajutant_core::model::{ChatRequest, ChatStream, EmbeddingsRequest, ProviderError};
use ajutant_core::policy::Principal;
use axum::http::StatusCode;

use super::{CallMeter, Gateway, resilience};
use crate::AppState;

/// Why a feature's model call did not happen or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RuntimeCallError {
    /// Switched off, over a limit, or no such deployment: the message is for the user.
    #[error("{message}")]
    Refused {
        status: StatusCode,
        message: String,
        retry_after: Option<u64>,
    },
    #[error("the model failed: {0}")]
    Upstream(#[from] ProviderError),
}

/// Where a call's usage row points back to.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallIds {
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
}

/// Who calls which deployment, for a feature's model call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub state: &'a AppState,
    pub principal: &'a Principal,
    pub deployment: &'a str,
    pub ids: &'a CallIds,
}

/// An opened stream and what it must leave behind when it ends.
pub(crate) struct OpenedStream {
    pub served_by: String,
    pub stream: ChatStream,
    pub meter: CallMeter,
}

impl Gateway {
    async fn admitted(
        &self,
        call: Call<'_>,
        capability: Capability,
        limited: bool,
    ) -> Result<Vec<std::sync::Arc<super::Deployment>>, RuntimeCallError> {
        let Call {
            state,
            principal,
            deployment,
            ..
        } = call;
        let found = self
            .deployments
            .current()
            .get(deployment)
            .cloned()
            .filter(|d| d.offers(capability))
            .ok_or_else(|| RuntimeCallError::Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "the deployment `{deployment}` does not exist or does not offer {}",
                    match capability {
                        Capability::Chat => "chat",
                        Capability::Embeddings => "embeddings",
                    }
                ),
                retry_after: None,
            })?;
        let refused = if limited {
            self.admit(state, &found, principal).await.err()
        } else {
            self.switched_off(state, &found)
        };
        if let Some(e) = refused {
            return Err(RuntimeCallError::Refused {
                status: e.status,
                message: e.message,
                retry_after: e.retry_after,
            });
        }
        Ok(self.chain(found, capability, &state.switches.current(), principal))
    }

    /// Opens a streamed chat call for `principal`, whose limits apply.
    pub(crate) async fn open_chat_stream(
        &self,
        call: Call<'_>,
        mut request: ChatRequest,
    ) -> Result<OpenedStream, RuntimeCallError> {
        let chain = self.admitted(call, Capability::Chat, true).await?;
        request.max_tokens = self.capped(request.max_tokens);
        let mut meter = CallMeter::with_ids(
            self,
            call.principal,
            call.deployment,
            "chat",
            call.ids.clone(),
        );
        match resilience::chat_stream(&chain, request).await {
            Ok((served_by, stream)) => {
                meter.served_by = Some(served_by.clone());
                Ok(OpenedStream {
                    served_by,
                    stream,
                    meter,
                })
            }
            Err(error) => {
                meter.finish("failed");
                Err(error.into())
            }
        }
    }

    /// Embeds `texts` with `deployment`. `limited`: whether `principal`'s limits apply (a
    /// person's query: yes; the ingestion worker: no, it works for the platform).
    pub(crate) async fn embed_texts(
        &self,
        call: Call<'_>,
        texts: Vec<String>,
        limited: bool,
    ) -> Result<Vec<Vec<f32>>, RuntimeCallError> {
        let chain = self.admitted(call, Capability::Embeddings, limited).await?;
        let count = texts.len();
        let mut meter = CallMeter::with_ids(
            self,
            call.principal,
            call.deployment,
            "embeddings",
            call.ids.clone(),
        );
        let request = EmbeddingsRequest {
            model: String::new(),
            input: texts,
            dimensions: None,
        };
        match resilience::embed(&chain, request).await {
            Ok((served_by, answer)) => {
                meter.served_by = Some(served_by);
                meter.usage = answer.usage;
                if answer.vectors.len() != count {
                    meter.finish("failed");
                    return Err(RuntimeCallError::Upstream(ProviderError::Malformed(
                        format!("asked for {count} embeddings, got {}", answer.vectors.len()),
                    )));
                }
                meter.finish("ok");
                Ok(answer.vectors)
            }
            Err(error) => {
                meter.finish("failed");
                Err(error.into())
            }
        }
    }

    /// Whether `deployment` exists now and offers `capability`.
    pub(crate) fn offers(&self, deployment: &str, capability: Capability) -> bool {
        self.deployments
            .current()
            .get(deployment)
            .is_some_and(|d| d.offers(capability))
    }

    /// The names of the deployments `principal` may call, in the registry's order.
    pub(crate) fn callable_by(&self, principal: &Principal) -> Vec<String> {
        self.deployments
            .current()
            .in_order()
            .filter(|d| d.permits(principal))
            .map(|d| d.config.name.clone())
            .collect()
    }

    /// Why `editor` may not make `deployment` serve everyone in `scope` for `capability`, if
    /// so: it must exist and offer it, be granted to the editor, and to all of the scope (an
    /// owner hands out nothing they or their users may not call).
    pub(crate) fn hand_out_problem(
        &self,
        deployment: &str,
        capability: Capability,
        editor: &Principal,
        scope: &ajutant_core::policy::AccessScope,
    ) -> Option<String> {
        let offering = match capability {
            Capability::Chat => "chat",
            Capability::Embeddings => "embeddings",
        };
        let registry = self.deployments.current();
        let Some(found) = registry.get(deployment).filter(|d| d.offers(capability)) else {
            return Some(format!(
                "deployment `{deployment}` is not a deployment offering {offering}"
            ));
        };
        if !found.permits(editor) {
            return Some(format!(
                "deployment `{deployment}` is not granted to you; pick one you may call"
            ));
        }
        if !scope.covered_by(&found.config.groups) {
            return Some(format!(
                "deployment `{deployment}` is not granted to everyone it would serve; pick one \
                 granted to all of the access groups"
            ));
        }
        None
    }
}
