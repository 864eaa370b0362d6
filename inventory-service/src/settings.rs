use common::auth::VerifierSettings;
use common::db::PoolSettings;
use common::runtime::ServiceSettings;
use common::settings::{Env, ServerSettings, SettingsError, redact_url};
use url::Url;

use crate::DEFAULT_PORT;

/// inventory-service configuration. `Debug` hides the database password.
#[derive(Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// `DATABASE_URL`: `mysql://` or `sqlite://`.
    pub database_url: Url,
    /// `ECOM_DB_MAX_CONNECTIONS`.
    pub pool: PoolSettings,
    /// `ECOM_JWKS_URL`, `ECOM_JWT_ISSUER`, `ECOM_JWT_AUDIENCE`: checking admin tokens.
    pub verifier: VerifierSettings,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("database_url", &redact_url(&self.database_url))
            .field("pool", &self.pool)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self {
            server: ServerSettings::from_env(env, DEFAULT_PORT)?,
            database_url: env.url("DATABASE_URL", "sqlite://data/inventory.db", common::db::SCHEMES)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_holds_no_password() {
        let env = Env::from_pairs([("DATABASE_URL", "mysql://ecom:hunter2-db-secret@db.internal:3306/inventory")]);
        let printed = format!("{:?}", Settings::from_env(&env).unwrap());
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("db.internal") || printed.contains("mongo.internal"), "{printed}");
    }
}
