//! Platform API keys, stored without their secret (only its hash), and their revocation.

use time::OffsetDateTime;

use crate::db_time::DbTime;
use crate::{Store, StoreError, on_pool};

/// A platform API key, without its secret.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The public part of the key; safe to show and to log.
    pub id: String,
    pub name: String,
    pub groups: Vec<String>,
    pub secret_hash: String,
    pub owner_subject: Option<String>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    name: String,
    groups: String,
    secret_hash: String,
    owner_subject: Option<String>,
    created_by: String,
    created_at: DbTime,
    expires_at: Option<DbTime>,
    revoked_at: Option<DbTime>,
    last_used_at: Option<DbTime>,
}

impl ApiKeyRow {
    fn into_key(self) -> Result<ApiKey, StoreError> {
        let groups = serde_json::from_str(&self.groups).map_err(|e| StoreError::Invalid {
            what: format!("api key {}: groups are not a JSON list: {e}", self.id),
        })?;
        Ok(ApiKey {
            id: self.id,
            name: self.name,
            groups,
            secret_hash: self.secret_hash,
            owner_subject: self.owner_subject,
            created_by: self.created_by,
            created_at: self.created_at.0,
            expires_at: self.expires_at.map(|t| t.0),
            revoked_at: self.revoked_at.map(|t| t.0),
            last_used_at: self.last_used_at.map(|t| t.0),
        })
    }
}

const API_KEY_COLUMNS: &str = "id, name, groups, secret_hash, owner_subject, created_by, \
     created_at, expires_at, revoked_at, last_used_at";

impl Store {
    pub async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let groups = serde_json::to_string(&key.groups).map_err(|e| StoreError::Invalid {
            what: format!("api key groups: {e}"),
        })?;
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO api_keys (id, name, groups, secret_hash, owner_subject, created_by, \
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&key.id)
            .bind(&key.name)
            .bind(&groups)
            .bind(&key.secret_hash)
            .bind(&key.owner_subject)
            .bind(&key.created_by)
            .bind(DbTime(key.created_at))
            .bind(key.expires_at.map(DbTime))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row: Option<ApiKeyRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(ApiKeyRow::into_key).transpose()
    }

    /// Every key, newest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, id");
        let rows: Vec<ApiKeyRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).fetch_all(pool).await?
        });
        rows.into_iter().map(ApiKeyRow::into_key).collect()
    }

    /// Revokes one key; false when it does not exist or was already revoked.
    pub async fn revoke_api_key(
        &self,
        id: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self.revoke_keys_where("id", id, reason, now).await? == 1)
    }

    /// Revokes every live key a directory user owns; how many there were.
    pub async fn revoke_api_keys_of(
        &self,
        owner_subject: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.revoke_keys_where("owner_subject", owner_subject, reason, now)
            .await
    }

    /// `column` is one of two literals above, never caller input.
    async fn revoke_keys_where(
        &self,
        column: &'static str,
        value: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "UPDATE api_keys SET revoked_at = $2, revoked_reason = $3 \
             WHERE {column} = $1 AND revoked_at IS NULL"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query(&sql)
                .bind(value)
                .bind(DbTime(now))
                .bind(reason)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    pub async fn mark_api_key_used(&self, id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(DbTime(now))
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
