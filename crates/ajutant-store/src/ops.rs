//! What IT operations act on across instances: kill switches, and the operations event log
//! every instance follows so that an escalation or a switch made on one reaches all of them.
//! On PostgreSQL each event is also announced with `NOTIFY` in the transaction that writes it,
//! so listeners hear of it the moment it commits; polling [`Store::ops_events_after`] is the
//! fallback (and the only way on SQLite, where one process owns the file).

use ajutant_core::switch::{Holder, SwitchState, SwitchTarget, may_overwrite};
use sqlx::postgres::PgListener;
use time::OffsetDateTime;

use crate::db_time::DbTime;
use crate::{Pool, Store, StoreError, on_pool};

/// The PostgreSQL channel operations events are announced on; the payload is the event's id.
pub const NOTIFY_CHANNEL: &str = "ajutant_ops";

/// Appends an operations event inside the transaction `$tx` and, on PostgreSQL, announces it.
/// A macro rather than a function because it runs on either backend's transaction.
macro_rules! insert_ops_event {
    ($tx:ident, $postgres:expr, $kind:expr, $subject:expr, $now:expr) => {{
        let event_id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO ops_events (id, kind, subject, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&event_id)
        .bind($kind)
        .bind($subject)
        .bind($crate::db_time::DbTime($now))
        .execute(&mut *$tx)
        .await?;
        if $postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind($crate::ops::NOTIFY_CHANNEL)
                .bind(&event_id)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use insert_ops_event;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OpsEvent {
    pub id: String,
    /// `escalation` (an incident opened), `incident` (one changed) or `switch`.
    pub kind: String,
    /// The incident's id, or the switch's `target/id`.
    pub subject: String,
    #[sqlx(try_from = "DbTime")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct KillSwitch {
    #[sqlx(try_from = "String")]
    pub target: SwitchTarget,
    /// Empty for the platform.
    pub target_id: String,
    #[sqlx(try_from = "String")]
    pub state: SwitchState,
    pub reason: String,
    pub changed_by: String,
    pub changed_by_name: String,
    /// What allowed the change: a role name, or `owner_group`.
    pub changed_by_role: String,
    #[sqlx(try_from = "DbTime")]
    pub changed_at: OffsetDateTime,
}

/// A switch being flipped.
#[derive(Debug, Clone, Copy)]
pub struct SwitchChange<'a> {
    pub target: SwitchTarget,
    pub target_id: &'a str,
    pub state: SwitchState,
    pub reason: &'a str,
    pub changed_by: &'a str,
    pub changed_by_name: &'a str,
    pub changed_by_role: &'a str,
}

const SWITCH_COLUMNS: &str = "target, target_id, state, reason, changed_by, changed_by_name, \
     changed_by_role, changed_at";

/// Announcements of operations events on PostgreSQL.
#[derive(Debug)]
pub struct OpsListener(PgListener);

impl OpsListener {
    /// The id of the next event announced; `None` when the connection was lost, so events may
    /// have been missed (the caller should poll). The next call reconnects.
    pub async fn next(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .try_recv()
            .await?
            .map(|notification| notification.payload().to_owned()))
    }
}

impl Store {
    /// A listener for operations events, on PostgreSQL; `None` on SQLite.
    pub async fn ops_listener(&self) -> Result<Option<OpsListener>, StoreError> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(None),
            Pool::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(NOTIFY_CHANNEL).await?;
                Ok(Some(OpsListener(listener)))
            }
        }
    }

    /// Appends an operations event on its own (for changes that are not stored here).
    pub async fn append_ops_event(
        &self,
        kind: &str,
        subject: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let postgres = matches!(self.pool, Pool::Postgres(_));
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_ops_event!(tx, postgres, kind, subject, now);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn ops_event(&self, id: &str) -> Result<Option<OpsEvent>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT id, kind, subject, created_at FROM ops_events WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Events written after `after`, oldest first, at most `limit`.
    pub async fn ops_events_after(
        &self,
        after: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<OpsEvent>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, kind, subject, created_at FROM ops_events WHERE created_at > $1 \
                 ORDER BY created_at, id LIMIT $2",
            )
            .bind(DbTime(after))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Removes events older than `before`; the feed only needs recent ones.
    pub async fn purge_ops_events(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query("DELETE FROM ops_events WHERE created_at < $1")
                .bind(DbTime(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Flips a kill switch: its row, the revision instances watch, and an operations event, in
    /// one transaction.
    pub async fn set_kill_switch(
        &self,
        change: SwitchChange<'_>,
        now: OffsetDateTime,
    ) -> Result<KillSwitch, StoreError> {
        let postgres = matches!(self.pool, Pool::Postgres(_));
        let subject = format!("{}/{}", change.target, change.target_id);
        let select = format!(
            "SELECT {SWITCH_COLUMNS} FROM kill_switches WHERE target = $1 AND target_id = $2"
        );
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Every change takes this row first, so the check below sees the switch as the
            // change will replace it.
            sqlx::query("UPDATE switch_revision SET revision = revision + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            let current: Option<KillSwitch> = sqlx::query_as(&select)
                .bind(change.target.as_str())
                .bind(change.target_id)
                .fetch_optional(&mut *tx)
                .await?;
            let holder = current.as_ref().map(|row| (row.state, row.changed_by_role.as_str()));
            let changer = Holder::of_role(change.changed_by_role);
            if !may_overwrite(holder, changer) {
                let held_by = Holder::of_role(holder.map_or("", |(_, role)| role));
                return Err(StoreError::Conflict {
                    what: format!(
                        "{subject} is switched off by {}; only they can change that switch",
                        held_by.name()
                    ),
                });
            }
            sqlx::query(
                "INSERT INTO kill_switches (target, target_id, state, reason, changed_by, \
                 changed_by_name, changed_by_role, changed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (target, target_id) DO UPDATE SET state = excluded.state, \
                 reason = excluded.reason, changed_by = excluded.changed_by, \
                 changed_by_name = excluded.changed_by_name, \
                 changed_by_role = excluded.changed_by_role, changed_at = excluded.changed_at",
            )
            .bind(change.target.as_str())
            .bind(change.target_id)
            .bind(change.state.as_str())
            .bind(change.reason.replace('\0', ""))
            .bind(change.changed_by)
            .bind(change.changed_by_name.replace('\0', ""))
            .bind(change.changed_by_role)
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
            insert_ops_event!(tx, postgres, "switch", &subject, now);
            let stored: KillSwitch = sqlx::query_as(&select)
                .bind(change.target.as_str())
                .bind(change.target_id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            stored
        }))
    }

    /// Every switch ever flipped, most recently changed first.
    pub async fn kill_switches(&self) -> Result<Vec<KillSwitch>, StoreError> {
        let sql = format!(
            "SELECT {SWITCH_COLUMNS} FROM kill_switches ORDER BY changed_at DESC, target, target_id"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).fetch_all(pool).await?
        }))
    }

    pub async fn kill_switch(
        &self,
        target: &str,
        target_id: &str,
    ) -> Result<Option<KillSwitch>, StoreError> {
        let sql = format!(
            "SELECT {SWITCH_COLUMNS} FROM kill_switches WHERE target = $1 AND target_id = $2"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(target)
                .bind(target_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Moves with every switch change, on any instance.
    pub async fn switch_revision(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT revision FROM switch_revision WHERE id = 1")
                .fetch_one(pool)
                .await?
        }))
    }
}
