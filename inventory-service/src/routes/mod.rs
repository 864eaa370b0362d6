//! The HTTP surface of inventory-service (API.md, Inventory).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use common::auth::{Admin, ServiceCaller};
use common::http::Json;
use common::openapi::ServiceTokenScheme;
use common::problem::FieldError;
use contracts::{OrderId, Sku};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::error::ApiError;
use crate::store::{Insufficient, Reservation, StockLevel};

/// Most lines one reservation may hold.
pub const MAX_LINES: usize = 100;

#[derive(OpenApi)]
#[openapi(
    info(title = "inventory-service", description = "Stock levels and reservations."),
    paths(get_stock, put_stock),
    components(schemas(StockLevel, SetStockRequest)),
    tags((name = "inventory", description = "Stock"))
)]
pub struct ApiDoc;

/// The endpoints order-service calls, served at `/internal/openapi.json` (never part of
/// the public document: the gateway does not route them).
#[derive(OpenApi)]
#[openapi(
    info(title = "inventory-service (internal)", description = "Reservations, for order-service."),
    paths(reserve, release),
    components(schemas(ReserveRequest, ReserveLine, Insufficient)),
    modifiers(&ServiceTokenScheme),
    tags((name = "internal", description = "Between services only; a service token from auth-service's /internal/token"))
)]
pub struct InternalApiDoc;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/inventory/{sku}", get(get_stock).put(put_stock))
        .route("/internal/reservations", post(reserve))
        .route("/internal/reservations/{order_id}", delete(release))
        .route("/openapi.json", get(|| async { axum::Json(ApiDoc::openapi()) }))
        .route("/internal/openapi.json", get(|| async { axum::Json(InternalApiDoc::openapi()) }))
        .with_state(state)
}

/// Stock of one sku.
#[utoipa::path(get, path = "/api/inventory/{sku}", tag = "inventory",
    params(("sku" = String, Path, description = "Stock keeping unit", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, body = StockLevel), (status = 404, content_type = "application/problem+json")))]
#[tracing::instrument(skip_all, fields(sku = %sku))]
async fn get_stock(State(state): State<AppState>, Path(sku): Path<String>) -> Result<Json<StockLevel>, ApiError> {
    // No stock is kept under a malformed sku: it is as unknown as any other.
    let Ok(parsed) = Sku::parse(&sku) else { return Err(ApiError::UnknownSku(sku)) };
    state.store.fetch_stock(&parsed).await?.map(Json).ok_or(ApiError::UnknownSku(sku))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStockRequest {
    /// The sellable count; reserved units are not included.
    #[schema(minimum = 0, maximum = 2_147_483_647, example = 25)]
    #[serde(deserialize_with = "contracts::between::<_, 0, 2_147_483_647>")]
    pub available: i64,
}

/// Sets the sellable count of a sku (admin).
#[utoipa::path(put, path = "/api/inventory/{sku}", tag = "inventory", security(("bearer" = [])),
    params(("sku" = String, Path, description = "Stock keeping unit", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body = SetStockRequest,
    responses((status = 200, body = StockLevel), (status = 401), (status = 403), (status = 422, content_type = "application/problem+json")))]
#[tracing::instrument(skip_all, fields(sku = %sku, user_id))]
async fn put_stock(
    State(state): State<AppState>,
    _admin: Admin,
    Path(sku): Path<String>,
    Json(body): Json<SetStockRequest>,
) -> Result<Json<StockLevel>, ApiError> {
    let sku = Sku::parse(&sku).map_err(|invalid| ApiError::Validation(vec![FieldError::new("sku", invalid.0)]))?;
    Ok(Json(state.store.set_available(&sku, body.available).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    #[schema(value_type = Uuid)]
    pub order_id: OrderId,
    #[serde(deserialize_with = "reservation_lines")]
    pub lines: Vec<ReserveLine>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveLine {
    #[schema(value_type = String)]
    pub sku: Sku,
    #[serde(deserialize_with = "contracts::between::<_, 1, 1_000_000>")]
    pub quantity: i64,
}

/// 1 to [`MAX_LINES`] lines.
fn reservation_lines<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<ReserveLine>, D::Error> {
    use serde::de::Error;
    let lines = Vec::<ReserveLine>::deserialize(deserializer)?;
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(D::Error::invalid_length(lines.len(), &format!("1 to {MAX_LINES} lines").as_str()));
    }
    Ok(lines)
}

/// Reserves every line or none; the same `order_id` again answers as the first call
/// did and reserves nothing more (order-service only).
#[utoipa::path(post, path = "/internal/reservations", tag = "internal", security(("service_token" = [])),
    request_body = ReserveRequest,
    responses(
        (status = 201, description = "Reserved: `{\"order_id\", \"lines\"}`"),
        (status = 401, description = "No service token, or one that does not verify", content_type = "application/problem+json"),
        (status = 403, description = "A user's token (customer or admin)", content_type = "application/problem+json"),
        (status = 409, description = "Not enough stock: `insufficient` lists each short line", content_type = "application/problem+json"),
        (status = 422, description = "Invalid lines", content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order_id = %body.order_id))]
async fn reserve(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Json(body): Json<ReserveRequest>,
) -> Result<Response, ApiError> {
    // The lines of one sku are reserved together, in sku order (see the store).
    let mut lines: BTreeMap<Sku, i64> = BTreeMap::new();
    for line in body.lines {
        *lines.entry(line.sku).or_default() += line.quantity;
    }
    let outcome = state.store.reserve(body.order_id, &lines).await?;
    Ok(reservation_response(body.order_id, outcome))
}

fn reservation_response(order_id: OrderId, outcome: Reservation) -> Response {
    match outcome {
        Reservation::Reserved { lines } => {
            metrics::counter!("inventory_reservations_total", "outcome" => "reserved").increment(1);
            let lines: Vec<_> =
                lines.into_iter().map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity})).collect();
            (StatusCode::CREATED, axum::Json(json!({"order_id": order_id, "lines": lines}))).into_response()
        }
        Reservation::Rejected { insufficient } => {
            metrics::counter!("inventory_reservations_total", "outcome" => "insufficient").increment(1);
            ApiError::Insufficient(insufficient).into_response()
        }
        Reservation::Released => ApiError::AlreadyReleased.into_response(),
    }
}

/// Releases an order's reservation; 204 also when already released or unknown
/// (order-service only).
#[utoipa::path(delete, path = "/internal/reservations/{order_id}", tag = "internal", security(("service_token" = [])),
    params(("order_id" = Uuid, Path, description = "The order whose reservation is released")),
    responses(
        (status = 204, description = "Released, or nothing to release"),
        (status = 401, description = "No service token, or one that does not verify", content_type = "application/problem+json"),
        (status = 403, description = "A user's token (customer or admin)", content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
async fn release(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(order_id): Path<OrderId>,
) -> Result<StatusCode, ApiError> {
    state.store.release(order_id).await?;
    metrics::counter!("inventory_releases_total").increment(1);
    Ok(StatusCode::NO_CONTENT)
}
