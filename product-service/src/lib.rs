//! product-service: the catalog.

pub mod domain;
pub mod error;
pub mod routes;
pub mod settings;
pub mod state;
pub mod store;

use axum::Router;
use common::health::Health;
use common::{runtime, server};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Background work of this service: none.
pub use runtime::no_workers as workers;
pub use settings::Settings;
pub use state::AppState;

pub const SERVICE: &str = "product-service";
pub const DEFAULT_PORT: u16 = 8082;

/// The service's routes inside the standard stack, with its readiness checks.
pub fn router(state: AppState, settings: &Settings) -> Router {
    register_metrics();
    let store = state.store.clone();
    let health = Health::new().check("database", move || {
        let store = store.clone();
        async move { store.ping().await }
    });
    server::stack(routes::routes(state), health, server::stack_config(SERVICE, &settings.server))
}

/// Connects, serves on `listener` until `shutdown`, then drains and closes.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = AppState::connect(&settings).await?;
    runtime::serve_state(state, &settings, listener, shutdown, router, workers).await
}

/// Declares the service's own series, with help text, at zero.
fn register_metrics() {
    metrics::describe_counter!("products_created_total", "Products added to the catalog");
    metrics::counter!("products_created_total").increment(0);
}
