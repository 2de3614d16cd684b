//! Before a turn's answer: the question checked, the conversation the caller's own, the
//! assistant still theirs to use and switched on; the question stored; passages the caller may
//! read retrieved and numbered; the prompt composed.

use std::time::Instant;

use ajutant_core::audit::Outcome;
use ajutant_core::audit_action::AuditAction;
use ajutant_core::chat::{MessageRole, MessageStatus};
use ajutant_core::model::{ChatRequest, Passage as PromptPassage};
use ajutant_store::{Assistant, Collection, Conversation, Message, NewMessage};
use serde_json::json;
use time::OffsetDateTime;

use super::Citation;
use super::persist::Turn;
use crate::AppState;
use crate::access::Guard;
use crate::assistants;
use crate::chat::prompt;
use crate::chat::service::own;
use crate::gateway::runtime::CallIds;
use crate::grounding::retrieval::{self, Mode};
use crate::identity::Caller;
use crate::problem::ApiError;
use crate::request::RequestContext;

/// Longest question accepted, in characters.
const MAX_QUESTION_CHARS: usize = 32_000;
/// Characters of a cited passage kept with the citation.
const QUOTE_CHARS: usize = 400;

/// A turn ready to be answered.
pub(super) struct Prepared {
    pub turn: Turn,
    pub request: ChatRequest,
    pub user_message: Message,
    pub ids: CallIds,
}

/// Checks, stores the question, retrieves and composes.
pub(super) async fn prepare(
    state: &AppState,
    context: &RequestContext,
    caller: &Caller,
    conversation_id: &str,
    content: &str,
) -> Result<Prepared, ApiError> {
    let question = content.trim().to_owned();
    if question.is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::BadRequest(format!(
            "content must be 1 to {MAX_QUESTION_CHARS} characters"
        )));
    }
    let guard = Guard::new(state, context, caller);
    let conversation = own(&guard, conversation_id).await?;
    let assistant = authorize_turn(&guard, &conversation).await?;
    let started = Instant::now();
    let history = state.store.messages(&conversation.id).await?;
    let ids = CallIds {
        request_id: Some(context.request_id.clone()),
        trace_id: Some(context.trace_id.clone()),
    };
    let version = assistant.current_version;
    let user_message = state
        .store
        .append_message(
            &conversation.id,
            &NewMessage {
                role: MessageRole::User,
                content: question.clone(),
                status: MessageStatus::Complete,
                citations: "[]".to_owned(),
                assistant_version: Some(version),
                trace_id: Some(context.trace_id.clone()),
                request_id: Some(context.request_id.clone()),
                ..NewMessage::default()
            },
            OffsetDateTime::now_utc(),
        )
        .await?;

    let mut collections: Vec<Collection> = Vec::new();
    for collection_id in &assistant.definition.collections {
        if let Some(collection) = state.store.collection(collection_id).await? {
            collections.push(collection);
        }
    }
    let top_k = assistant
        .definition
        .top_k
        .unwrap_or(state.config.chat.default_top_k);
    let retrieved = if collections.is_empty() {
        None
    } else {
        Some(
            retrieval::retrieve(
                state,
                &caller.principal,
                &collections,
                retrieval::Search {
                    query: &question,
                    mode: Mode::Hybrid,
                    limit: top_k,
                },
                ids.clone(),
            )
            .await?,
        )
    };
    let mode = retrieved.as_ref().map(|r| r.mode);
    let hits = retrieved.map(|r| r.hits).unwrap_or_default();
    let sources: Vec<Citation> = hits
        .iter()
        .enumerate()
        .map(|(i, hit)| Citation {
            index: i + 1,
            chunk_id: hit.passage.chunk_id,
            document_id: hit.passage.document_id.clone(),
            collection_id: hit.passage.collection_id.clone(),
            title: hit.passage.title.clone(),
            source_key: hit.passage.source_key.clone(),
            url: hit.passage.url.clone(),
            location: retrieval::location(&hit.passage),
            quote: hit.passage.text.chars().take(QUOTE_CHARS).collect(),
        })
        .collect();
    let passages: Vec<PromptPassage> = hits
        .iter()
        .enumerate()
        .map(|(i, hit)| PromptPassage {
            citation: (i + 1).to_string(),
            title: match retrieval::location(&hit.passage) {
                Some(location) => format!("{} ({location})", hit.passage.title),
                None => hit.passage.title.clone(),
            },
            text: hit.passage.text.clone(),
        })
        .collect();
    let generation = &assistant.definition.generation;
    let request = ChatRequest {
        messages: prompt::compose(
            &assistant.definition.instructions,
            &passages,
            &history,
            &question,
            state.config.chat.history_tokens,
        ),
        max_tokens: generation.max_tokens,
        temperature: generation.temperature,
        top_p: generation.top_p,
        grounding: passages,
        ..ChatRequest::default()
    };
    let turn = Turn {
        state: state.clone(),
        conversation: conversation.clone(),
        assistant_id: assistant.id.clone(),
        version,
        deployment: assistant.definition.deployment.clone(),
        sources,
        mode,
        caller: caller.clone(),
        context: context.clone(),
        started,
    };
    Ok(Prepared {
        turn,
        request,
        user_message,
        ids,
    })
}

/// The assistant of a conversation, if the caller may still use it and it is switched on.
async fn authorize_turn(
    guard: &Guard<'_>,
    conversation: &Conversation,
) -> Result<Assistant, ApiError> {
    let (state, caller) = (guard.state, guard.caller);
    let assistant = assistants::service::load(state, &conversation.assistant_id)
        .await?
        .ok_or_else(|| guard.not_found())?;
    if !assistant.definition.access.admits(&caller.principal) {
        // Their groups changed since the conversation began.
        guard
            .record(
                AuditAction::ChatTurn,
                &format!("assistant/{}", assistant.id),
                Outcome::Denied,
                json!({ "reason": "outside the assistant's access scope" }),
            )
            .await?;
        return Err(guard.not_found());
    }
    let switches = state.switches.current();
    if let Some(disabled) =
        switches.blocks(Some(&assistant.id), Some(&assistant.definition.deployment))
    {
        return Err(ApiError::Unavailable(disabled.message));
    }
    Ok(assistant)
}
