//! Feedback's rules: the conversation's owner judges an answer (one verdict per answer,
//! editable); it is stored with what was judged, and when the `[feedback]` rules call it
//! serious it escalates in the same transaction (incident, outbox rows, feed event). Anyone
//! else's answer is the 404, recorded.

use ajutant_core::audit::{AuditAction, Outcome};
use ajutant_core::chat::MessageRole;
use ajutant_core::feedback::Category;
use ajutant_core::id::MessageId;
use ajutant_store::{
    Assistant, Escalation, Feedback, FeedbackFilter, Message, NewFeedback, NewNotification,
};
use serde_json::json;
use time::OffsetDateTime;

use crate::AppState;
use crate::access::Guard;
use crate::assistants;
use crate::feedback::analytics;
use crate::gateway::reports::day;
use crate::notify::format::EscalationNotice;
use crate::paging;
use crate::problem::ApiError;

const MAX_COMMENT_CHARS: usize = 4000;
/// A day; more than that saved by one answer is a typo.
const MAX_MINUTES_SAVED: i64 = 1440;
/// The longest period the figures cover, in days.
const MAX_ANALYTICS_DAYS: i64 = 366;

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

/// The caller's own feedback on the answer `message_id`, with the incident it opened if any.
/// Anyone else's answer, or one without feedback, is the same 404.
pub(crate) async fn mine(
    guard: &Guard<'_>,
    message_id: &str,
) -> Result<(Feedback, Option<String>), ApiError> {
    if MessageId::parse(message_id).is_err() {
        return Err(guard.not_found());
    }
    let store = &guard.state.store;
    let feedback = store
        .feedback_of(message_id, &guard.caller.principal.id)
        .await?
        .ok_or_else(|| guard.not_found())?;
    let incident = store.incident_for_feedback(&feedback.id).await?;
    Ok((feedback, incident.map(|i| i.id)))
}

/// Which of an assistant's feedback an inbox page shows; dates are `YYYY-MM-DD` (UTC), `to`
/// inclusive.
pub(crate) struct InboxFilter<'a> {
    pub helpful: Option<bool>,
    pub category: Option<&'a str>,
    pub serious: Option<bool>,
    pub escalated: Option<bool>,
    pub version: Option<i64>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub cursor: Option<&'a str>,
    pub limit: Option<i64>,
}

/// One feedback as its viewer may read it.
pub(crate) struct InboxEntry {
    pub feedback: Feedback,
    /// Citations of documents the viewer may not read (or that no longer exist), left out;
    /// when there are any, the answer is withheld too, since it was written from them.
    pub withheld_citations: usize,
}

/// A page of the assistant's feedback, newest first, and the cursor of the next. For its
/// owners and platform admins; anyone else gets the 404, recorded. An answer grounded on
/// documents the viewer may not read is shown without them: owning an assistant is no right to
/// read what its users read.
pub(crate) async fn inbox(
    guard: &Guard<'_>,
    assistant_id: &str,
    filter: InboxFilter<'_>,
) -> Result<(Vec<InboxEntry>, Option<String>), ApiError> {
    owned(guard, assistant_id).await?;
    if let Some(code) = filter.category
        && Category::parse(code).is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "unknown category {code:?}; use one of {}",
            Category::codes()
        )));
    }
    let epoch = OffsetDateTime::UNIX_EPOCH.date();
    let since = filter
        .from
        .map(|from| day("from", Some(from.to_owned()), epoch))
        .transpose()?
        .map(|d| d.midnight().assume_utc());
    let until = filter
        .to
        .map(|to| day("to", Some(to.to_owned()), epoch))
        .transpose()?
        .map(|d| d.midnight().assume_utc() + time::Duration::days(1));
    let (before, limit) = paging::window(filter.cursor, filter.limit)?;
    let wanted = FeedbackFilter {
        helpful: filter.helpful,
        category: filter.category.map(str::to_owned),
        serious: filter.serious,
        escalated: filter.escalated,
        version: filter.version,
        since,
        until,
    };
    let rows = guard
        .state
        .store
        .assistant_feedback(assistant_id, &wanted, before, limit + 1)
        .await?;
    let (rows, next) = paging::page(rows, limit, |f: &Feedback| (f.created_at, f.id.as_str()));
    Ok((trimmed(guard, rows).await?, next))
}

