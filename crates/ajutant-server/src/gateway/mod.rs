//! The OpenAI-compatible gateway: other tools in the organisation call `/v1/chat/completions`,
//! `/v1/embeddings` and `/v1/models` here instead of calling a model vendor, so the
//! organisation's identity, grants and audit apply to code that is not ours. Callers name a
//! deployment (a logical model); `resilience.rs` retries, falls back and breaks circuits;
//! `wire.rs` speaks OpenAI's format at the edge.

pub(crate) mod admin;
mod limits;
mod registry;
pub(crate) mod reports;
mod resilience;
pub(crate) mod runtime;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::Instant;

use ajutant_core::audit::{AuditEvent, Outcome};
use ajutant_core::config::{Capability, DeploymentConfig, GatewayConfig};
use ajutant_core::model::{ChatEvent, ModelProvider, ProviderError, ToolCall, Usage};
use ajutant_core::policy::Principal;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::AppState;
use crate::identity::Caller;
use crate::ops::switches::{Disabled, InForce};
use crate::problem::ApiError;
use crate::request::RequestContext;
use ajutant_store::{UsageLog, UsageRecord};
use limits::{AdmitError, Limiter};
use resilience::Breaker;
use wire::OpenAiError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Build(#[from] ajutant_providers::BuildError),
    #[error("cannot load the stored deployments: {0}")]
    Reload(String),
}

/// A deployment ready to serve: its configuration, its adapter and its circuit breaker.
pub(crate) struct Deployment {
    pub config: DeploymentConfig,
    provider: Arc<dyn ModelProvider>,
    breaker: Breaker,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("name", &self.config.name)
            .field("provider", &self.config.provider)
            .finish_non_exhaustive()
    }
}

impl Deployment {
    /// Whether `principal` may call it: anyone signed in when it names no groups, else
    /// members of one of them.
    fn permits(&self, principal: &Principal) -> bool {
        self.config.groups.is_empty()
            || self
                .config
                .groups
                .iter()
                .any(|g| principal.groups.contains(g))
    }

    fn offers(&self, capability: Capability) -> bool {
        self.config.capabilities.contains(&capability)
    }
}

/// The deployments in force, with what governs calls to them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    deployments: Arc<registry::Deployments>,
    settings: Arc<GatewayConfig>,
    limiter: Arc<Limiter>,
    usage: UsageLog,
}

impl Gateway {
    pub fn new(
        configs: &[DeploymentConfig],
        settings: &GatewayConfig,
        usage: UsageLog,
    ) -> Result<Self, GatewayError> {
        Ok(Self {
            deployments: Arc::new(registry::Deployments::new(configs)?),
            settings: Arc::new(settings.clone()),
            limiter: Arc::new(Limiter::new(settings)),
            usage,
        })
    }

    /// Loads the deployments stored through the admin API over the configured ones.
    pub async fn load_stored(&self, store: &ajutant_store::Store) -> Result<(), GatewayError> {
        self.deployments
            .reload(store)
            .await
            .map_err(|e| GatewayError::Reload(e.to_string()))
    }

    /// Reloads whenever another instance changes the deployments, until `stop` resolves.
    pub async fn watch(&self, store: ajutant_store::Store, stop: Arc<tokio::sync::Notify>) {
        loop {
            tokio::select! {
                () = stop.notified() => return,
                () = tokio::time::sleep(registry::WATCH_EVERY) => {}
            }
            if let Err(error) = self.deployments.reload_if_changed(&store).await {
                tracing::warn!(%error, "cannot check for changed deployments");
            }
        }
    }

