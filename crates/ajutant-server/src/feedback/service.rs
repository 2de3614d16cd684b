//! Feedback's rules: the conversation's owner judges an answer (one verdict per answer,
//! editable); it is stored with what was judged, and when the `[feedback]` rules call it
//! serious it escalates in the same transaction (incident, outbox rows, feed event). Anyone
//! else's answer is the 404, recorded.

use ajutant_core::audit::{AuditAction, Outcome};
use ajutant_core::chat::MessageRole;
use ajutant_core::feedback::Category;
use ajutant_core::id::MessageId;
use ajutant_store::{Assistant, Escalation, Feedback, Message, NewFeedback, NewNotification};
use serde_json::json;
use time::OffsetDateTime;

use crate::AppState;
use crate::access::Guard;
use crate::assistants;
use crate::notify::format::EscalationNotice;
use crate::problem::ApiError;

const MAX_COMMENT_CHARS: usize = 4000;
/// A day; more than that saved by one answer is a typo.
const MAX_MINUTES_SAVED: i64 = 1440;

/// A user's verdict on an answer, as given.
pub(crate) struct Verdict<'a> {
    pub helpful: Option<bool>,
    pub time_saved_minutes: Option<i64>,
    pub categories: &'a [String],
    pub comment: Option<&'a str>,
    pub serious: bool,
}

/// Feedback as stored, and what became of it.
pub(crate) struct Given {
    pub feedback: Feedback,
    /// False when it replaced the caller's earlier feedback on the answer.
    pub created: bool,
    pub incident_id: Option<String>,
}

/// Gives (or changes) the caller's feedback on the answer `message_id`.
pub(crate) async fn give(
    guard: &Guard<'_>,
    message_id: &str,
    verdict: Verdict<'_>,
) -> Result<Given, ApiError> {
    let state = guard.state;
    let (categories, comment) = checked(&verdict)?;
    let (message, question, assistant_id) = own_answer(guard, message_id).await?;
    let assistant = assistants::service::load(state, &assistant_id).await?;
    let reasons = state
        .config
        .feedback
        .escalation_reasons(verdict.serious, &categories);
    let now = OffsetDateTime::now_utc();
    let new = NewFeedback {
        message_id: message.id.clone(),
        conversation_id: message.conversation_id.clone(),
        assistant_id: assistant_id.clone(),
        assistant_version: message.assistant_version.unwrap_or_default(),
        deployment: message.deployment.clone(),
        trace_id: message.trace_id.clone(),
        citations: message.citations.clone(),
        question,
        answer: message.content.clone(),
        principal_id: guard.caller.principal.id.clone(),
        principal_name: guard.caller.principal.display_name.clone(),
        helpful: verdict.helpful,
        time_saved_minutes: verdict.time_saved_minutes,
        categories: categories.iter().map(|c| c.as_str().to_owned()).collect(),
        comment: comment.clone(),
        serious: verdict.serious,
    };
    let escalation = if reasons.is_empty() {
        None
    } else {
        Some(escalation(state, &new, assistant.as_ref(), now)?)
    };
    let saved = state
        .store
        .save_feedback(&new, escalation.as_ref(), now)
        .await?;
    if saved.opened {
        state.bus.poke();
        state.notifier.poke();
        metrics::counter!("ajutant_escalations_total").increment(1);
    }
    metrics::counter!("ajutant_feedback_total", "escalated" => if saved.opened { "yes" } else { "no" })
        .increment(1);
    let incident_id = saved.incident.as_ref().map(|i| i.id.clone());
    guard
        .record(
            AuditAction::FeedbackGiven,
            &format!("message/{}", message.id),
            Outcome::Allowed,
            json!({
                    "feedback": saved.feedback.id,
                    "assistant": assistant_id,
                    "assistant_version": saved.feedback.assistant_version,
                    "helpful": verdict.helpful,
                    "categories": new.categories,
                    "serious": verdict.serious,
                    "changed": !saved.created,
                    "escalation": reasons,
                    "incident": incident_id,
                    "incident_opened": saved.opened,
            }),
        )
        .await?;
    Ok(Given {
        feedback: saved.feedback,
        created: saved.created,
        incident_id,
    })
}

