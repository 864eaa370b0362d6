//! The standard layer stack and serving with graceful shutdown.

use std::convert::Infallible;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::FutureExt as _;
use futures::future::{Either, ready};
use http::{Method, StatusCode};
use opentelemetry::trace::SpanContext;
use opentelemetry::trace::TraceContextExt as _;
use tower::layer::util::Identity;
use tower::{Layer, Service, ServiceBuilder};
use tracing::{Instrument, Span, field};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::health::Health;
use crate::http::MAX_BODY_BYTES;
use crate::listener::{App, ConnectionThreads};
use crate::metrics::{RecordRouteLayer, UNMATCHED_ROUTE, record_request};
use crate::problem::Problem;
use crate::propagation;
use crate::request_id::{RequestId, X_REQUEST_ID};
use crate::request_scope::RequestScope;
use crate::settings::ServerSettings;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the standard stack needs to know about the service it wraps.
#[derive(Debug, Clone, Copy)]
pub struct StackConfig {
    pub service: &'static str,
    pub request_timeout: Duration,
    /// Past it a request whose body has not fully arrived is answered 408.
    pub body_read_timeout: Duration,
    /// Nothing under the request span opens a span of its own (a proxy's requests):
    /// without an exporter the request's trace context is then made by hand and kept in
    /// the span, not in an OpenTelemetry span, whose per-span work is then all waste; and
    /// when the log level is above info as well, there is no request span at all, only
    /// that context, kept for the request's task. A span opened under it would start a
    /// trace of its own.
    pub leaf_request_span: bool,
}

/// Wraps a service's router in the standard stack and adds `/health/*` and `/metrics`.
///
/// Outermost first: request id, span + RED metrics (with the caller's `traceparent` as
/// parent), request timeout → 503, panic → 500 problem, body limit → 413, body read
/// timeout → 408, routes; unknown paths answer a 404 problem.
pub fn stack(routes: Router, health: Health, config: StackConfig) -> Router {
    layered(routes.merge(ops_routes(health, config.service)), config, Identity::new())
}

/// Only `/health/*` and `/metrics`, in the standard stack: for a listener that only
/// operators and their tools reach.
pub fn ops_stack(health: Health, config: StackConfig) -> Router {
    layered(ops_routes(health, config.service), config, Identity::new())
}

/// A public edge: `routes` and `/health/*` (never `/metrics`) in the standard stack, with
/// `edge` applied around the router (every path, the 404 fallback too) inside the
/// standard layers, so what it answers carries a request id and is counted. It runs
/// before the routing: a request's `MatchedPath` is not known to it yet. The stack is
/// served as it is, with no router around it.
pub fn edge_stack<E>(routes: Router, health: Health, config: StackConfig, edge: E) -> impl App
where
    E: Layer<Router>,
    E::Service: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    <E::Service as Service<Request>>::Future: Send + 'static,
{
    standard_layers(routes.merge(health.routes()), config, edge)
}

/// Serves `app` on `listener` until `shutdown` fires, then drains (see
/// [`crate::listener::serve`]). With `ECOM_METRICS_BIND_ADDR` set it also serves `app`'s
/// `/metrics` and `/health/*`, and nothing else, on that address: a scraper let in there
/// never reaches the API, `/internal/*` included.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    settings: &ServerSettings,
) -> io::Result<()> {
    let Listeners { api, metrics } = Listeners::bind_metrics(listener, settings).await?;
    serve_with_metrics(api, metrics, app, shutdown, settings).await
}

/// As [`serve`], with the metrics listener bound by the caller.
pub async fn serve_with_metrics(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    app: Router,
    shutdown: CancellationToken,
    settings: &ServerSettings,
) -> io::Result<()> {
    let ops = app.clone().layer(middleware::from_fn(only_ops_paths));
    let listeners = Listeners { api: listener, metrics };
    serve_apart(listeners, Apps { api: app, ops }, shutdown, settings, &ConnectionThreads::none()).await
}

/// A service's listeners: its API's and, if it has one, its metrics listener.
#[derive(Debug)]
pub struct Listeners {
    pub api: TcpListener,
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// `api`, and a metrics listener bound at `ECOM_METRICS_BIND_ADDR` when that is set.
    pub async fn bind_metrics(api: TcpListener, settings: &ServerSettings) -> io::Result<Self> {
        let metrics = match settings.metrics_bind_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                io::Error::new(e.kind(), format!("ECOM_METRICS_BIND_ADDR: cannot listen on {addr}: {e}"))
            })?),
            None => None,
        };
        Ok(Self { api, metrics })
    }
}

