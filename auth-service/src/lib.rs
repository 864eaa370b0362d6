//! auth-service: users, argon2id passwords, access and refresh tokens, JWKS.

pub mod admin;
pub mod clients;
pub mod domain;
pub mod error;
pub mod keys;
pub mod password;
pub mod routes;
pub mod settings;
pub mod state;
pub mod store;
pub mod tokens;

use axum::Router;
use common::health::Health;
use common::{runtime, server};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Background work of this service: none.
pub use runtime::no_workers as workers;
pub use settings::Settings;
pub use state::AppState;

pub const SERVICE: &str = "auth-service";
pub const DEFAULT_PORT: u16 = 8081;

/// The service's routes inside the standard stack, with its readiness checks.
pub fn router(state: AppState, settings: &Settings) -> Router {
    let health = Health::new().database(state.store.pool.clone());
    server::stack(routes::routes(state), health, server::stack_config(SERVICE, &settings.server))
}

/// Connects, serves on `listener` until `shutdown`, then drains and closes.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = AppState::connect(&settings).await?;
    runtime::serve_state(state, &settings, listener, shutdown, router, workers).await
}
