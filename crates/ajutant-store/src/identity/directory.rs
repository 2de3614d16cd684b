//! The directory's provisioning state: users as SCIM created them, kept as inactive
//! tombstones after deletion so a deprovisioned subject stays locked out.

use time::OffsetDateTime;

use crate::db_time::DbTime;
use crate::{Store, StoreError, on_pool};

/// A user as the directory provisioned them over SCIM.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DirectoryUser {
    pub id: String,
    pub external_id: String,
    pub user_name: String,
    pub display_name: String,
    pub active: bool,
    #[sqlx(try_from = "DbTime")]
    pub created_at: OffsetDateTime,
    #[sqlx(try_from = "DbTime")]
    pub updated_at: OffsetDateTime,
}

const DIRECTORY_USER_COLUMNS: &str =
    "id, external_id, user_name, display_name, active, created_at, updated_at";

impl Store {
    /// Creates the user, or fails with [`StoreError::Conflict`] when the external id is taken.
    pub async fn insert_directory_user(&self, user: &DirectoryUser) -> Result<(), StoreError> {
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO directory_users \
                 (id, external_id, user_name, display_name, active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (external_id) DO NOTHING",
            )
            .bind(&user.id)
            .bind(&user.external_id)
            .bind(&user.user_name)
            .bind(&user.display_name)
            .bind(user.active)
            .bind(DbTime(user.created_at))
            .execute(pool)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(StoreError::Conflict {
                what: format!("a user with externalId {} exists", user.external_id),
            });
        }
        Ok(())
    }

    /// A provisioned, not deleted, user by SCIM id.
    pub async fn directory_user(&self, id: &str) -> Result<Option<DirectoryUser>, StoreError> {
        let sql = format!(
            "SELECT {DIRECTORY_USER_COLUMNS} FROM directory_users \
             WHERE id = $1 AND deleted_at IS NULL"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        }))
    }

    /// Users not deleted, optionally only those with `user_name` or `external_id` equal to the
    /// given value (the filters directories send), in creation order.
    pub async fn directory_users(
        &self,
        user_name: Option<&str>,
        external_id: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<DirectoryUser>), StoreError> {
        let filter = "deleted_at IS NULL AND ($1 IS NULL OR user_name = $1) \
                      AND ($2 IS NULL OR external_id = $2)";
        let count_sql = format!("SELECT COUNT(*) FROM directory_users WHERE {filter}");
        let page_sql = format!(
            "SELECT {DIRECTORY_USER_COLUMNS} FROM directory_users WHERE {filter} \
             ORDER BY created_at, id LIMIT $3 OFFSET $4"
        );
        Ok(on_pool!(self, pool => {
            let total: i64 = sqlx::query_scalar(&count_sql)
                .bind(user_name)
                .bind(external_id)
                .fetch_one(pool)
                .await?;
            let users = sqlx::query_as(&page_sql)
                .bind(user_name)
                .bind(external_id)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            (total, users)
        }))
    }

    /// Replaces a user's attributes; false when there is no such (undeleted) user.
    pub async fn update_directory_user(&self, user: &DirectoryUser) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE directory_users SET external_id = $2, user_name = $3, display_name = $4, \
                 active = $5, updated_at = $6 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(&user.id)
            .bind(&user.external_id)
            .bind(&user.user_name)
            .bind(&user.display_name)
            .bind(user.active)
            .bind(DbTime(user.updated_at))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// SCIM DELETE: the user stays as an inactive tombstone so tokens still in flight are
    /// refused. Returns the external id, or `None` when there was no such user.
    pub async fn delete_directory_user(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(
                "UPDATE directory_users SET active = $2, deleted_at = $3, updated_at = $3 \
                 WHERE id = $1 AND deleted_at IS NULL RETURNING external_id",
            )
            .bind(id)
            .bind(false)
            .bind(DbTime(now))
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Whether the directory has deprovisioned this object id (deactivated or deleted).
    pub async fn is_deprovisioned(&self, subject: &str) -> Result<bool, StoreError> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM directory_users WHERE external_id = $1 AND active = $2",
            )
            .bind(subject)
            .bind(false)
            .fetch_one(pool)
            .await?
        });
        Ok(count > 0)
    }
}
