use common::runtime::ServiceSettings;
use common::settings::{Env, ServerSettings, SettingsError};
use url::Url;

use crate::DEFAULT_PORT;

/// api-gateway configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub upstreams: Upstreams,
}

/// Base URLs of the services behind the gateway.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// `ECOM_AUTH_URL`.
    pub auth: Url,
    /// `ECOM_PRODUCT_URL`.
    pub product: Url,
    /// `ECOM_ORDER_URL`.
    pub order: Url,
    /// `ECOM_INVENTORY_URL`.
    pub inventory: Url,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        const HTTP: &[&str] = &["http", "https"];
        Ok(Self {
            server: ServerSettings::from_env(env, DEFAULT_PORT)?,
            upstreams: Upstreams {
                auth: env.url("ECOM_AUTH_URL", "http://127.0.0.1:8081", HTTP)?,
                product: env.url("ECOM_PRODUCT_URL", "http://127.0.0.1:8082", HTTP)?,
                order: env.url("ECOM_ORDER_URL", "http://127.0.0.1:8083", HTTP)?,
                inventory: env.url("ECOM_INVENTORY_URL", "http://127.0.0.1:8084", HTTP)?,
            },
        })
    }
}

impl ServiceSettings for Settings {
    fn server(&self) -> &ServerSettings {
        &self.server
    }
}
