//! Feedback on answers (incidents themselves are `incidents.rs`). Saving feedback that escalates
//! writes, in one transaction, the feedback, the incident, its first timeline entry, one outbox
//! row per notification target and the operations event every instance's live feed follows:
//! either all of it is stored or none of it is, so a crash cannot leave an escalation that
//! nobody hears about.

use time::OffsetDateTime;

use crate::db_time::DbTime;
use crate::incidents::{INCIDENT_COLUMNS, Incident};
use crate::ops::insert_ops_event;
use crate::{Pool, Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Feedback {
    pub id: String,
    pub message_id: String,
    pub conversation_id: String,
    pub assistant_id: String,
    pub assistant_version: i64,
    pub deployment: Option<String>,
    pub trace_id: Option<String>,
    /// JSON array, as the answer cited them.
    pub citations: String,
    pub question: String,
    pub answer: String,
    pub principal_id: String,
    pub principal_name: String,
    pub helpful: Option<bool>,
    pub time_saved_minutes: Option<i64>,
    /// JSON array of category codes.
    pub categories: String,
    pub comment: Option<String>,
    pub serious: bool,
    pub escalated: bool,
    #[sqlx(try_from = "DbTime")]
    pub created_at: OffsetDateTime,
    #[sqlx(try_from = "DbTime")]
    pub updated_at: OffsetDateTime,
}

impl Feedback {
    pub fn category_list(&self) -> Vec<String> {
        serde_json::from_str(&self.categories).unwrap_or_default()
    }
}

/// Feedback as given: the judged answer's facts and the user's verdict.
#[derive(Debug, Clone, Default)]
pub struct NewFeedback {
    pub message_id: String,
    pub conversation_id: String,
    pub assistant_id: String,
    pub assistant_version: i64,
    pub deployment: Option<String>,
    pub trace_id: Option<String>,
    pub citations: String,
    pub question: String,
    pub answer: String,
    pub principal_id: String,
    pub principal_name: String,
    pub helpful: Option<bool>,
    pub time_saved_minutes: Option<i64>,
    pub categories: Vec<String>,
    pub comment: Option<String>,
    pub serious: bool,
}

/// What to write when feedback escalates and no incident exists for it yet.
#[derive(Debug, Clone)]
pub struct Escalation {
    pub incident_id: String,
    /// One per notification target.
    pub notifications: Vec<NewNotification>,
}

#[derive(Debug, Clone)]
pub struct NewNotification {
    /// The `webhook-id`: `msg_<id>`.
    pub id: String,
    pub target: String,
    pub event: String,
    pub payload: String,
}

#[derive(Debug, Clone)]
pub struct SavedFeedback {
    pub feedback: Feedback,
    /// False when it replaced the user's earlier feedback on the same answer.
    pub created: bool,
    /// The incident this feedback escalated to, now or before.
    pub incident: Option<Incident>,
    /// Whether this save opened it.
    pub opened: bool,
}

/// Which feedback an inbox shows. `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct FeedbackFilter {
    pub helpful: Option<bool>,
    pub category: Option<String>,
    pub serious: Option<bool>,
    pub escalated: Option<bool>,
    pub version: Option<i64>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// One piece of feedback as analytics need it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FeedbackFact {
    #[sqlx(try_from = "DbTime")]
    pub created_at: OffsetDateTime,
    pub assistant_version: i64,
    pub helpful: Option<bool>,
    pub time_saved_minutes: Option<i64>,
    pub categories: String,
    pub serious: bool,
    pub escalated: bool,
}

const FEEDBACK_COLUMNS: &str = "id, message_id, conversation_id, assistant_id, \
     assistant_version, deployment, trace_id, citations, question, answer, principal_id, \
     principal_name, helpful, time_saved_minutes, categories, comment, serious, escalated, \
     created_at, updated_at";

