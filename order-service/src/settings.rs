use std::time::Duration;

use common::auth::{ClientCredentials, VerifierSettings};
use common::bus::BusConfig;
use common::client::ClientConfig;
use common::db::PoolSettings;
use common::runtime::ServiceSettings;
use common::settings::{Env, KafkaSettings, SecretUrl, ServerSettings, SettingsError};

use crate::DEFAULT_PORT;

/// order-service configuration. `Debug` hides the passwords in its URLs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// `DATABASE_URL[_FILE]`: `mysql://` or `sqlite://`; `ECOM_DB_PASSWORD[_FILE]`.
    pub database_url: SecretUrl,
    /// `ECOM_DB_MAX_CONNECTIONS`.
    pub pool: PoolSettings,
    /// `ECOM_PRODUCT_URL`: product-service's base URL.
    pub product_url: SecretUrl,
    /// `ECOM_INVENTORY_URL`: inventory-service's base URL.
    pub inventory_url: SecretUrl,
    /// `ECOM_AUTH_URL`: auth-service's base URL, where the service token comes from.
    pub auth_url: SecretUrl,
    /// `ECOM_SERVICE_CLIENT_ID`, `ECOM_SERVICE_CLIENT_SECRET[_FILE]`: how order-service
    /// proves its identity to product- and inventory-service.
    pub service_client: ClientCredentials,
    /// `ECOM_KAFKA_*`: where the outbox relay publishes, with TLS and SASL when set.
    pub bus: BusConfig,
    /// `ECOM_ORDERS_TOPIC`: the topic order events go to (`orders.v1`).
    pub orders_topic: String,
    /// `ECOM_JWKS_URL`, `ECOM_JWT_ISSUER`, `ECOM_JWT_AUDIENCE`.
    pub verifier: VerifierSettings,
    /// `ECOM_CLIENT_*`, `ECOM_BREAKER_*`: calls to product- and inventory-service.
    pub client: ClientConfig,
    /// `ECOM_SWEEP_INTERVAL_MS`: how often unsettled orders are looked for.
    pub sweep_interval: Duration,
    /// `ECOM_SWEEP_PENDING_AFTER_MS`: a `PENDING` order older than this was abandoned by a crash.
    pub sweep_pending_after: Duration,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self {
            server: ServerSettings::from_env(env, DEFAULT_PORT)?,
            database_url: env.database_url("sqlite://data/orders.db", common::db::SCHEMES)?,
            pool: PoolSettings::from_env(env)?,
            product_url: env.secret_url("ECOM_PRODUCT_URL", "http://127.0.0.1:8082", &["http", "https"])?,
            inventory_url: env.secret_url("ECOM_INVENTORY_URL", "http://127.0.0.1:8084", &["http", "https"])?,
            auth_url: env.secret_url("ECOM_AUTH_URL", "http://127.0.0.1:8081", &["http", "https"])?,
            service_client: ClientCredentials::from_env(env)?,
            bus: BusConfig::Kafka(KafkaSettings::from_env(env)?),
            orders_topic: env.or("ECOM_ORDERS_TOPIC", common::events::ORDERS_TOPIC.to_owned())?,
            verifier: VerifierSettings::from_env(env)?,
            client: ClientConfig::from_env(env)?,
            sweep_interval: env.millis("ECOM_SWEEP_INTERVAL_MS", Duration::from_secs(10))?,
            sweep_pending_after: env.millis("ECOM_SWEEP_PENDING_AFTER_MS", Duration::from_secs(60))?,
        })
    }
}

impl ServiceSettings for Settings {
    fn server(&self) -> &ServerSettings {
        &self.server
    }
}
