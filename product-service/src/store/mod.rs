//! The catalog store: MongoDB in production, SQLite in dev mode.

pub mod mongo;

use common::db::SqlPool;
use sqlx::migrate::Migrator;

use crate::Settings;

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
/// MongoDB needs no SQL migrations; an empty set keeps the connect helper uniform.
static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

#[derive(Debug, Clone)]
pub enum Store {
    Mongo(mongodb::Database),
    Sqlite(SqlPool),
}

impl Store {
    /// Connects to the backend the URL names and prepares it (indexes, migrations).
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let url = &settings.database_url;
        match url.scheme() {
            "mongodb" | "mongodb+srv" => {
                let db = common::mongo::connect("DATABASE_URL", url, crate::SERVICE, "ecom_products").await?;
                mongo::ensure_indexes(&db).await?;
                Ok(Self::Mongo(db))
            }
            _ => {
                Ok(Self::Sqlite(SqlPool::connect("DATABASE_URL", url, &settings.pool, &NO_MIGRATIONS, &SQLITE).await?))
            }
        }
    }

    pub async fn ping(&self) -> Result<(), String> {
        match self {
            Self::Mongo(db) => common::mongo::ping(db).await,
            Self::Sqlite(pool) => pool.ping().await,
        }
    }

    pub async fn close(&self) {
        if let Self::Sqlite(pool) = self {
            pool.close().await;
        }
    }
}
