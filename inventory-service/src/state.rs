use axum::extract::FromRef;
use common::auth::Verifier;
use common::db::SqlPool;
use sqlx::migrate::Migrator;

use crate::Settings;
use crate::store::Store;

static MYSQL: Migrator = sqlx::migrate!("./migrations/mysql");
static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub verifier: Verifier,
}

impl AppState {
    /// Connects to the database and runs the migrations.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let db = SqlPool::connect("DATABASE_URL", &settings.database_url, &settings.pool, &MYSQL, &SQLITE).await?;
        let verifier = settings.verifier.verifier().map_err(|e| anyhow::anyhow!("ECOM_JWKS_URL: {e}"))?;
        Ok(Self { store: Store { pool: db }, verifier })
    }
}

impl common::runtime::Close for AppState {
    async fn close(&self) {
        self.store.pool.close().await;
    }
}
