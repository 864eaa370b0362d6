//! The HTTP surface of auth-service (API.md, Auth).

pub mod service_token;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use common::auth::User;
use common::http::Json;
use common::openapi::{JsonBodyProblems, ProblemSchema};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use contracts::UserId;

use crate::AppState;
use crate::domain::{self, LoginEmail, Name, Password};
use crate::error::ApiError;
use crate::password;
use crate::store::{NewUser, Spend, UserRow};
use crate::tokens;

#[derive(OpenApi)]
#[openapi(
    info(title = "auth-service", description = "Users, sessions and signing keys."),
    paths(register, login, refresh, logout, me, jwks),
    components(schemas(RegisterRequest, LoginRequest, RefreshRequest, UserResponse, TokensResponse)),
    tags((name = "auth", description = "Accounts and tokens"))
)]
pub struct ApiDoc;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/openapi.json", get(|| async { axum::Json(ApiDoc::openapi()) }))
        .merge(service_token::routes())
        .with_state(state)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// An addr-spec (`name@example.com`, no display name), at most 254 bytes as UTF-8,
    /// also once lowercased. Compared case-insensitively.
    #[schema(example = "ada@example.com", format = "email", max_length = 254)]
    pub email: String,
    /// 10 to 128 characters.
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
    /// 1 to 200 characters once trimmed; no control characters, line separators or
    /// bidirectional overrides.
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\u0000-\u001F\u007F-\u009F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\u0000-\u001F\u007F-\u009F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// At most 254 bytes as UTF-8 once lowercased.
    #[schema(example = "ada@example.com", max_length = 254)]
    pub email: String,
    /// At most 128 characters: no password is longer.
    #[schema(max_length = 128)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    #[schema(example = json!(["customer"]))]
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl UserResponse {
    fn from_row(row: &UserRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: row.id.as_uuid(),
            email: row.email.to_string(),
            name: row.name.clone(),
            roles: row.roles(),
            created_at: row.created_at,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokensResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    pub refresh_token: String,
}

/// Tokens are credentials: no cache, shared or private, may keep them (RFC 6749, 5.1).
impl IntoResponse for TokensResponse {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

/// Creates a customer account.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Created", body = UserResponse,
            headers(("Location" = String, description = "`/api/auth/me`"))),
        (status = 409, description = "Email already registered", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, password or name, or an unknown field", body = ProblemSchema,
            content_type = "application/problem+json"),
        JsonBodyProblems,
    ))]
#[tracing::instrument(skip_all)]
async fn register(State(state): State<AppState>, Json(body): Json<RegisterRequest>) -> Result<Response, ApiError> {
    let (email, password, name) = domain::all_or_errors(
        domain::new_email(&body.email),
        Password::parse_new(body.password),
        Name::parse(&body.name),
    )
    .map_err(ApiError::Validation)?;
    let hash = password::hash(password.into_secret()).await?;
    let id = UserId::from(Uuid::now_v7());
    let roles = [contracts::Role::Customer.as_str()];
    state.store.insert_user(&NewUser { id, email: &email, name: &name, password_hash: &hash, roles: &roles }).await?;
    let row = state.store.fetch_user(id).await?.ok_or(ApiError::NotFound)?;
    let mut response = (StatusCode::CREATED, axum::Json(UserResponse::from_row(&row)?)).into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/api/auth/me"));
    Ok(response)
}

/// Exchanges email and password for tokens. Unknown email and wrong password get
/// the same answer after the same work. Lengths are checked before any of it.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens (`Cache-Control: no-store`)", body = TokensResponse),
        (status = 401, description = "Wrong email or password", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "Email or password longer than any account's, or an unknown field", body = ProblemSchema,
            content_type = "application/problem+json"),
        JsonBodyProblems,
    ))]
#[tracing::instrument(skip_all)]
async fn login(State(state): State<AppState>, Json(body): Json<LoginRequest>) -> Result<TokensResponse, ApiError> {
    let (email, password) = match (LoginEmail::parse(&body.email), Password::parse_presented(body.password)) {
        (Ok(email), Ok(password)) => (email, password.into_secret()),
        (email, password) => {
            return Err(ApiError::Validation([email.err(), password.err()].into_iter().flatten().collect()));
        }
    };
    let Some(user) = state.store.fetch_user_by_email(email.as_str()).await? else {
        let _ = password::verify(password, state.dummy_hash.as_ref().clone()).await?;
        return Err(ApiError::InvalidCredentials);
    };
    if !password::verify(password, user.password_hash.clone()).await? {
        return Err(ApiError::InvalidCredentials);
    }
    tokens::issue_new_family(&state, &user).await
}

/// Spends a refresh token for a new pair. A spent token presented again revokes
/// every token of its family.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens (`Cache-Control: no-store`); the presented refresh token is spent",
            body = TokensResponse),
        (status = 401, description = "Unknown, expired, revoked or already spent; or its family is past its lifetime",
            body = ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "An unknown field", body = ProblemSchema, content_type = "application/problem+json"),
        JsonBodyProblems,
    ))]
#[tracing::instrument(skip_all)]
async fn refresh(State(state): State<AppState>, Json(body): Json<RefreshRequest>) -> Result<TokensResponse, ApiError> {
    let next = tokens::new_refresh_token();
    let spend = state
        .store
        .rotate_refresh_token(
            &tokens::hash_refresh_token(&body.refresh_token),
            &tokens::hash_refresh_token(&next),
            state.tokens.refresh,
        )
        .await?;
    let Spend::Rotated { user_id } = spend else { return Err(ApiError::InvalidRefreshToken) };
    let user = state.store.fetch_user(user_id).await?.ok_or(ApiError::InvalidRefreshToken)?;
    tokens::tokens(&state, &user, next)
}

/// Revokes the refresh token and its whole family.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 204, description = "Revoked (also when the token was unknown)"),
        (status = 422, description = "An unknown field", body = ProblemSchema, content_type = "application/problem+json"),
        JsonBodyProblems,
    ))]
#[tracing::instrument(skip_all)]
async fn logout(State(state): State<AppState>, Json(body): Json<RefreshRequest>) -> Result<StatusCode, ApiError> {
    state.store.revoke_family_of(&tokens::hash_refresh_token(&body.refresh_token)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse),
        (status = 401, description = "Missing or invalid token", content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(user_id))]
async fn me(State(state): State<AppState>, User(identity): User) -> Result<Json<UserResponse>, ApiError> {
    let row = state.store.fetch_user(identity.user_id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(UserResponse::from_row(&row)?))
}

/// The public keys that verify access tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JSON Web Key Set")))]
async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = axum::Json(state.keys.jwks()).into_response();
    // Short, so a rotation reaches every verifier quickly.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    response
}
