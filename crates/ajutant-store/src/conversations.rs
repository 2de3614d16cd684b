//! Conversations and their messages. A conversation belongs to one principal: every read here
//! takes the owner and matches on it, so a query cannot return someone else's conversation by
//! mistake.

use ajutant_core::chat::{MessageRole, MessageStatus};
use time::OffsetDateTime;

use crate::db_time::DbTime;
use crate::{Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Conversation {
    pub id: String,
    pub owner_id: String,
    pub assistant_id: String,
    pub title: String,
    #[sqlx(try_from = "DbTime")]
    pub created_at: OffsetDateTime,
    #[sqlx(try_from = "DbTime")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub seq: i64,
    #[sqlx(try_from = "String")]
    pub role: MessageRole,
    pub content: String,
    #[sqlx(try_from = "String")]
    pub status: MessageStatus,
    pub error: Option<String>,
    /// JSON array.
    pub citations: String,
    pub assistant_version: Option<i64>,
    pub deployment: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub trace_id: Option<String>,
    pub request_id: Option<String>,
    #[sqlx(try_from = "DbTime")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub citations: String,
    pub assistant_version: Option<i64>,
    pub deployment: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub trace_id: Option<String>,
    pub request_id: Option<String>,
}

/// A complete question with nothing else set; answers and tests change what they need.
impl Default for NewMessage {
    fn default() -> Self {
        Self {
            role: MessageRole::User,
            content: String::new(),
            status: MessageStatus::Complete,
            error: None,
            citations: "[]".to_owned(),
            assistant_version: None,
            deployment: None,
            input_tokens: None,
            output_tokens: None,
            latency_ms: None,
            trace_id: None,
            request_id: None,
        }
    }
}

const CONVERSATION_COLUMNS: &str = "id, owner_id, assistant_id, title, created_at, updated_at";
const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, role, content, status, error, \
     citations, assistant_version, deployment, input_tokens, output_tokens, latency_ms, \
     trace_id, request_id, created_at";

impl Store {
    pub async fn create_conversation(
        &self,
        owner_id: &str,
        assistant_id: &str,
        title: &str,
        now: OffsetDateTime,
    ) -> Result<Conversation, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO conversations (id, owner_id, assistant_id, title, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(&id)
            .bind(owner_id)
            .bind(assistant_id)
            .bind(title.replace('\0', ""))
            .bind(DbTime(now))
            .execute(pool)
            .await?;
        });
        self.conversation(owner_id, &id)
            .await?
            .ok_or_else(|| StoreError::Invalid {
                what: format!("conversation {id} vanished after insert"),
            })
    }

    /// The owner's conversation, or none (whether it does not exist or is someone else's).
    pub async fn conversation(
        &self,
        owner_id: &str,
        id: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND owner_id = $2"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id).bind(owner_id).fetch_optional(pool).await?
        }))
    }

    /// Whether a conversation exists, whoever owns it (to tell a probe from a typo).
    pub async fn conversation_exists(&self, id: &str) -> Result<bool, StoreError> {
        let found: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM conversations WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?
        });
        Ok(found > 0)
    }

    /// The owner's conversations, most recently active first, `limit` at a time; `before` is
    /// the cursor: the (updated_at, id) of the last one already seen.
    pub async fn conversations(
        &self,
        owner_id: &str,
        before: Option<(OffsetDateTime, String)>,
        limit: i64,
    ) -> Result<Vec<Conversation>, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE owner_id = $1 \
             AND ($2 IS NULL OR updated_at < $2 OR (updated_at = $2 AND id < $3)) \
             ORDER BY updated_at DESC, id DESC LIMIT $4"
        );
        let (at, id) = crate::db_time::cursor_binds(before);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(owner_id)
                .bind(at)
                .bind(id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn rename_conversation(
        &self,
        owner_id: &str,
        id: &str,
        title: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Conversation>, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE conversations SET title = $3, updated_at = $4 \
                 WHERE id = $1 AND owner_id = $2",
            )
            .bind(id)
            .bind(owner_id)
            .bind(title.replace('\0', ""))
            .bind(DbTime(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Ok(None);
        }
        self.conversation(owner_id, id).await
    }

    pub async fn delete_conversation(&self, owner_id: &str, id: &str) -> Result<bool, StoreError> {
        let removed = on_pool!(self, pool => {
            sqlx::query("DELETE FROM conversations WHERE id = $1 AND owner_id = $2")
                .bind(id)
                .bind(owner_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(removed > 0)
    }

    /// A message by id, whoever's conversation it is in: callers check the conversation's owner.
    pub async fn message(&self, id: &str) -> Result<Option<Message>, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        }))
    }

    pub async fn messages(&self, conversation_id: &str) -> Result<Vec<Message>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY seq"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(conversation_id).fetch_all(pool).await?
        }))
    }

    /// Appends a message at the end of the conversation and touches the conversation.
    pub async fn append_message(
        &self,
        conversation_id: &str,
        message: &NewMessage,
        now: OffsetDateTime,
    ) -> Result<Message, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        // Two turns appended at once can pick the same seq; the unique key refuses the second,
        // which then takes the next one.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result: Result<(), sqlx::Error> = on_pool!(self, pool => async {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO messages (id, conversation_id, seq, role, content, status, error, \
                     citations, assistant_version, deployment, input_tokens, output_tokens, \
                     latency_ms, trace_id, request_id, created_at) \
                     SELECT $1, $2, COALESCE(MAX(seq) + 1, 1), $3, $4, $5, $6, $7, $8, $9, $10, \
                     $11, $12, $13, $14, $15 FROM messages WHERE conversation_id = $2",
                )
                .bind(&id)
                .bind(conversation_id)
                .bind(message.role.as_str())
                .bind(message.content.replace('\0', ""))
                .bind(message.status.as_str())
                .bind(&message.error)
                .bind(&message.citations)
                .bind(message.assistant_version)
                .bind(&message.deployment)
                .bind(message.input_tokens)
                .bind(message.output_tokens)
                .bind(message.latency_ms)
                .bind(&message.trace_id)
                .bind(&message.request_id)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE conversations SET updated_at = $2 WHERE id = $1")
                    .bind(conversation_id)
                    .bind(DbTime(now))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }.await);
            match result {
                Ok(()) => break,
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempts < 5 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(&id).fetch_one(pool).await?
        }))
    }
}
