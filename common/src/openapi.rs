//! How problem documents appear in the services' OpenAPI documents: the schema of
//! the body every error answer carries (RFC 9457, API.md), and the answers any JSON
//! body can get before a handler sees it.

use utoipa::{IntoResponses, PartialSchema, ToSchema};

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

/// The answers the shared stack and the gateway can give on any operation, before or
/// instead of its handler, added to every operation of `document` that does not
/// already describe them, each with a problem body:
/// - every operation: 429 (the gateway's rate limit) and 503 (a service or its
///   dependency unavailable, or too slow), both with `Retry-After`;
/// - operations with a request body: 400 (malformed JSON), 408 (the body did not
///   arrive in time), 413 (over 1 MiB) and 415 (not JSON);
/// - operations that require a token: 401 with `WWW-Authenticate: Bearer`.
///
/// Error answers described without a body get the problem body too, and the
/// `Problem` and `FieldError` schemas are added to the components when missing.
pub fn add_standard_problems(document: &mut serde_json::Value) {
    use serde_json::Value;

    let standard = StandardProblems::new();
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for (method, operation) in item.iter_mut() {
                if matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch" | "head" | "options") {
                    standard.add_to(operation);
                }
            }
        }
    }
    add_problem_schemas(document);
}

/// The problem answers [`add_standard_problems`] adds, by status.
struct StandardProblems {
    everywhere: [(&'static str, serde_json::Value); 2],
    with_body: [(&'static str, serde_json::Value); 4],
    unauthorized: (&'static str, serde_json::Value),
}

impl StandardProblems {
    fn new() -> Self {
        let retry_after = Some(("Retry-After", "Seconds to wait before trying again"));
        let bearer = Some(("WWW-Authenticate", "`Bearer`, the scheme to authenticate with"));
        Self {
            everywhere: [
                (
                    "429",
                    problem("Too many requests from this client; `Retry-After` says when to try again", retry_after),
                ),
                ("503", problem("The service or one of its dependencies is unavailable or too slow", retry_after)),
            ],
            with_body: [
                ("400", problem("Malformed JSON, or a body that could not be read", None)),
                ("408", problem("The request body did not arrive in time", None)),
                ("413", problem("Body over 1 MiB", None)),
                ("415", problem("Not `Content-Type: application/json`", None)),
            ],
            unauthorized: ("401", problem("No valid access token", bearer)),
        }
    }

    /// Adds to `operation` the answers it can meet and does not describe yet, and a
    /// problem body to each error answer described without one.
    fn add_to(&self, operation: &mut serde_json::Value) {
        use serde_json::Value;
        let has_body = operation.get("requestBody").is_some();
        // Secured when every alternative names a scheme (`{}` would mean anonymous).
        let secured = operation.get("security").and_then(Value::as_array).is_some_and(|requirements| {
            !requirements.is_empty() && requirements.iter().all(|r| r.as_object().is_some_and(|r| !r.is_empty()))
        });
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
            return;
        };
        let extra = self
            .everywhere
            .iter()
            .chain(self.with_body.iter().filter(|_| has_body))
            .chain(std::iter::once(&self.unauthorized).filter(|_| secured));
        for (status, response) in extra {
            responses.entry(*status).or_insert_with(|| response.clone());
        }
        for (status, response) in responses.iter_mut() {
            let is_error = status.starts_with('4') || status.starts_with('5');
            if let Some(response) = response.as_object_mut().filter(|_| is_error)
                && !response.contains_key("content")
                && !response.contains_key("$ref")
            {
                response.insert("content".to_owned(), problem("", None)["content"].clone());
            }
        }
    }
}

/// A response with a problem body, and `header` (name, description) when given.
fn problem(description: &str, header: Option<(&str, &str)>) -> serde_json::Value {
    let mut response = serde_json::json!({
        "description": description,
        "content": {super::problem::CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    });
    if let Some((name, about)) = header {
        response["headers"] =
            serde_json::json!({name: {"description": about, "required": true, "schema": {"type": "string"}}});
    }
    response
}

/// Adds the `Problem` and `FieldError` schemas to the components when missing.
fn add_problem_schemas(document: &mut serde_json::Value) {
    let schemas = &mut document["components"]["schemas"];
    if !schemas.is_object() {
        *schemas = serde_json::json!({});
    }
    if let Some(schemas) = schemas.as_object_mut() {
        for (name, schema) in
            [(ProblemSchema::name(), ProblemSchema::schema()), (FieldErrorSchema::name(), FieldErrorSchema::schema())]
        {
            if let Ok(schema) = serde_json::to_value(schema) {
                schemas.entry(name.into_owned()).or_insert(schema);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::add_standard_problems;

    #[test]
    fn every_operation_gets_the_answers_of_the_stack_it_can_meet() {
        let mut document = json!({"paths": {
            "/orders": {
                "post": {"requestBody": {}, "security": [{"bearer": []}],
                         "responses": {"201": {}, "400": {"description": "own"}}},
                "get": {"responses": {"200": {}, "404": {"description": "no such order"}}},
            }
        }});
        add_standard_problems(&mut document);
        let statuses = |method: &str| -> Vec<String> {
            let mut statuses: Vec<String> =
                document["paths"]["/orders"][method]["responses"].as_object().unwrap().keys().cloned().collect();
            statuses.sort();
            statuses
        };
        assert_eq!(statuses("post"), ["201", "400", "401", "408", "413", "415", "429", "503"]);
        assert_eq!(statuses("get"), ["200", "404", "429", "503"]);
        let post = &document["paths"]["/orders"]["post"]["responses"];
        assert_eq!(post["400"]["description"], "own", "a service's own description is kept");
        assert!(post["401"]["headers"].get("WWW-Authenticate").is_some());
        assert!(post["429"]["headers"].get("Retry-After").is_some());
        let problem = json!({"schema": {"$ref": "#/components/schemas/Problem"}});
        assert_eq!(
            document["paths"]["/orders"]["get"]["responses"]["404"]["content"]["application/problem+json"],
            problem
        );
        assert!(document["components"]["schemas"].get("Problem").is_some());
        assert!(document["components"]["schemas"].get("FieldError").is_some());
    }
}

/// Declares the `service_token` bearer scheme of the internal documents: the
/// `/internal/*` operations take a service token from auth-service's `/internal/token`.
#[derive(Debug, Clone, Copy)]
pub struct ServiceTokenScheme;

impl utoipa::Modify for ServiceTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("service_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}
