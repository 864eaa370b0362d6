use crate::Settings;
use crate::store::Store;

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
}

impl AppState {
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self { store: Store::connect(settings).await? })
    }
}
