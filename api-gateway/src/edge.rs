//! What the gateway applies to every request on its public listener, whatever the path:
//! the per-client rate budget and the security headers of every answer.

use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use futures::future::{Either, Map, Ready, ready};
use governor::clock::{Clock as _, DefaultClock};
use http::header::{self, HeaderValue};
use tower::{Layer, Service};

use crate::AppState;
use crate::error::ApiError;
use crate::proxy::client_ip;

/// Routes that draw from the stricter per-minute budget (`ECOM_RATE_LIMIT_AUTH_PER_MINUTE`):
/// each call costs a password hash or a token family. Everything else, the 404 fallback,
/// the docs and `/health/*` included, draws from the general budget.
const AUTH_BUDGET_ROUTES: [&str; 3] = ["/api/auth/login", "/api/auth/register", "/api/auth/refresh"];

/// Layer: 429 with `Retry-After` once the client address has spent its budget. A plain
/// service rather than a `from_fn` middleware, so a request pays no boxed future and no
/// clone of the stack below for it.
#[derive(Debug, Clone)]
pub struct RateLimitLayer(pub AppState);

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit { state: self.0.clone(), inner }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    state: AppState,
    inner: S,
}

impl<S: Service<Request, Response = Response>> Service<Request> for RateLimit<S> {
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Answer<S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match over_budget(&self.state, &req) {
            Some(refusal) => Either::Left(ready(Ok(refusal.into_response()))),
            None => Either::Right(self.inner.call(req)),
        }
    }
}

/// The refusal of a request whose client address has spent its budget. The layer runs
/// before the routing; the auth routes are literal paths, so the request's path names
/// them as their matched route would.
fn over_budget(state: &AppState, req: &Request) -> Option<ApiError> {
    let ip = client_ip(req, state.trust_forwarded_for)?;
    let limiter = if AUTH_BUDGET_ROUTES.contains(&req.uri().path()) { &state.auth_limit } else { &state.general_limit };
    let not_until = limiter.check_key(&ip).err()?;
    Some(ApiError::RateLimited { retry_after: not_until.wait_time_from(DefaultClock::default().now()) })
}

/// The interactive API page and its assets, served by the gateway itself.
const DOCS_PREFIX: &str = "/api/docs";

/// For JSON and problem documents: nothing may be loaded, run or framed.
const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// For the docs page: its own scripts and styles (Swagger UI sets inline styles and
/// draws icons from `data:` images), requests to this origin only ("Try it out"), no
/// framing.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

/// Layer: the security headers of every answer, the gateway's own and the services'.
/// A plain service rather than a `from_fn` middleware, so a request pays no boxed future
/// and no clone of the stack below for it.
///
/// No `Strict-Transport-Security`: the gateway speaks plain HTTP behind whatever
/// terminates TLS, and HSTS is that terminator's to send (docs/decisions.md).
#[derive(Debug, Clone, Copy, Default)]
pub struct SecurityHeadersLayer;

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> SecurityHeaders<S> {
        SecurityHeaders(inner)
    }
}

/// The service of [`SecurityHeadersLayer`].
#[derive(Debug, Clone)]
pub struct SecurityHeaders<S>(S);

type Answer<E> = Result<Response, E>;

impl<S: Service<Request, Response = Response>> Service<Request> for SecurityHeaders<S> {
    type Response = Response;
    type Error = S::Error;
    type Future = Map<S::Future, fn(Answer<S::Error>) -> Answer<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let secure: fn(Answer<S::Error>) -> Answer<S::Error> = if req.uri().path().starts_with(DOCS_PREFIX) {
            |answer| answer.map(|response| secured(response, DOCS_POLICY))
        } else {
            |answer| answer.map(|response| secured(response, API_POLICY))
        };
        self.0.call(req).map(secure)
    }
}

fn secured(mut response: Response, policy: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    response
}
