//! Migrations at start when several replicas of a service start together on one database.

use common::db::{PoolSettings, SqlPool};
use common::test_util::{fresh_mysql_database, real_dependency};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr as _};

const REPLICAS: usize = 8;
const VERSIONS: i64 = 5;

/// A schema of a few tables, one migration each, like a service's `migrations/mysql`.
fn schema() -> Migrator {
    Migrator::with_migrations(
        (1..=VERSIONS)
            .map(|version| {
                let sql = format!("CREATE TABLE table_{version} (id BIGINT PRIMARY KEY, note VARCHAR(64) NOT NULL)");
                Migration::new(
                    version,
                    format!("table {version}").into(),
                    MigrationType::Simple,
                    AssertSqlSafe(sql).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_on_one_mysql_database_all_start_and_apply_each_migration_once() {
    let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") else { return };
    let url = common::settings::SecretUrl::from(fresh_mysql_database(&base).await);
    let schema = std::sync::Arc::new(schema());
    let settings = PoolSettings { max_connections: 2, ..PoolSettings::default() };

    let mut replicas = tokio::task::JoinSet::new();
    for _ in 0..REPLICAS {
        let (url, schema, settings) = (url.clone(), schema.clone(), settings.clone());
        replicas.spawn(async move {
            SqlPool::connect("DATABASE_URL", &url, &settings, &schema, &Migrator::DEFAULT)
                .await
                .map_err(|e| format!("{e:#}"))
        });
    }
    let mut pools = Vec::new();
    let mut failures = Vec::new();
    while let Some(started) = replicas.join_next().await {
        match started.unwrap() {
            Ok(pool) => pools.push(pool),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{} of {REPLICAS} replicas failed to start: {failures:#?}", failures.len());

    let SqlPool::MySql(pool) = &pools[0] else { panic!("a mysql:// URL gives a MySQL pool") };
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version").fetch_all(pool).await.unwrap();
    assert_eq!(applied, (1..=VERSIONS).map(|v| (v, true)).collect::<Vec<_>>());
    for pool in &pools {
        pool.close().await;
    }
}
