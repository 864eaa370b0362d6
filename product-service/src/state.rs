use axum::extract::FromRef;
use common::auth::Verifier;

use crate::Settings;
use crate::store::Store;

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub verifier: Verifier,
}

impl AppState {
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let verifier = settings.verifier.verifier().map_err(|e| anyhow::anyhow!("ECOM_JWKS_URL: {e}"))?;
        Ok(Self { store: Store::connect(settings).await?, verifier })
    }
}

impl common::runtime::Close for AppState {
    async fn close(&self) {
        self.store.close().await;
    }
}
