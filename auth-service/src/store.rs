//! The only code that talks to the users database.

use chrono::{DateTime, Utc};
use common::db::SqlPool;
use common::on_pool;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A stored user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub roles: String,
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    pub fn roles(&self) -> Vec<String> {
        self.roles.split(',').filter(|r| !r.is_empty()).map(str::to_owned).collect()
    }
}

/// A user to insert.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub roles: &'a [&'a str],
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlPool,
}

/// Emails are compared case-insensitively.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Store {
    pub fn new(pool: SqlPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &SqlPool {
        &self.pool
    }

    #[tracing::instrument(skip_all)]
    pub async fn fetch_user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let normalized = normalize_email(email);
        let row = on_pool!(&self.pool, pool => {
            sqlx::query_as::<_, UserRow>(
                "SELECT id, email, name, password_hash, roles, created_at FROM users WHERE email_normalized = ?",
            )
            .bind(&normalized)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn insert_user(&self, user: &NewUser<'_>) -> Result<(), StoreError> {
        let now = Utc::now();
        let result = on_pool!(&self.pool, pool => {
            sqlx::query(
                "INSERT INTO users (id, email, email_normalized, name, password_hash, roles, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(user.id.hyphenated().to_string())
            .bind(user.email.trim())
            .bind(normalize_email(user.email))
            .bind(user.name)
            .bind(user.password_hash)
            .bind(user.roles.join(","))
            .bind(now)
            .bind(now)
            .execute(pool)
            .await
            .map(drop)
        });
        match result {
            Err(err) if common::db::is_unique_violation(&err) => Err(StoreError::EmailTaken),
            other => Ok(other?),
        }
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn update_credentials(&self, id: &str, password_hash: &str, roles: &[String]) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => {
            sqlx::query("UPDATE users SET password_hash = ?, roles = ?, updated_at = ? WHERE id = ?")
                .bind(password_hash)
                .bind(roles.join(","))
                .bind(Utc::now())
                .bind(id)
                .execute(pool)
                .await
                .map(drop)?
        });
        Ok(())
    }
}
