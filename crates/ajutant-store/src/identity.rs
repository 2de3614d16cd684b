//! Identity state: browser sessions, sign-ins in progress, platform API keys, role bindings and
//! the directory's provisioning state. Secrets arrive here already hashed; this module never sees
//! a session id or an API key in the clear.

use ajutant_core::policy::{Grantee, Principal, Role, RoleBinding};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db_time::DbTime;
use crate::{Store, StoreError, on_pool};

/// A browser session as stored.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    pub csrf_token: String,
    pub refresh_token: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub recheck_at: OffsetDateTime,
    pub ended: bool,
}

/// What a new session is made of; `id_hash` is the SHA-256 of the cookie value.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub principal: &'a Principal,
    pub csrf_token: &'a str,
    pub refresh_token: Option<&'a str>,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub recheck_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    principal: String,
    csrf_token: String,
    refresh_token: Option<String>,
    created_at: DbTime,
    last_seen_at: DbTime,
    expires_at: DbTime,
    recheck_at: DbTime,
    ended_at: Option<DbTime>,
}

/// A sign-in waiting for the provider's callback.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginAttempt {
    pub browser_hash: String,
    pub nonce: String,
    pub code_verifier: String,
    pub return_to: String,
}

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

/// A role binding as stored, with where it came from.
#[derive(Debug, Clone)]
pub struct StoredRoleBinding {
    pub id: String,
    pub binding: RoleBinding,
    /// `config` (seeded) or `api`.
    pub source: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct RoleBindingRow {
    id: String,
    role: String,
    grantee_kind: String,
    grantee: String,
    assistant: String,
    source: String,
    created_by: String,
    created_at: DbTime,
}

impl RoleBindingRow {
    fn into_binding(self) -> Result<StoredRoleBinding, StoreError> {
        let role = Role::parse(&self.role).ok_or_else(|| StoreError::Invalid {
            what: format!("role binding {}: unknown role {:?}", self.id, self.role),
        })?;
        let grantee = match self.grantee_kind.as_str() {
            "group" => Grantee::Group(self.grantee),
            "app_role" => Grantee::AppRole(self.grantee),
            other => {
                return Err(StoreError::Invalid {
                    what: format!("role binding {}: unknown grantee kind {other:?}", self.id),
                });
            }
        };
        Ok(StoredRoleBinding {
            id: self.id,
            binding: RoleBinding {
                role,
                grantee,
                assistant: (!self.assistant.is_empty()).then_some(self.assistant),
            },
            source: self.source,
            created_by: self.created_by,
            created_at: self.created_at.0,
        })
    }
}

fn grantee_columns(grantee: &Grantee) -> (&'static str, &str) {
    match grantee {
        Grantee::Group(id) => ("group", id),
        Grantee::AppRole(name) => ("app_role", name),
    }
}

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

impl From<DbTime> for OffsetDateTime {
    fn from(value: DbTime) -> Self {
        value.0
    }
}

const SESSION_COLUMNS: &str = "principal, csrf_token, refresh_token, created_at, last_seen_at, \
     expires_at, recheck_at, ended_at";
const API_KEY_COLUMNS: &str = "id, name, groups, secret_hash, owner_subject, created_by, \
     created_at, expires_at, revoked_at, last_used_at";
const ROLE_BINDING_COLUMNS: &str =
    "id, role, grantee_kind, grantee, assistant, source, created_by, created_at";
const DIRECTORY_USER_COLUMNS: &str =
    "id, external_id, user_name, display_name, active, created_at, updated_at";

impl Store {
    // ---- sessions -------------------------------------------------------------------------

    pub async fn create_session(&self, new: NewSession<'_>) -> Result<(), StoreError> {
        let principal = principal_json(new.principal)?;
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO sessions (id_hash, principal, subject, csrf_token, refresh_token, \
                 created_at, last_seen_at, expires_at, recheck_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
            )
            .bind(new.id_hash)
            .bind(&principal)
            .bind(&new.principal.subject)
            .bind(new.csrf_token)
            .bind(new.refresh_token)
            .bind(DbTime(new.now))
            .bind(DbTime(new.expires_at))
            .bind(DbTime(new.recheck_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1");
        let row: Option<SessionRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id_hash).fetch_optional(pool).await?
        });
        row.map(|row| {
            Ok(Session {
                principal: serde_json::from_str(&row.principal).map_err(|e| {
                    StoreError::Invalid {
                        what: format!("a session's principal cannot be read: {e}"),
                    }
                })?,
                csrf_token: row.csrf_token,
                refresh_token: row.refresh_token,
                created_at: row.created_at.0,
                last_seen_at: row.last_seen_at.0,
                expires_at: row.expires_at.0,
                recheck_at: row.recheck_at.0,
                ended: row.ended_at.is_some(),
            })
        })
        .transpose()
    }

