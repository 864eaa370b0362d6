//! The public surface: API.md's paths, each routed to its service with its access
//! policy. Everything else (`/internal/*`, the services' `/metrics`) is not routed.

mod docs;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, any, get, on};
use common::auth::bearer_token;
use common::problem::Problem;
use http::{HeaderValue, Method, StatusCode, header};

use crate::AppState;
use crate::proxy::{self, client_ip};
use crate::state::Upstream;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    User,
    Admin,
}

/// Which budget a route draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    General,
    /// Login, register, refresh: the stricter per-minute budget.
    Auth,
}

#[derive(Debug, Clone, Copy)]
enum Service {
    Auth,
    Product,
    Order,
    Inventory,
}

impl Service {
    fn upstream(self, state: &AppState) -> &Upstream {
        match self {
            Self::Auth => &state.auth,
            Self::Product => &state.product,
            Self::Order => &state.order,
            Self::Inventory => &state.inventory,
        }
    }
}

/// Reads are public, writes need the admin role.
fn catalog_access(method: &Method) -> Access {
    if method == Method::GET || method == Method::HEAD { Access::Anyone } else { Access::Admin }
}

fn route(service: Service, access: fn(&Method) -> Access, budget: Budget) -> axum::routing::MethodRouter<AppState> {
    any(move |State(state): State<AppState>, req: Request| async move {
        let access = access(req.method());
        gate(&state, service, access, budget, req).await
    })
}

pub fn routes(state: AppState) -> Router {
    let anyone = |_: &Method| Access::Anyone;
    let user = |_: &Method| Access::User;
    Router::new()
        .route("/api/auth/login", on(MethodFilter::POST, route(Service::Auth, anyone, Budget::Auth)))
        .route("/api/auth/register", on(MethodFilter::POST, route(Service::Auth, anyone, Budget::Auth)))
        .route("/api/auth/refresh", on(MethodFilter::POST, route(Service::Auth, anyone, Budget::Auth)))
        .route("/api/auth/logout", route(Service::Auth, anyone, Budget::General))
        .route("/api/auth/me", route(Service::Auth, user, Budget::General))
        .route("/.well-known/jwks.json", get(route(Service::Auth, anyone, Budget::General)))
        .route("/api/products", route(Service::Product, catalog_access, Budget::General))
        .route("/api/products/{id}", route(Service::Product, catalog_access, Budget::General))
        .route("/api/inventory/{sku}", route(Service::Inventory, catalog_access, Budget::General))
        .route("/api/orders", route(Service::Order, user, Budget::General))
        .route("/api/orders/{id}", route(Service::Order, user, Budget::General))
        .route("/api/orders/{id}/cancel", route(Service::Order, user, Budget::General))
        .merge(docs::routes())
        .with_state(state)
}

/// Rate limit, authenticate, authorise, then forward.
async fn gate(state: &AppState, service: Service, access: Access, budget: Budget, req: Request) -> Response {
    let client = client_ip(&req, state.trust_forwarded_for);
    if let Some(ip) = client {
        let limiter = match budget {
            Budget::General => &state.general_limit,
            Budget::Auth => &state.auth_limit,
        };
        if let Err(not_until) = limiter.check_key(&ip) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
                .detail("the request budget of this client address is spent; retry later")
                .header(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)))
                .into_response();
        }
    }
    if access != Access::Anyone {
        let (parts, body) = req.into_parts();
        let identity = match bearer_token(&parts) {
            Ok(token) => match state.verifier.verify(token).await {
                Ok(identity) => identity,
                Err(err) => {
                    tracing::debug!(error = %err, "token refused");
                    return Problem::from(err).into_response();
                }
            },
            Err(err) => return Problem::from(err).into_response(),
        };
        if access == Access::Admin && !identity.is_admin() {
            return Problem::forbidden("this operation needs the admin role").into_response();
        }
        tracing::Span::current().record("user_id", tracing::field::display(identity.user_id));
        let req = Request::from_parts(parts, body);
        return proxy::forward(state, service.upstream(state), req, client).await;
    }
    proxy::forward(state, service.upstream(state), req, client).await
}
