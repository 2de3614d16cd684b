//! The OpenAI-compatible endpoints: each request read into a call, the call run through
//! admission and resilience, and the answer written back as JSON or as an SSE stream.

use ajutant_core::audit::AuditAction;
use ajutant_core::config::Capability;
use ajutant_core::model::{ChatEvent, ProviderError, ToolCall, Usage};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::metering::{
    AnswerAudit, answer_event, audit_failed, call_event, database_unavailable, prompt_for_audit,
};
use super::wire::OpenAiError;
use super::{CallMeter, CallOrigin, Deployment, resilience, wire};
use crate::AppState;
use crate::identity::Caller;
use crate::ops::switches::Disabled;
use crate::problem::ApiError;
use crate::request::RequestContext;

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
        ApiError::DatabaseUnavailable => database_unavailable(),
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
    let data: Vec<Value> = state
        .gateway
        .callable_by(&caller.principal)
        .into_iter()
        .map(|name| json!({ "id": name, "object": "model", "created": 0, "owned_by": "ajutant" }))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
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
    headers: axum::http::HeaderMap,
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
    let chain = gateway.chain(
        deployment,
        Capability::Chat,
        &state.switches.current(),
        &caller.principal,
    );
    let origin = CallOrigin {
        context: &context,
        caller: &caller,
    };
    let event = call_event(
        origin,
        AuditAction::ModelChat,
        &call.deployment,
        call.stream,
        prompt,
    );
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
    // Dropping the translated stream cancels the upstream call, as a client hanging up does.
    let guarded = crate::sse::guarded(
        sse_body(events, translator, disabled),
        crate::identity::still_allowed(&state, &context, &headers, &caller, None),
        STREAM_LIFETIME,
        stream_ended,
    );
    let mut response = Response::new(Body::from_stream(guarded));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The longest a streamed completion may run; past it the stream ends with an error chunk.
const STREAM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// How a stream cut short says so, in OpenAI's shape (the SDKs raise on a chunk with `error`).
fn stream_ended(reason: &str) -> String {
    let message = match reason {
        "lifetime" => "the stream ran past its time limit",
        _ => "the credential no longer signs in: revoked, expired or signed out",
    };
    let error = OpenAiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message);
    format!("data: {}\n\n", error.body())
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
        &caller.principal,
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
    let event = call_event(
        origin,
        AuditAction::ModelEmbeddings,
        &call.deployment,
        false,
        None,
    );
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
