//! Incidents' rules: IT operations (and platform admins) list, read and change incidents and
//! follow the live feed; nobody else sees any of it. A status change follows
//! `IncidentStatus::transition`, decided again inside the store's transaction.

use ajutant_core::audit::Outcome;
use ajutant_core::audit_action::AuditAction;
use ajutant_core::id::IncidentId;
use ajutant_core::incident::{IncidentStatus, NoteKind};
use ajutant_core::policy::Action;
use ajutant_store::{ActorRef, Feedback, Incident, IncidentChange, IncidentEvent};
use serde_json::json;
use time::OffsetDateTime;

use crate::access::Guard;
use crate::paging;
use crate::problem::ApiError;

/// Longest note, action or assignee.
const MAX_NOTE_CHARS: usize = 4000;

/// An incident with the feedback that opened it and its timeline.
pub(crate) struct Detail {
    pub incident: Incident,
    pub feedback: Option<Feedback>,
    pub timeline: Vec<IncidentEvent>,
}

/// Which incidents a list shows.
pub(crate) struct Filter<'a> {
    pub status: Option<&'a str>,
    pub assistant: Option<&'a str>,
    pub cursor: Option<&'a str>,
    pub limit: Option<i64>,
}

/// A change asked for: any of a status, an assignee (`Some(None)` clears it), a note or an
/// action taken.
pub(crate) struct Change<'a> {
    pub status: Option<&'a str>,
    pub assignee: Option<Option<&'a str>>,
    pub note: Option<&'a str>,
    pub action: Option<&'a str>,
}

fn resource(id: &str) -> String {
    format!("incident/{id}")
}

/// The incident's id, or the same answer as a missing incident.
fn incident_id(id: &str) -> Result<IncidentId, ApiError> {
    IncidentId::parse(id).map_err(|_| ApiError::NotFound(format!("no incident {id}")))
}

fn parse_status(status: &str) -> Result<IncidentStatus, ApiError> {
    status
        .parse()
        .map_err(|e| ApiError::not_one_of("status", &e))
}

fn check_text(what: &str, text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::BadRequest(format!(
            "{what} must be 1 to {MAX_NOTE_CHARS} characters"
        )));
    }
    Ok(text.to_owned())
}

/// A page of incidents, newest first, and the cursor of the next.
pub(crate) async fn list(
    guard: &Guard<'_>,
    filter: Filter<'_>,
) -> Result<(Vec<Incident>, Option<String>), ApiError> {
    guard.require(&Action::HandleIncidents, "incidents").await?;
    let status = filter.status.map(parse_status).transpose()?;
    let (before, limit) = paging::window(filter.cursor, filter.limit)?;
    let rows = guard
        .state
        .store
        .incidents(
            status.map(IncidentStatus::as_str),
            filter.assistant,
            before,
            limit + 1,
        )
        .await?;
    Ok(paging::page(rows, limit, |i: &Incident| {
        (i.opened_at, i.id.as_str())
    }))
}

async fn detail(guard: &Guard<'_>, incident: Incident) -> Result<Detail, ApiError> {
    let store = &guard.state.store;
    let feedback = store.feedback_by_id(&incident.feedback_id).await?;
    let timeline = store.incident_events(&incident.id).await?;
    Ok(Detail {
        incident,
        feedback,
        timeline,
    })
}

/// One incident with its feedback and timeline.
pub(crate) async fn get(guard: &Guard<'_>, id: &str) -> Result<Detail, ApiError> {
    guard
        .require(&Action::HandleIncidents, &resource(id))
        .await?;
    let id = incident_id(id)?;
    let id = id.as_str();
    let incident = guard
        .state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    detail(guard, incident).await
}

/// Acknowledges, resolves or reopens an incident, assigns it, or adds a note or an action.
pub(crate) async fn change(
    guard: &Guard<'_>,
    id: &str,
    asked: Change<'_>,
) -> Result<Detail, ApiError> {
    let resource = resource(id);
    guard.require(&Action::HandleIncidents, &resource).await?;
    let id = incident_id(id)?;
    let id = id.as_str();
    let status = asked.status.map(parse_status).transpose()?;
    let assignee = match asked.assignee {
        Some(Some(name)) => Some(Some(check_text("assignee", name)?)),
        Some(None) => Some(None),
        None => None,
    };
    let note = match (asked.note, asked.action) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give a note or an action, one at a time".to_owned(),
            ));
        }
        (Some(text), None) => Some((NoteKind::Note, check_text("note", text)?)),
        (None, Some(text)) => Some((NoteKind::Action, check_text("action", text)?)),
        (None, None) => None,
    };
    if status.is_none() && assignee.is_none() && note.is_none() {
        return Err(ApiError::BadRequest(
            "nothing to change: give a status, an assignee, a note or an action".to_owned(),
        ));
    }
    let change = IncidentChange {
        status,
        assignee,
        note,
    };
    let principal = &guard.caller.principal;
    let changed = guard
        .state
        .store
        .change_incident(
            id,
            &change,
            ActorRef {
                id: &principal.id,
                name: &principal.display_name,
            },
            OffsetDateTime::now_utc(),
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    guard.state.bus.poke();
    guard
        .record(
            AuditAction::IncidentChanged,
            &resource,
            Outcome::Allowed,
            json!({
                "status": change.status.map(IncidentStatus::as_str),
                "assignee": change.assignee,
                "note": change.note.as_ref().map(|(kind, _)| kind.as_str()),
                "now": changed.status.as_str(),
            }),
        )
        .await?;
    detail(guard, changed).await
}

/// Allows following the live feed of escalations, incidents and switches.
/// What following the live feed takes, when it opens and every second after.
pub(crate) const FOLLOW: Action = Action::HandleIncidents;

pub(crate) async fn follow(guard: &Guard<'_>) -> Result<(), ApiError> {
    guard.require(&FOLLOW, "escalations").await.map(|_| ())
}
