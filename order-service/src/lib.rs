//! order-service: the placement saga, the transactional outbox and its relay.

pub mod clients;
pub mod domain;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod routes;
pub mod saga;
pub mod service_token;
pub mod settings;
pub mod state;
pub mod store;

use axum::Router;
use common::health::Health;
use common::{runtime, server};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use settings::Settings;
pub use state::AppState;

pub const SERVICE: &str = "order-service";
pub const DEFAULT_PORT: u16 = 8083;

/// The service's routes inside the standard stack, with its readiness check: the database.
pub fn router(state: AppState, settings: &Settings) -> Router {
    register_metrics();
    // Kafka is deliberately not a readiness check: while the broker is away, orders are
    // still accepted and their events wait in the outbox (the backlog metrics show it).
    let health = Health::new().database(state.store.pool.clone());
    server::stack(routes::routes(state), health, server::stack_config(SERVICE, &settings.server))
}

/// Background work: the outbox relay, the sweeper that settles orders a crash or
/// outage left half-done, and the renewal of the service token (so no placement waits
/// for auth-service while the current token is good).
pub fn workers(state: AppState, settings: &Settings, shutdown: CancellationToken) -> JoinSet<()> {
    let mut set = JoinSet::new();
    set.spawn(state.products.token.clone().keep_renewed(shutdown.clone()));
    set.spawn(events::run_relay(
        state.store.pool.clone(),
        state.publisher.clone(),
        state.outbox_wake.clone(),
        shutdown.clone(),
    ));
    let interval = settings.sweep_interval;
    set.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(err) = saga::sweep_once(&state).await {
                        tracing::warn!(error = %err, "sweep failed");
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    });
    set
}

/// Connects, serves on `listener` until `shutdown`, then drains and closes.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = AppState::connect(&settings).await?;
    runtime::serve_state(state, &settings, listener, shutdown, router, workers).await
}

/// Declares the service's own series, with help text, at zero: dashboards and
/// alerts see them before the first order.
fn register_metrics() {
    use metrics::{counter, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("orders_placed_total", "Orders confirmed by the placement saga");
    describe_counter!("orders_rejected_total", "Placements refused, by reason (out_of_stock, unavailable)");
    describe_counter!("orders_cancelled_total", "Orders cancelled by their owner or an admin");
    describe_gauge!("outbox_backlog", "Outbox rows not yet published");
    describe_gauge!("outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row");
    describe_counter!("outbox_published_total", "Outbox rows published and marked sent");
    describe_counter!("outbox_publish_failures_total", "Relay batches that failed to publish");
    describe_histogram!("outbox_publish_duration_seconds", "Time to publish one claimed batch and mark it sent");
    counter!("orders_placed_total").increment(0);
    for reason in ["out_of_stock", "unavailable"] {
        counter!("orders_rejected_total", "reason" => reason).increment(0);
    }
    counter!("orders_cancelled_total").increment(0);
    counter!("outbox_published_total").increment(0);
    counter!("outbox_publish_failures_total").increment(0);
}
