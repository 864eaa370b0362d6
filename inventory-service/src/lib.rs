//! inventory-service: stock and atomic all-or-nothing reservations.

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

pub const SERVICE: &str = "inventory-service";
pub const DEFAULT_PORT: u16 = 8084;

/// The service's routes inside the standard stack, with its readiness checks.
pub fn router(state: AppState, settings: &Settings) -> Router {
    register_metrics();
    let health = Health::new().database(state.store.pool.clone());
    server::stack(routes::routes(state), health, server::stack_config(SERVICE, &settings.server))
}

/// Connects, serves on `listener` until `shutdown`, then drains and closes.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = AppState::connect(&settings).await?;
    runtime::serve_state(state, &settings, listener, shutdown, router, workers).await
}

/// Declares the service's own series, with help text, at zero.
fn register_metrics() {
    use metrics::{counter, describe_counter};
    describe_counter!("inventory_reservations_total", "Reservation requests, by outcome (reserved, insufficient)");
    describe_counter!("inventory_releases_total", "Reservations released");
    for outcome in ["reserved", "insufficient"] {
        counter!("inventory_reservations_total", "outcome" => outcome).increment(0);
    }
    counter!("inventory_releases_total").increment(0);
}
