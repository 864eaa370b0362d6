use std::time::Duration;

use common::auth::VerifierSettings;
use common::breaker::BreakerConfig;
use common::runtime::ServiceSettings;
use common::settings::{Env, ServerSettings, SettingsError};
use url::Url;

use crate::DEFAULT_PORT;

/// api-gateway configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ECOM_METRICS_BIND_ADDR` there is where `/metrics` and `/health/*` are served to
    /// operators and their tools; unset, the gateway serves no `/metrics` (never on the
    /// public listener).
    pub server: ServerSettings,
    /// `ECOM_CONNECTION_THREADS` (the number of CPUs): threads that serve the public
    /// listener's connections, each a single-threaded runtime with its own upstream
    /// connections; 0 serves them on the main runtime.
    pub connection_threads: usize,
    pub upstreams: Upstreams,
    /// `ECOM_JWKS_URL`, `ECOM_JWT_ISSUER`, `ECOM_JWT_AUDIENCE`, `ECOM_JWKS_MIN_REFRESH_MS`.
    pub verifier: VerifierSettings,
    pub limits: RateLimits,
    /// `ECOM_CORS_ALLOWED_ORIGINS`: comma-separated origins; empty disables CORS.
    pub cors_origins: Vec<String>,
    /// `ECOM_UPSTREAM_TIMEOUT_MS`: how long an upstream may take to answer (headers).
    pub upstream_timeout: Duration,
    /// `ECOM_UPSTREAM_CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// `ECOM_BREAKER_*`: one breaker per upstream with these settings.
    pub breaker: BreakerConfig,
    /// `ECOM_TRUST_FORWARDED_FOR`: take the client address from the last
    /// `X-Forwarded-For` entry (set only behind a proxy that appends it).
    pub trust_forwarded_for: bool,
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

/// Per-client-address budgets.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// `ECOM_RATE_LIMIT_PER_SECOND` (50; bursts up to twice that).
    pub per_second: u32,
    /// `ECOM_RATE_LIMIT_AUTH_PER_MINUTE` (30): login, register and refresh.
    pub auth_per_minute: u32,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        // The gateway speaks plain HTTP/1.1 to the services behind it; TLS ends at the
        // gateway or the ingress in front of it.
        const HTTP: &[&str] = &["http"];
        let auth = env.url("ECOM_AUTH_URL", "http://127.0.0.1:8081", HTTP)?;
        let mut jwks_env = env.clone();
        if env.raw("ECOM_JWKS_URL").is_none() {
            let url =
                auth.join(".well-known/jwks.json").map_err(|e| SettingsError::new("ECOM_AUTH_URL", e.to_string()))?;
            jwks_env.set("ECOM_JWKS_URL", url.to_string());
        }
        let positive = |var: &str, default: u32| -> Result<u32, SettingsError> {
            let value = env.or(var, default)?;
            if value == 0 {
                return Err(SettingsError::new(var, "must be at least 1"));
            }
            Ok(value)
        };
        // The timeout budget nests: the gateway's own bound on a request outlasts its wait
        // for an upstream, which outlasts the services' own request timeout.
        let upstream_timeout = env.millis("ECOM_UPSTREAM_TIMEOUT_MS", Duration::from_secs(10))?;
        let server =
            ServerSettings::from_env_with_timeout(env, DEFAULT_PORT, upstream_timeout + Duration::from_secs(2))?;
        if server.request_timeout <= upstream_timeout {
            return Err(SettingsError::new(
                "ECOM_REQUEST_TIMEOUT_MS",
                "must be longer than ECOM_UPSTREAM_TIMEOUT_MS (the gateway's wait for an upstream)",
            ));
        }
        if env.raw("ECOM_OPS_BIND_ADDR").is_some() {
            return Err(SettingsError::new(
                "ECOM_OPS_BIND_ADDR",
                "is now ECOM_METRICS_BIND_ADDR, as for every service",
            ));
        }
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Ok(Self {
            server,
            connection_threads: env.or("ECOM_CONNECTION_THREADS", cpus)?,
            upstreams: Upstreams {
                auth,
                product: env.url("ECOM_PRODUCT_URL", "http://127.0.0.1:8082", HTTP)?,
                order: env.url("ECOM_ORDER_URL", "http://127.0.0.1:8083", HTTP)?,
                inventory: env.url("ECOM_INVENTORY_URL", "http://127.0.0.1:8084", HTTP)?,
            },
            verifier: VerifierSettings::from_env(&jwks_env)?,
            limits: RateLimits {
                per_second: positive("ECOM_RATE_LIMIT_PER_SECOND", 50)?,
                auth_per_minute: positive("ECOM_RATE_LIMIT_AUTH_PER_MINUTE", 30)?,
            },
            cors_origins: env
                .raw("ECOM_CORS_ALLOWED_ORIGINS")
                .map(|list| list.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            upstream_timeout,
            connect_timeout: env.millis("ECOM_UPSTREAM_CONNECT_TIMEOUT_MS", Duration::from_secs(1))?,
            breaker: BreakerConfig::from_env(env)?,
            trust_forwarded_for: env.flag("ECOM_TRUST_FORWARDED_FOR", false)?,
        })
    }
}

impl ServiceSettings for Settings {
    fn server(&self) -> &ServerSettings {
        &self.server
    }
}
