//! Incidents, which escalated feedback opens (in `Store::save_feedback`'s transaction), and
//! their timelines. A change is checked against `IncidentStatus::transition` inside the
//! transaction that writes it, after taking the row's write lock, so two changes cannot both
//! pass the check.

use ajutant_core::incident::{IncidentStatus, NoteKind, TimelineKind};
use time::OffsetDateTime;

use crate::db_time::{DbTime, MaybeDbTime};
use crate::ops::insert_ops_event;
use crate::{Pool, Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Incident {
    pub id: String,
    pub feedback_id: String,
    pub message_id: String,
    pub conversation_id: String,
    pub assistant_id: String,
    pub assistant_version: i64,
    pub deployment: Option<String>,
    pub trace_id: Option<String>,
    /// JSON array of category codes.
    pub categories: String,
    pub serious: bool,
    pub reported_by: String,
    pub reported_by_name: String,
    #[sqlx(try_from = "String")]
    pub status: IncidentStatus,
    pub assignee: Option<String>,
    #[sqlx(try_from = "DbTime")]
    pub opened_at: OffsetDateTime,
    #[sqlx(try_from = "MaybeDbTime")]
    pub acknowledged_at: Option<OffsetDateTime>,
    #[sqlx(try_from = "MaybeDbTime")]
    pub resolved_at: Option<OffsetDateTime>,
    #[sqlx(try_from = "DbTime")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IncidentEvent {
    pub id: String,
    pub incident_id: String,
    #[sqlx(try_from = "String")]
    pub kind: TimelineKind,
    pub text: Option<String>,
    pub actor_id: String,
    pub actor_name: String,
    #[sqlx(try_from = "DbTime")]
    pub created_at: OffsetDateTime,
}

/// A change to an incident, made by IT operations.
#[derive(Debug, Clone, Default)]
pub struct IncidentChange {
    /// The status to move to (`open` reopens); allowed or not by `IncidentStatus::transition`.
    pub status: Option<IncidentStatus>,
    /// `Some(None)` clears the assignee.
    pub assignee: Option<Option<String>>,
    /// A note or an action taken, with its text.
    pub note: Option<(NoteKind, String)>,
}

/// Who did something, for timelines.
#[derive(Debug, Clone, Copy)]
pub struct ActorRef<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

pub(crate) const INCIDENT_COLUMNS: &str = "id, feedback_id, message_id, conversation_id, assistant_id, \
     assistant_version, deployment, trace_id, categories, serious, reported_by, \
     reported_by_name, status, assignee, opened_at, acknowledged_at, resolved_at, updated_at";
const EVENT_COLUMNS: &str = "id, incident_id, kind, text, actor_id, actor_name, created_at";

impl Store {
    pub async fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        }))
    }

    pub async fn incident_for_feedback(
        &self,
        feedback_id: &str,
    ) -> Result<Option<Incident>, StoreError> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE feedback_id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(feedback_id).fetch_optional(pool).await?
        }))
    }

    /// Incidents, newest first, optionally only those in `status` or of one assistant;
    /// `before` is the cursor: the (opened_at, id) of the last one already seen.
    pub async fn incidents(
        &self,
        status: Option<&str>,
        assistant_id: Option<&str>,
        before: Option<(OffsetDateTime, String)>,
        limit: i64,
    ) -> Result<Vec<Incident>, StoreError> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR assistant_id = $2) \
             AND ($3 IS NULL OR opened_at < $3 OR (opened_at = $3 AND id < $4)) \
             ORDER BY opened_at DESC, id DESC LIMIT $5"
        );
        let (at, id) = crate::db_time::cursor_binds(before);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(status)
                .bind(assistant_id)
                .bind(at)
                .bind(id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// An incident's timeline, oldest first.
    pub async fn incident_events(
        &self,
        incident_id: &str,
    ) -> Result<Vec<IncidentEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM incident_events WHERE incident_id = $1 \
             ORDER BY created_at, id"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(incident_id).fetch_all(pool).await?
        }))
    }

    /// Applies `change` to an incident and records it on its timeline and on the operations
    /// feed, in one transaction. `None` when there is no such incident; a conflict when the
    /// status change is not allowed from the current status (open → acknowledged → resolved;
    /// acknowledged or resolved → open reopens).
    pub async fn change_incident(
        &self,
        id: &str,
        change: &IncidentChange,
        actor: ActorRef<'_>,
        now: OffsetDateTime,
    ) -> Result<Option<Incident>, StoreError> {
        let postgres = matches!(self.pool, Pool::Postgres(_));
        let select = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
        let found = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Writing first takes SQLite's write lock (and PostgreSQL's row lock) before the
            // status is read, so two changes cannot both pass the transition check.
            let touched = sqlx::query("UPDATE incidents SET updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if touched == 0 {
                false
            } else {
                let current: Incident = sqlx::query_as(&select).bind(id).fetch_one(&mut *tx).await?;
                let mut entries: Vec<(TimelineKind, Option<String>)> = Vec::new();
                if let Some(status) = change.status {
                    let Some(entry) = current.status.transition(status) else {
                        return Err(StoreError::Conflict {
                            what: format!(
                                "the incident is {}; it cannot become {status}",
                                current.status
                            ),
                        });
                    };
                    let (set_acknowledged, set_resolved) = match status {
                        IncidentStatus::Acknowledged => (Some(DbTime(now)), None),
                        IncidentStatus::Resolved => (None, Some(DbTime(now))),
                        IncidentStatus::Open => (None, None),
                    };
                    sqlx::query(
                        "UPDATE incidents SET status = $2, \
                         acknowledged_at = CASE WHEN $2 = 'open' THEN NULL \
                             ELSE COALESCE($3, acknowledged_at) END, \
                         resolved_at = CASE WHEN $2 = 'resolved' THEN $4 ELSE NULL END \
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(status.as_str())
                    .bind(set_acknowledged)
                    .bind(set_resolved)
                    .execute(&mut *tx)
                    .await?;
                    entries.push((entry, None));
                }
                if let Some(assignee) = &change.assignee {
                    sqlx::query("UPDATE incidents SET assignee = $2 WHERE id = $1")
                        .bind(id)
                        .bind(assignee.as_deref().map(|a| a.replace('\0', "")))
                        .execute(&mut *tx)
                        .await?;
                    entries.push((TimelineKind::Assigned, assignee.clone()));
                }
                if let Some((kind, text)) = &change.note {
                    entries.push((kind.timeline_kind(), Some(text.replace('\0', ""))));
                }
                for (kind, text) in entries {
                    sqlx::query(
                        "INSERT INTO incident_events (id, incident_id, kind, text, actor_id, \
                         actor_name, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(id)
                    .bind(kind.as_str())
                    .bind(text)
                    .bind(actor.id)
                    .bind(actor.name.replace('\0', ""))
                    .bind(DbTime(now))
                    .execute(&mut *tx)
                    .await?;
                }
                insert_ops_event!(tx, postgres, "incident", id, now);
                tx.commit().await?;
                true
            }
        });
        if !found {
            return Ok(None);
        }
        self.incident(id).await
    }
}
