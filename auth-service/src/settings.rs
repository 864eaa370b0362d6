use std::time::Duration;

use common::auth::Expectations;
use common::db::PoolSettings;
use common::runtime::ServiceSettings;
use common::settings::{Env, SecretUrl, ServerSettings, SettingsError};
use secrecy::{ExposeSecret as _, SecretString};

use crate::DEFAULT_PORT;
use crate::domain::{Email, Password};
use crate::keys::KeySettings;

/// auth-service configuration. `Debug` hides the database password and the admin's.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// `DATABASE_URL[_FILE]`: `mysql://` or `sqlite://`; `ECOM_DB_PASSWORD[_FILE]`.
    pub database_url: SecretUrl,
    /// `ECOM_DB_MAX_CONNECTIONS`.
    pub pool: PoolSettings,
    /// `ECOM_ADMIN_EMAIL` / `ECOM_ADMIN_PASSWORD`: the admin created (or updated) at start.
    pub admin: Option<AdminSettings>,
    pub keys: KeySettings,
    /// `ECOM_JWT_ISSUER` / `ECOM_JWT_AUDIENCE`: the `iss` and `aud` of issued tokens.
    pub expectations: Expectations,
    /// `ECOM_ACCESS_TOKEN_TTL_SECS` (900).
    pub access_ttl: Duration,
    /// `ECOM_REFRESH_TOKEN_TTL_SECS` (30 days): one refresh token, unused.
    pub refresh_ttl: Duration,
    /// `ECOM_REFRESH_FAMILY_LIFETIME_SECS` (90 days): one login's chain of refresh
    /// tokens, however often it rotates.
    pub refresh_family_lifetime: Duration,
    /// `ECOM_SERVICE_CLIENT_*`, `ECOM_SERVICE_TOKEN_TTL_SECS`: who gets service tokens.
    pub service_tokens: crate::clients::ServiceTokenSettings,
}

/// The admin account from configuration. It is created at start, or brought up to
/// date if it exists and is an admin; an existing account that is not an admin is
/// never promoted (the start fails instead).
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub email: String,
    pub password: SecretString,
    /// A PHC string already known to be `password`'s argon2 hash (`ecom dev` keeps one
    /// beside the password it generated). It is stored when the admin is created, and
    /// an admin whose stored hash is exactly this one is up to date without a verify,
    /// which costs as much as a hash. Never read from the environment; redacted in
    /// `Debug` like the password.
    pub password_hash: Option<SecretString>,
}

impl AdminSettings {
    /// The address and password, held to the rules every account follows.
    pub fn parse(&self) -> Result<(Email, Password), SettingsError> {
        let email = Email::parse(&self.email).map_err(|e| SettingsError::new("ECOM_ADMIN_EMAIL", e.to_string()))?;
        let password = Password::parse_new(self.password.expose_secret().to_owned())
            .map_err(|e| SettingsError::new("ECOM_ADMIN_PASSWORD", e.message))?;
        Ok((email, password))
    }
}

/// A comma-separated list of paths; empty entries are skipped.
fn path_list(env: &Env, var: &str) -> Vec<std::path::PathBuf> {
    env.raw(var)
        .map(|list| list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(Into::into).collect())
        .unwrap_or_default()
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let admin = match (env.optional::<String>("ECOM_ADMIN_EMAIL")?, env.secret("ECOM_ADMIN_PASSWORD")?) {
            (Some(email), Some(password)) => {
                let admin = AdminSettings { email: email.to_owned(), password, password_hash: None };
                admin.parse()?;
                Some(admin)
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(SettingsError::new("ECOM_ADMIN_PASSWORD", "is required with ECOM_ADMIN_EMAIL"));
            }
            (None, Some(_)) => {
                return Err(SettingsError::new("ECOM_ADMIN_EMAIL", "is required with ECOM_ADMIN_PASSWORD"));
            }
        };
        Ok(Self {
            server: ServerSettings::from_env(env, DEFAULT_PORT)?,
            database_url: env.database_url("sqlite://data/auth.db", common::db::SCHEMES)?,
            pool: PoolSettings::from_env(env)?,
            admin,
            keys: KeySettings {
                signing_key_file: env.or("ECOM_JWT_SIGNING_KEY_FILE", "data/jwt-signing-key.pem".into())?,
                previous_key_files: path_list(env, "ECOM_JWT_PREVIOUS_KEY_FILES"),
                next_key_files: path_list(env, "ECOM_JWT_NEXT_KEY_FILES"),
                generate_missing: env.flag("ECOM_JWT_GENERATE_KEY", false)?,
            },
            expectations: Expectations::from_env(env)?,
            access_ttl: Duration::from_secs(env.or("ECOM_ACCESS_TOKEN_TTL_SECS", 900)?),
            refresh_ttl: Duration::from_secs(env.or("ECOM_REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?),
            refresh_family_lifetime: Duration::from_secs(env.or("ECOM_REFRESH_FAMILY_LIFETIME_SECS", 90 * 24 * 3600)?),
            service_tokens: crate::clients::ServiceTokenSettings::from_env(env)?,
        })
    }
}

impl ServiceSettings for Settings {
    fn server(&self) -> &ServerSettings {
        &self.server
    }
}
