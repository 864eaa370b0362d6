//! The HTTP surface of order-service (API.md, Orders).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::auth::{Identity, User};
use common::http::Json;
use common::problem::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::domain::{Money, Order, OrderLine, Status};
use crate::saga::{self, SagaError, Wanted};
use crate::store::KeyState;

pub const MAX_PER_PAGE: u32 = 100;

#[derive(OpenApi)]
#[openapi(
    info(title = "order-service", description = "Orders."),
    paths(place_order, list_orders, get_order, cancel_order),
    components(schemas(Order, OrderLine, Money, Status, PlaceOrderRequest, RequestedLine, OrderPage)),
    tags((name = "orders", description = "Placing and managing orders"))
)]
pub struct ApiDoc;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/orders", post(place_order).get(list_orders))
        .route("/api/orders/{id}", get(get_order))
        .route("/api/orders/{id}/cancel", post(cancel_order))
        .route("/openapi.json", get(|| async { axum::Json(ApiDoc::openapi()) }))
        .with_state(state)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedLine {
    #[schema(example = "MUG-001")]
    pub sku: String,
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    pub lines: Vec<RequestedLine>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<Order>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

impl IntoResponse for SagaError {
    fn into_response(self) -> Response {
        match self {
            Self::Validation(errors) => Problem::validation(errors).into_response(),
            Self::OutOfStock(shortages) => {
                let skus: Vec<&str> = shortages.iter().map(|s| s.sku.as_str()).collect();
                Problem::new(StatusCode::CONFLICT, "out-of-stock", "Out of stock")
                    .detail(format!("not enough stock for {}", skus.join(", ")))
                    .extension("insufficient", json!(shortages))
                    .into_response()
            }
            Self::Unavailable(err) => {
                tracing::warn!(error = %err, "placement failed: dependency unavailable");
                Problem::unavailable(format!("{} cannot be reached; retry later", err.service), err.retry_after_secs)
                    .into_response()
            }
            Self::NotFound => Problem::not_found("no such order").into_response(),
            Self::NotCancellable => Problem::conflict("only a confirmed order can be cancelled").into_response(),
            Self::Store(err) => {
                tracing::error!(error = %err, "order store failed");
                Problem::internal().into_response()
            }
        }
    }
}

fn created(order: Order) -> Response {
    let location = format!("/api/orders/{}", order.id);
    let mut response = (StatusCode::CREATED, axum::Json(order)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Places an order: prices come from the catalog, stock is reserved, and the order
/// is confirmed with its event in one transaction.
#[utoipa::path(post, path = "/api/orders", tag = "orders", security(("bearer" = [])), request_body = PlaceOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats within 24 h replay the first answer")),
    responses(
        (status = 201, body = Order),
        (status = 401), (status = 409, description = "Out of stock; lists the skus", content_type = "application/problem+json"),
        (status = 422, content_type = "application/problem+json"),
        (status = 503, description = "Products or inventory unreachable", content_type = "application/problem+json")))]
#[tracing::instrument(skip_all, fields(user_id = %who.user_id))]
async fn place_order(
    State(state): State<AppState>,
    User(who): User,
    headers: HeaderMap,
    Json(body): Json<PlaceOrderRequest>,
) -> Response {
    let key = match headers.get("idempotency-key").map(|v| v.to_str().map(str::to_owned)) {
        None => None,
        Some(Ok(key)) if (1..=255).contains(&key.len()) => Some(key),
        Some(_) => {
            return Problem::validation(vec![FieldError::new("Idempotency-Key", "must be 1-255 visible characters")])
                .into_response();
        }
    };
    let Some(key) = key else { return place(&state, &who, body).await };
    let hash = request_hash(&body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match state.store.claim_key(who.user_id, &key, &hash).await {
            Ok(KeyState::Claimed) => break,
            Ok(KeyState::Replay { status, body }) => return replay(status, body),
            Ok(KeyState::Mismatch) => {
                return Problem::validation(vec![FieldError::new(
                    "Idempotency-Key",
                    "was already used with a different request body",
                )])
                .into_response();
            }
            Ok(KeyState::InProgress) if tokio::time::Instant::now() < deadline => {
                // The first request with this key is still running: wait for its answer.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Ok(KeyState::InProgress) => {
                return Problem::conflict("a request with this Idempotency-Key is still in progress").into_response();
            }
            Err(err) => return SagaError::Store(err).into_response(),
        }
    }
    let response = place(&state, &who, body).await;
    let status = response.status();
    if status.is_server_error() {
        // Nothing was decided: let the client retry with the same key.
        if let Err(err) = state.store.release_key(who.user_id, &key).await {
            tracing::error!(error = %err, "cannot release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, 4 * 1024 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => return Problem::internal().into_response(),
    };
    if let Err(err) =
        state.store.complete_key(who.user_id, &key, status.as_u16(), &String::from_utf8_lossy(&bytes)).await
    {
        tracing::error!(error = %err, "cannot store the idempotent answer");
    }
    Response::from_parts(parts, Body::from(bytes))
}

async fn place(state: &AppState, who: &Identity, body: PlaceOrderRequest) -> Response {
    let wanted = body.lines.into_iter().map(|l| Wanted { sku: l.sku, quantity: l.quantity }).collect();
    match saga::place(state, who, wanted).await {
        Ok(order) => created(order),
        Err(err) => err.into_response(),
    }
}

fn request_hash(body: &PlaceOrderRequest) -> String {
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect()
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() { "application/json" } else { common::problem::CONTENT_TYPE };
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[param(minimum = 1, default = 1)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    per_page: Option<u32>,
    /// Admins only: one user's orders.
    user_id: Option<Uuid>,
}

/// The caller's orders, newest first (an admin sees everyone's).
#[utoipa::path(get, path = "/api/orders", tag = "orders", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = OrderPage), (status = 401), (status = 422)))]
#[tracing::instrument(skip_all, fields(user_id = %who.user_id))]
async fn list_orders(
    State(state): State<AppState>,
    User(who): User,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<OrderPage>, Response> {
    let Query(params) =
        params.map_err(|e| Problem::validation(vec![FieldError::new("query", e.body_text())]).into_response())?;
    let page = params.page.unwrap_or(1);
    let per_page = params.per_page.unwrap_or(20);
    let mut errors = Vec::new();
    if page == 0 {
        errors.push(FieldError::new("page", "must be at least 1"));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        errors.push(FieldError::new("per_page", format!("must be 1 to {MAX_PER_PAGE}")));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors).into_response());
    }
    let user = if who.is_admin() { params.user_id } else { Some(who.user_id) };
    let offset = u64::from(page - 1) * u64::from(per_page);
    let (items, total) =
        state.store.list(user, per_page, offset).await.map_err(|e| SagaError::Store(e).into_response())?;
    Ok(Json(OrderPage { items, page, per_page, total }))
}

/// One order of the caller (any order for an admin); someone else's is 404.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Order), (status = 401), (status = 404)))]
#[tracing::instrument(skip_all, fields(order_id = %id, user_id = %who.user_id))]
async fn get_order(
    State(state): State<AppState>,
    User(who): User,
    Path(id): Path<String>,
) -> Result<Json<Order>, SagaError> {
    let id = Uuid::parse_str(&id).map_err(|_| SagaError::NotFound)?;
    let order = state.store.fetch(id).await?.ok_or(SagaError::NotFound)?;
    let visible = matches!(order.status, Status::Confirmed | Status::Cancelled);
    if !visible || (order.user_id != who.user_id && !who.is_admin()) {
        return Err(SagaError::NotFound);
    }
    Ok(Json(order))
}

/// Cancels a confirmed order and releases its stock.
#[utoipa::path(post, path = "/api/orders/{id}/cancel", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Order), (status = 401), (status = 404), (status = 409, description = "Not cancellable")))]
#[tracing::instrument(skip_all, fields(order_id = %id, user_id = %who.user_id))]
async fn cancel_order(
    State(state): State<AppState>,
    User(who): User,
    Path(id): Path<String>,
) -> Result<Json<Order>, SagaError> {
    let id = Uuid::parse_str(&id).map_err(|_| SagaError::NotFound)?;
    Ok(Json(saga::cancel(&state, &who, id).await?))
}
