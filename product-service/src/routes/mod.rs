//! The HTTP surface of product-service (API.md, Products).

use axum::Router;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::auth::{Admin, ServiceCaller};
use common::http::{Json, Paging};
use common::openapi::ServiceTokenScheme;
use common::problem::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::domain::{Money, Product, ProductInput, Query, Sort};
use crate::error::ApiError;
use crate::store::now;

/// Most skus one internal lookup may ask for (an order has at most 100 lines).
pub const MAX_SKUS: usize = 100;

#[derive(OpenApi)]
#[openapi(
    info(title = "product-service", description = "The catalog."),
    paths(list_products, get_product, create_product, replace_product, delete_product),
    components(schemas(Product, ProductInput, Money, ProductPage)),
    tags((name = "products", description = "Catalog"))
)]
pub struct ApiDoc;

/// The endpoint order-service calls, served at `/internal/openapi.json` (never part of
/// the public document: the gateway does not route it).
#[derive(OpenApi)]
#[openapi(
    info(title = "product-service (internal)", description = "Catalog lookups, for order-service."),
    paths(lookup_products),
    components(schemas(LookupResponse, Product, Money)),
    modifiers(&ServiceTokenScheme),
    tags((name = "internal", description = "Between services only; a service token from auth-service's /internal/token"))
)]
pub struct InternalApiDoc;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/products", get(list_products).post(create_product))
        .route("/api/products/{id}", get(get_product).put(replace_product).delete(delete_product))
        .route("/internal/products", get(lookup_products))
        .route("/openapi.json", get(|| async { axum::Json(ApiDoc::openapi()) }))
        .route("/internal/openapi.json", get(|| async { axum::Json(InternalApiDoc::openapi()) }))
        .with_state(state)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Text in the name or description (case-insensitive).
    #[param(nullable = false)]
    q: Option<String>,
    #[param(nullable = false)]
    category: Option<String>,
    /// Minimum price in minor units.
    #[param(nullable = false, minimum = 0)]
    min_price: Option<i64>,
    /// Maximum price in minor units.
    #[param(nullable = false, minimum = 0)]
    max_price: Option<i64>,
    /// `name`, `price`, `-price`, `created_at`, `-created_at` (default).
    #[param(nullable = false, pattern = "^(name|price|-price|created_at|-created_at)$")]
    sort: Option<String>,
    #[param(nullable = false, format = Int64, minimum = 1, maximum = 4_294_967_295_u64, default = 1)]
    page: Option<u32>,
    #[param(nullable = false, minimum = 1, maximum = 100, default = 20)]
    per_page: Option<u32>,
}

impl ListParams {
    fn parse(self) -> Result<Query, Vec<FieldError>> {
        let mut errors = Vec::new();
        let sort = match self.sort.as_deref() {
            None => Sort::default(),
            Some(s) => s.parse().unwrap_or_else(|()| {
                errors.push(FieldError::new("sort", "must be name, price, -price, created_at or -created_at"));
                Sort::default()
            }),
        };
        let Paging { page, per_page } = Paging::parse(self.page, self.per_page, &mut errors);
        for (field, value) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if value.is_some_and(|v| v < 0) {
                errors.push(FieldError::new(field, "must not be negative"));
            }
        }
        let text = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let query = Query {
            q: text(self.q).map(|q| q.chars().take(200).collect()),
            category: text(self.category),
            min_price: self.min_price,
            max_price: self.max_price,
            sort,
            page,
            per_page,
        };
        if errors.is_empty() { Ok(query) } else { Err(errors) }
    }
}

/// A page of products matching the filters.
#[utoipa::path(get, path = "/api/products", tag = "products", params(ListParams),
    responses((status = 200, body = ProductPage), (status = 422, content_type = "application/problem+json")))]
