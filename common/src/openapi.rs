//! How problem documents appear in the services' OpenAPI documents: the schema of
//! the body every error answer carries (RFC 9457, API.md), and the answers any JSON
//! body can get before a handler sees it.

use utoipa::{IntoResponses, ToSchema};

/// A problem document (`application/problem+json`).
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = Problem, example = json!({
    "type": "/problems/validation",
    "title": "Validation failed",
    "status": 422,
    "detail": "the request has invalid fields",
    "request_id": "0192f1c0-7a4e-7b9a-8c1d-2e3f4a5b6c7d",
    "errors": [{"field": "email", "message": "must be an email address of the form name@example.com"}]
}))]
pub struct ProblemSchema {
    /// `/problems/<kind>`: what went wrong, for programs.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong, for people.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    pub detail: Option<String>,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// On 422: each invalid field.
    pub errors: Option<Vec<FieldErrorSchema>>,
}

/// One invalid field of a 422 answer.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorSchema {
    /// The field's path in the body (`lines[0].quantity`), or the query parameter.
    pub field: String,
    pub message: String,
}

/// What a JSON request body can get before the handler runs (`common::http::Json`)
/// and what any request can get from the standard stack.
#[derive(IntoResponses)]
pub enum JsonBodyProblems {
    #[response(status = 400, description = "Malformed JSON", content_type = "application/problem+json")]
    Malformed(ProblemSchema),
    #[response(status = 413, description = "Body over 1 MiB", content_type = "application/problem+json")]
    TooLarge(ProblemSchema),
    #[response(
        status = 415,
        description = "Not `Content-Type: application/json`",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(ProblemSchema),
    #[response(
        status = 503,
        description = "The service could not answer in time, or its database is unavailable; `Retry-After` says when to try again",
        content_type = "application/problem+json"
    )]
    Unavailable(ProblemSchema),
}
