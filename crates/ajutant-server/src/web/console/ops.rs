//! IT operations' console pages: kill switches with the notification outbox's dead letters
//! (`/console/switches`), escalations with the live feed (`/console/incidents`, script in
//! `static/feed.js`) and one incident with its reported feedback, timeline and the forms that
//! handle it (`/console/incidents/{id}`). Everything is read through the operations API's
//! handlers and changed through that API from the browser.

use ajutant_core::incident::IncidentStatus;
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::feedback::category_label;
use crate::AppState;
use crate::access::Guard;
use crate::ops::incidents::{self, IncidentView};
use crate::ops::notifications::{self, NotificationView};
use crate::ops::switches::routes::{SwitchView, switch_view};
use crate::ops::switches::service as switches;
use crate::request::RequestContext;
use crate::web::page::{Layout, PageError, Section, Viewer, render, require};

/// Incidents per page of the list.
const PAGE_SIZE: i64 = 50;
/// The outbox rows read at most for the dead letters and the pending count.
const OUTBOX_READ: i64 = 100;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/console/switches", get(switches_page))
        .route("/console/incidents", get(incidents_page))
        .route("/console/incidents/{id}", get(incident_page))
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Categories as people read them, joined.
fn categories_text(codes: &[String]) -> String {
    codes
        .iter()
        .map(|code| category_label(code))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A query value, or nothing when the form left it empty.
fn given(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

// ---- Kill switches ----

#[derive(Debug, Deserialize)]
struct SwitchesQuery {
    /// Prefills the form, as the incident page's "Switch this assistant off" link does.
    target: Option<String>,
    id: Option<String>,
}

struct TargetOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

struct SwitchRow {
    target: String,
    id: String,
    state: String,
    reason: String,
    by: String,
    when: String,
}

impl SwitchRow {
    fn killed(&self) -> bool {
        self.state == "killed"
    }
}

fn switch_row(view: SwitchView) -> SwitchRow {
    SwitchRow {
        target: view.target,
        id: view.id.unwrap_or_default(),
        state: view.state,
        reason: view.reason,
        by: view.changed_by_name,
        when: rfc3339(view.changed_at),
    }
}

struct DeadLetter {
    id: String,
    target: String,
    event: String,
    subject: String,
    attempts: i64,
    last_error: String,
    created_at: String,
}

fn dead_letter(view: NotificationView) -> DeadLetter {
    DeadLetter {
        id: view.id,
        target: view.target,
        event: view.event,
        subject: view.subject,
        attempts: view.attempts,
        last_error: view.last_error.unwrap_or_default(),
        created_at: rfc3339(view.created_at),
    }
}

#[derive(Template)]
#[template(path = "console/switches.html")]
struct SwitchesPage {
    layout: Layout,
    targets: Vec<TargetOption>,
    prefill_id: String,
    switches: Vec<SwitchRow>,
    dead: Vec<DeadLetter>,
    /// More dead letters than shown.
    more_dead: bool,
    /// Pending notifications, as text ("3", or "100+" when there are more than were read).
    pending: String,
}

/// The kill switches, the form to pull one, and the outbox's dead letters.
async fn switches_page(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
    Query(query): Query<SwitchesQuery>,
) -> Result<Response, PageError> {
    require(&viewer, Section::Switches)?;
    let guard = Guard::new(&state, &context, &viewer.caller);
    let switches = switches::list(&guard).await?;
    let outbox =
        |status| notifications::service::list(&guard, Some(status), None, Some(OUTBOX_READ));
    let (dead, more_dead) = outbox("dead").await?;
    let (pending, more_pending) = outbox("pending").await?;
    let wanted = given(query.target).unwrap_or_else(|| "assistant".to_owned());
    let targets = [
        ("assistant", "An assistant"),
        ("deployment", "A deployment"),
        ("platform", "The whole platform"),
    ]
    .into_iter()
    .map(|(value, label)| TargetOption {
        value,
        label,
        selected: value == wanted,
    })
    .collect();
    let pending_count = pending.len();
    Ok(render(&SwitchesPage {
        layout: Layout::new(&viewer, Section::Switches.title(), Section::Switches.path()),
        targets,
        prefill_id: given(query.id).unwrap_or_default(),
        switches: switches
            .into_iter()
            .map(|switch| switch_row(switch_view(switch)))
            .collect(),
        more_dead: more_dead.is_some(),
        dead: dead
            .into_iter()
            .map(|letter| dead_letter(notifications::view(letter)))
            .collect(),
        pending: if more_pending.is_some() {
            format!("{pending_count}+")
        } else {
            pending_count.to_string()
        },
    }))
}

// ---- Escalations ----

#[derive(Debug, Deserialize)]
struct IncidentsQuery {
    status: Option<String>,
    cursor: Option<String>,
}

struct IncidentRow {
    id: String,
    status: String,
    assistant_id: String,
    assistant_version: i64,
    categories: String,
    serious: bool,
    reported_by: String,
    assignee: String,
    opened_at: String,
}

fn incident_row(view: &IncidentView) -> IncidentRow {
    IncidentRow {
        id: view.id.clone(),
        status: view.status.clone(),
        assistant_id: view.assistant_id.clone(),
        assistant_version: view.assistant_version,
        categories: categories_text(&view.categories),
        serious: view.serious,
        reported_by: view.reported_by_name.clone(),
        assignee: view.assignee.clone().unwrap_or_default(),
        opened_at: rfc3339(view.opened_at),
    }
}

struct StatusOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "console/incidents.html")]
struct IncidentsPage {
    layout: Layout,
    statuses: Vec<StatusOption>,
    incidents: Vec<IncidentRow>,
    /// The next page's address, keeping the filter.
    next: Option<String>,
}