#[tracing::instrument(skip_all)]
async fn list_products(
    State(state): State<AppState>,
    params: Result<QueryParams<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ProductPage>, ApiError> {
    let QueryParams(params) = params.map_err(|e| ApiError::field("query", e.body_text()))?;
    let query = params.parse()?;
    let (items, total) = state.store.list(&query).await?;
    Ok(Json(ProductPage { items, page: query.page, per_page: query.per_page, total }))
}

/// One product.
#[utoipa::path(get, path = "/api/products/{id}", tag = "products",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Product), (status = 404, content_type = "application/problem+json")))]
#[tracing::instrument(skip_all, fields(product_id = %id))]
async fn get_product(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Product>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    state.store.fetch(id).await?.map(Json).ok_or(ApiError::NotFound)
}

/// Adds a product (admin).
#[utoipa::path(post, path = "/api/products", tag = "products", security(("bearer" = [])), request_body = ProductInput,
    responses(
        (status = 201, body = Product, headers(("Location" = String))),
        (status = 401), (status = 403),
        (status = 409, description = "Duplicate sku", content_type = "application/problem+json"),
        (status = 422, content_type = "application/problem+json")))]
#[tracing::instrument(skip_all, fields(user_id))]
async fn create_product(
    State(state): State<AppState>,
    _admin: Admin,
    Json(input): Json<ProductInput>,
) -> Result<Response, ApiError> {
    let input = input.validate()?;
    let at = now();
    let product = Product {
        id: Uuid::now_v7(),
        sku: input.sku,
        name: input.name,
        description: input.description,
        category: input.category,
        price: input.price,
        created_at: at,
        updated_at: at,
    };
    state.store.insert(&product).await?;
    metrics::counter!("products_created_total").increment(1);
    let location = format!("/api/products/{}", product.id);
    let mut response = (StatusCode::CREATED, axum::Json(product)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Replaces a product (admin).
#[utoipa::path(put, path = "/api/products/{id}", tag = "products", security(("bearer" = [])), request_body = ProductInput,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Product), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
#[tracing::instrument(skip_all, fields(product_id = %id, user_id))]
async fn replace_product(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    Json(input): Json<ProductInput>,
) -> Result<Json<Product>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let input = input.validate()?;
    let existing = state.store.fetch(id).await?.ok_or(ApiError::NotFound)?;
    let product = Product {
        id,
        sku: input.sku,
        name: input.name,
        description: input.description,
        category: input.category,
        price: input.price,
        created_at: existing.created_at,
        updated_at: now(),
    };
    if !state.store.replace(&product).await? {
        return Err(ApiError::NotFound);
    }
    Ok(Json(product))
}

/// Removes a product (admin).
#[utoipa::path(delete, path = "/api/products/{id}", tag = "products", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
#[tracing::instrument(skip_all, fields(product_id = %id, user_id))]
async fn delete_product(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    if state.store.delete(id).await? { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::NotFound) }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LookupParams {
    /// Comma-separated skus, 1 to 100.
    #[param(example = "MUG-1,PEN-2")]
    skus: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LookupResponse {
    pub items: Vec<Product>,
}

/// Authoritative names and prices of several skus in one call; unknown skus are
/// left out (order-service only).
#[utoipa::path(get, path = "/internal/products", tag = "internal", security(("service_token" = [])),
    params(LookupParams),
    responses(
        (status = 200, description = "The products among `skus`", body = LookupResponse),
        (status = 401, description = "No service token, or one that does not verify", content_type = "application/problem+json"),
        (status = 403, description = "A user's token (customer or admin)", content_type = "application/problem+json"),
        (status = 422, description = "No sku, more than 100, or an invalid one", content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn lookup_products(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    params: Result<QueryParams<LookupParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LookupResponse>, ApiError> {
    let QueryParams(params) = params.map_err(|e| ApiError::field("skus", e.body_text()))?;
    let mut skus: Vec<String> =
        params.skus.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    skus.sort();
    skus.dedup();
    if skus.is_empty() || skus.len() > MAX_SKUS || !skus.iter().all(|s| crate::domain::Sku::parse(s).is_ok()) {
        return Err(ApiError::field("skus", format!("1 to {MAX_SKUS} valid skus")));
    }
    Ok(Json(LookupResponse { items: state.store.fetch_by_skus(&skus).await? }))
}
