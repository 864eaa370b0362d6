use common::auth::VerifierSettings;
use common::db::PoolSettings;
use common::runtime::ServiceSettings;
use common::settings::{Env, SecretUrl, ServerSettings, SettingsError};

use crate::DEFAULT_PORT;

/// product-service configuration. `Debug` hides the database password.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// `DATABASE_URL[_FILE]`: `mongodb://`, `mongodb+srv://` (database from the path,
    /// default `ecom_products`) or `sqlite://`; `ECOM_DB_PASSWORD[_FILE]`.
    pub database_url: SecretUrl,
    /// `ECOM_DB_MAX_CONNECTIONS` (SQLite pool).
    pub pool: PoolSettings,
    /// `ECOM_JWKS_URL`, `ECOM_JWT_ISSUER`, `ECOM_JWT_AUDIENCE`: checking admin tokens.
    pub verifier: VerifierSettings,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self {
            server: ServerSettings::from_env(env, DEFAULT_PORT)?,
            database_url: env.database_url("sqlite://data/products.db", &["mongodb", "mongodb+srv", "sqlite"])?,
            pool: PoolSettings::from_env(env)?,
            verifier: VerifierSettings::from_env(env)?,
        })
    }
}

impl ServiceSettings for Settings {
    fn server(&self) -> &ServerSettings {
        &self.server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_holds_no_password() {
        let env =
            Env::from_pairs([("DATABASE_URL", "mongodb://ecom:hunter2-db-secret@mongo.internal:27017/ecom_products")]);
        let printed = format!("{:?}", Settings::from_env(&env).unwrap());
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("db.internal") || printed.contains("mongo.internal"), "{printed}");
    }
}
