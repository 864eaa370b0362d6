//! sqlx pools for the two SQL backends, chosen by URL, with migrations at start.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::Connection as _;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::settings::{Env, SecretUrl, SettingsError};

/// The URL schemes a SQL `DATABASE_URL` may use.
pub const SCHEMES: &[&str] = &["mysql", "sqlite"];

/// How long a starting process waits for another process's migrations on the same MySQL
/// database before it gives up and exits (to be restarted). Within the 120 s that the
/// Kubernetes startup probe allows.
pub const MIGRATION_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

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

impl PoolSettings {
    /// `ECOM_DB_MAX_CONNECTIONS` (10); the rest as by default.
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self { max_connections: env.or("ECOM_DB_MAX_CONNECTIONS", 10)?, ..Self::default() })
    }
}

impl SqlPool {
    /// Connects to `url` (`mysql://` or `sqlite://`) and runs the matching migrations.
    ///
    /// `var` is the configuration variable the URL came from, named in errors. TLS is
    /// the URL's: `ssl-mode=verify_identity&ssl-ca=/path/ca.pem` (and `ssl-cert`,
    /// `ssl-key` for a client certificate).
    pub async fn connect(
        var: &str,
        url: &SecretUrl,
        settings: &PoolSettings,
        mysql_migrations: &Migrator,
        sqlite_migrations: &Migrator,
    ) -> anyhow::Result<Self> {
        match url.scheme() {
            "mysql" => {
                let options = MySqlConnectOptions::from_str(url.expose().as_str())
                    .map_err(|e| anyhow::anyhow!("{var}: not a valid MySQL URL: {e}"))?
                    .charset("utf8mb4");
                let pool = MySqlPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(options.clone())
                    .await
                    .map_err(|e| cannot_connect(var, url, &e))?;
                migrate_mysql(var, url, &options, mysql_migrations).await?;
                Ok(Self::MySql(pool))
            }
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url.expose().as_str())
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
                    .with_context(|| format!("{var}: cannot open SQLite database {url}"))?;
                sqlite_migrations.run(&pool).await.with_context(|| format!("{var}: migrations failed on {url}"))?;
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

/// Runs `migrations` while holding a lock named after the database, so that processes
/// starting together on one database migrate one after the other.
///
/// sqlx's own lock is `GET_LOCK(name, -1)` with the answer ignored: MariaDB answers NULL
/// at once to a negative timeout, so no lock is taken and the second process fails on a
/// duplicate version. Ours waits a bounded time on MySQL and MariaDB alike, on a connection
/// of its own that is closed at the end: a process that dies mid-way releases the lock
/// with its session.
async fn migrate_mysql(
    var: &str,
    url: &SecretUrl,
    options: &MySqlConnectOptions,
    migrations: &Migrator,
) -> anyhow::Result<()> {
    let mut conn = MySqlConnection::connect_with(options).await.map_err(|e| cannot_connect(var, url, &e))?;
    let migrated = migrate_locked(var, url, &mut conn, migrations).await;
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the migration connection failed; the server ends its session");
    }
    migrated
}

async fn migrate_locked(
    var: &str,
    url: &SecretUrl,
    conn: &mut MySqlConnection,
    migrations: &Migrator,
) -> anyhow::Result<()> {
    let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
        .fetch_one(&mut *conn)
        .await
        .with_context(|| format!("{var}: cannot read the database name on {url}"))?;
    let database = database.with_context(|| format!("{var}: the URL names no database ({url})"))?;
    let lock = migration_lock_name(&database);
    take_lock(var, conn, &lock, &database).await?;
    // `run_direct` is `run` on one connection: `run(&mut conn)` needs `Acquire` for every
    // lifetime, which hides that the future is `Send` (sqlx issue 2016).
    let migrated = without_sqlx_lock(migrations)
        .run_direct(None, &mut *conn, false)
        .await
        .with_context(|| format!("{var}: migrations failed on {url}"));
    let released: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT RELEASE_LOCK(?)").bind(&lock).fetch_one(&mut *conn).await;
    if let Err(e) = released {
        tracing::warn!(error = %e, lock, "releasing the migration lock failed; closing the connection releases it");
    }
    migrated
}

/// The user-level lock for migrating `database`. Such locks are server-wide, so the name
/// carries the database: services on one server do not wait for each other. MySQL refuses
/// names over 64 characters; a longer one is cut, and two databases sharing that prefix
/// then only migrate one after the other.
fn migration_lock_name(database: &str) -> String {
    format!("migrations:{database}").chars().take(64).collect()
}

async fn take_lock(var: &str, conn: &mut MySqlConnection, lock: &str, database: &str) -> anyhow::Result<()> {
    let secs = MIGRATION_LOCK_TIMEOUT.as_secs();
    let taken: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
        .bind(lock)
        .bind(secs)
        .fetch_one(&mut *conn)
        .await
        .with_context(|| format!("{var}: cannot take the migration lock {lock:?}"))?;
    match taken {
        Some(1) => Ok(()),
        Some(_) => anyhow::bail!(
            "{var}: waited {secs} s for the migration lock {lock:?} of database {database:?}, held by \
             another process that is still migrating or stuck (its connection id: \
             SELECT IS_USED_LOCK('{lock}'))"
        ),
        None => anyhow::bail!("{var}: the server refused the migration lock {lock:?} (GET_LOCK answered NULL)"),
    }
}

/// `migrations` with sqlx's own locking off, for running under our lock. Every field is
/// named, so a field a later sqlx adds is a compile error here rather than dropped.
fn without_sqlx_lock(migrations: &Migrator) -> Migrator {
    let Migrator { migrations, ignore_missing, locking: _, no_tx, table_name, create_schemas } = migrations;
    Migrator {
        migrations: migrations.clone(),
        ignore_missing: *ignore_missing,
        locking: false,
        no_tx: *no_tx,
        table_name: table_name.clone(),
        create_schemas: create_schemas.clone(),
    }
}

/// Why MySQL could not be reached at start, naming the variable, the backend and,
/// for a refused certificate or credentials, the part of the configuration at fault.
fn cannot_connect(var: &str, url: &SecretUrl, err: &sqlx::Error) -> anyhow::Error {
    let text = err.to_string();
    let hint = crate::tls::diagnose(&text, &format!("the ssl-ca of {var}"), var).or_else(|| match err {
        // An account that requires TLS (REQUIRE SSL) is refused as a wrong password is.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("28000") || text.contains("Access denied") => {
            Some(if tls_disabled(url.expose()) {
                format!(
                    "the server refused the user of {var} over a connection without TLS: the account may require \
                     TLS (drop ssl-mode=disabled from {var}), or the user or password (or ECOM_DB_PASSWORD) is wrong"
                )
            } else {
                format!("the user or password in {var} (or ECOM_DB_PASSWORD) is refused")
            })
        }
        _ if text.contains("insecure transport") => {
            Some(format!("the server requires TLS: add ssl-mode=verify_identity and ssl-ca to {var}"))
        }
        _ => None,
    });
    match hint {
        Some(hint) => anyhow::anyhow!("{var}: cannot connect to MySQL at {url}: {hint}: {text}"),
        None => anyhow::anyhow!("{var}: cannot connect to MySQL at {url}: {text}"),
    }
}

