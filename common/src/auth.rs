//! Access-token verification against a JWKS, and the extractors that enforce it.
//!
//! After RFC 8725: each key carries the one algorithm it may be used with (EdDSA
//! for OKP keys, RS256 for RSA keys), so `alg: none` and algorithm confusion fail;
//! `iss`, `aud`, `exp`, `nbf` are required and checked with a small leeway; the
//! header must say `typ: at+jwt`; `jku`, `x5u` and friends are never read; an
//! unknown `kid` refreshes the key set at most once per interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};
use url::Url;

use crate::problem::Problem;

/// The `typ` header of our access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Tokens longer than this are rejected before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    pub jti: String,
    pub roles: Vec<String>,
    pub email: String,
    /// The user's display name (an extension; absent in tokens from older issuers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: uuid::Uuid,
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

/// Why a token was refused. Never shown to clients beyond "invalid token".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token too large")]
    TooLarge,
    #[error("malformed token")]
    Malformed,
    #[error("token type is not at+jwt")]
    WrongType,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Invalid(String),
}

impl From<AuthError> for Problem {
    fn from(err: AuthError) -> Self {
        let detail = match err {
            AuthError::Missing => "a bearer token is required",
            _ => "the bearer token is invalid or expired",
        };
        Problem::unauthorized(detail)
    }
}

/// What a verifier checks besides the signature.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub issuer: String,
    pub audience: String,
}

struct VerifyingKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

/// Where the verifier's keys come from.
#[derive(Debug, Clone)]
enum Source {
    /// A fixed set (auth-service verifies its own tokens).
    Fixed,
    /// A JWKS document fetched over HTTP, refreshed on unknown `kid`.
    Remote { url: Url, client: reqwest::Client, min_refresh: Duration },
}

/// Verifies access tokens; cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: RwLock<HashMap<String, Arc<VerifyingKey>>>,
    source: Source,
    expectations: Expectations,
    last_refresh: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("source", &self.inner.source).finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier over a fixed key set.
    pub fn fixed(jwks: &JwkSet, expectations: Expectations) -> Self {
        Self::build(parse_jwks(jwks), Source::Fixed, expectations)
    }

    /// A remote verifier that starts empty and fetches on first use.
    pub fn remote_lazy(url: Url, expectations: Expectations, min_refresh: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self::build(HashMap::new(), Source::Remote { url, client, min_refresh }, expectations))
    }

    fn build(keys: HashMap<String, Arc<VerifyingKey>>, source: Source, expectations: Expectations) -> Self {
        Self {
            inner: Arc::new(Inner { keys: RwLock::new(keys), source, expectations, last_refresh: Mutex::new(None) }),
        }
    }

    /// Whether any key is loaded (for readiness).
    pub async fn has_keys(&self) -> bool {
        !self.inner.keys.read().await.is_empty()
    }

    /// Fetches the JWKS again (remote verifiers only).
    pub async fn refresh(&self) -> Result<(), String> {
        let Source::Remote { url, client, .. } = &self.inner.source else { return Ok(()) };
        let response = client.get(url.clone()).send().await.map_err(|e| format!("JWKS fetch: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("JWKS fetch: {}", response.status()));
        }
        let jwks: JwkSet = response.json().await.map_err(|e| format!("JWKS parse: {e}"))?;
        let keys = parse_jwks(&jwks);
        if keys.is_empty() {
            return Err("JWKS holds no usable key".into());
        }
        *self.inner.keys.write().await = keys;
        *self.inner.last_refresh.lock().await = Some(Instant::now());
        Ok(())
    }

    /// Refreshes for an unknown `kid`, unless that happened within the minimum interval.
    async fn refresh_for_unknown_kid(&self) {
        let Source::Remote { min_refresh, .. } = &self.inner.source else { return };
        {
            let mut last = self.inner.last_refresh.lock().await;
            if last.is_some_and(|at| at.elapsed() < *min_refresh) && !self.inner.keys.read().await.is_empty() {
                return;
            }
            // Claim the slot before fetching so concurrent requests do not stampede.
            *last = Some(Instant::now());
        }
        if let Err(err) = self.refresh().await {
            tracing::warn!(error = %err, "JWKS refresh failed");
        }
    }

    /// Verifies a compact JWS access token.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.typ.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(AuthError::WrongType);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let key = match self.key(&kid).await {
            Some(key) => key,
            None => {
                self.refresh_for_unknown_kid().await;
                self.key(&kid).await.ok_or(AuthError::UnknownKey)?
            }
        };
        // The key decides the algorithm, never the token's header.
        if header.alg != key.algorithm {
            return Err(AuthError::Invalid("algorithm not allowed for this key".into()));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.inner.expectations.issuer]);
        validation.set_audience(&[&self.inner.expectations.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims = data.claims;
        let user_id =
            uuid::Uuid::parse_str(&claims.sub).map_err(|_| AuthError::Invalid("sub is not a user id".into()))?;
        Ok(Identity { user_id, email: claims.email, name: claims.name, roles: claims.roles })
    }

    async fn key(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.inner.keys.read().await.get(kid).cloned()
    }
}

