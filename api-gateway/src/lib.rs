//! api-gateway: the only public entry.

pub mod proxy;
pub mod routes;
pub mod settings;
pub mod state;

use std::time::Duration;

use axum::Router;
use common::health::Health;
use common::server::{self, StackConfig};
use http::{HeaderValue, Method, header};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use settings::Settings;
pub use state::AppState;

pub const SERVICE: &str = "api-gateway";
pub const DEFAULT_PORT: u16 = 8080;

/// The gateway's routes inside the standard stack. It is ready once it holds
/// auth-service's signing keys (fetched on demand).
pub fn router(state: AppState, settings: &Settings) -> Router {
    let verifier = state.verifier.clone();
    let health = Health::new().check("jwks", move || {
        let verifier = verifier.clone();
        async move {
            if verifier.has_keys().await {
                return Ok(());
            }
            verifier.refresh().await
        }
    });
    let mut routes = routes::routes(state);
    if let Some(cors) = cors(&settings.cors_origins) {
        routes = routes.layer(cors);
    }
    server::stack(routes, health, StackConfig { service: SERVICE, request_timeout: settings.server.request_timeout })
}

/// CORS for the configured origins. Credentials are allowed only for an explicit
/// list, never with `*`.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([header::HeaderName::from_static("x-request-id"), header::LOCATION, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(AllowOrigin::any()));
    }
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    Some(layer.allow_origin(AllowOrigin::list(list)).allow_credentials(true))
}

/// Background work: forgetting idle clients' rate-limit state.
pub fn workers(state: AppState, shutdown: CancellationToken) -> JoinSet<()> {
    let mut set = JoinSet::new();
    set.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    state.general_limit.retain_recent();
                    state.auth_limit.retain_recent();
                }
                () = shutdown.cancelled() => return,
            }
        }
    });
    set
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
