use common::db::SqlPool;
use sqlx::migrate::Migrator;

use crate::Settings;

static MYSQL: Migrator = sqlx::migrate!("./migrations/mysql");
static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: SqlPool,
}

impl AppState {
    /// Connects to the database and runs the migrations.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let db = SqlPool::connect("DATABASE_URL", &settings.database_url, &settings.pool, &MYSQL, &SQLITE).await?;
        Ok(Self { db })
    }
}
