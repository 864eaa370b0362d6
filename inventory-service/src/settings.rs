use common::auth::VerifierSettings;
use common::db::PoolSettings;
use common::runtime::ServiceSettings;
use common::settings::{Env, SecretUrl, ServerSettings, SettingsError};

use crate::DEFAULT_PORT;

/// inventory-service configuration. `Debug` hides the database password.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// `DATABASE_URL[_FILE]`: `mysql://` or `sqlite://`; `ECOM_DB_PASSWORD[_FILE]`.
    pub database_url: SecretUrl,
    /// `ECOM_DB_MAX_CONNECTIONS`.
    pub pool: PoolSettings,
    /// `ECOM_JWKS_URL`, `ECOM_JWT_ISSUER`, `ECOM_JWT_AUDIENCE`: checking admin tokens.
    pub verifier: VerifierSettings,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self {
            server: ServerSettings::from_env(env, DEFAULT_PORT)?,
            database_url: env.database_url("sqlite://data/inventory.db", common::db::SCHEMES)?,
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
        let env = Env::from_pairs([("DATABASE_URL", "mysql://ecom:hunter2-db-secret@db.internal:3306/inventory")]);
        let printed = format!("{:?}", Settings::from_env(&env).unwrap());
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("db.internal") || printed.contains("mongo.internal"), "{printed}");
    }
}