    /// Why a call to `deployment` may not run now, if it may not: the platform switched off
    /// (configuration or kill switch), or the deployment.
    fn switched_off(&self, state: &AppState, deployment: &Deployment) -> Option<OpenAiError> {
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
    async fn admit(
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
    async fn open(
        &self,
        state: &AppState,
        origin: CallOrigin<'_>,
        name: &str,
        capability: Capability,
    ) -> Result<Arc<Deployment>, OpenAiError> {
        let caller = origin.caller;
        let action = match capability {
            Capability::Chat => "model.chat",
            Capability::Embeddings => "model.embeddings",
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
            Err(error) => Err(refused(state, origin, action, name, error).await),
        }
    }

    /// The output tokens a call may use: what it asked, within the cap.
    fn capped(&self, asked: Option<u32>) -> Option<u32> {
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

    /// Whether a deployment of this name exists (configured or stored).
    pub(crate) fn has_deployment(&self, name: &str) -> bool {
        self.deployments.current().get(name).is_some()
    }

    /// `first`, then its fallbacks in order (those that exist, offer `capability` and are
    /// not switched off).
    fn chain(
        &self,
        first: Arc<Deployment>,
        capability: Capability,
        switches: &InForce,
    ) -> Vec<Arc<Deployment>> {
        let registry = self.deployments.current();
        let mut chain = vec![Arc::clone(&first)];
        for name in &first.config.fallbacks {
            if let Some(next) = registry.get(name)
                && next.offers(capability)
                && switches.deployment(name).is_none()
                && !chain.iter().any(|d| d.config.name == *name)
            {
                chain.push(Arc::clone(next));
            }
        }
        chain
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        // Their audit record of the call names the caller, so a key's use is recorded once.
        .route_layer(axum::Extension(crate::identity::RecordsKeyUse))
        .route("/v1/models", get(models))
}

/// Authentication failures in OpenAI's shape, so the SDKs raise `AuthenticationError`.
fn caller_or_error(caller: Result<Caller, ApiError>) -> Result<Caller, OpenAiError> {
    caller.map_err(|error| match error {
        ApiError::Unauthorized(message) => {
            OpenAiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
                .with_code("invalid_api_key")
        }
        ApiError::Unavailable(message) => {
            OpenAiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
        }
        other => {
            tracing::error!(error = %other, "authentication failed");
            OpenAiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    })
}

fn parse_body(body: &Bytes) -> Result<Value, OpenAiError> {
    serde_json::from_slice(body)
        .map_err(|e| OpenAiError::invalid(format!("the body is not valid JSON: {e}"), None))
}

/// What an upstream failure becomes for the caller: a rate limit stays a 429 (with the
/// upstream's `Retry-After`), a refusal of the request stays a 400, anything else is a 502.
fn upstream_error(error: &ProviderError) -> OpenAiError {
    match error {
        ProviderError::Status {
            status: 429,
            retry_after,
            message,
        } => OpenAiError {
            retry_after: retry_after.map(|d| d.as_secs().max(1)),
            ..OpenAiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!("the model provider is rate limiting: {message}"),
            )
        },
        ProviderError::Status {
            status, message, ..
        } if (400..500).contains(status) => OpenAiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("the model provider refused the request: {message}"),
        ),
        ProviderError::Unsupported(message) => OpenAiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message.clone(),
        ),
        other => OpenAiError::new(StatusCode::BAD_GATEWAY, "upstream_error", other.to_string()),
    }
}

pub(crate) async fn models(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
) -> Result<Json<Value>, OpenAiError> {
    let caller = caller_or_error(caller)?;
    let gateway = &state.gateway;
    let data: Vec<Value> = gateway
        .deployments
        .current()
        .in_order()
        .filter(|d| d.permits(&caller.principal))
        .map(|d| json!({ "id": d.config.name, "object": "model", "created": 0, "owned_by": "ajutant" }))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

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
    served_by: Option<String>,
    usage: Usage,
    done: bool,
}

impl CallMeter {
    fn new(
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

    fn with_ids(
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

    fn finish(&mut self, outcome: &'static str) {
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
fn call_event(
    origin: CallOrigin<'_>,
    action: &str,
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
fn prompt_for_audit(messages: &[ajutant_core::model::ChatMessage]) -> Value {
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
fn answer_event(origin: &AnswerAudit, content: &str, tool_calls: &[ToolCall]) -> AuditEvent {
    let calls: Vec<Value> = tool_calls
        .iter()
        .map(|c| json!({ "name": c.name, "arguments": c.arguments }))
        .collect();
    AuditEvent::new(
        origin.actor.clone(),
        "model.chat.answer",
        format!("deployment/{}", origin.deployment),
        Outcome::Allowed,
    )
    .with_origin(origin.origin.clone())
    .with_details(json!({ "answer": content, "tool_calls": calls }))
}

/// Where an answer's audit record goes, for deployments with `audit_content`.
#[derive(Clone)]
struct AnswerAudit {
    audit: ajutant_store::AuditLog,
    actor: ajutant_core::audit::Actor,
    origin: ajutant_core::audit::RequestOrigin,
    deployment: String,
}

/// Who is calling, and the request they called in.
#[derive(Clone, Copy)]
struct CallOrigin<'a> {
    context: &'a RequestContext,
    caller: &'a Caller,
}

/// Records a refused call (no such deployment or not granted, a limit, a switch) and returns
/// the error to send. Refusals are security-relevant: they show who tried what.
async fn refused(
    state: &AppState,
    origin: CallOrigin<'_>,
    action: &str,
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

fn audit_failed(error: impl std::fmt::Display) -> OpenAiError {
    tracing::error!(%error, "cannot write the audit trail for a model call");
    OpenAiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal error",
    )
}

/// The span a model call runs in, with the OpenTelemetry GenAI attributes.
fn model_span(operation: &str, deployment: &Deployment) -> tracing::Span {
    tracing::info_span!(
        "gen_ai",
        otel.name = %format!("{operation} {}", deployment.config.name),
        otel.kind = "client",
        gen_ai.operation.name = operation,
        gen_ai.system = deployment.provider.system(),
        gen_ai.request.model = %deployment.config.model,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.response.finish_reasons = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        ajutant.deployment = %deployment.config.name,
    )
}

fn record_usage(span: &tracing::Span, usage: Usage) {
    span.record("gen_ai.usage.input_tokens", usage.input_tokens);
    span.record("gen_ai.usage.output_tokens", usage.output_tokens);
}

async fn chat_completions(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Result<Caller, ApiError>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let caller = caller_or_error(caller)?;
    let mut call = wire::read_chat(parse_body(&body)?)?;
    let gateway = &state.gateway;
    let deployment = gateway
        .open(
            &state,
            CallOrigin {
                context: &context,
                caller: &caller,
            },
            &call.deployment,
            Capability::Chat,
        )
        .await?;
    call.request.max_tokens = gateway.capped(call.request.max_tokens);
    let answer_audit = deployment.config.audit_content.then(|| AnswerAudit {
        audit: state.audit.clone(),
        actor: caller.principal.actor(),
        origin: context.origin(),
        deployment: call.deployment.clone(),
    });
    let prompt = answer_audit
        .as_ref()
        .map(|_| prompt_for_audit(&call.request.messages));
    let chain = gateway.chain(deployment, Capability::Chat, &state.switches.current());
    let origin = CallOrigin {
        context: &context,
        caller: &caller,
    };
    let event = call_event(origin, "model.chat", &call.deployment, call.stream, prompt);
    let span = model_span("chat", &chain[0]);
    let mut meter = CallMeter::new(
        &state,
        &context,
        &caller.principal,
        &call.deployment,
        "chat",
    );
    let id = format!("chatcmpl-{}", context.request_id);
    let created = OffsetDateTime::now_utc().unix_timestamp();

    if !call.stream {
        let upstream = resilience::chat(&chain, call.request);
        let (audited, answer) = futures::join!(state.audit.append(event), upstream);
        audited.map_err(audit_failed)?;
        let (served_by, answer) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                meter.finish("failed");
                return Err(upstream_error(&error));
            }
        };
        span.record("gen_ai.response.model", answer.model.as_str());
        span.record(
            "gen_ai.response.finish_reasons",
            answer.finish_reason.as_str(),
        );
        record_usage(&span, answer.usage);
        meter.served_by = Some(served_by);
        meter.usage = answer.usage;
        meter.finish("ok");
        if let Some(target) = &answer_audit {
            let content = answer.content.as_deref().unwrap_or_default();
            let event = answer_event(target, content, &answer.tool_calls);
            target.audit.append(event).await.map_err(audit_failed)?;
        }
        let body = wire::chat_completion(&id, &call.deployment, created, &answer);
        return Ok(Json(body).into_response());
    }

    let upstream = resilience::chat_stream(&chain, call.request);
    let (audited, opened) = futures::join!(state.audit.append(event), upstream);
    audited.map_err(audit_failed)?;
    let (served_by, events) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            meter.finish("failed");
            return Err(upstream_error(&error));
        }
    };
    // A kill switch pulled while the answer streams ends it.
    let disabled = Box::pin(state.switches.disabled(None, Some(served_by.clone())));
    meter.served_by = Some(served_by);
    let translator = StreamTranslator {
        id,
        model: call.deployment.clone(),
        created,
        include_usage: call.include_usage,
        span,
        meter,
        answer_audit,
        answer: String::new(),
        tool_calls: Vec::new(),
    };
    let mut response = Response::new(Body::from_stream(sse_body(events, translator, disabled)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Turns a stream's events into `chat.completion.chunk`s, and meters the call as it goes.
struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    span: tracing::Span,
    meter: CallMeter,
    /// Set for deployments with `audit_content`: the answer is gathered for the audit trail.
    answer_audit: Option<AnswerAudit>,
    answer: String,
    tool_calls: Vec<ToolCall>,
}

impl StreamTranslator {
    /// Notes what the answer says, for deployments that audit content.
    fn gather(&mut self, event: &ChatEvent) {
        if self.answer_audit.is_none() {
            return;
        }
        match event {
            ChatEvent::Text(text) => self.answer.push_str(text),
            ChatEvent::ToolCall(delta) => {
                let index = delta.index as usize;
                while self.tool_calls.len() <= index {
                    self.tool_calls.push(ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                }
                let call = &mut self.tool_calls[index];
                if let Some(id) = &delta.id {
                    call.id.clone_from(id);
                }
                if let Some(name) = &delta.name {
                    call.name.clone_from(name);
                }
                if let Some(arguments) = &delta.arguments {
                    call.arguments.push_str(arguments);
                }
            }
            _ => {}
        }
    }

    /// Writes the gathered answer to the audit trail, when the deployment asks for it.
    async fn audit_answer(&self) {
        if let Some(target) = &self.answer_audit {
            let event = answer_event(target, &self.answer, &self.tool_calls);
            if let Err(error) = target.audit.append(event).await {
                // The answer has been streamed; all that can be done now is to say so.
                tracing::error!(%error, "cannot write a streamed answer to the audit trail");
            }
        }
    }

    fn chunk(&mut self, event: ChatEvent) -> Option<Value> {
        self.gather(&event);
        let (id, model, created) = (&self.id, &self.model, self.created);
        match event {
            ChatEvent::Start {
                model: upstream, ..
            } => {
                self.span.record("gen_ai.response.model", upstream.as_str());
                let delta = json!({ "role": "assistant", "content": "" });
                Some(wire::chunk(id, model, created, delta, None))
            }
            ChatEvent::Text(text) => Some(wire::chunk(
                id,
                model,
                created,
                json!({ "content": text }),
                None,
            )),
            ChatEvent::ToolCall(delta) => {
                let delta = wire::tool_call_delta(&delta);
                Some(wire::chunk(id, model, created, delta, None))
            }
            ChatEvent::Finish(reason) => {
                self.span
                    .record("gen_ai.response.finish_reasons", reason.as_str());
                Some(wire::chunk(
                    id,
                    model,
                    created,
                    json!({}),
                    Some(reason.as_str()),
                ))
            }
            ChatEvent::Usage(usage) => {
                record_usage(&self.span, usage);
                self.meter.usage = usage;
                self.include_usage
                    .then(|| wire::usage_chunk(id, model, created, usage))
            }
        }
    }
}

/// The SSE body: one event per upstream event, written as soon as it arrives, then `[DONE]`.
/// An upstream error ends the stream with an `error` event instead of `[DONE]`, so a broken
/// answer never looks finished; so does a kill switch pulled on the platform or the serving
/// deployment mid-answer. When the caller goes away, axum drops this stream and with it the
/// upstream request.
fn sse_body(
    events: ajutant_core::model::ChatStream,
    translator: StreamTranslator,
    disabled: std::pin::Pin<Box<dyn std::future::Future<Output = Disabled> + Send>>,
) -> impl futures::Stream<Item = Result<String, std::convert::Infallible>> + Send {
    futures::stream::unfold(Some((events, translator, disabled)), |state| async move {
        let (mut events, mut translator, mut disabled) = state?;
        loop {
            let next = tokio::select! {
                biased;
                off = &mut disabled => {
                    // Dropping `events` afterwards cancels the upstream call.
                    translator.meter.finish("cancelled");
                    translator.audit_answer().await;
                    let data = OpenAiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "service_unavailable",
                        off.message,
                    )
                    .with_code(off.code)
                    .body();
                    return Some((Ok(format!("data: {data}\n\n")), None));
                }
                next = events.next() => next,
            };
            match next {
                Some(Ok(event)) => {
                    if let Some(data) = translator.chunk(event) {
                        let next = Some((events, translator, disabled));
                        return Some((Ok(format!("data: {data}\n\n")), next));
                    }
                }
                Some(Err(error)) => {
                    translator.meter.finish("failed");
                    translator.audit_answer().await;
                    let data = upstream_error(&error).body();
                    return Some((Ok(format!("data: {data}\n\n")), None));
                }
                None => {
                    translator.meter.finish("ok");
                    translator.audit_answer().await;
                    return Some((Ok("data: [DONE]\n\n".to_owned()), None));
                }
            }
        }
    })
}

async fn embeddings(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Result<Caller, ApiError>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let caller = caller_or_error(caller)?;
    let call = wire::read_embeddings(parse_body(&body)?)?;
    let gateway = &state.gateway;
    let deployment = gateway
        .open(
            &state,
            CallOrigin {
                context: &context,
                caller: &caller,
            },
            &call.deployment,
            Capability::Embeddings,
        )
        .await?;
    let chain = gateway.chain(
        deployment,
        Capability::Embeddings,
        &state.switches.current(),
    );
    let span = model_span("embeddings", &chain[0]);
    let mut meter = CallMeter::new(
        &state,
        &context,
        &caller.principal,
        &call.deployment,
        "embeddings",
    );
    let origin = CallOrigin {
        context: &context,
        caller: &caller,
    };
    let event = call_event(origin, "model.embeddings", &call.deployment, false, None);
    let (audited, answer) = futures::join!(
        state.audit.append(event),
        resilience::embed(&chain, call.request)
    );
    audited.map_err(audit_failed)?;
    let (served_by, answer) = match answer {
        Ok(answer) => answer,
        Err(error) => {
            meter.finish("failed");
            return Err(upstream_error(&error));
        }
    };
    record_usage(&span, answer.usage);
    meter.served_by = Some(served_by);
    meter.usage = answer.usage;
    meter.finish("ok");
    Ok(Json(wire::embeddings(&call.deployment, &answer, call.base64)).into_response())
}