/// Whether a MySQL URL turns TLS off (`ssl-mode=disabled`, in any case).
fn tls_disabled(url: &url::Url) -> bool {
    url.query_pairs().any(|(key, value)| key == "ssl-mode" && value.eq_ignore_ascii_case("disabled"))
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

/// A stored value that does not read back as what was written: the row is corrupt.
#[derive(Debug, thiserror::Error)]
#[error("corrupt {column}: {source}")]
pub struct Corrupt {
    column: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// For `map_err`: the error for a value read from `column` that does not parse.
pub fn corrupt<E>(column: &'static str) -> impl FnOnce(E) -> Corrupt
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |source| Corrupt { column, source: Box::new(source) }
}

/// Whether `err` is a unique-key violation (by error code, on either backend).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::{migration_lock_name, tls_disabled};

    #[test]
    fn only_an_explicit_ssl_mode_disabled_turns_tls_off() {
        let tls_off = |url: &str| tls_disabled(&url.parse().unwrap());
        assert!(tls_off("mysql://u@h/db?ssl-mode=disabled"));
        assert!(tls_off("mysql://u@h/db?ssl-ca=ca.pem&ssl-mode=DISABLED"));
        assert!(!tls_off("mysql://u@h/db"), "sqlx prefers TLS by default");
        assert!(!tls_off("mysql://u@h/db?ssl-mode=verify_identity"));
    }

    #[test]
    fn each_database_has_its_own_migration_lock_within_mysqls_64_characters() {
        assert_ne!(migration_lock_name("orders"), migration_lock_name("inventory"));
        let longest = "d".repeat(64);
        assert_eq!(migration_lock_name(&longest).chars().count(), 64);
        assert!(migration_lock_name(&longest).starts_with("migrations:ddd"));
    }
}
