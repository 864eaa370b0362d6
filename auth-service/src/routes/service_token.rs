//! `POST /internal/token`: service tokens for the clients of `/internal/*`, by the
//! OAuth 2.0 client-credentials grant (RFC 6749 section 4.4). Internal like every
//! `/internal/*` path: the gateway never routes it.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::problem::Problem;
use serde::Serialize;
use serde_json::json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::AppState;

/// The internal surface of auth-service, served at `/internal/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "auth-service (internal)", description = "Service tokens for calls between services."),
    paths(issue_service_token),
    components(schemas(ServiceTokenResponse)),
    modifiers(&ClientCredentialsScheme),
    tags((name = "internal", description = "Between services only; never routed by the gateway"))
)]
pub struct InternalApiDoc;

struct ClientCredentialsScheme;

impl Modify for ClientCredentialsScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("client_credentials", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/internal/token", post(issue_service_token))
        .route("/internal/openapi.json", get(|| async { axum::Json(InternalApiDoc::openapi()) }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceTokenResponse {
    /// A JWT with `aud` `ecom-internal` and the role `service`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 300)]
    pub expires_in: u64,
}

/// Why no token was issued; rendered as problem+json with RFC 6749's `error` code.
#[derive(Debug)]
enum GrantError {
    /// 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// 400 `unsupported_grant_type`.
    UnsupportedGrantType,
    /// 401 `invalid_client`: unknown client, wrong secret, or no client authentication.
    InvalidClient,
    /// 415: the body is not a form.
    NotAForm,
    /// 500: the token could not be signed (logged where it happened).
    Internal,
}

impl IntoResponse for GrantError {
    fn into_response(self) -> Response {
        let problem = match self {
            Self::InvalidRequest(detail) => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-request", "Invalid token request")
                    .detail(detail)
                    .extension("error", json!("invalid_request"))
            }
            Self::UnsupportedGrantType => {
                Problem::new(StatusCode::BAD_REQUEST, "unsupported-grant-type", "Unsupported grant type")
                    .detail("grant_type must be client_credentials")
                    .extension("error", json!("unsupported_grant_type"))
            }
            Self::InvalidClient => {
                Problem::new(StatusCode::UNAUTHORIZED, "invalid-client", "Client authentication failed")
                    .detail("unknown client or wrong secret")
                    .extension("error", json!("invalid_client"))
                    .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"ecom-internal\""))
            }
            Self::NotAForm => {
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
                    .detail("the body must be application/x-www-form-urlencoded")
            }
            Self::Internal => Problem::internal(),
        };
        let mut response = problem.into_response();
        no_store(&mut response);
        response
    }
}

/// RFC 6749 section 5.1: token answers are never cached.
fn no_store(response: &mut Response) {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Issues a service token to a known client (client-credentials grant). The client
/// authenticates with HTTP Basic (`client_id:client_secret`) or with `client_id` and
/// `client_secret` in the form, not both.
#[utoipa::path(post, path = "/internal/token", tag = "internal",
    security(("client_credentials" = [])),
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "`grant_type=client_credentials`; optionally `client_id` and `client_secret` instead of Basic"),
    responses(
        (status = 200, description = "A service token", body = ServiceTokenResponse),
        (status = 400, description = "`invalid_request` or `unsupported_grant_type`", content_type = "application/problem+json"),
        (status = 401, description = "`invalid_client`: unknown client or wrong secret", content_type = "application/problem+json"),
        (status = 415, description = "Not a form", content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(client_id))]
async fn issue_service_token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match grant(&state, &headers, &body) {
        Ok(token) => {
            let mut response = axum::Json(token).into_response();
            no_store(&mut response);
            response
        }
        Err(err) => {
            if matches!(err, GrantError::InvalidClient) {
                tracing::warn!("service token refused: unknown client or wrong secret");
            }
            err.into_response()
        }
    }
}

fn grant(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<ServiceTokenResponse, GrantError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(GrantError::NotAForm);
    }
    let form = Form::parse(body)?;
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => return Err(GrantError::UnsupportedGrantType),
        None => return Err(GrantError::InvalidRequest("grant_type is required")),
    }
    let (client_id, secret) = match (basic_credentials(headers)?, form.client_id, form.client_secret) {
        (Some(credentials), None, None) => credentials,
        (None, Some(id), Some(secret)) => (id, secret),
        (None, None, None) => return Err(GrantError::InvalidClient),
        (Some(_), _, _) => return Err(GrantError::InvalidRequest("authenticate the client one way, not two")),
        (None, _, _) => return Err(GrantError::InvalidRequest("client_id and client_secret go together")),
    };
    let client_id = state.service_clients.authenticate(&client_id, &secret).ok_or(GrantError::InvalidClient)?;
    tracing::Span::current().record("client_id", client_id);
    let token =
        state.service_clients.issue(&state.keys, &state.tokens.expectations.issuer, client_id).map_err(|err| {
            tracing::error!(error = format!("{err:#}"), "cannot sign a service token");
            GrantError::Internal
        })?;
    Ok(ServiceTokenResponse { access_token: token.access_token, token_type: "Bearer", expires_in: token.expires_in })
}

/// The parameters of a token request; each at most once (RFC 6749 section 3.2).
#[derive(Default)]
struct Form {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

impl Form {
    fn parse(body: &[u8]) -> Result<Self, GrantError> {
        let mut form = Self::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            let slot = match name.as_ref() {
                "grant_type" => &mut form.grant_type,
                "client_id" => &mut form.client_id,
                "client_secret" => &mut form.client_secret,
                // Unknown parameters (scope, ...) are ignored, as RFC 6749 asks.
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(GrantError::InvalidRequest("a parameter was given twice"));
            }
        }
        Ok(form)
    }
}

/// `Authorization: Basic` credentials, each part form-urlencoded (RFC 6749 section 2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, GrantError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| GrantError::InvalidClient)?;
    let (scheme, encoded) = value.split_once(' ').ok_or(GrantError::InvalidClient)?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 2048 {
        return Err(GrantError::InvalidClient);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| GrantError::InvalidClient)?;
    let decoded = String::from_utf8(decoded).map_err(|_| GrantError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(GrantError::InvalidClient)?;
    // Decoded as the value of one form field; a literal `&` would end it early.
    let unescape = |part: &str| -> String {
        let field = format!("x={}", part.replace('&', "%26"));
        url::form_urlencoded::parse(field.as_bytes()).map(|(_, v)| v.into_owned()).next().unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}
