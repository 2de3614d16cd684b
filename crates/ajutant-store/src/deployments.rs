//! Deployments managed through the admin API, and the revision instances watch to reload them.

use time::OffsetDateTime;

use crate::db_time::DbTime;
use crate::{Store, StoreError, on_pool};

/// A deployment as the admin API stored it; `config` is its JSON.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredDeployment {
    pub name: String,
    pub config: String,
    pub updated_by: String,
    #[sqlx(try_from = "DbTime")]
    pub updated_at: OffsetDateTime,
}

impl Store {
    pub async fn stored_deployments(&self) -> Result<Vec<StoredDeployment>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT name, config, updated_by, updated_at FROM deployments ORDER BY name",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Adds or replaces a deployment and moves the revision, in one transaction.
    pub async fn put_deployment(
        &self,
        name: &str,
        config: &str,
        updated_by: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO deployments (name, config, updated_by, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET \
                 config = excluded.config, updated_by = excluded.updated_by, \
                 updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(config)
            .bind(updated_by)
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE deployment_revision SET revision = revision + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes a stored deployment; false when there was none.
    pub async fn delete_deployment(&self, name: &str) -> Result<bool, StoreError> {
        let removed = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let removed = sqlx::query("DELETE FROM deployments WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed > 0 {
                sqlx::query("UPDATE deployment_revision SET revision = revision + 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            removed
        });
        Ok(removed > 0)
    }

    pub async fn deployment_revision(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT revision FROM deployment_revision WHERE id = 1")
                .fetch_one(pool)
                .await?
        }))
    }
}
