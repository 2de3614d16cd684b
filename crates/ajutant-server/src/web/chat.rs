//! The chat: `/chat` (the assistants the viewer may use, with their starters, and the viewer's
//! conversations) and `/chat/{id}` (one conversation, its answers with their sources and the
//! feedback given on them). Both read through the JSON API's handlers; turns, feedback, renames
//! and deletions go to that API from `static/chat.js`.
//!
//! Model output never becomes HTML here: an answer is placed in the page as escaped text inside
//! `[data-markdown]`, and `static/markdown.js` builds its DOM in the browser from text nodes and
//! a fixed set of elements.

use ajutant_core::feedback::Category;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use ajutant_core::chat::{MessageRole, MessageStatus};

use crate::access::Guard;
use crate::assistants::{self, AssistantView};
use crate::chat::{self, MessageView};
use crate::feedback::{self, FeedbackView};
use crate::problem::ApiError;
use crate::request::RequestContext;
use crate::web::page::{Layout, PageError, Viewer, render};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/chat", get(index))
        .route("/chat/{id}", get(conversation))
}

/// The query both pages take. `ask` (a starter's question) is read by `chat.js`, not here.
#[derive(Debug, Deserialize)]
struct PageQuery {
    /// The conversations' page, from a "More conversations" link.
    cursor: Option<String>,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// What people read for a feedback category. The match is exhaustive so that a new category
/// cannot reach the form without a label.
fn category_label(category: Category) -> &'static str {
    match category {
        Category::Inaccurate => "Inaccurate",
        Category::Incomplete => "Incomplete",
        Category::OutdatedSource => "Outdated source",
        Category::Unhelpful => "Unhelpful",
        Category::FactualError => "Factual error that matters",
        Category::EthicalConcern => "Ethical concern",
        Category::HarmfulContent => "Harmful content",
        Category::Explainability => "Explainability problem",
        Category::Privacy => "Privacy or data exposure",
    }
}

// ---- The sidebar, on both pages ----

struct AssistantCard {
    id: String,
    name: String,
    description: String,
    starters: Vec<String>,
    /// Switched off by its kill switch: shown, but nothing can be started.
    killed: bool,
}

impl From<AssistantView> for AssistantCard {
    fn from(view: AssistantView) -> Self {
        Self {
            killed: view.status == "killed",
            id: view.id,
            name: view.definition.name,
            description: view.definition.description,
            starters: view.definition.starters,
        }
    }
}

struct ConversationLink {
    id: String,
    title: String,
    current: bool,
}

struct Sidebar {
    assistants: Vec<AssistantCard>,
    conversations: Vec<ConversationLink>,
    next_cursor: Option<String>,
}

/// The assistants the viewer may use and a page of their conversations. The assistants API
/// also lists those the viewer only edits; the chat offers only those in their scope.
async fn sidebar(
    state: &AppState,
    context: &RequestContext,
    viewer: &Viewer,
    cursor: Option<String>,
    current: Option<&str>,
) -> Result<Sidebar, PageError> {
    let guard = Guard::new(state, context, &viewer.caller);
    let assistants = assistants::service::list(&guard)
        .await?
        .into_iter()
        .filter(|seen| {
            seen.assistant
                .definition
                .access
                .admits(&viewer.caller.principal)
        })
        .map(|seen| AssistantCard::from(assistants::view(seen)))
        .collect();
    let (page, next_cursor) = chat::service::list(&guard, cursor.as_deref(), None).await?;
    let conversations = page
        .into_iter()
        .map(|c| ConversationLink {
            current: current == Some(c.id.as_str()),
            id: c.id,
            title: c.title,
        })
        .collect();
    Ok(Sidebar {
        assistants,
        conversations,
        next_cursor,
    })
}

// ---- /chat ----

#[derive(Template)]
#[template(path = "chat/index.html")]
struct Index {
    layout: Layout,
    side: Sidebar,
}