/// What [`Listeners`] serve: `api` on the API listener, `ops` (only `/metrics` and
/// `/health/*`) on the metrics listener.
#[derive(Debug, Clone)]
pub struct Apps<A = Router> {
    pub api: A,
    pub ops: Router,
}

/// Serves `apps` on `listeners` until `shutdown` fires, then drains both; the API
/// listener's connections on `threads` (the metrics listener's on the caller's runtime).
pub async fn serve_apart<A: App>(
    listeners: Listeners,
    apps: Apps<A>,
    shutdown: CancellationToken,
    settings: &ServerSettings,
    threads: &ConnectionThreads,
) -> io::Result<()> {
    let api = crate::listener::serve(listeners.api, apps.api, shutdown.clone(), settings, threads);
    let Some(metrics) = listeners.metrics else { return api.await };
    if let Ok(addr) = metrics.local_addr() {
        tracing::info!(%addr, "serving /metrics and /health/* on the metrics listener");
    }
    let none = ConnectionThreads::none();
    let ops = crate::listener::serve(metrics, apps.ops, shutdown, settings, &none);
    tokio::try_join!(api, ops)?;
    Ok(())
}

/// The metrics listener's filter: `/metrics` and `/health/*` pass, anything else is 404.
async fn only_ops_paths(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/metrics" || path.starts_with("/health/") {
        return next.run(req).await;
    }
    crate::problem::not_found_fallback().await.into_response()
}

/// `/health/live`, `/health/ready` and `/metrics`.
fn ops_routes(health: Health, service: &'static str) -> Router {
    // Installed before the first request so that request is counted too.
    crate::metrics::handle();
    let samplers = health.samplers.clone();
    health.routes().route(
        "/metrics",
        get(move || {
            for sample in &samplers {
                sample(service);
            }
            crate::metrics::render()
        }),
    )
}

/// The standard layers around the whole router, once, in a router of their own: applied
/// with `Router::layer` they would wrap every route on its own, and each request would
/// pass through a boxed service, its future and a clone of it for every layer.
fn layered<E>(routes: Router, config: StackConfig, edge: E) -> Router
where
    E: Layer<Router>,
    E::Service: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    <E::Service as Service<Request>>::Future: Send + 'static,
{
    Router::new().fallback_service(standard_layers(routes, config, edge))
}

/// The standard layers, outermost first, around `edge` around `routes`.
fn standard_layers<E>(routes: Router, config: StackConfig, edge: E) -> impl App
where
    E: Layer<Router>,
    E::Service: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    <E::Service as Service<Request>>::Future: Send + 'static,
{
    // Installed before the first request so that request is counted too.
    crate::metrics::handle();
    let routes = routes.route_layer(RecordRouteLayer).fallback(crate::problem::not_found_fallback);
    ServiceBuilder::new()
        .layer(StandardLayer(config))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(crate::body_timeout::ReadBodyInTimeLayer(config.body_read_timeout))
        .layer(edge)
        .service(routes)
}

/// Layer: the request id, then the request span, RED series and returned `traceparent`,
/// then the request timeout. One layer rather than three, and a plain service rather
/// than a `from_fn` middleware: a request pays one boxed future for the three, and
/// neither a boxed copy of the stack below nor a boxed future of it.
#[derive(Debug, Clone, Copy)]
struct StandardLayer(StackConfig);

impl<S> Layer<S> for StandardLayer {
    type Service = Standard<S>;

    fn layer(&self, inner: S) -> Standard<S> {
        Standard { config: self.0, inner }
    }
}

/// The service of [`StandardLayer`].
#[derive(Debug, Clone)]
struct Standard<S> {
    config: StackConfig,
    inner: S,
}

impl<S> Service<Request> for Standard<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The service that was polled ready serves this request; a clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config;
        Box::pin(async move {
            Ok(observe(config, req, |req| within(config.request_timeout, unless_panicked(&mut inner, req))).await)
        })
    }
}

/// The request id, the request span, the RED series and the returned `traceparent`,
/// around `inner`; all of it inside the request's scope.
async fn observe<F, Fut>(config: StackConfig, mut req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let id = crate::request_id::settle(&mut req);
    let path = req.uri().path();
    let answered = Answered {
        service: config.service,
        method: req.method().clone(),
        started: Instant::now(),
        quiet: path.starts_with("/health/") || path == "/metrics",
    };
    let own_context = (config.leaf_request_span && !crate::telemetry::exporting())
        .then(|| propagation::own_context_for_http(req.headers()));
    // Without an exporter and info lines, nothing would read a leaf request's span: its
    // trace context alone is kept, in the request's scope.
    let span = match &own_context {
        Some(_) if !crate::telemetry::request_spans_recorded() => None,
        context => Some(request_span(&config, &req, &id, context.clone())),
    };
    let id_header = id.header_value();
    let scope = RequestScope::new(Some(id), own_context.filter(|_| span.is_none()));

    let answer = async move {
        let mut response = inner(req).await;
        answered.record(crate::request_scope::route(), response.status());
        // The request's own context, or its span's: what its span or scope carries.
        propagation::inject_http(response.headers_mut());
        response
    };
    let mut response = match span {
        Some(span) => scope.run(answer.instrument(span)).await,
        None => scope.run(answer).await,
    };
    response.headers_mut().insert(X_REQUEST_ID.clone(), id_header);
    response
}

