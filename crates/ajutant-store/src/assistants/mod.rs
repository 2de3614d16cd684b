//! Assistants and their immutable versions. The store keeps every version and which is
//! current, and refuses (by trigger) to change or remove a version once written. A version's
//! definition is stored as JSON in a form of its own ([`stored`]), apart from the API's, so the
//! API can change shape without making old versions unreadable.

mod stored;

use ajutant_core::assistant::Definition;
use time::OffsetDateTime;

use crate::db_time::DbTime;
use crate::{Store, StoreError, on_pool};

/// An assistant with its current version's definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Assistant {
    pub id: String,
    pub current_version: i64,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub definition: Definition,
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AssistantVersion {
    pub assistant_id: String,
    pub version: i64,
    pub definition: Definition,
    pub created_by: String,
    pub created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct AssistantRow {
    id: String,
    current_version: i64,
    created_by: String,
    #[sqlx(try_from = "DbTime")]
    created_at: OffsetDateTime,
    definition: String,
    #[sqlx(try_from = "DbTime")]
    updated_at: OffsetDateTime,
    updated_by: String,
}

impl TryFrom<AssistantRow> for Assistant {
    type Error = StoreError;

    fn try_from(row: AssistantRow) -> Result<Self, StoreError> {
        Ok(Self {
            definition: stored::read(&row.id, row.current_version, &row.definition)?,
            id: row.id,
            current_version: row.current_version,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        })
    }
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    assistant_id: String,
    version: i64,
    definition: String,
    created_by: String,
    #[sqlx(try_from = "DbTime")]
    created_at: OffsetDateTime,
}

impl TryFrom<VersionRow> for AssistantVersion {
    type Error = StoreError;

    fn try_from(row: VersionRow) -> Result<Self, StoreError> {
        Ok(Self {
            definition: stored::read(&row.assistant_id, row.version, &row.definition)?,
            assistant_id: row.assistant_id,
            version: row.version,
            created_by: row.created_by,
            created_at: row.created_at,
        })
    }
}

const ASSISTANT_SELECT: &str = "SELECT a.id, a.current_version, a.created_by, a.created_at, v.definition, \
     v.created_at AS updated_at, v.created_by AS updated_by \
     FROM assistants a JOIN assistant_versions v \
       ON v.assistant_id = a.id AND v.version = a.current_version";

impl Store {
    /// Creates an assistant at version 1; a conflict when the id is taken.
    pub async fn create_assistant(
        &self,
        id: &str,
        definition: &Definition,
        created_by: &str,
        now: OffsetDateTime,
    ) -> Result<Assistant, StoreError> {
        let definition = stored::write(definition)?;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO assistants (id, current_version, created_by, created_at) \
                 VALUES ($1, 1, $2, $3) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(created_by)
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::Conflict {
                    what: format!("an assistant with id {id:?} already exists"),
                });
            }
            sqlx::query(
                "INSERT INTO assistant_versions (assistant_id, version, definition, created_by, \
                 created_at) VALUES ($1, 1, $2, $3, $4)",
            )
            .bind(id)
            .bind(&definition)
            .bind(created_by)
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        self.assistant(id)
            .await?
            .ok_or_else(|| StoreError::Invalid {
                what: format!("assistant {id} vanished after insert"),
            })
    }

    /// Adds a version and makes it current. `expected` is the version the editor saw: when
    /// another edit landed first the change is refused (a conflict), not silently merged.
    #[allow(
        clippy::too_many_arguments,
        reason = "each is a column of the row written"
    )]
    pub async fn add_assistant_version(
        &self,
        id: &str,
        expected: Option<i64>,
        definition: &Definition,
        created_by: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Assistant>, StoreError> {
        let definition = stored::write(definition)?;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // A write first, so SQLite takes its write lock now (see `put_document`); on
            // PostgreSQL it locks the row against a concurrent edit.
            sqlx::query("UPDATE assistants SET current_version = current_version WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let current: Option<i64> =
                sqlx::query_scalar("SELECT current_version FROM assistants WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(current) = current else {
                return Ok(None);
            };
            if let Some(expected) = expected
                && expected != current
            {
                return Err(StoreError::Conflict {
                    what: format!(
                        "assistant {id} is at version {current}, not {expected}: reload and edit again"
                    ),
                });
            }
            let next = current + 1;
            sqlx::query(
                "INSERT INTO assistant_versions (assistant_id, version, definition, created_by, \
                 created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(next)
            .bind(&definition)
            .bind(created_by)
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
            let moved = sqlx::query(
                "UPDATE assistants SET current_version = $2 WHERE id = $1 AND current_version = $3",
            )
            .bind(id)
            .bind(next)
            .bind(current)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Err(StoreError::Conflict {
                    what: format!("assistant {id} changed while editing: edit again"),
                });
            }
            tx.commit().await?;
        });
        self.assistant(id).await
    }

    pub async fn assistant(&self, id: &str) -> Result<Option<Assistant>, StoreError> {
        let sql = format!("{ASSISTANT_SELECT} WHERE a.id = $1");
        let row: Option<AssistantRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(Assistant::try_from).transpose()
    }

    pub async fn assistants(&self) -> Result<Vec<Assistant>, StoreError> {
        let sql = format!("{ASSISTANT_SELECT} ORDER BY a.id");
        let rows: Vec<AssistantRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).fetch_all(pool).await?
        });
        rows.into_iter().map(Assistant::try_from).collect()
    }

    pub async fn assistant_versions(&self, id: &str) -> Result<Vec<AssistantVersion>, StoreError> {
        let rows: Vec<VersionRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT assistant_id, version, definition, created_by, created_at \
                 FROM assistant_versions WHERE assistant_id = $1 ORDER BY version",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(AssistantVersion::try_from).collect()
    }

    pub async fn assistant_version(
        &self,
        id: &str,
        version: i64,
    ) -> Result<Option<AssistantVersion>, StoreError> {
        let row: Option<VersionRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT assistant_id, version, definition, created_by, created_at \
                 FROM assistant_versions WHERE assistant_id = $1 AND version = $2",
            )
            .bind(id)
            .bind(version)
            .fetch_optional(pool)
            .await?
        });
        row.map(AssistantVersion::try_from).transpose()
    }
}

impl Store {
    /// Marks a one-time seed as done; false when it already was (by this or another instance).
    pub async fn claim_seed(&self, name: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, pool => {
            sqlx::query("INSERT INTO seeds (name, seeded_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(DbTime(now))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(inserted > 0)
    }
}
