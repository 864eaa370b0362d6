//! The public surface: API.md's paths, each routed to its service with its access
//! policy. Everything else (`/internal/*`, the services' `/metrics`) is not routed. The
//! rate budget applies to every path, in `crate::edge`.

mod docs;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{MethodFilter, any, get, on};
use common::auth::{Identity, bearer_token};
use http::Method;

use crate::AppState;
use crate::error::ApiError;
use crate::proxy::{self, client_ip};
use crate::upstream::Upstream;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    User,
    Admin,
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

fn route(service: Service, access: fn(&Method) -> Access) -> axum::routing::MethodRouter<AppState> {
    any(move |State(state): State<AppState>, req: Request| async move {
        let access = access(req.method());
        gate(&state, service, access, req).await
    })
}

pub fn routes(state: AppState) -> Router {
    let anyone = |_: &Method| Access::Anyone;
    let user = |_: &Method| Access::User;
    Router::new()
        .route("/api/auth/login", on(MethodFilter::POST, route(Service::Auth, anyone)))
        .route("/api/auth/register", on(MethodFilter::POST, route(Service::Auth, anyone)))
        .route("/api/auth/refresh", on(MethodFilter::POST, route(Service::Auth, anyone)))
        .route("/api/auth/logout", route(Service::Auth, anyone))
        .route("/api/auth/me", route(Service::Auth, user))
        .route("/.well-known/jwks.json", get(route(Service::Auth, anyone)))
        .route("/api/products", route(Service::Product, catalog_access))
        .route("/api/products/{id}", route(Service::Product, catalog_access))
        .route("/api/inventory/{sku}", route(Service::Inventory, catalog_access))
        .route("/api/orders", route(Service::Order, user))
        .route("/api/orders/{id}", route(Service::Order, user))
        .route("/api/orders/{id}/cancel", route(Service::Order, user))
        .merge(docs::routes())
        .with_state(state)
}

/// Authenticate, authorise, then forward.
async fn gate(state: &AppState, service: Service, access: Access, mut req: Request) -> Result<Response, ApiError> {
    let client = client_ip(&req, state.trust_forwarded_for);
    if access != Access::Anyone {
        let (identity, authenticated) = authenticate(state, req).await?;
        req = authenticated;
        if access == Access::Admin && !identity.is_admin() {
            return Err(ApiError::Forbidden);
        }
        tracing::Span::current().record("user_id", tracing::field::display(identity.user_id));
    }
    proxy::forward(state, service.upstream(state), req, client).await
}

/// The caller named by the request's bearer token, and the request.
async fn authenticate(state: &AppState, req: Request) -> Result<(Arc<Identity>, Request), ApiError> {
    let (parts, body) = req.into_parts();
    let token = bearer_token(&parts)?;
    let identity = state.verifier.verify_shared(token).await.map_err(|err| {
        tracing::debug!(error = %err, "token refused");
        ApiError::from(err)
    })?;
    Ok((identity, Request::from_parts(parts, body)))
}
