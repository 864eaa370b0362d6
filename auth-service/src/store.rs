//! The only code that talks to the users database.

use chrono::{DateTime, TimeDelta, Utc};
use common::db::SqlPool;
use common::on_pool;
use contracts::UserId;

use crate::domain::{Email, Name, normalize_email};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A stored user; its id and email parse as they did when written.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    #[sqlx(try_from = "String")]
    pub id: UserId,
    #[sqlx(try_from = "String")]
    pub email: Email,
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
    pub id: UserId,
    pub email: &'a Email,
    pub name: &'a Name,
    pub password_hash: &'a str,
    pub roles: &'a [&'a str],
}

/// The service's queries, over its database.
#[derive(Debug, Clone)]
pub struct Store {
    pub pool: SqlPool,
}

impl Store {
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
            .bind(user.id.to_string())
            .bind(user.email.as_str())
            .bind(user.email.normalized())
            .bind(user.name.as_str())
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

    /// Sets the password hash and roles, and revokes every refresh token of the user
    /// in the same transaction: whoever held a session under the old password or
    /// roles must log in again.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn update_credentials(
        &self,
        id: UserId,
        password_hash: &str,
        roles: &[String],
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        let now = Utc::now();
        let begin = self.write_transaction();
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_with(begin).await?;
            sqlx::query("UPDATE users SET password_hash = ?, roles = ?, updated_at = ? WHERE id = ?")
                .bind(password_hash)
                .bind(roles.join(","))
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?
        });
        Ok(())
    }

    /// How a transaction that will write starts. SQLite's default (deferred) takes
    /// the write lock only at the first write, and a transaction that read first and
    /// then finds another writer ahead fails at once with "database is locked",
    /// whatever the busy timeout; `IMMEDIATE` takes the lock at the start and waits
    /// its turn instead.
    fn write_transaction(&self) -> &'static str {
        match self.pool {
            SqlPool::Sqlite(_) => "BEGIN IMMEDIATE",
            SqlPool::MySql(_) => "BEGIN",
        }
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// The token was live and is now spent; a new one was stored in its family.
    Rotated { user_id: UserId },
    /// The token had been spent before: its family is now revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

#[derive(Debug, sqlx::FromRow)]
struct TokenRow {
    family_id: String,
    #[sqlx(try_from = "String")]
    user_id: UserId,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    family_started_at: DateTime<Utc>,
}

const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens \
    (token_hash, family_id, user_id, created_at, expires_at, family_started_at) VALUES (?, ?, ?, ?, ?, ?)";

/// Where a presented refresh token stands before it is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Unspent, unexpired, in a family within its lifetime.
    Live,
    /// Spent before: presenting it again is reuse.
    Spent,
    /// Revoked, expired, or its family is past its lifetime.
    Invalid,
}

impl TokenRow {
    fn standing(&self, now: DateTime<Utc>, lifetimes: RefreshLifetimes) -> Standing {
        if self.revoked_at.is_some() {
            Standing::Invalid
        } else if self.used_at.is_some() {
            Standing::Spent
        } else if self.expires_at <= now || lifetimes.expiry(now, self.family_started_at) <= now {
            Standing::Invalid
        } else {
            Standing::Live
        }
    }
}

/// How long refresh tokens live.
#[derive(Debug, Clone, Copy)]
pub struct RefreshLifetimes {
    /// One token, from when it is issued: unused this long, the session ends.
    pub token: TimeDelta,
    /// One family, from its login: however often it rotates, it ends then.
    pub family: TimeDelta,
}

impl RefreshLifetimes {
    /// When a token issued `now` in a family started at `family_started_at` expires.
    pub fn expiry(&self, now: DateTime<Utc>, family_started_at: DateTime<Utc>) -> DateTime<Utc> {
        let end = |from: DateTime<Utc>, plus| from.checked_add_signed(plus).unwrap_or(DateTime::<Utc>::MAX_UTC);
        end(now, self.token).min(end(family_started_at, self.family))
    }
}

