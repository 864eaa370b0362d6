//! The HTTP surface of order-service (API.md, Orders).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::auth::User;
use common::http::{Json, Paging};
use common::openapi::ProblemSchema;
use common::problem::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::domain::{Money, Order, OrderId, OrderLine, Sku, Status, UserId};
use crate::idempotency;
use crate::saga::{self, SagaError, Wanted};

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
    #[schema(value_type = String, example = "MUG-001", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub sku: Sku,
    /// 1 to 1000; the lines of one sku together at most 1000.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "common::http::integral")]
    pub quantity: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<RequestedLine>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<Order>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

/// Places an order: prices come from the catalog, stock is reserved, and the order
/// is confirmed with its event in one transaction.
#[utoipa::path(post, path = "/api/orders", tag = "orders", security(("bearer" = [])), request_body = PlaceOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats within 24 h replay the first answer; \
        a repeat while the first is still running is answered 409 at once")),
    responses(
        (status = 201, body = Order),
        (status = 401, description = "No valid access token (`WWW-Authenticate: Bearer`)", body = ProblemSchema,
            content_type = "application/problem+json"),
        (status = 409, description = "Out of stock (type `/problems/out-of-stock`, lists the skus); or another request \
            with this Idempotency-Key is in progress (type `/problems/idempotency-key-in-use`, retry after `Retry-After`)",
            body = ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "No lines or more than 100; a quantity under 1 or over 1000, also summed over the \
            lines of one sku; an unknown sku; mixed currencies; an unknown field; a malformed Idempotency-Key, or one \
            used before with another body", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 503, description = "Products or inventory unreachable, or the service could not answer in time; \
            retry after `Retry-After`", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 415, description = "Not `Content-Type: application/json`", body = ProblemSchema,
            content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = %who.user_id))]
async fn place_order(
    State(state): State<AppState>,
    User(who): User,
    headers: HeaderMap,
    Json(body): Json<PlaceOrderRequest>,
) -> Response {
    let hash = idempotency::request_hash(&body);
    let (state, who) = (&state, &who);
    idempotency::once(state, who, &headers, &hash, |key| async move {
        let wanted = body.lines.into_iter().map(|l| Wanted { sku: l.sku, quantity: l.quantity }).collect();
        match saga::place(state, who, wanted, key.as_ref()).await {
            Ok(order) => idempotency::created(order),
            Err(err) => err.into_response(),
        }
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[param(nullable = false, format = Int64, minimum = 1, maximum = 4_294_967_295_u64, default = 1)]
    page: Option<u32>,
    #[param(nullable = false, minimum = 1, maximum = 100, default = 20)]
    per_page: Option<u32>,
    /// Admins only: one user's orders.
    #[param(nullable = false)]
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
    let mut errors = Vec::new();
    let paging = Paging::parse(params.page, params.per_page, &mut errors);
    if !errors.is_empty() {
        return Err(Problem::validation(errors).into_response());
    }
    let user = if who.is_admin() { params.user_id.map(UserId::from) } else { Some(who.user_id) };
    let (items, total) = state
        .store
        .list(user, paging.per_page, paging.offset())
        .await
        .map_err(|e| SagaError::Store(e).into_response())?;
    Ok(Json(OrderPage { items, page: paging.page, per_page: paging.per_page, total }))
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
    let id = OrderId::parse(&id).map_err(|_| SagaError::NotFound)?;
    let order = state.store.fetch(id).await?.ok_or(SagaError::NotFound)?;
    if !order.status.is_visible() || (order.user_id != who.user_id && !who.is_admin()) {
        return Err(SagaError::NotFound);
    }
    Ok(Json(order))
}

/// Cancels a confirmed order and releases its stock. Cancelling an order that is
/// already cancelled answers 200 with the order, so a retried cancel is safe.
#[utoipa::path(post, path = "/api/orders/{id}/cancel", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The order, cancelled (now or before)", body = Order), (status = 401), (status = 404),
        (status = 409, description = "Not cancellable", content_type = "application/problem+json")))]
#[tracing::instrument(skip_all, fields(order_id = %id, user_id = %who.user_id))]
async fn cancel_order(
    State(state): State<AppState>,
    User(who): User,
    Path(id): Path<String>,
) -> Result<Json<Order>, SagaError> {
    let id = OrderId::parse(&id).map_err(|_| SagaError::NotFound)?;
    Ok(Json(saga::cancel(&state, &who, id).await?))
}
