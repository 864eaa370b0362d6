//! api-gateway: the only public entry.

pub mod routes;
pub mod settings;
pub mod state;

use axum::Router;
use common::health::Health;
use common::server::{self, StackConfig};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use settings::Settings;
pub use state::AppState;

pub const SERVICE: &str = "api-gateway";
pub const DEFAULT_PORT: u16 = 8080;

/// The gateway's routes inside the standard stack. It is ready when auth-service,
/// whose keys verify every token, answers.
pub fn router(state: AppState, settings: &Settings) -> Router {
    let client = state.client.clone();
    let auth = state.upstreams.auth.clone();
    let health = Health::new().check("auth-service", move || {
        let (client, auth) = (client.clone(), auth.clone());
        async move {
            let url = auth.join("health/live").map_err(|e| e.to_string())?;
            match client.get(url).send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("answered {}", response.status())),
                Err(err) if err.is_timeout() => Err("timed out".into()),
                Err(_) => Err("unreachable".into()),
            }
        }
    });
    server::stack(
        routes::routes(state),
        health,
        StackConfig { service: SERVICE, request_timeout: settings.server.request_timeout },
    )
}

/// Background work of this service (none yet).
pub fn workers(_state: AppState, _shutdown: CancellationToken) -> JoinSet<()> {
    JoinSet::new()
}

/// Serves on `listener` until `shutdown`, then drains.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = AppState::new(&settings)?;
    let mut workers = workers(state.clone(), shutdown.clone());
    let app = router(state, &settings);
    server::serve(listener, app, shutdown.clone(), settings.server.shutdown_grace).await?;
    shutdown.cancel();
    while workers.join_next().await.is_some() {}
    Ok(())
}
