//! After a turn's answer, however it ended: the answer stored with the sources it cites, its
//! usage, latency, assistant version, deployment and trace id, and the turn audited (ids and
//! counts, never content).

use std::time::Instant;

use ajutant_core::audit::{AuditEvent, Outcome};
use ajutant_core::audit_action::AuditAction;
use ajutant_core::chat::{MessageRole, MessageStatus};
use ajutant_core::model::Usage;
use ajutant_store::{Conversation, NewMessage};
use serde_json::json;
use time::OffsetDateTime;

use super::Citation;
use crate::AppState;
use crate::chat::prompt;
use crate::grounding::retrieval::Mode;
use crate::identity::Caller;
use crate::problem::ApiError;
use crate::request::RequestContext;

/// An answer as the stream left it.
pub(super) struct Answer {
    pub text: String,
    pub usage: Usage,
    pub served_by: Option<String>,
    pub status: MessageStatus,
    pub error: Option<String>,
}

/// What a turn needs to store and audit its answer, however the stream ends.
pub(super) struct Turn {
    pub state: AppState,
    pub conversation: Conversation,
    pub assistant_id: String,
    pub version: i64,
    pub deployment: String,
    pub sources: Vec<Citation>,
    pub mode: Option<Mode>,
    pub caller: Caller,
    pub context: RequestContext,
    pub started: Instant,
}

impl Turn {
    /// Stores the answer (whatever there is of it) and audits the turn.
    pub(super) async fn finish(&self, answer: Answer) -> Result<ajutant_store::Message, ApiError> {
        let Answer {
            text,
            usage,
            served_by,
            status,
            error,
        } = answer;
        let cited: Vec<&Citation> = prompt::cited(&text, self.sources.len())
            .into_iter()
            .filter_map(|n| self.sources.get(n - 1))
            .collect();
        let citations =
            serde_json::to_string(&cited).map_err(|e| ApiError::Internal(e.to_string()))?;
        let latency = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let message = self
            .state
            .store
            .append_message(
                &self.conversation.id,
                &NewMessage {
                    role: MessageRole::Assistant,
                    content: text,
                    status,
                    error: error.clone(),
                    citations,
                    assistant_version: Some(self.version),
                    deployment: Some(served_by.unwrap_or_else(|| self.deployment.clone())),
                    input_tokens: Some(i64::from(usage.input_tokens)),
                    output_tokens: Some(i64::from(usage.output_tokens)),
                    latency_ms: Some(latency),
                    trace_id: Some(self.context.trace_id.clone()),
                    request_id: Some(self.context.request_id.clone()),
                },
                OffsetDateTime::now_utc(),
            )
            .await?;
        let outcome = if status == MessageStatus::Failed {
            Outcome::Failed
        } else {
            Outcome::Allowed
        };
        self.state
            .record(
                AuditEvent::new(
                    self.caller.principal.actor(),
                    AuditAction::ChatTurn,
                    format!("conversation/{}", self.conversation.id),
                    outcome,
                )
                .with_origin(self.context.origin())
                .with_details(json!({
                    "assistant": self.assistant_id,
                    "assistant_version": self.version,
                    "deployment": message.deployment,
                    "message": message.id,
                    "status": status.as_str(),
                    "error": error,
                    "retrieval": self.mode,
                    "retrieved": self.sources.len(),
                    "cited": cited.iter().map(|c| c.chunk_id).collect::<Vec<_>>(),
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "latency_ms": latency,
                })),
            )
            .await?;
        Ok(message)
    }
}
