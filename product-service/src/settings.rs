use common::auth::VerifierSettings;
use common::db::PoolSettings;
use common::runtime::ServiceSettings;
use common::settings::{Env, ServerSettings, SettingsError};
use url::Url;

use crate::DEFAULT_PORT;

/// product-service configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// `DATABASE_URL`: `mongodb://` (database from the path, default `ecom_products`) or `sqlite://`.
    pub database_url: Url,
    /// `ECOM_DB_MAX_CONNECTIONS` (SQLite pool).
    pub pool: PoolSettings,
    /// `ECOM_JWKS_URL`, `ECOM_JWT_ISSUER`, `ECOM_JWT_AUDIENCE`: checking admin tokens.
    pub verifier: VerifierSettings,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self {
            server: ServerSettings::from_env(env, DEFAULT_PORT)?,
            database_url: env.url(
                "DATABASE_URL",
                "sqlite://data/products.db",
                &["mongodb", "mongodb+srv", "sqlite"],
            )?,
            pool: PoolSettings { max_connections: env.or("ECOM_DB_MAX_CONNECTIONS", 10)?, ..PoolSettings::default() },
            verifier: VerifierSettings::from_env(env)?,
        })
    }
}

impl ServiceSettings for Settings {
    fn server(&self) -> &ServerSettings {
        &self.server
    }
}