/// The document a stored citation names, if it names one.
fn cited_document(citation: &serde_json::Value) -> Option<&str> {
    citation["document_id"].as_str()
}

/// Feedback with the citations the viewer may not read left out, and then the answer too.
async fn trimmed(guard: &Guard<'_>, rows: Vec<Feedback>) -> Result<Vec<InboxEntry>, ApiError> {
    let parsed: Vec<Vec<serde_json::Value>> = rows
        .iter()
        .map(|f| serde_json::from_str(&f.citations).unwrap_or_default())
        .collect();
    let cited: Vec<String> = parsed
        .iter()
        .flatten()
        .filter_map(cited_document)
        .map(str::to_owned)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let groups: Vec<String> = guard.caller.principal.groups.iter().cloned().collect();
    let readable = guard
        .state
        .store
        .readable_documents(&cited, &groups)
        .await?;
    Ok(rows
        .into_iter()
        .zip(parsed)
        .map(|(mut feedback, citations)| {
            // A citation without a document id cannot be checked, so it is withheld as well.
            let (kept, withheld): (Vec<_>, Vec<_>) = citations
                .into_iter()
                .partition(|c| cited_document(c).is_some_and(|id| readable.contains(id)));
            if !withheld.is_empty() {
                feedback.answer = String::new();
                feedback.citations =
                    serde_json::to_string(&kept).unwrap_or_else(|_| "[]".to_owned());
            }
            InboxEntry {
                feedback,
                withheld_citations: withheld.len(),
            }
        })
        .collect())
}

/// The days an assistant's figures cover: `YYYY-MM-DD` (UTC), `to` inclusive and today by
/// default, `from` 30 days before `to` by default; `bucket` is `day` (default) or `week`.
pub(crate) struct Period<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub bucket: Option<&'a str>,
}

/// An assistant's feedback figures over a period.
pub(crate) struct Figures {
    pub from: time::Date,
    pub to: time::Date,
    pub bucket: &'static str,
    pub breakdown: analytics::Breakdown,
}

/// The assistant's feedback figures: helpful rate, time saved, counts per category, by version
/// and over time. For its owners and platform admins; anyone else gets the 404, recorded.
pub(crate) async fn figures(
    guard: &Guard<'_>,
    assistant_id: &str,
    period: Period<'_>,
) -> Result<Figures, ApiError> {
    owned(guard, assistant_id).await?;
    let (bucket, bucket_name) = match period.bucket.unwrap_or("day") {
        "day" => (analytics::Bucket::Day, "day"),
        "week" => (analytics::Bucket::Week, "week"),
        _ => {
            return Err(ApiError::BadRequest(
                "bucket must be day or week".to_owned(),
            ));
        }
    };
    let today = OffsetDateTime::now_utc().date();
    let to = day("to", period.to.map(str::to_owned), today)?;
    let from = day(
        "from",
        period.from.map(str::to_owned),
        to - time::Duration::days(30),
    )?;
    if from > to || (to - from).whole_days() > MAX_ANALYTICS_DAYS {
        return Err(ApiError::BadRequest(format!(
            "from must not be after to, and the figures cover at most {MAX_ANALYTICS_DAYS} days"
        )));
    }
    let facts = guard
        .state
        .store
        .feedback_facts(
            assistant_id,
            from.midnight().assume_utc(),
            to.midnight().assume_utc() + time::Duration::days(1),
        )
        .await?;
    Ok(Figures {
        from,
        to,
        bucket: bucket_name,
        breakdown: analytics::compute(&facts, bucket),
    })
}

/// The assistant, if the caller owns it (owner group, an `assistant_owner` binding) or is a
/// platform admin; anyone else gets the 404, recorded.
async fn owned(guard: &Guard<'_>, assistant_id: &str) -> Result<Assistant, ApiError> {
    assistants::service::editable(
        guard,
        assistant_id,
        &format!("assistant/{assistant_id}/feedback"),
    )
    .await
}