/// The span of `req`, a child of the trace context it carries, or carrying `own_context`
/// (a leaf span without an exporter: see [`StackConfig`]).
fn request_span(config: &StackConfig, req: &Request, id: &RequestId, own_context: Option<SpanContext>) -> Span {
    let method = req.method();
    let method_label = crate::metrics::method_label(method);
    let path = req.uri().path();
    let request_id = id.as_str();
    macro_rules! request_span {
        ($target:expr) => {
            tracing::info_span!(
                target: $target,
                "request",
                otel.kind = "server",
                service = config.service,
                http.request.method = method_label,
                // Only for a method outside the standard set, and only its start.
                http.request.method_original = field::Empty,
                url.path = path,
                http.route = field::Empty,
                http.response.status_code = field::Empty,
                request_id = request_id,
                // Set by whoever authenticates the caller (the gateway does).
                user_id = field::Empty,
            )
        };
    }
    let span = match own_context {
        Some(context) => {
            let span = request_span!(crate::telemetry::OWN_CONTEXT_TARGET);
            propagation::attach_own_context(&span, context);
            span
        }
        None => {
            let span = request_span!(module_path!());
            let _ = span.set_parent(propagation::extract_http(req.headers()));
            span
        }
    };
    if method_label == "_OTHER" {
        span.record("http.request.method_original", truncated(method.as_str(), 32));
    }
    span
}

/// What is known of a request when its answer is ready, for the span, the RED series
/// and the log line.
struct Answered {
    service: &'static str,
    method: Method,
    started: Instant,
    /// Health checks and scrapes are logged at debug.
    quiet: bool,
}

impl Answered {
    /// Records the answer on the current (request) span, in the RED series and the log.
    fn record(&self, route: Option<MatchedPath>, status: StatusCode) {
        let span = tracing::Span::current();
        let route_label = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
        if crate::telemetry::exporting() {
            // Not `otel.name`: recording it names only a span not yet started, and a child
            // span or an outgoing call has usually started this one by now.
            let method_label = crate::metrics::method_label(&self.method);
            span.context().span().update_name(format!("{method_label} {route_label}"));
        }
        span.record("http.route", route_label);
        span.record("http.response.status_code", status.as_u16());
        let elapsed = self.started.elapsed();
        record_request(self.service, &self.method, route_label, status.as_u16(), elapsed.as_secs_f64());
        let latency_ms = elapsed.as_millis() as u64;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), latency_ms, "request failed");
        } else if self.quiet {
            tracing::debug!(status = status.as_u16(), latency_ms, "request served");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms, "request served");
        }
    }
}

/// What `inner` answers `req`, or an opaque 500 problem if it panics: inside the request's
/// span and series, so the 500 is counted, logged and answered with the request's id.
///
/// This and [`within`] are combinators, not `async fn`s: an `async fn` keeps room for the
/// future it is given and for the one it awaits, so each would double the request's
/// future, and every move of it.
fn unless_panicked<S>(inner: &mut S, req: Request) -> impl Future<Output = Response> + use<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let answered = |answer: Result<Result<Response, Infallible>, _>| match answer {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => panicked(),
    };
    match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
        Ok(answer) => Either::Left(AssertUnwindSafe(answer).catch_unwind().map(answered)),
        Err(_) => Either::Right(ready(panicked())),
    }
}

fn panicked() -> Response {
    tracing::error!("handler panicked");
    Problem::internal().into_response()
}

/// `answer`, or a 503 once it has taken longer than `limit`.
fn within(limit: Duration, answer: impl Future<Output = Response>) -> impl Future<Output = Response> {
    tokio::time::timeout(limit, answer).map(move |answer| {
        answer.unwrap_or_else(|_| {
            Problem::unavailable(format!("the request took longer than {} ms", limit.as_millis()), 1).into_response()
        })
    })
}

fn truncated(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Settings for serving, from the common server settings.
pub fn stack_config(service: &'static str, settings: &ServerSettings) -> StackConfig {
    StackConfig {
        service,
        request_timeout: settings.request_timeout,
        body_read_timeout: settings.limits.body_read_timeout,
        leaf_request_span: false,
    }
}
