//! Everything an order endpoint answers besides success, as problem+json (API.md).
//!
//! The saga's error is the service's error: what the placement, a cancellation or a
//! read can fail with is what a client is told.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::problem::Problem;
use serde_json::json;

pub use crate::saga::SagaError as ApiError;

impl IntoResponse for ApiError {
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
                Problem::dependency_unavailable(
                    format!("{} cannot be reached; retry later", err.service),
                    err.retry_after_secs,
                )
                .into_response()
            }
            Self::NotFound => Problem::not_found("no such order").into_response(),
            Self::NotCancellable => Problem::conflict("only a confirmed order can be cancelled").into_response(),
            Self::KeyLost => Problem::new(StatusCode::CONFLICT, "idempotency-key-in-use", "Idempotency key in use")
                .detail("another request with this Idempotency-Key took it over; retry to get its answer")
                .header(header::RETRY_AFTER, HeaderValue::from(1u64))
                .into_response(),
            Self::Store(err) => {
                tracing::error!(error = %err, "order store failed");
                Problem::internal().into_response()
            }
            Self::Illegal(err) => {
                tracing::error!(error = %err, "an order took a move its status does not allow");
                Problem::internal().into_response()
            }
        }
    }
}
