//! Browser sessions (stored by the SHA-256 of the cookie value) and sign-ins waiting for the
//! provider's callback.

use ajutant_core::policy::Principal;
use time::OffsetDateTime;

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

const SESSION_COLUMNS: &str = "principal, csrf_token, refresh_token, created_at, last_seen_at, \
     expires_at, recheck_at, ended_at";

impl Store {
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
}

fn principal_json(principal: &Principal) -> Result<String, StoreError> {
    serde_json::to_string(principal).map_err(|e| StoreError::Invalid {
        what: format!("a principal cannot be stored: {e}"),
    })
}
