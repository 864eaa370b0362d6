//! Request body extraction that answers as API.md says: malformed JSON 400, wrong
//! content type 415, too large 413, unknown or mistyped fields 422, all problem+json.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// The largest request body any service accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `axum::Json` with problem+json rejections. Deny unknown fields on the target type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
                .detail("expected Content-Type: application/json")
        }
        JsonRejection::JsonSyntaxError(err) => Problem::bad_request(format!("malformed JSON: {}", err.body_text())),
        JsonRejection::JsonDataError(err) => {
            let text = err.body_text();
            // axum's text is "Failed to deserialize ...: <path>: <message>".
            let detail = text.split_once(": ").map_or(text.as_str(), |(_, rest)| rest).to_owned();
            let (field, message) = match detail.split_once(": ") {
                Some((path, message)) if !path.contains(' ') => (path.to_owned(), message.to_owned()),
                _ => (String::new(), detail.clone()),
            };
            Problem::validation(vec![FieldError::new(field, message)])
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large")
                .detail(format!("request bodies are limited to {MAX_BODY_BYTES} bytes"))
        }
        other => Problem::bad_request(other.body_text()),
    }
}