impl Store {
    /// Stores a user's feedback on an answer, replacing their earlier feedback on it, and, when
    /// `escalation` is given and the feedback has no incident yet, opens one with its
    /// notifications and feed event, all in one transaction.
    pub async fn save_feedback(
        &self,
        new: &NewFeedback,
        escalation: Option<&Escalation>,
        now: OffsetDateTime,
    ) -> Result<SavedFeedback, StoreError> {
        let categories =
            serde_json::to_string(&new.categories).map_err(|e| StoreError::Invalid {
                what: format!("feedback categories: {e}"),
            })?;
        let postgres = matches!(self.pool, Pool::Postgres(_));
        let fresh_id = uuid::Uuid::now_v7().to_string();
        let select_feedback = format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE message_id = $1 AND principal_id = $2"
        );
        let select_incident =
            format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE feedback_id = $1");
        let clean = |text: &str| text.replace('\0', "");
        let (created, opened) = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // The write comes first, so on SQLite the transaction holds the write lock from
            // its first statement and cannot fail to upgrade later.
            sqlx::query(
                "INSERT INTO feedback (id, message_id, conversation_id, assistant_id, \
                 assistant_version, deployment, trace_id, citations, question, answer, \
                 principal_id, principal_name, helpful, time_saved_minutes, categories, comment, \
                 serious, escalated, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, FALSE, $18, $18) \
                 ON CONFLICT (message_id, principal_id) DO UPDATE SET \
                 helpful = excluded.helpful, time_saved_minutes = excluded.time_saved_minutes, \
                 categories = excluded.categories, comment = excluded.comment, \
                 serious = excluded.serious, updated_at = excluded.updated_at",
            )
            .bind(&fresh_id)
            .bind(&new.message_id)
            .bind(&new.conversation_id)
            .bind(&new.assistant_id)
            .bind(new.assistant_version)
            .bind(&new.deployment)
            .bind(&new.trace_id)
            .bind(&new.citations)
            .bind(clean(&new.question))
            .bind(clean(&new.answer))
            .bind(&new.principal_id)
            .bind(clean(&new.principal_name))
            .bind(new.helpful)
            .bind(new.time_saved_minutes)
            .bind(&categories)
            .bind(new.comment.as_deref().map(clean))
            .bind(new.serious)
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
            let feedback: Feedback = sqlx::query_as(&select_feedback)
                .bind(&new.message_id)
                .bind(&new.principal_id)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM feedback_categories WHERE feedback_id = $1")
                .bind(&feedback.id)
                .execute(&mut *tx)
                .await?;
            for category in &new.categories {
                sqlx::query(
                    "INSERT INTO feedback_categories (feedback_id, category) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&feedback.id)
                .bind(category)
                .execute(&mut *tx)
                .await?;
            }
            let existing: Option<Incident> = sqlx::query_as(&select_incident)
                .bind(&feedback.id)
                .fetch_optional(&mut *tx)
                .await?;
            let created = feedback.id == fresh_id;
            let mut opened = false;
            if let Some(incident) = &existing {
                if !created {
                    sqlx::query(
                        "INSERT INTO incident_events (id, incident_id, kind, text, actor_id, \
                         actor_name, created_at) VALUES ($1, $2, 'feedback_changed', NULL, $3, \
                         $4, $5)",
                    )
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(&incident.id)
                    .bind(&new.principal_id)
                    .bind(clean(&new.principal_name))
                    .bind(DbTime(now))
                    .execute(&mut *tx)
                    .await?;
                    insert_ops_event!(tx, postgres, "incident", &incident.id, now);
                }
            } else if let Some(escalation) = escalation {
                sqlx::query(
                    "INSERT INTO incidents (id, feedback_id, message_id, conversation_id, \
                     assistant_id, assistant_version, deployment, trace_id, categories, serious, \
                     reported_by, reported_by_name, status, assignee, opened_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'open', NULL, \
                     $13, $13)",
                )
                .bind(&escalation.incident_id)
                .bind(&feedback.id)
                .bind(&feedback.message_id)
                .bind(&feedback.conversation_id)
                .bind(&feedback.assistant_id)
                .bind(feedback.assistant_version)
                .bind(&feedback.deployment)
                .bind(&feedback.trace_id)
                .bind(&categories)
                .bind(new.serious)
                .bind(&feedback.principal_id)
                .bind(&feedback.principal_name)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO incident_events (id, incident_id, kind, text, actor_id, \
                     actor_name, created_at) VALUES ($1, $2, 'opened', $3, $4, $5, $6)",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&escalation.incident_id)
                .bind(new.comment.as_deref().map(clean))
                .bind(&feedback.principal_id)
                .bind(&feedback.principal_name)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?;
                for notification in &escalation.notifications {
                    sqlx::query(
                        "INSERT INTO outbox (id, target, event, subject, payload, status, \
                         attempts, next_attempt_at, created_at) \
                         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
                    )
                    .bind(&notification.id)
                    .bind(&notification.target)
                    .bind(&notification.event)
                    .bind(&escalation.incident_id)
                    .bind(&notification.payload)
                    .bind(DbTime(now))
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query("UPDATE feedback SET escalated = TRUE WHERE id = $1")
                    .bind(&feedback.id)
                    .execute(&mut *tx)
                    .await?;
                insert_ops_event!(tx, postgres, "escalation", &escalation.incident_id, now);
                opened = true;
            }
            tx.commit().await?;
            (created, opened)
        });
        // Read back outside the transaction: what was committed, in its stored form.
        let feedback = self
            .feedback_of(&new.message_id, &new.principal_id)
            .await?
            .ok_or_else(|| StoreError::Invalid {
                what: format!("feedback on {} vanished after saving", new.message_id),
            })?;
        let incident = self.incident_for_feedback(&feedback.id).await?;
        Ok(SavedFeedback {
            feedback,
            created,
            incident,
            opened,
        })
    }

    /// A user's feedback on an answer, if they gave any.
    pub async fn feedback_of(
        &self,
        message_id: &str,
        principal_id: &str,
    ) -> Result<Option<Feedback>, StoreError> {
        let sql = format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE message_id = $1 AND principal_id = $2"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(message_id)
                .bind(principal_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn feedback_by_id(&self, id: &str) -> Result<Option<Feedback>, StoreError> {
        let sql = format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        }))
    }

    /// An assistant's feedback inbox, newest first, `limit` at a time; `before` is the cursor:
    /// the (created_at, id) of the last one already seen.
    pub async fn assistant_feedback(
        &self,
        assistant_id: &str,
        filter: &FeedbackFilter,
        before: Option<(OffsetDateTime, String)>,
        limit: i64,
    ) -> Result<Vec<Feedback>, StoreError> {
        let sql = format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback f WHERE assistant_id = $1 \
             AND ($2 IS NULL OR helpful = $2) \
             AND ($3 IS NULL OR EXISTS (SELECT 1 FROM feedback_categories c \
                  WHERE c.feedback_id = f.id AND c.category = $3)) \
             AND ($4 IS NULL OR serious = $4) \
             AND ($5 IS NULL OR escalated = $5) \
             AND ($6 IS NULL OR assistant_version = $6) \
             AND ($7 IS NULL OR created_at >= $7) \
             AND ($8 IS NULL OR created_at < $8) \
             AND ($9 IS NULL OR created_at < $9 OR (created_at = $9 AND id < $10)) \
             ORDER BY created_at DESC, id DESC LIMIT $11"
        );
        let (at, id) = crate::db_time::cursor_binds(before);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(assistant_id)
                .bind(filter.helpful)
                .bind(&filter.category)
                .bind(filter.serious)
                .bind(filter.escalated)
                .bind(filter.version)
                .bind(filter.since.map(DbTime))
                .bind(filter.until.map(DbTime))
                .bind(at)
                .bind(id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The facts analytics are computed from: an assistant's feedback given in
    /// `[since, until)`, oldest first.
    pub async fn feedback_facts(
        &self,
        assistant_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<FeedbackFact>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT created_at, assistant_version, helpful, time_saved_minutes, categories, \
                 serious, escalated FROM feedback \
                 WHERE assistant_id = $1 AND created_at >= $2 AND created_at < $3 \
                 ORDER BY created_at",
            )
            .bind(assistant_id)
            .bind(DbTime(since))
            .bind(DbTime(until))
            .fetch_all(pool)
            .await?
        }))
    }
}
