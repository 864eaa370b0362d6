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

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// The token was live and is now spent; a new one was stored in its family.
    Rotated { user_id: String },
    /// The token had been spent before: its family is now revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

#[derive(Debug, sqlx::FromRow)]
struct TokenRow {
    family_id: String,
    user_id: String,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn fetch_user(&self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(&self.pool, pool => {
            sqlx::query_as::<_, UserRow>(
                "SELECT id, email, name, password_hash, roles, created_at FROM users WHERE id = ?",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    /// Stores a new refresh token (by hash) in `family_id`.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn insert_refresh_token(
        &self,
        token_hash: &str,
        family_id: &str,
        user_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(token_hash)
            .bind(family_id)
            .bind(user_id)
            .bind(Utc::now())
            .bind(expires_at)
            .execute(pool)
            .await
            .map(drop)?
        });
        Ok(())
    }

    /// Spends `token_hash` and stores `next_hash` in the same family, in one
    /// transaction. The spend is a conditional update, so two concurrent uses of
    /// one token cannot both succeed: the loser is treated as reuse.
    #[tracing::instrument(skip_all)]
    pub async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
    ) -> Result<Spend, StoreError> {
        let now = Utc::now();
        let outcome = on_pool!(&self.pool, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query_as::<_, TokenRow>(
                "SELECT family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = ?",
            )
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => (Spend::Invalid, None),
                Some(row) if row.revoked_at.is_some() => (Spend::Invalid, None),
                Some(row) if row.used_at.is_some() => (Spend::Reused, Some(row.family_id)),
                Some(row) if row.expires_at <= now => (Spend::Invalid, None),
                Some(row) => {
                    let spent = sqlx::query(
                        "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(token_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if spent == 1 {
                        sqlx::query(
                            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                        )
                        .bind(next_hash)
                        .bind(&row.family_id)
                        .bind(&row.user_id)
                        .bind(now)
                        .bind(next_expires_at)
                        .execute(&mut *tx)
                        .await?;
                        tx.commit().await?;
                        (Spend::Rotated { user_id: row.user_id }, None)
                    } else {
                        (Spend::Reused, Some(row.family_id))
                    }
                }
            }
        });
        if let (Spend::Reused, Some(family)) = &outcome {
            tracing::warn!(family_id = %family, "a spent refresh token was presented again; revoking its family");
            self.revoke_family(family).await?;
        }
        Ok(outcome.0)
    }

    /// Revokes the family `token_hash` belongs to; nothing happens for an unknown token.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_family_of(&self, token_hash: &str) -> Result<(), StoreError> {
        let family: Option<(String,)> = on_pool!(&self.pool, pool => {
            sqlx::query_as("SELECT family_id FROM refresh_tokens WHERE token_hash = ?")
                .bind(token_hash)
                .fetch_optional(pool)
                .await?
        });
        if let Some((family,)) = family {
            self.revoke_family(&family).await?;
        }
        Ok(())
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => {
            sqlx::query("UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL")
                .bind(Utc::now())
                .bind(family_id)
                .execute(pool)
                .await
                .map(drop)?
        });
        Ok(())
    }
}
