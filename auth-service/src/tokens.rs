//! Issuing access and refresh tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::auth::{Claims, Registered};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::routes::TokensResponse;
use crate::store::UserRow;

/// A new opaque refresh token: 256 random bits, URL-safe.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored instead of the token.
pub fn hash_refresh_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A signed access token for `user`.
pub fn access_token(state: &AppState, user: &UserRow) -> Result<String, ApiError> {
    let expectations = &state.tokens.expectations;
    let claims = Claims {
        registered: Registered::issued_now(
            &expectations.issuer,
            &expectations.audience,
            &user.id.to_string(),
            state.tokens.access_ttl,
        ),
        roles: user.roles(),
        email: user.email.to_string(),
        name: Some(user.name.clone()),
    };
    state.keys.sign(&claims).map_err(|e| ApiError::Internal(e.into()))
}

/// Issues an access token and a refresh token in a new family (a login).
pub async fn issue_new_family(state: &AppState, user: &UserRow) -> Result<TokensResponse, ApiError> {
    let refresh = new_refresh_token();
    let family = Uuid::now_v7().to_string();
    state.store.insert_refresh_token(&hash_refresh_token(&refresh), &family, user.id, state.tokens.refresh).await?;
    tokens(state, user, refresh)
}

pub fn tokens(state: &AppState, user: &UserRow, refresh_token: String) -> Result<TokensResponse, ApiError> {
    Ok(TokensResponse {
        access_token: access_token(state, user)?,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl.as_secs(),
        refresh_token,
    })
}
