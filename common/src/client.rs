//! The resilient client for calls between services, as tower layers around
//! reqwest. Outermost first: retry (idempotent requests only, exponential backoff
//! with full jitter, never on an open circuit) → circuit breaker → per-attempt
//! timeout → reqwest.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use rand::Rng as _;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt as _};

use crate::breaker::{BreakerConfig, CircuitBreaker, Outcome, Rejected};
use crate::settings::{Env, SettingsError};

/// Timeouts and retries of one target.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ECOM_CLIENT_TIMEOUT_MS`: one attempt's bound.
    pub attempt_timeout: Duration,
    /// `ECOM_CLIENT_RETRIES`: extra attempts for idempotent requests.
    pub retries: u32,
    /// `ECOM_CLIENT_BACKOFF_MS`: the first backoff; it doubles, with full jitter.
    pub backoff: Duration,
    pub breaker: BreakerConfig,
}

impl ClientConfig {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self {
            attempt_timeout: env.millis("ECOM_CLIENT_TIMEOUT_MS", Duration::from_secs(2))?,
            retries: env.or("ECOM_CLIENT_RETRIES", 2)?,
            backoff: env.millis("ECOM_CLIENT_BACKOFF_MS", Duration::from_millis(50))?,
            breaker: BreakerConfig::from_env(env)?,
        })
    }
}

/// Why a call produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("circuit open")]
    Open(Rejected),
    #[error("timed out")]
    Timeout,
    #[error("transport: {0}")]
    Transport(#[source] BoxError),
}

impl CallError {
    fn from_box(err: BoxError) -> Self {
        if let Some(rejected) = err.downcast_ref::<Rejected>() {
            return Self::Open(*rejected);
        }
        if err.is::<tower::timeout::error::Elapsed>() {
            return Self::Timeout;
        }
        Self::Transport(err)
    }

    /// Seconds a client should wait before retrying.
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Self::Open(rejected) => rejected.retry_after.as_secs().max(1),
            _ => 1,
        }
    }
}

/// A client for one target service; cheap to clone.
#[derive(Clone)]
pub struct ResilientClient {
    name: &'static str,
    http: reqwest::Client,
    breaker: CircuitBreaker,
    service: BoxCloneSyncService<reqwest::Request, reqwest::Response, BoxError>,
}

impl std::fmt::Debug for ResilientClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientClient").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ResilientClient {
    pub fn new(name: &'static str, config: &ClientConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.attempt_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        let breaker = CircuitBreaker::new(name, config.breaker.clone());
        metrics::counter!("http_client_retries_total", "target" => name).increment(0);
        for outcome in ["ok", "server_error", "rejected", "timeout", "transport_error"] {
            metrics::counter!("http_client_requests_total", "target" => name, "outcome" => outcome).increment(0);
        }
        let service = ServiceBuilder::new()
            .layer(RetryLayer { name, retries: config.retries, backoff: config.backoff })
            .layer(CircuitBreakerLayer { breaker: breaker.clone() })
            .timeout(config.attempt_timeout)
            .service(http.clone());
        Ok(Self { name, http, breaker, service: BoxCloneSyncService::new(service) })
    }

    /// A request builder (send it with [`ResilientClient::send`]).
    pub fn request(&self, method: reqwest::Method, url: url::Url) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Sends through the layers, with the current trace context and request id.
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let mut request = builder.build().map_err(|e| CallError::Transport(e.into()))?;
        crate::propagation::inject_http(request.headers_mut());
        if let Some(id) = crate::request_id::RequestId::current()
            && let Ok(value) = http::HeaderValue::from_str(&id)
        {
            request.headers_mut().insert(crate::request_id::X_REQUEST_ID.clone(), value);
        }
        let started = std::time::Instant::now();
        let result = self.service.clone().oneshot(request).await.map_err(CallError::from_box);
        let outcome = match &result {
            Ok(response) if response.status().is_server_error() => "server_error",
            Ok(_) => "ok",
            Err(CallError::Open(_)) => "rejected",
            Err(CallError::Timeout) => "timeout",
            Err(CallError::Transport(_)) => "transport_error",
        };
        metrics::counter!("http_client_requests_total", "target" => self.name, "outcome" => outcome).increment(1);
        metrics::histogram!("http_client_request_duration_seconds", "target" => self.name)
            .record(started.elapsed().as_secs_f64());
        result
    }
}

/// Records each call's outcome in a [`CircuitBreaker`]; rejects while it is open.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    pub breaker: CircuitBreaker,
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService { inner, breaker: self.breaker.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: CircuitBreaker,
}

impl<S> Service<reqwest::Request> for CircuitBreakerService<S>
where
    S: Service<reqwest::Request, Response = reqwest::Response> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = reqwest::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<reqwest::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: reqwest::Request) -> Self::Future {
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(rejected) => return Box::pin(async move { Err(Box::new(rejected) as BoxError) }),
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = call.await.map_err(Into::into);
            let failed = match &result {
                Ok(response) => response.status().is_server_error(),
                Err(_) => true,
            };
            permit.record(if failed { Outcome::Failure } else { Outcome::Success });
            result
        })
    }
}

/// Retries idempotent requests (GET, HEAD, PUT, DELETE, OPTIONS, or any request
/// carrying an `Idempotency-Key`) after transport errors, timeouts and 502-504,
/// never after the circuit refused the call.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    pub name: &'static str,
    pub retries: u32,
    pub backoff: Duration,
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RetryService { inner, config: self.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct RetryService<S> {
    inner: S,
    config: RetryLayer,
}

fn idempotent(request: &reqwest::Request) -> bool {
    use reqwest::Method;
    matches!(*request.method(), Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS)
        || request.headers().contains_key("idempotency-key")
}

fn worth_retrying(result: &Result<reqwest::Response, BoxError>) -> bool {
    match result {
        Ok(response) => matches!(response.status().as_u16(), 502..=504),
        Err(err) => !err.is::<Rejected>(),
    }
}

impl<S> Service<reqwest::Request> for RetryService<S>
where
    S: Service<reqwest::Request, Response = reqwest::Response, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = reqwest::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: reqwest::Request) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            let retries = if idempotent(&request) { config.retries } else { 0 };
            let mut request = request;
            let mut attempt = 0;
            loop {
                // A copy for the next attempt; a streaming body cannot be copied and is sent once.
                let next = if attempt < retries { request.try_clone() } else { None };
                let result = inner.ready().await?.call(request).await;
                match next {
                    Some(copy) if worth_retrying(&result) => request = copy,
                    _ => return result,
                }
                attempt += 1;
                metrics::counter!("http_client_retries_total", "target" => config.name).increment(1);
                let ceiling = config.backoff.saturating_mul(1 << attempt.min(10));
                let wait = rand::rng().random_range(Duration::ZERO..=ceiling);
                tokio::time::sleep(wait).await;
            }
        })
    }
}
