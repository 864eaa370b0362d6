use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::FromRef;
use common::auth::Verifier;
use common::breaker::CircuitBreaker;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use url::Url;

use crate::Settings;
use crate::upstream::{PoolConfig, Upstream};

/// Everything a handler needs; cheap to clone (one `Arc`, since every request's
/// extractors and middleware take a copy).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares between requests.
pub struct Shared {
    pub auth: Upstream,
    pub product: Upstream,
    pub order: Upstream,
    pub inventory: Upstream,
    /// For the gateway's own calls (OpenAPI documents).
    pub api_client: reqwest::Client,
    pub verifier: Verifier,
    pub general_limit: DefaultKeyedRateLimiter<IpAddr>,
    pub auth_limit: DefaultKeyedRateLimiter<IpAddr>,
    pub upstream_timeout: Duration,
    pub trust_forwarded_for: bool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("auth", &self.auth.base.as_str()).finish_non_exhaustive()
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

impl AppState {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let pool = PoolConfig { connect_timeout: settings.connect_timeout, threads: settings.connection_threads };
        let api_client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .context("cannot build the HTTP client")?;
        let upstream = |name: &'static str, base: &Url| {
            Upstream::new(name, base, CircuitBreaker::new(name, settings.breaker.clone()), pool)
        };
        let per_second = NonZeroU32::new(settings.limits.per_second).context("ECOM_RATE_LIMIT_PER_SECOND")?;
        let burst = per_second.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        let auth_per_minute =
            NonZeroU32::new(settings.limits.auth_per_minute).context("ECOM_RATE_LIMIT_AUTH_PER_MINUTE")?;
        Ok(Self(Arc::new(Shared {
            auth: upstream("auth-service", &settings.upstreams.auth),
            product: upstream("product-service", &settings.upstreams.product),
            order: upstream("order-service", &settings.upstreams.order),
            inventory: upstream("inventory-service", &settings.upstreams.inventory),
            api_client,
            verifier: settings.verifier.verifier().map_err(|e| anyhow::anyhow!("ECOM_JWKS_URL: {e}"))?,
            general_limit: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            auth_limit: RateLimiter::keyed(Quota::per_minute(auth_per_minute)),
            upstream_timeout: settings.upstream_timeout,
            trust_forwarded_for: settings.trust_forwarded_for,
        })))
    }

    pub fn upstreams(&self) -> [&Upstream; 4] {
        [&self.auth, &self.product, &self.order, &self.inventory]
    }
}