async fn index(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> Result<Response, PageError> {
    let side = sidebar(&state, &context, &viewer, query.cursor, None).await?;
    Ok(render(&Index {
        layout: Layout::new(&viewer, "Chat", "chat"),
        side,
    }))
}

// ---- /chat/{id} ----

struct CitationItem {
    index: u64,
    title: String,
    location: String,
    quote: String,
    /// Only an `http(s)` address; anything else is not offered as a link.
    url: String,
}

impl CitationItem {
    fn from_json(value: &Value) -> Option<Self> {
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
        let url = value["url"]
            .as_str()
            .and_then(|u| url::Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(String::from)
            .unwrap_or_default();
        Some(Self {
            index: value["index"].as_u64()?,
            title: text("title"),
            location: text("location"),
            quote: text("quote"),
            url,
        })
    }
}

struct CategoryChoice {
    code: &'static str,
    label: &'static str,
    checked: bool,
}

/// The feedback form of one answer, filled with what the viewer said before.
struct FeedbackWidget {
    /// The answer's message id; empty in the page's `<template>` that `chat.js` copies.
    key: String,
    helpful: bool,
    unhelpful: bool,
    minutes: String,
    categories: Vec<CategoryChoice>,
    comment: String,
    serious: bool,
    status: String,
}

impl FeedbackWidget {
    fn new(key: &str, given: Option<&FeedbackView>) -> Self {
        let categories = Category::ALL
            .into_iter()
            .map(|c| CategoryChoice {
                code: c.as_str(),
                label: category_label(c),
                checked: given.is_some_and(|g| g.categories.iter().any(|x| x == c.as_str())),
            })
            .collect();
        let status = match given {
            Some(g) if g.escalated => "You reported this answer to IT operations.",
            Some(_) => "You gave feedback on this answer.",
            None => "",
        };
        Self {
            key: key.to_owned(),
            helpful: given.is_some_and(|g| g.helpful == Some(true)),
            unhelpful: given.is_some_and(|g| g.helpful == Some(false)),
            minutes: given
                .and_then(|g| g.time_saved_minutes)
                .map(|m| m.to_string())
                .unwrap_or_default(),
            categories,
            comment: given.and_then(|g| g.comment.clone()).unwrap_or_default(),
            serious: given.is_some_and(|g| g.serious),
            status: status.to_owned(),
        }
    }
}

struct MessageItem {
    id: String,
    from_user: bool,
    content: String,
    status: String,
    /// Why the answer is partial or missing, as a sentence.
    problem: Option<String>,
    citations: Vec<CitationItem>,
    created_at: String,
    /// Complete and partial answers take feedback; questions and failed answers do not.
    feedback: Option<FeedbackWidget>,
}

#[derive(Template)]
#[template(path = "chat/conversation.html")]
struct ConversationPage {
    layout: Layout,
    side: Sidebar,
    id: String,
    title: String,
    assistant_name: String,
    assistant_killed: bool,
    created_at: String,
    messages: Vec<MessageItem>,
    blank: FeedbackWidget,
}

/// The viewer's own feedback on an answer; none is a 404 from the API.
async fn given_feedback(
    state: &AppState,
    context: &RequestContext,
    viewer: &Viewer,
    message_id: &str,
) -> Result<Option<FeedbackView>, PageError> {
    match feedback::mine(
        State(state.clone()),
        context.clone(),
        viewer.caller.clone(),
        Path(message_id.to_owned()),
    )
    .await
    {
        Ok(Json(view)) => Ok(Some(view)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn message_item(
    state: &AppState,
    context: &RequestContext,
    viewer: &Viewer,
    message: MessageView,
) -> Result<MessageItem, PageError> {
    let from_user = message.role == MessageRole::User.as_str();
    let status = MessageStatus::parse(&message.status);
    let problem = match (status, &message.error) {
        (Some(MessageStatus::Partial), Some(error)) => {
            Some(format!("This answer is incomplete: {error}"))
        }
        (Some(MessageStatus::Partial), None) => Some("This answer is incomplete.".to_owned()),
        (Some(MessageStatus::Failed), Some(error)) => Some(format!("No answer: {error}")),
        (Some(MessageStatus::Failed), None) => Some("No answer.".to_owned()),
        _ => None,
    };
    let rateable = !from_user && status.is_some_and(MessageStatus::rateable);
    let feedback = if rateable {
        let given = given_feedback(state, context, viewer, &message.id).await?;
        Some(FeedbackWidget::new(&message.id, given.as_ref()))
    } else {
        None
    };
    let citations = message
        .citations
        .as_array()
        .map(|list| list.iter().filter_map(CitationItem::from_json).collect())
        .unwrap_or_default();
    Ok(MessageItem {
        created_at: rfc3339(message.created_at),
        id: message.id,
        from_user,
        content: message.content,
        status: message.status,
        problem,
        citations,
        feedback,
    })
}

async fn conversation(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, PageError> {
    // Someone else's conversation is the API's 404 (and its audit record).
    let guard = Guard::new(&state, &context, &viewer.caller);
    let (conversation, stored) = chat::service::read(&guard, &id).await?;
    // An assistant since deleted or moved out of the viewer's reach leaves the conversation
    // readable; its id stands in for its name.
    let assistant = assistants::service::peek(&guard, &conversation.assistant_id)
        .await?
        .map(assistants::view);
    let mut messages = Vec::with_capacity(stored.len());
    for message in stored {
        let view = chat::message_view(message);
        messages.push(message_item(&state, &context, &viewer, view).await?);
    }
    let side = sidebar(
        &state,
        &context,
        &viewer,
        query.cursor,
        Some(&conversation.id),
    )
    .await?;
    Ok(render(&ConversationPage {
        layout: Layout::new(&viewer, conversation.title.clone(), "chat"),
        side,
        assistant_name: assistant.as_ref().map_or_else(
            || conversation.assistant_id.clone(),
            |a| a.definition.name.clone(),
        ),
        assistant_killed: assistant.as_ref().is_some_and(|a| a.status == "killed"),
        created_at: rfc3339(conversation.created_at),
        id: conversation.id,
        title: conversation.title,
        messages,
        blank: FeedbackWidget::new("", None),
    }))
}