/// The body, checked: known categories (each once), sane numbers, something said.
fn checked(body: &Verdict<'_>) -> Result<(Vec<Category>, Option<String>), ApiError> {
    let mut categories = Vec::new();
    for code in body.categories {
        let category = Category::parse(code).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown category {code:?}; use one of {}",
                Category::codes()
            ))
        })?;
        if !categories.contains(&category) {
            categories.push(category);
        }
    }
    if let Some(minutes) = body.time_saved_minutes
        && !(0..=MAX_MINUTES_SAVED).contains(&minutes)
    {
        return Err(ApiError::BadRequest(format!(
            "time_saved_minutes must be 0 to {MAX_MINUTES_SAVED}"
        )));
    }
    let comment = body
        .comment
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
    {
        return Err(ApiError::BadRequest(format!(
            "comment must be at most {MAX_COMMENT_CHARS} characters"
        )));
    }
    if body.helpful.is_none()
        && body.time_saved_minutes.is_none()
        && categories.is_empty()
        && comment.is_none()
        && !body.serious
    {
        return Err(ApiError::BadRequest(
            "feedback must say something: helpful, time saved, a category, a comment or serious"
                .to_owned(),
        ));
    }
    Ok((categories, comment))
}

/// The answer `message_id`, if it is in one of the caller's conversations; anything else is
/// 404 (audited when it is someone else's). Returns the answer, the question before it and the
/// conversation's assistant.
async fn own_answer(
    guard: &Guard<'_>,
    message_id: &str,
) -> Result<(Message, String, String), ApiError> {
    let (state, caller) = (guard.state, guard.caller);
    let not_found = || guard.not_found();
    if MessageId::parse(message_id).is_err() {
        return Err(not_found());
    }
    let message = state
        .store
        .message(message_id)
        .await?
        .ok_or_else(not_found)?;
    let Some(conversation) = state
        .store
        .conversation(&caller.principal.id, &message.conversation_id)
        .await?
    else {
        guard
            .record(
                AuditAction::FeedbackGiven,
                &format!("message/{message_id}"),
                Outcome::Denied,
                json!({ "reason": "not the conversation's owner" }),
            )
            .await?;
        return Err(not_found());
    };
    if message.role != MessageRole::Assistant {
        return Err(ApiError::BadRequest(
            "feedback is given on answers, not on questions".to_owned(),
        ));
    }
    let question = state
        .store
        .messages(&conversation.id)
        .await?
        .into_iter()
        .rfind(|m| m.seq < message.seq && m.role == MessageRole::User)
        .map(|m| m.content)
        .unwrap_or_default();
    Ok((message, question, conversation.assistant_id))
}

/// The incident, notifications and notice for feedback that escalates.
fn escalation(
    state: &AppState,
    new: &NewFeedback,
    assistant: Option<&Assistant>,
    now: OffsetDateTime,
) -> Result<Escalation, ApiError> {
    let incident_id = uuid::Uuid::now_v7().to_string();
    let incident_url = state
        .identity
        .public_url()
        .join(&format!("api/v1/ops/incidents/{incident_id}"))
        .ok()
        .map(String::from);
    let notice = EscalationNotice {
        incident_id: incident_id.clone(),
        assistant_id: new.assistant_id.clone(),
        assistant_name: assistant
            .map(|a| a.definition.name.clone())
            .unwrap_or_else(|| new.assistant_id.clone()),
        assistant_version: new.assistant_version,
        deployment: new.deployment.clone(),
        categories: new.categories.clone(),
        serious: new.serious,
        helpful: new.helpful,
        comment: new.comment.clone(),
        reported_by: new.principal_name.clone(),
        message_id: new.message_id.clone(),
        conversation_id: new.conversation_id.clone(),
        trace_id: new.trace_id.clone(),
        opened_at: now,
        incident_url,
    };
    let payload = serde_json::to_string(&notice).map_err(|e| ApiError::Internal(e.to_string()))?;
    let notifications = state
        .config
        .notifications
        .webhooks
        .iter()
        .map(|target| NewNotification {
            id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            target: target.name.clone(),
            event: "incident.opened".to_owned(),
            payload: payload.clone(),
        })
        .collect();
    Ok(Escalation {
        incident_id,
        notifications,
    })
}
