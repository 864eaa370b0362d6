//! Everything an inventory endpoint answers besides success, as problem+json (API.md).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::problem::{FieldError, Problem};
use serde_json::json;

use crate::store::{Insufficient, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error("no stock for sku {0}")]
    UnknownSku(String),
    #[error("not enough stock")]
    Insufficient(Vec<Insufficient>),
    #[error("this order's reservation was already released")]
    AlreadyReleased,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Validation(errors) => Problem::validation(errors).into_response(),
            Self::UnknownSku(sku) => Problem::not_found(format!("no stock for sku {sku}")).into_response(),
            Self::Insufficient(insufficient) => {
                let skus: Vec<&str> = insufficient.iter().map(|i| i.sku.as_str()).collect();
                Problem::new(StatusCode::CONFLICT, "insufficient-stock", "Insufficient stock")
                    .detail(format!("not enough stock for {}", skus.join(", ")))
                    .extension("insufficient", json!(insufficient))
                    .into_response()
            }
            Self::AlreadyReleased => Problem::conflict(self.to_string()).into_response(),
            Self::Store(err) => {
                tracing::error!(error = %err, "inventory store failed");
                Problem::internal().into_response()
            }
        }
    }
}
