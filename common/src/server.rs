//! The standard layer stack and serving with graceful shutdown.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::{Instrument, field};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::health::Health;
use crate::http::MAX_BODY_BYTES;
use crate::metrics::{RouteSlot, record_request, record_route};
use crate::problem::Problem;
use crate::propagation;
use crate::request_id::RequestId;
use crate::settings::ServerSettings;

/// What the standard stack needs to know about the service it wraps.
#[derive(Debug, Clone, Copy)]
pub struct StackConfig {
    pub service: &'static str,
    pub request_timeout: Duration,
}

/// Wraps a service's router in the standard stack and adds `/health/*` and `/metrics`.
///
/// Outermost first: panic → 500 problem, request id, span + RED metrics (with the
/// caller's `traceparent` as parent), request timeout → 503, body limit → 413,
/// routes; unknown paths answer a 404 problem.
pub fn stack(routes: Router, health: Health, config: StackConfig) -> Router {
    // Installed before the first request so that request is counted too.
    crate::metrics::handle();
    let samplers = health.samplers.clone();
    let service = config.service;
    routes
        .merge(health.routes())
        .route(
            "/metrics",
            get(move || {
                for sample in &samplers {
                    sample(service);
                }
                crate::metrics::render()
            }),
        )
        .route_layer(middleware::from_fn(record_route))
        .fallback(crate::problem::not_found_fallback)
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(|_| {
                    tracing::error!("handler panicked");
                    Problem::internal().into_response()
                }))
                .layer(middleware::from_fn(crate::request_id::request_id))
                .layer(middleware::from_fn_with_state(config, observe))
                .layer(middleware::from_fn_with_state(config.request_timeout, timeout))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
}

/// The request span, the RED series and the returned `traceparent`.
async fn observe(State(config): State<StackConfig>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let request_id = req.extensions().get::<RequestId>().map(|id| id.0.clone()).unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        otel.name = field::Empty,
        otel.kind = "server",
        service = config.service,
        http.request.method = %method,
        url.path = %path,
        http.route = field::Empty,
        http.response.status_code = field::Empty,
        request_id = %request_id,
        // Set by whoever authenticates the caller (the gateway does).
        user_id = field::Empty,
    );
    let _ = span.set_parent(propagation::extract_http(req.headers()));
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());

    async move {
        let mut response = next.run(req).await;
        let route = slot.route();
        let status = response.status();
        let span = tracing::Span::current();
        let route_label = route.as_deref().unwrap_or("unmatched");
        span.record("otel.name", format!("{method} {route_label}"));
        span.record("http.route", route_label);
        span.record("http.response.status_code", status.as_u16());
        let elapsed = started.elapsed();
        record_request(config.service, method.as_str(), route_label, status.as_u16(), elapsed.as_secs_f64());
        let quiet = path.starts_with("/health/") || path == "/metrics";
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), latency_ms = elapsed.as_millis() as u64, "request failed");
        } else if quiet {
            tracing::debug!(status = status.as_u16(), latency_ms = elapsed.as_millis() as u64, "request served");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms = elapsed.as_millis() as u64, "request served");
        }
        propagation::inject_http(response.headers_mut());
        response
    }
    .instrument(span)
    .await
}

async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            Problem::unavailable(format!("the request took longer than {} ms", limit.as_millis()), 1).into_response()
        }
    }
}

/// Serves `app` on `listener` until `shutdown` fires, then stops accepting and gives
/// in-flight requests up to `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let mut task = tokio::spawn(async move { server.await });
    tracing::debug!(%addr, "listening");
    tokio::select! {
        result = &mut task => return result.map_err(std::io::Error::other)?,
        () = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(grace, &mut task).await {
        Ok(result) => result.map_err(std::io::Error::other)?,
        Err(_) => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "in-flight requests outlived the grace period");
            task.abort();
            Ok(())
        }
    }
}

/// Settings for serving, from the common server settings.
pub fn stack_config(service: &'static str, settings: &ServerSettings) -> StackConfig {
    StackConfig { service, request_timeout: settings.request_timeout }
}
