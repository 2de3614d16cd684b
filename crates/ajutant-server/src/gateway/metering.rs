//! What a call leaves behind: its usage row (tokens, cost, latency), its tokens charged against
//! the caller's limits, and its audit records (the call, its answer, or its refusal).

use std::time::Instant;

use ajutant_core::audit::{AuditAction, AuditEvent, Outcome};
use ajutant_core::model::{ToolCall, Usage};
use ajutant_core::policy::Principal;
use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::wire::OpenAiError;
use super::{CallOrigin, Gateway, runtime};
use crate::AppState;
use crate::request::RequestContext;
use ajutant_store::UsageRecord;

/// What a call leaves behind when it ends, however it ends: a usage record (tokens, cost,
/// latency) and its tokens charged against the caller's limits. Dropped unfinished (the caller
/// hung up mid-stream), it records the call as cancelled with the tokens seen so far.
pub(crate) struct CallMeter {
    gateway: Gateway,
    principal: Principal,
    deployment: String,
    operation: &'static str,
    started: Instant,
    request_id: Option<String>,
    trace_id: Option<String>,
    pub(super) served_by: Option<String>,
    pub(super) usage: Usage,
    done: bool,
}

impl CallMeter {
    pub(super) fn new(
        state: &AppState,
        context: &RequestContext,
        principal: &Principal,
        deployment: &str,
        operation: &'static str,
    ) -> Self {
        Self::with_ids(
            &state.gateway,
            principal,
            deployment,
            operation,
            runtime::CallIds {
                request_id: Some(context.request_id.clone()),
                trace_id: Some(context.trace_id.clone()),
            },
        )
    }

    pub(super) fn with_ids(
        gateway: &Gateway,
        principal: &Principal,
        deployment: &str,
        operation: &'static str,
        ids: runtime::CallIds,
    ) -> Self {
        Self {
            gateway: gateway.clone(),
            principal: principal.clone(),
            deployment: deployment.to_owned(),
            operation,
            started: Instant::now(),
            request_id: ids.request_id,
            trace_id: ids.trace_id,
            served_by: None,
            usage: Usage::default(),
            done: false,
        }
    }

    /// Counts tokens seen on a stream, so a call cut short still records what it used.
    pub(crate) fn add_usage(&mut self, usage: Usage) {
        self.usage = usage;
    }

    /// Ends the record: `ok`, `failed` or `cancelled`.
    pub(crate) fn end(&mut self, outcome: &'static str) {
        self.finish(outcome);
    }

    pub(super) fn finish(&mut self, outcome: &'static str) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let served_by = self
            .served_by
            .clone()
            .unwrap_or_else(|| self.deployment.clone());
        let cost = self
            .gateway
            .deployments
            .current()
            .get(&served_by)
            .map_or(0.0, |d| {
                f64::from(self.usage.input_tokens) / 1000.0 * d.config.price_input_per_1k
                    + f64::from(self.usage.output_tokens) / 1000.0 * d.config.price_output_per_1k
            });
        let tokens = u64::from(self.usage.input_tokens) + u64::from(self.usage.output_tokens);
        self.gateway.limiter.charge(&self.principal, tokens);
        self.gateway.usage.record(UsageRecord {
            id: uuid::Uuid::now_v7(),
            occurred_at: OffsetDateTime::now_utc(),
            principal_id: self.principal.id.clone(),
            principal_name: self.principal.display_name.clone(),
            groups: self.principal.groups.iter().cloned().collect(),
            deployment: self.deployment.clone(),
            served_by,
            operation: self.operation,
            outcome,
            input_tokens: i64::from(self.usage.input_tokens),
            output_tokens: i64::from(self.usage.output_tokens),
            cost,
            latency_ms: i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX),
            request_id: self.request_id.clone(),
            trace_id: self.trace_id.clone(),
        });
    }
}

impl Drop for CallMeter {
    fn drop(&mut self) {
        self.finish("cancelled");
    }
}

