use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use common::auth::Verifier;
use common::bus::{BusConfig, Publisher};
use common::client::ResilientClient;
use common::db::SqlPool;
use sqlx::migrate::Migrator;

use crate::Settings;
use crate::clients::{Inventory, Products};
use crate::service_token::ServiceToken;
use crate::store::Store;

pub static MYSQL: Migrator = sqlx::migrate!("./migrations/mysql");
pub static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Everything a handler or worker needs; cheap to clone.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub verifier: Verifier,
    pub products: Products,
    pub inventory: Inventory,
    #[from_ref(skip)]
    pub sweep_pending_after: Duration,
    /// How long a request holds its `Idempotency-Key`: longer than any request may run.
    #[from_ref(skip)]
    pub key_lease: Duration,
    /// Where the outbox relay publishes.
    pub publisher: Arc<dyn Publisher>,
    #[from_ref(skip)]
    pub orders_topic: String,
    /// Wakes the relay as soon as an event is committed.
    pub outbox_wake: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// Connects to the database (running migrations) and builds the clients.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let db = SqlPool::connect("DATABASE_URL", &settings.database_url, &settings.pool, &MYSQL, &SQLITE).await?;
        let verifier = settings.verifier.verifier().map_err(|e| anyhow::anyhow!("ECOM_JWKS_URL: {e}"))?;
        let token = ServiceToken::new(
            ResilientClient::new("auth-service", &settings.client)?,
            settings.auth_url.expose(),
            settings.service_client.clone(),
        )
        .map_err(|e| anyhow::anyhow!("ECOM_AUTH_URL: {e}"))?;
        Ok(Self {
            store: Store { pool: db },
            verifier,
            products: Products {
                client: ResilientClient::new("product-service", &settings.client)?,
                base: settings.product_url.expose().clone(),
                token: token.clone(),
            },
            inventory: Inventory {
                client: ResilientClient::new("inventory-service", &settings.client)?,
                base: settings.inventory_url.expose().clone(),
                token,
            },
            sweep_pending_after: settings.sweep_pending_after,
            key_lease: settings.server.request_timeout + Duration::from_secs(1),
            publisher: match &settings.bus {
                BusConfig::Kafka(kafka) => {
                    common::kafka::verify(kafka).await?;
                    Arc::new(
                        common::kafka::KafkaPublisher::configured(kafka, crate::SERVICE)
                            .map_err(|e| anyhow::anyhow!("ECOM_KAFKA_BROKERS: {e}"))?,
                    )
                }
                BusConfig::InProcess(bus) => Arc::new(bus.clone()),
            },
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            orders_topic: settings.orders_topic.clone(),
        })
    }
}

impl common::runtime::Close for AppState {
    async fn close(&self) {
        self.store.pool.close().await;
    }
}
