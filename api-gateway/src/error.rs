//! Everything the gateway answers by itself, as problem+json (API.md): what it refuses
//! before a request reaches a service, and what it says when a service does not answer.
//! A service's own answers, its problems included, pass through unchanged.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use common::auth::AuthError;
use common::http::MAX_BODY_BYTES;
use common::problem::Problem;
use http::StatusCode;
use http::header::{self, HeaderValue};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or one that does not verify.
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    #[error("this operation needs the admin role")]
    Forbidden,
    #[error("the request budget of this client address is spent; retry later")]
    RateLimited { retry_after: Duration },
    #[error("request bodies are limited to {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    #[error("the request target is not valid")]
    BadTarget,
    /// The client's body broke off (it went away or sent garbage).
    #[error("the request body could not be read")]
    BrokenBody,
    /// The client was still sending its body when the upstream's time ran out.
    #[error("the request body did not arrive in time")]
    SlowBody,
    #[error("{upstream} is unavailable (circuit open)")]
    CircuitOpen { upstream: &'static str, retry_after: Duration },
    #[error("{upstream} cannot be reached")]
    Unreachable { upstream: &'static str },
    #[error("{upstream} did not answer in time")]
    UpstreamTimeout { upstream: &'static str },
    /// No service answered for the merged OpenAPI document.
    #[error("no service description could be fetched")]
    NoServiceDescriptions,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = self.to_string();
        let problem = match self {
            Self::Unauthenticated(err) => Problem::from(err),
            Self::Forbidden => Problem::forbidden(detail),
            Self::RateLimited { retry_after } => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
                    .detail(detail)
                    .header(header::RETRY_AFTER, HeaderValue::from(whole_seconds(retry_after)))
            }
            // The rest of the body may still be on its way: the connection is closed after
            // the answer rather than kept for a next request that would race with it.
            Self::PayloadTooLarge => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large")
                    .detail(detail)
                    .header(header::CONNECTION, HeaderValue::from_static("close"))
            }
            Self::BadTarget | Self::BrokenBody => Problem::bad_request(detail),
            Self::SlowBody => Problem::request_timeout(detail),
            Self::CircuitOpen { retry_after, .. } => Problem::unavailable(detail, whole_seconds(retry_after)),
            Self::Unreachable { .. } | Self::UpstreamTimeout { .. } => Problem::unavailable(detail, 1),
            Self::NoServiceDescriptions => Problem::unavailable(detail, 5),
        };
        problem.into_response()
    }
}

/// A wait as `Retry-After` seconds: rounded up, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_announced_in_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2_001)), 3);
    }

    #[test]
    fn each_refusal_has_its_status() {
        let cases = [
            (ApiError::Unauthenticated(AuthError::Missing), StatusCode::UNAUTHORIZED),
            (ApiError::Forbidden, StatusCode::FORBIDDEN),
            (ApiError::RateLimited { retry_after: Duration::from_millis(10) }, StatusCode::TOO_MANY_REQUESTS),
            (ApiError::PayloadTooLarge, StatusCode::PAYLOAD_TOO_LARGE),
            (ApiError::BadTarget, StatusCode::BAD_REQUEST),
            (ApiError::BrokenBody, StatusCode::BAD_REQUEST),
            (ApiError::SlowBody, StatusCode::REQUEST_TIMEOUT),
            (ApiError::CircuitOpen { upstream: "x", retry_after: Duration::ZERO }, StatusCode::SERVICE_UNAVAILABLE),
            (ApiError::Unreachable { upstream: "x" }, StatusCode::SERVICE_UNAVAILABLE),
            (ApiError::UpstreamTimeout { upstream: "x" }, StatusCode::SERVICE_UNAVAILABLE),
            (ApiError::NoServiceDescriptions, StatusCode::SERVICE_UNAVAILABLE),
        ];
        for (error, status) in cases {
            let response = error.into_response();
            assert_eq!(response.status(), status);
            assert_eq!(response.headers()[header::CONTENT_TYPE], common::problem::CONTENT_TYPE);
        }
    }

    #[test]
    fn a_body_refused_unread_closes_its_connection() {
        let response = ApiError::PayloadTooLarge.into_response();
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }
}
