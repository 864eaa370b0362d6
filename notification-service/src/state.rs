use common::bus::BusConfig;
use common::db::SqlPool;
use sqlx::migrate::Migrator;

use crate::Settings;
use crate::events::RetryPolicy;
use crate::mailer::Mailer;
use crate::store::Store;

static MYSQL: Migrator = sqlx::migrate!("./migrations/mysql");
static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Everything a handler or worker needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub mailer: Mailer,
    pub retry: RetryPolicy,
}

impl AppState {
    /// Connects to the database (running migrations), sets up the mail transport and
    /// checks that the mail server and Kafka accept the TLS and credentials configured.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let mailer = Mailer::new(&settings.mail)?;
        let db = SqlPool::connect("DATABASE_URL", &settings.database_url, &settings.pool, &MYSQL, &SQLITE).await?;
        mailer.verify().await?;
        if let BusConfig::Kafka(kafka) = &settings.bus {
            common::kafka::verify(kafka).await?;
        }
        Ok(Self { store: Store { pool: db }, mailer, retry: RetryPolicy::new(settings.mail.max_attempts) })
    }
}

impl common::runtime::Close for AppState {
    async fn close(&self) {
        self.store.pool.close().await;
    }
}