/// Usable verification keys of a JWKS by `kid`; each bound to its one algorithm.
fn parse_jwks(jwks: &JwkSet) -> HashMap<String, Arc<VerifyingKey>> {
    jwks.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                // Symmetric and other keys are never accepted for access tokens.
                _ => return None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, Arc::new(VerifyingKey { key, algorithm })))
        })
        .collect()
}

/// The bearer token of a request, if it has a well-formed `Authorization` header.
pub fn bearer_token(parts: &Parts) -> Result<&str, AuthError> {
    let value = parts.headers.get(http::header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    if value.len() > MAX_TOKEN_BYTES + 7 {
        return Err(AuthError::TooLarge);
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}

/// Extractor: a request with a valid access token (401 otherwise).
#[derive(Debug, Clone)]
pub struct User(pub Identity);

/// Extractor: a request with a valid access token carrying the `admin` role
/// (401 without a valid token, 403 without the role).
#[derive(Debug, Clone)]
pub struct Admin(pub Identity);

impl<S> FromRequestParts<S> for User
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(identity) = parts.extensions.get::<Identity>() {
            return Ok(Self(identity.clone()));
        }
        let verifier = Verifier::from_ref(state);
        let token = bearer_token(parts)?;
        let identity =
            verifier.verify(token).await.inspect_err(|err| tracing::debug!(error = %err, "token refused"))?;
        tracing::Span::current().record("user_id", tracing::field::display(identity.user_id));
        parts.extensions.insert(identity.clone());
        Ok(Self(identity))
    }
}

impl<S> FromRequestParts<S> for Admin
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let User(identity) = User::from_request_parts(parts, state).await?;
        if !identity.is_admin() {
            return Err(Problem::forbidden("this operation needs the admin role"));
        }
        Ok(Self(identity))
    }
}

/// How a service finds and checks access tokens: `ECOM_JWKS_URL`, `ECOM_JWT_ISSUER`,
/// `ECOM_JWT_AUDIENCE`, `ECOM_JWKS_MIN_REFRESH_MS`.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub jwks_url: Url,
    pub expectations: Expectations,
    /// The shortest interval between two refreshes caused by unknown `kid`s.
    pub min_refresh: Duration,
}

impl VerifierSettings {
    pub fn from_env(env: &crate::settings::Env) -> Result<Self, crate::settings::SettingsError> {
        Ok(Self {
            jwks_url: env.url("ECOM_JWKS_URL", "http://127.0.0.1:8081/.well-known/jwks.json", &["http", "https"])?,
            expectations: Expectations::from_env(env)?,
            min_refresh: env.millis("ECOM_JWKS_MIN_REFRESH_MS", Duration::from_secs(30))?,
        })
    }

    /// A verifier that fetches the key set on first use (services may start before auth-service).
    pub fn verifier(&self) -> Result<Verifier, String> {
        Verifier::remote_lazy(self.jwks_url.clone(), self.expectations.clone(), self.min_refresh)
    }
}

impl Expectations {
    pub fn from_env(env: &crate::settings::Env) -> Result<Self, crate::settings::SettingsError> {
        Ok(Self {
            issuer: env.or("ECOM_JWT_ISSUER", "ecom-auth".to_owned())?,
            audience: env.or("ECOM_JWT_AUDIENCE", "ecom".to_owned())?,
        })
    }
}
