//! Conversations' rules: a conversation belongs to the principal who started it, with an
//! assistant they may use; only they list, read, rename, export and delete it. Someone else's
//! conversation is the 404, and the attempt is recorded as a probe at another person's data.

use ajutant_core::audit::{AuditAction, Outcome};
use ajutant_core::id::ConversationId;
use ajutant_store::{Conversation, Message};
use serde_json::json;
use time::OffsetDateTime;

use crate::access::Guard;
use crate::assistants;
use crate::paging;
use crate::problem::ApiError;

fn resource(id: &str) -> String {
    format!("conversation/{id}")
}

fn check_title(title: &str) -> Result<String, ApiError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "title must be 1 to 200 characters".to_owned(),
        ));
    }
    Ok(title.to_owned())
}

/// The caller's conversation; the 404 if it is missing or someone else's (the latter recorded).
pub(crate) async fn own(guard: &Guard<'_>, id: &str) -> Result<Conversation, ApiError> {
    // Not an id at all names nothing, without asking the database.
    let Ok(id) = ConversationId::parse(id) else {
        return Err(guard.not_found());
    };
    let id = id.as_str();
    let store = &guard.state.store;
    if let Some(conversation) = store.conversation(&guard.caller.principal.id, id).await? {
        return Ok(conversation);
    }
    if store.conversation_exists(id).await? {
        guard
            .record(
                AuditAction::ConversationAccess,
                &resource(id),
                Outcome::Denied,
                json!({ "reason": "not the owner" }),
            )
            .await?;
    }
    Err(guard.not_found())
}

/// A page of the caller's conversations, most recently active first, and the next cursor.
pub(crate) async fn list(
    guard: &Guard<'_>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<(Vec<Conversation>, Option<String>), ApiError> {
    let (before, limit) = paging::window(cursor, limit)?;
    let rows = guard
        .state
        .store
        .conversations(&guard.caller.principal.id, before, limit + 1)
        .await?;
    Ok(paging::page(rows, limit, |c: &Conversation| {
        (c.updated_at, c.id.as_str())
    }))
}

/// Starts a conversation with an assistant the caller may use; titled after it unless given.
pub(crate) async fn start(
    guard: &Guard<'_>,
    assistant_id: &str,
    title: Option<&str>,
) -> Result<Conversation, ApiError> {
    let principal = &guard.caller.principal;
    let assistant = assistants::service::load(guard.state, assistant_id)
        .await?
        .filter(|a| a.definition.access.admits(principal))
        .ok_or_else(|| ApiError::NotFound(format!("no assistant {assistant_id:?} for you")))?;
    let title = match title {
        Some(title) => check_title(title)?,
        None => assistant.definition.name.clone(),
    };
    Ok(guard
        .state
        .store
        .create_conversation(
            &principal.id,
            &assistant.id,
            &title,
            OffsetDateTime::now_utc(),
        )
        .await?)
}

/// The caller's conversation with its messages, oldest first.
pub(crate) async fn read(
    guard: &Guard<'_>,
    id: &str,
) -> Result<(Conversation, Vec<Message>), ApiError> {
    let conversation = own(guard, id).await?;
    let messages = guard.state.store.messages(&conversation.id).await?;
    Ok((conversation, messages))
}

/// Renames the caller's conversation.
pub(crate) async fn rename(
    guard: &Guard<'_>,
    id: &str,
    title: &str,
) -> Result<Conversation, ApiError> {
    let title = check_title(title)?;
    own(guard, id).await?;
    guard
        .state
        .store
        .rename_conversation(
            &guard.caller.principal.id,
            id,
            &title,
            OffsetDateTime::now_utc(),
        )
        .await?
        .ok_or_else(|| guard.not_found())
}

/// Deletes the caller's conversation and its messages.
pub(crate) async fn delete(guard: &Guard<'_>, id: &str) -> Result<(), ApiError> {
    own(guard, id).await?;
    guard
        .state
        .store
        .delete_conversation(&guard.caller.principal.id, id)
        .await?;
    guard
        .record(
            AuditAction::ConversationDeleted,
            &resource(id),
            Outcome::Allowed,
            json!({}),
        )
        .await
}