    pub async fn touch_session(
        &self,
        id_hash: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1 AND ended_at IS NULL")
                .bind(id_hash)
                .bind(DbTime(now))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Moves the session's next re-check from `due` to `next`; true for the one caller that
    /// did, so concurrent requests do not all refresh (and spend a rotating refresh token).
    pub async fn claim_session_recheck(
        &self,
        id_hash: &str,
        due: OffsetDateTime,
        next: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE sessions SET recheck_at = $3 \
                 WHERE id_hash = $1 AND recheck_at = $2 AND ended_at IS NULL",
            )
            .bind(id_hash)
            .bind(DbTime(due))
            .bind(DbTime(next))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// After a successful re-check: the user as the provider now describes them.
    pub async fn refresh_session(
        &self,
        id_hash: &str,
        principal: &Principal,
        refresh_token: Option<&str>,
    ) -> Result<(), StoreError> {
        let principal = principal_json(principal)?;
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE sessions SET principal = $2, refresh_token = COALESCE($3, refresh_token) \
                 WHERE id_hash = $1 AND ended_at IS NULL",
            )
            .bind(id_hash)
            .bind(&principal)
            .bind(refresh_token)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Ends one session; false when it was not live.
    pub async fn end_session(
        &self,
        id_hash: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self
            .end_sessions_where("id_hash", id_hash, reason, now)
            .await?
            == 1)
    }

    /// Ends every live session of a directory user; how many there were.
    pub async fn end_sessions_of(
        &self,
        subject: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.end_sessions_where("subject", subject, reason, now)
            .await
    }

    /// `column` is one of two literals above, never caller input. The refresh token goes with
    /// the session: nothing may use it afterwards.
    async fn end_sessions_where(
        &self,
        column: &'static str,
        value: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "UPDATE sessions SET ended_at = $2, end_reason = $3, refresh_token = NULL \
             WHERE {column} = $1 AND ended_at IS NULL"
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

    // ---- sign-ins in progress ---------------------------------------------------------------

    pub async fn insert_login_attempt(
        &self,
        state_hash: &str,
        attempt: &LoginAttempt,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            // Abandoned sign-ins are swept here rather than by a job.
            sqlx::query("DELETE FROM login_attempts WHERE expires_at < $1")
                .bind(DbTime(now))
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO login_attempts \
                 (state_hash, browser_hash, nonce, code_verifier, return_to, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(state_hash)
            .bind(&attempt.browser_hash)
            .bind(&attempt.nonce)
            .bind(&attempt.code_verifier)
            .bind(&attempt.return_to)
            .bind(DbTime(expires_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Removes and returns the sign-in for `state_hash` if it has not expired: a `state` is
    /// good for one callback only.
    pub async fn take_login_attempt(
        &self,
        state_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LoginAttempt>, StoreError> {
        let row: Option<LoginAttempt> = on_pool!(self, pool => {
            sqlx::query_as(
                "DELETE FROM login_attempts WHERE state_hash = $1 AND expires_at >= $2 \
                 RETURNING browser_hash, nonce, code_verifier, return_to",
            )
            .bind(state_hash)
            .bind(DbTime(now))
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    // ---- API keys ---------------------------------------------------------------------------

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

    // ---- role bindings ----------------------------------------------------------------------

    /// Every binding, oldest first.
    pub async fn role_bindings(&self) -> Result<Vec<StoredRoleBinding>, StoreError> {
        let sql =
            format!("SELECT {ROLE_BINDING_COLUMNS} FROM role_bindings ORDER BY created_at, id");
        let rows: Vec<RoleBindingRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).fetch_all(pool).await?
        });
        rows.into_iter().map(RoleBindingRow::into_binding).collect()
    }

    /// Adds a binding; `None` when the same binding already exists.
    pub async fn insert_role_binding(
        &self,
        binding: &RoleBinding,
        source: &str,
        created_by: &str,
        now: OffsetDateTime,
    ) -> Result<Option<StoredRoleBinding>, StoreError> {
        let (kind, grantee) = grantee_columns(&binding.grantee);
        let id = Uuid::now_v7().to_string();
        let sql = format!(
            "INSERT INTO role_bindings ({ROLE_BINDING_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (role, grantee_kind, grantee, assistant) DO NOTHING \
             RETURNING {ROLE_BINDING_COLUMNS}"
        );
        let row: Option<RoleBindingRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(&id)
                .bind(binding.role.as_str())
                .bind(kind)
                .bind(grantee)
                .bind(binding.assistant.as_deref().unwrap_or_default())
                .bind(source)
                .bind(created_by)
                .bind(DbTime(now))
                .fetch_optional(pool)
                .await?
        });
        row.map(RoleBindingRow::into_binding).transpose()
    }

    /// Removes a binding and returns it; `None` when there was none with that id.
    pub async fn delete_role_binding(
        &self,
        id: &str,
    ) -> Result<Option<StoredRoleBinding>, StoreError> {
        let sql =
            format!("DELETE FROM role_bindings WHERE id = $1 RETURNING {ROLE_BINDING_COLUMNS}");
        let row: Option<RoleBindingRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(RoleBindingRow::into_binding).transpose()
    }

    // ---- directory users (SCIM) -------------------------------------------------------------

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

fn principal_json(principal: &Principal) -> Result<String, StoreError> {
    serde_json::to_string(principal).map_err(|e| StoreError::Invalid {
        what: format!("a principal cannot be stored: {e}"),
    })
}
