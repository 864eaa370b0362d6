//! api-gateway: the only public entry.

pub mod edge;
pub mod error;
pub mod proxy;
pub mod routes;
pub mod settings;
pub mod state;
pub mod upstream;

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use common::health::Health;
use common::listener::{App, ConnectionThreads};
use common::server::{self, Apps, Listeners};
use http::{HeaderValue, Method, header};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::Layer as _;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use settings::Settings;
pub use state::AppState;

pub const SERVICE: &str = "api-gateway";
pub const DEFAULT_PORT: u16 = 8080;
/// The metrics port of the deployments (compose, Kubernetes) and of `ecom dev`.
pub const DEFAULT_METRICS_PORT: u16 = 9080;

/// The gateway's public routes inside the standard stack: every path under the rate
/// budget, every answer with the security headers, and no `/metrics` (that is on the
/// metrics listener, [`ops_router`]). It is ready once it holds auth-service's signing
/// keys (fetched on demand).
pub fn router(state: AppState, settings: &Settings) -> impl App {
    let health = health(&state);
    let mut routes = routes::routes(state.clone());
    if let Some(cors) = cors(&settings.cors_origins) {
        routes = routes.layer(cors);
    }
    // The gateway opens no span under the request's: it forwards the request's context.
    let config = server::StackConfig { leaf_request_span: true, ..server::stack_config(SERVICE, &settings.server) };
    edge::SecurityHeadersLayer.layer(server::edge_stack(routes, health, config, edge::RateLimitLayer(state)))
}

/// `/metrics` and `/health/*`, for the metrics listener (`ECOM_METRICS_BIND_ADDR`).
pub fn ops_router(state: &AppState, settings: &Settings) -> Router {
    server::ops_stack(health(state), server::stack_config(SERVICE, &settings.server))
}

fn health(state: &AppState) -> Health {
    let verifier = state.verifier.clone();
    Health::new().check("jwks", move || {
        let verifier = verifier.clone();
        async move {
            if verifier.has_keys().await {
                return Ok(());
            }
            verifier.refresh().await.map_err(|err| err.to_string())
        }
    })
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

/// Serves on `listener` until `shutdown`, then drains; with `ECOM_METRICS_BIND_ADDR` set,
/// serves `/metrics` and `/health/*` there too.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listeners = Listeners::bind_metrics(listener, &settings.server).await?;
    run_on(settings, listeners, shutdown).await
}

/// As [`run`], on listeners bound by the caller. The public listener's connections are
/// served on the connection threads (`ECOM_CONNECTION_THREADS`), the rest on the
/// caller's runtime; the threads stop once the listeners have drained.
pub async fn run_on(settings: Settings, listeners: Listeners, shutdown: CancellationToken) -> anyhow::Result<()> {
    let threads = ConnectionThreads::start(settings.connection_threads, "gateway-connections")
        .context("cannot start the connection threads")?;
    let state = AppState::new(&settings)?;
    let apps = Apps { api: router(state.clone(), &settings), ops: ops_router(&state, &settings) };
    let mut workers = workers(state, shutdown.clone());
    let served = server::serve_apart(listeners, apps, shutdown.clone(), &settings.server, &threads).await;
    shutdown.cancel();
    while workers.join_next().await.is_some() {}
    threads.stop().await;
    Ok(served?)
}
