use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::TimeDelta;

use axum::extract::FromRef;
use common::auth::{Expectations, Verifier};
use common::db::SqlPool;
use sqlx::migrate::Migrator;

use crate::Settings;
use crate::clients::ServiceClients;
use crate::keys::KeyRing;
use crate::store::{RefreshLifetimes, Store};

static MYSQL: Migrator = sqlx::migrate!("./migrations/mysql");
static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub keys: Arc<KeyRing>,
    /// Verifies this service's own tokens (`/me`) with the published keys.
    pub verifier: Verifier,
    pub tokens: TokenSettings,
    /// A hash checked when the email is unknown, so both failures take as long.
    pub dummy_hash: Arc<String>,
    /// The clients that may get service tokens (`POST /internal/token`).
    pub service_clients: ServiceClients,
}

#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub expectations: Expectations,
    pub access_ttl: Duration,
    pub refresh: RefreshLifetimes,
}

impl AppState {
    /// Loads the keys, connects to the database (running migrations) and seeds the admin.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let keys = Arc::new(KeyRing::load(&settings.keys)?);
        let jwks = serde_json::from_value(keys.jwks())?;
        let verifier = Verifier::fixed(&jwks, settings.expectations.clone());
        let pool = SqlPool::connect("DATABASE_URL", &settings.database_url, &settings.pool, &MYSQL, &SQLITE).await?;
        let dummy_hash = crate::password::unmatchable_hash()?;
        let state = Self {
            store: Store { pool },
            keys,
            verifier,
            tokens: TokenSettings {
                expectations: settings.expectations.clone(),
                access_ttl: settings.access_ttl,
                refresh: RefreshLifetimes {
                    token: TimeDelta::from_std(settings.refresh_ttl)
                        .context("ECOM_REFRESH_TOKEN_TTL_SECS: too large")?,
                    family: TimeDelta::from_std(settings.refresh_family_lifetime)
                        .context("ECOM_REFRESH_FAMILY_LIFETIME_SECS: too large")?,
                },
            },
            dummy_hash: Arc::new(dummy_hash),
            service_clients: ServiceClients::new(&settings.service_tokens),
        };
        if let Some(admin) = &settings.admin {
            crate::admin::ensure_admin(&state.store, admin).await?;
        }
        Ok(state)
    }
}

impl common::runtime::Close for AppState {
    async fn close(&self) {
        self.store.pool.close().await;
    }
}