impl Store {
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn fetch_user(&self, id: UserId) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(&self.pool, pool => {
            sqlx::query_as::<_, UserRow>(
                "SELECT id, email, name, password_hash, roles, created_at FROM users WHERE id = ?",
            )
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    /// Stores the first refresh token (by hash) of a new family `family_id` (a login).
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn insert_refresh_token(
        &self,
        token_hash: &str,
        family_id: &str,
        user_id: UserId,
        lifetimes: RefreshLifetimes,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        on_pool!(&self.pool, pool => {
            sqlx::query(INSERT_REFRESH_TOKEN)
            .bind(token_hash)
            .bind(family_id)
            .bind(user_id.to_string())
            .bind(now)
            .bind(lifetimes.expiry(now, now))
            .bind(now)
            .execute(pool)
            .await
            .map(drop)?
        });
        Ok(())
    }

    /// Spends `token_hash` and stores `next_hash` in the same family, in one
    /// transaction. The spend is a conditional update, so two concurrent uses of
    /// one token cannot both succeed: the loser is treated as reuse. A family past
    /// its lifetime is not rotated any more.
    #[tracing::instrument(skip_all)]
    pub async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        next_hash: &str,
        lifetimes: RefreshLifetimes,
    ) -> Result<Spend, StoreError> {
        let now = Utc::now();
        let begin = self.write_transaction();
        let outcome = on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_with(begin).await?;
            // Rows from before families had a recorded start count from their own creation.
            let row = sqlx::query_as::<_, TokenRow>(
                "SELECT family_id, user_id, expires_at, used_at, revoked_at, \
                 COALESCE(family_started_at, created_at) AS family_started_at \
                 FROM refresh_tokens WHERE token_hash = ?",
            )
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => (Spend::Invalid, None),
                Some(row) => match row.standing(now, lifetimes) {
                    Standing::Invalid => (Spend::Invalid, None),
                    Standing::Spent => (Spend::Reused, Some(row.family_id)),
                    Standing::Live => {
                        let spent = sqlx::query(
                            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL",
                        )
                        .bind(now)
                        .bind(token_hash)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if spent == 1 {
                            sqlx::query(INSERT_REFRESH_TOKEN)
                            .bind(next_hash)
                            .bind(&row.family_id)
                            .bind(row.user_id.to_string())
                            .bind(now)
                            .bind(lifetimes.expiry(now, row.family_started_at))
                            .bind(row.family_started_at)
                            .execute(&mut *tx)
                            .await?;
                            tx.commit().await?;
                            (Spend::Rotated { user_id: row.user_id }, None)
                        } else {
                            (Spend::Reused, Some(row.family_id))
                        }
                    }
                },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(now: DateTime<Utc>) -> TokenRow {
        TokenRow {
            family_id: "f".into(),
            user_id: uuid::Uuid::now_v7().into(),
            expires_at: now + TimeDelta::hours(1),
            used_at: None,
            revoked_at: None,
            family_started_at: now - TimeDelta::hours(1),
        }
    }

    #[test]
    fn a_token_is_live_until_spent_revoked_expired_or_its_family_ends() {
        let now = Utc::now();
        let lifetimes = RefreshLifetimes { token: TimeDelta::hours(1), family: TimeDelta::hours(2) };
        assert_eq!(row(now).standing(now, lifetimes), Standing::Live);
        assert_eq!(TokenRow { used_at: Some(now), ..row(now) }.standing(now, lifetimes), Standing::Spent);
        let revoked = TokenRow { used_at: Some(now), revoked_at: Some(now), ..row(now) };
        assert_eq!(revoked.standing(now, lifetimes), Standing::Invalid, "a revoked family's spent token is no reuse");
        assert_eq!(TokenRow { expires_at: now, ..row(now) }.standing(now, lifetimes), Standing::Invalid);
        let old_family = TokenRow { family_started_at: now - TimeDelta::hours(2), ..row(now) };
        assert_eq!(old_family.standing(now, lifetimes), Standing::Invalid);
    }
}