/// The audit record of an accepted call. Its durable append starts before the upstream call
/// and is awaited after, so the two overlap instead of adding up.
/// `prompt` is the request's messages, only for deployments that opt into content auditing.
pub(super) fn call_event(
    origin: CallOrigin<'_>,
    action: AuditAction,
    deployment: &str,
    stream: bool,
    prompt: Option<Value>,
) -> AuditEvent {
    let principal = &origin.caller.principal;
    let mut details = json!({ "stream": stream, "credential": origin.caller.via });
    if origin.caller.via == crate::identity::AuthMethod::ApiKey {
        details["api_key"] = json!(principal.subject);
    }
    if let Some(prompt) = prompt {
        details["prompt"] = prompt;
    }
    AuditEvent::new(
        principal.actor(),
        action,
        format!("deployment/{deployment}"),
        Outcome::Allowed,
    )
    .with_origin(origin.context.origin())
    .with_details(details)
}

/// The messages as the audit trail keeps them: role and text.
pub(super) fn prompt_for_audit(messages: &[ajutant_core::model::ChatMessage]) -> Value {
    Value::Array(
        messages
            .iter()
            .map(|m| {
                json!({
                    "role": m.role.as_str(),
                    "content": m.content.as_ref().map(ajutant_core::model::Content::text),
                })
            })
            .collect(),
    )
}

/// The answer's record, for deployments that opt into content auditing.
pub(super) fn answer_event(
    origin: &AnswerAudit,
    content: &str,
    tool_calls: &[ToolCall],
) -> AuditEvent {
    let calls: Vec<Value> = tool_calls
        .iter()
        .map(|c| json!({ "name": c.name, "arguments": c.arguments }))
        .collect();
    AuditEvent::new(
        origin.actor.clone(),
        AuditAction::ModelChatAnswer,
        format!("deployment/{}", origin.deployment),
        Outcome::Allowed,
    )
    .with_origin(origin.origin.clone())
    .with_details(json!({ "answer": content, "tool_calls": calls }))
}

/// Where an answer's audit record goes, for deployments with `audit_content`.
#[derive(Clone)]
pub(super) struct AnswerAudit {
    pub(super) audit: ajutant_store::AuditLog,
    pub(super) actor: ajutant_core::audit::Actor,
    pub(super) origin: ajutant_core::audit::RequestOrigin,
    pub(super) deployment: String,
}

/// Records a refused call (no such deployment or not granted, a limit, a switch) and returns
/// the error to send. Refusals are security-relevant: they show who tried what.
pub(super) async fn refused(
    state: &AppState,
    origin: CallOrigin<'_>,
    action: AuditAction,
    deployment: &str,
    error: OpenAiError,
) -> OpenAiError {
    let CallOrigin { context, caller } = origin;
    let event = caller
        .event(
            context,
            action,
            format!("deployment/{deployment}"),
            Outcome::Denied,
        )
        .with_details(json!({ "status": error.status.as_u16(), "reason": error.message }));
    match state.audit.append(event).await {
        Ok(_) => error,
        Err(failure) => audit_failed(failure),
    }
}

/// A call that cannot be audited is not made (or not answered): 503 with `Retry-After` when
/// the database is out of reach, else a 500.
pub(super) fn audit_failed(error: ajutant_store::AuditError) -> OpenAiError {
    if error.is_unavailable() {
        tracing::warn!(%error, "the database is unavailable; a model call is refused");
        return database_unavailable();
    }
    tracing::error!(%error, "cannot write the audit trail for a model call");
    OpenAiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal error",
    )
}

/// OpenAI's shape of "the database is out of reach": the SDKs retry a 503 after `Retry-After`.
pub(super) fn database_unavailable() -> OpenAiError {
    OpenAiError {
        retry_after: Some(crate::problem::DATABASE_RETRY_AFTER_SECS),
        ..OpenAiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the database is unavailable; try again in a few seconds",
        )
        .with_code(DATABASE_UNAVAILABLE)
    }
}

/// The error code of [`database_unavailable`].
pub(super) const DATABASE_UNAVAILABLE: &str = "database_unavailable";
