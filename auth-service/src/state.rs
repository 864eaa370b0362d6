use common::db::SqlPool;
use sqlx::migrate::Migrator;

use crate::Settings;
use crate::store::Store;

static MYSQL: Migrator = sqlx::migrate!("./migrations/mysql");
static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
}

impl AppState {
    /// Connects to the database (running migrations) and seeds the admin.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let pool = SqlPool::connect("DATABASE_URL", &settings.database_url, &settings.pool, &MYSQL, &SQLITE).await?;
        let state = Self { store: Store::new(pool) };
        if let Some(admin) = &settings.admin {
            crate::admin::ensure_admin(&state.store, admin).await?;
        }
        Ok(state)
    }
}
