use std::time::Duration;

use anyhow::Context as _;

use crate::Settings;
use crate::settings::Upstreams;

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub upstreams: Upstreams,
    /// Pooled keep-alive connections to the services.
    pub client: reqwest::Client,
}

impl AppState {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the upstream HTTP client")?;
        Ok(Self { upstreams: settings.upstreams.clone(), client })
    }
}
