use axum::response::{IntoResponse, Response};
use common::problem::{FieldError, Problem};

use crate::password::PasswordError;
use crate::store::StoreError;

/// Everything an auth endpoint can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("email already registered")]
    EmailTaken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("user not found")]
    NotFound,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::EmailTaken => Self::EmailTaken,
            StoreError::Database(err) => Self::Internal(err.into()),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(err: PasswordError) -> Self {
        Self::Internal(err.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Validation(errors) => Problem::validation(errors),
            Self::EmailTaken => Problem::conflict("an account with this email already exists"),
            Self::InvalidCredentials => Problem::unauthorized("email or password is wrong"),
            Self::InvalidRefreshToken => Problem::unauthorized("the refresh token is invalid, expired or revoked"),
            Self::NotFound => Problem::not_found("no such user"),
            Self::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "request failed");
                Problem::internal()
            }
        }
        .into_response()
    }
}
