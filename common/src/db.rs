//! sqlx pools for the two SQL backends, chosen by URL, with migrations at start.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use url::Url;

use crate::settings::redact_url as redact;

/// The URL schemes a SQL `DATABASE_URL` may use.
pub const SCHEMES: &[&str] = &["mysql", "sqlite"];

/// A connected SQL database of either backend.
#[derive(Debug, Clone)]
pub enum SqlPool {
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// Pool sizing and start-up behaviour.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

impl SqlPool {
    /// Connects to `url` (`mysql://` or `sqlite://`) and runs the matching migrations.
    ///
    /// `var` is the configuration variable the URL came from, named in errors.
    pub async fn connect(
        var: &str,
        url: &Url,
        settings: &PoolSettings,
        mysql_migrations: &Migrator,
        sqlite_migrations: &Migrator,
    ) -> anyhow::Result<Self> {
        match url.scheme() {
            "mysql" => {
                let options = MySqlConnectOptions::from_str(url.as_str())
                    .with_context(|| format!("{var}: not a valid MySQL URL"))?
                    .charset("utf8mb4");
                let pool = MySqlPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(options)
                    .await
                    .with_context(|| format!("{var}: cannot connect to MySQL at {}", redact(url)))?;
                mysql_migrations
                    .run(&pool)
                    .await
                    .with_context(|| format!("{var}: migrations failed on {}", redact(url)))?;
                Ok(Self::MySql(pool))
            }
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url.as_str())
                    .with_context(|| format!("{var}: not a valid SQLite URL"))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true);
                if let Some(parent) = options.get_filename().parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("{var}: cannot create directory {}", parent.display()))?;
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(options)
                    .await
                    .with_context(|| format!("{var}: cannot open SQLite database {}", redact(url)))?;
                sqlite_migrations
                    .run(&pool)
                    .await
                    .with_context(|| format!("{var}: migrations failed on {}", redact(url)))?;
                Ok(Self::Sqlite(pool))
            }
            other => anyhow::bail!("{var}: unsupported scheme {other:?}, expected mysql or sqlite"),
        }
    }

    /// A round trip to the database, for readiness.
    pub async fn ping(&self) -> Result<(), String> {
        let result = match self {
            Self::MySql(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Self::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        };
        result.map_err(|e| short_error(&e))
    }

    /// Sets the pool gauges: connections by state and the configured maximum.
    pub fn record_usage(&self, pool: &'static str) {
        let (size, idle, max) = crate::on_pool!(self, p => (p.size(), p.num_idle(), p.options().get_max_connections()));
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        metrics::gauge!("db_pool_connections", "pool" => pool, "state" => "idle").set(f64::from(idle));
        metrics::gauge!("db_pool_connections", "pool" => pool, "state" => "in_use").set(f64::from(size - idle));
        metrics::gauge!("db_pool_max_connections", "pool" => pool).set(f64::from(max));
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::MySql(_) => "mysql",
            Self::Sqlite(_) => "sqlite",
        }
    }

    pub async fn close(&self) {
        match self {
            Self::MySql(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }
}

/// A database error as a short reason without connection details.
fn short_error(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::PoolTimedOut => "no connection available (database unreachable or pool exhausted)".into(),
        sqlx::Error::Io(io) => format!("connection failed: {}", io.kind()),
        sqlx::Error::Database(db) => format!("database error {}", db.code().unwrap_or_default()),
        sqlx::Error::PoolClosed => "pool closed".into(),
        _ => "database error".into(),
    }
}

/// Runs the same sqlx code on whichever pool backs `$pool`.
///
/// MySQL and SQLite share the `?` placeholder, so one SQL text usually serves both;
/// each arm is type-checked against its own driver.
#[macro_export]
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::db::SqlPool::MySql($p) => $body,
            $crate::db::SqlPool::Sqlite($p) => $body,
        }
    };
}

/// Whether `err` is a unique-key violation (by error code, on either backend).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
