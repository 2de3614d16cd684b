//! Role bindings as stored, with where each came from (configuration or the admin API).

use ajutant_core::policy::{Grantee, Role, RoleBinding};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db_time::DbTime;
use crate::{Store, StoreError, on_pool};

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

const ROLE_BINDING_COLUMNS: &str =
    "id, role, grantee_kind, grantee, assistant, source, created_by, created_at";

impl Store {
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
}
