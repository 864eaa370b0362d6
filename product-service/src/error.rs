//! Everything a catalog endpoint answers besides success, as problem+json (API.md).

use axum::response::{IntoResponse, Response};
use common::problem::{FieldError, Problem};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error("no such product")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    /// One invalid field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message.into())])
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        Self::Validation(errors)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Validation(errors) => Problem::validation(errors),
            Self::NotFound => Problem::not_found(self.to_string()),
            Self::Store(StoreError::DuplicateSku) => Problem::conflict("a product with this sku already exists"),
            Self::Store(err) => {
                tracing::error!(error = %err, "catalog store failed");
                Problem::internal()
            }
        }
        .into_response()
    }
}
