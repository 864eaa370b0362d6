//! `/health/live` and `/health/ready`.
//!
//! Readiness runs the service's own dependency checks (each bounded by a timeout,
//! all at once) and answers 503 naming the ones that failed, so a dependency lost
//! at run time takes the instance out of rotation and a recovered one puts it back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::{BoxFuture, join_all};
use http::StatusCode;
use serde_json::json;

use crate::problem::Problem;

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Sets gauges about a dependency just before `/metrics` renders; given the service name.
pub(crate) type SamplerFn = Arc<dyn Fn(&'static str) + Send + Sync>;

/// How long one dependency check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The named dependency checks of one service.
#[derive(Clone, Default)]
pub struct Health {
    checks: Vec<(&'static str, CheckFn)>,
    pub(crate) samplers: Vec<SamplerFn>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.checks.iter().map(|(name, _)| name)).finish()
    }
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check; `Err` carries a short reason (no secrets, no URLs with credentials).
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    /// Runs every check; the map holds `"up"` or the failure reason per check.
    /// The SQL database: a `database` readiness check, and the pool's
    /// `db_pool_connections` / `db_pool_max_connections` gauges on every scrape.
    #[cfg(feature = "sql")]
    pub fn database(mut self, pool: crate::db::SqlPool) -> Self {
        let sampled = pool.clone();
        self.samplers.push(Arc::new(move |service| sampled.record_usage(service)));
        self.check("database", move || {
            let pool = pool.clone();
            async move { pool.ping().await }
        })
    }

    pub async fn run(&self) -> (bool, BTreeMap<&'static str, String>) {
        let results = join_all(self.checks.iter().map(|(name, check)| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(reason),
                Err(_) => Err(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
            };
            (*name, outcome)
        }))
        .await;
        let healthy = results.iter().all(|(_, r)| r.is_ok());
        let report = results.into_iter().map(|(name, r)| (name, r.err().unwrap_or_else(|| "up".to_owned()))).collect();
        (healthy, report)
    }

    pub fn routes<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        Router::new().route("/health/live", get(live)).route("/health/ready", get(ready).with_state(self))
    }
}

async fn live() -> Response {
    axum::Json(json!({"status": "up"})).into_response()
}

async fn ready(State(health): State<Health>) -> Response {
    let (healthy, report) = health.run().await;
    if healthy {
        return (StatusCode::OK, axum::Json(json!({"status": "up", "checks": report}))).into_response();
    }
    let failing: Vec<String> = report
        .iter()
        .filter(|(_, status)| status.as_str() != "up")
        .map(|(name, reason)| format!("{name}: {reason}"))
        .collect();
    for line in &failing {
        tracing::warn!(check = %line, "readiness check failed");
    }
    Problem::unavailable(format!("not ready: {}", failing.join("; ")), 5)
        .extension("checks", json!(report))
        .into_response()
}