/// The live feed of escalations and a paged list of incidents.
async fn incidents_page(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
    Query(query): Query<IncidentsQuery>,
) -> Result<Response, PageError> {
    require(&viewer, Section::Incidents)?;
    let status = given(query.status);
    let guard = Guard::new(&state, &context, &viewer.caller);
    let cursor = given(query.cursor);
    let filter = incidents::service::Filter {
        status: status.as_deref(),
        assistant: None,
        cursor: cursor.as_deref(),
        limit: Some(PAGE_SIZE),
    };
    let (rows, next_cursor) = incidents::service::list(&guard, filter).await?;
    let listed: Vec<IncidentView> = rows.into_iter().map(incidents::incident_view).collect();
    let next = next_cursor.map(|cursor| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(status) = &status {
            query.append_pair("status", status);
        }
        query.append_pair("cursor", &cursor);
        format!("{}?{}", Section::Incidents.path(), query.finish())
    });
    let statuses = [
        ("", "Any status"),
        ("open", "Open"),
        ("acknowledged", "Acknowledged"),
        ("resolved", "Resolved"),
    ]
    .into_iter()
    .map(|(value, label)| StatusOption {
        value,
        label,
        selected: status.as_deref().unwrap_or_default() == value,
    })
    .collect();
    Ok(render(&IncidentsPage {
        layout: Layout::new(
            &viewer,
            Section::Incidents.title(),
            Section::Incidents.path(),
        ),
        statuses,
        incidents: listed.iter().map(incident_row).collect(),
        next,
    }))
}

// ---- One incident ----

struct Reported {
    question: String,
    answer: String,
    comment: String,
    categories: String,
    helpful: &'static str,
    minutes: Option<i64>,
}

struct TimelineRow {
    what: String,
    text: String,
    actor: String,
    at: String,
}

/// What a timeline entry's kind means, for people.
fn timeline_label(kind: &str) -> String {
    match kind {
        "opened" => "Opened".to_owned(),
        "acknowledged" => "Acknowledged".to_owned(),
        "resolved" => "Resolved".to_owned(),
        "reopened" => "Reopened".to_owned(),
        "assigned" => "Assigned".to_owned(),
        "note" => "Note".to_owned(),
        "action" => "Action taken".to_owned(),
        "feedback_changed" => "Feedback changed".to_owned(),
        other => other.to_owned(),
    }
}

#[derive(Template)]
#[template(path = "console/incidents_detail.html")]
struct IncidentPage {
    layout: Layout,
    incident: IncidentRow,
    deployment: String,
    trace_id: String,
    conversation_id: String,
    message_id: String,
    reported_by_id: String,
    acknowledged_at: Option<String>,
    resolved_at: Option<String>,
    updated_at: String,
    reported: Option<Reported>,
    timeline: Vec<TimelineRow>,
}

impl IncidentPage {
    /// Which buttons to offer follows the one transition rule.
    fn can_become(&self, to: IncidentStatus) -> bool {
        IncidentStatus::parse(&self.incident.status).is_some_and(|now| now.transition(to).is_some())
    }

    fn can_acknowledge(&self) -> bool {
        self.can_become(IncidentStatus::Acknowledged)
    }

    fn can_resolve(&self) -> bool {
        self.can_become(IncidentStatus::Resolved)
    }

    fn can_reopen(&self) -> bool {
        self.can_become(IncidentStatus::Open)
    }
}

/// One incident: what was reported, what has been done, and the forms to handle it.
async fn incident_page(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    require(&viewer, Section::Incidents)?;
    let guard = Guard::new(&state, &context, &viewer.caller);
    let detail = incidents::detail_view(incidents::service::get(&guard, &id).await?);
    let view = &detail.incident;
    let reported = detail.feedback.map(|f| Reported {
        categories: categories_text(&f.categories),
        helpful: match f.helpful {
            Some(true) => "Helpful",
            Some(false) => "Not helpful",
            None => "Not said",
        },
        minutes: f.time_saved_minutes,
        comment: f.comment.unwrap_or_default(),
        question: f.question,
        answer: f.answer,
    });
    let timeline = detail
        .timeline
        .into_iter()
        .map(|entry| TimelineRow {
            what: timeline_label(&entry.kind),
            text: entry.text.unwrap_or_default(),
            actor: entry.actor_name,
            at: rfc3339(entry.at),
        })
        .collect();
    let title = format!("Incident on {}", view.assistant_id);
    Ok(render(&IncidentPage {
        layout: Layout::new(&viewer, title, Section::Incidents.path()),
        incident: incident_row(view),
        deployment: view.deployment.clone().unwrap_or_default(),
        trace_id: view.trace_id.clone().unwrap_or_default(),
        conversation_id: view.conversation_id.clone(),
        message_id: view.message_id.clone(),
        reported_by_id: view.reported_by.clone(),
        acknowledged_at: view.acknowledged_at.map(rfc3339),
        resolved_at: view.resolved_at.map(rfc3339),
        updated_at: rfc3339(view.updated_at),
        reported,
        timeline,
    }))
}
