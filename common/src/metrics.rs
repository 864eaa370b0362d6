//! The Prometheus recorder and the HTTP RED middleware.
//!
//! One recorder per process: in `ecom dev` the six services share it and their
//! series are told apart by the `service` label.

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, header};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Buckets for request and call durations, in seconds.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process's Prometheus handle, installing the recorder on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), LATENCY_BUCKETS)
                .expect("latency buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

fn spawn_upkeep(handle: PrometheusHandle) {
    // Histograms are drained into summaries by upkeep; without it memory grows.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
}

/// `GET /metrics`.
pub async fn render() -> Response {
    let body = handle().render();
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// The label of a request method: one of RFC 9110's methods and PATCH (RFC 5789), or
/// `_OTHER` (as OpenTelemetry's semantic conventions say), so that a client inventing
/// methods cannot invent series.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

/// The route label of a request no route matched: one value, never the path.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The RED series of one service, method, route and status.
struct RedSeries {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// Service, method label and status; then the route.
type RedKey = (&'static str, &'static str, u16);

/// Series already registered, so that a request costs a map lookup rather than building
/// and hashing four labels twice in the recorder. As bounded as the series themselves:
/// routes are route templates (or [`UNMATCHED_ROUTE`]) and methods are [`method_label`]s.
/// Keys are hashed with foldhash, not SipHash: they are our own labels, never a
/// client's, so nothing is gained from a keyed hash.
static RED_SERIES: OnceLock<RwLock<SeriesMap<RedKey, SeriesMap<String, RedSeries>>>> = OnceLock::new();

type SeriesMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Records one served request in the RED series.
pub(crate) fn record_request(service: &'static str, method: &Method, route: &str, status: u16, seconds: f64) {
    let key = (service, method_label(method), status);
    let registry = RED_SERIES.get_or_init(Default::default);
    let record = |series: &RedSeries| {
        series.requests.increment(1);
        series.duration.record(seconds);
    };
    if let Some(series) =
        registry.read().unwrap_or_else(PoisonError::into_inner).get(&key).and_then(|routes| routes.get(route))
    {
        record(series);
        return;
    }
    let labels = [
        ("service", service.to_owned()),
        ("method", key.1.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    let series = RedSeries {
        requests: metrics::counter!("http_server_requests_total", &labels),
        duration: metrics::histogram!("http_server_request_duration_seconds", &labels),
    };
    record(&series);
    registry.write().unwrap_or_else(PoisonError::into_inner).entry(key).or_default().insert(route.to_owned(), series);
}

/// Route layer: tells the observing layer, through the request's scope, which route
/// matched. A plain service rather than a `from_fn` middleware, so a request pays no
/// boxed future for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordRouteLayer;

impl<S> tower::Layer<S> for RecordRouteLayer {
    type Service = RecordRoute<S>;

    fn layer(&self, inner: S) -> RecordRoute<S> {
        RecordRoute(inner)
    }
}

/// The service of [`RecordRouteLayer`].
#[derive(Debug, Clone)]
pub struct RecordRoute<S>(S);

impl<S: tower::Service<Request>> tower::Service<Request> for RecordRoute<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> S::Future {
        if let Some(path) = req.extensions().get::<MatchedPath>() {
            crate::request_scope::set_route(path);
        }
        self.0.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_are_their_own_label_and_any_other_is_other() {
        for name in ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] {
            assert_eq!(method_label(&Method::from_bytes(name.as_bytes()).unwrap()), name);
        }
        for name in ["get", "PROPFIND", "BREW", "X".repeat(4096).as_str()] {
            assert_eq!(method_label(&Method::from_bytes(name.as_bytes()).unwrap()), "_OTHER", "{name}");
        }
    }
}
