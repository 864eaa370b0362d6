//! Access-token verification against a JWKS, and the extractors that enforce it.
//!
//! After RFC 8725: each key carries the one algorithm it may be used with (EdDSA
//! for OKP keys, RS256 for RSA keys), so `alg: none` and algorithm confusion fail;
//! `iss`, `aud`, `exp`, `nbf` are required and checked with a small leeway; the
//! header must say `typ: at+jwt`; `jku`, `x5u` and friends are never read; an
//! unknown `kid`, or a key set older than its maximum age, refreshes the key set at
//! most once per interval. The maximum age is what lets a key rotate without a refusal:
//! auth-service publishes the next key before it signs with it, and every verifier has
//! fetched it within that age (docs/kubernetes.md, "Rotating the signing key").
//!
//! Services prove who they are to each other with tokens of their own: auth-service
//! issues them to a client that presents its credentials (`ECOM_SERVICE_CLIENT_*`), with
//! the audience [`SERVICE_AUDIENCE`] and the role [`SERVICE_ROLE`]. The [`ServiceCaller`]
//! extractor accepts only those; a user's token, whatever its roles, is refused there,
//! and a service token is refused wherever a user is expected (its audience differs).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
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
/// The `aud` of service tokens: never the audience of user tokens (`ECOM_JWT_AUDIENCE`).
pub const SERVICE_AUDIENCE: &str = "ecom-internal";
/// The role every service token carries, and no user token does.
pub const SERVICE_ROLE: &str = contracts::Role::Service.as_str();

/// The registered claims (RFC 7519, 4.1) of every access token, a user's or a
/// service's: who issued it, for which audience, about whom, and when it is valid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registered {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    pub jti: String,
}

impl Registered {
    /// Issued now by `issuer` about `subject` for `audience`, valid for `ttl`, with a
    /// new token id.
    pub fn issued_now(issuer: &str, audience: &str, subject: &str, ttl: Duration) -> Self {
        let now = unix_now();
        Self {
            iss: issuer.to_owned(),
            aud: audience.to_owned(),
            sub: subject.to_owned(),
            exp: now + ttl.as_secs(),
            iat: now,
            nbf: now,
            jti: uuid::Uuid::now_v7().to_string(),
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    #[serde(flatten)]
    pub registered: Registered,
    pub roles: Vec<String>,
    pub email: String,
    /// The user's display name (an extension; absent in tokens from older issuers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The claims of a service token (RFC 9068: `client_id` names the client, `sub` too).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceClaims {
    #[serde(flatten)]
    pub registered: Registered,
    pub roles: Vec<String>,
    /// Absent from user tokens, which are read with this type to tell them apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// A service that proved its identity with a service token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceIdentity {
    /// The client the token was issued to (`order-service`).
    pub client_id: String,
}

/// The authenticated caller of a request: the token's claims, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: contracts::UserId,
    pub email: contracts::Email,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

impl Identity {
    /// The caller a verified token names: `sub` must be a user id and `email` an address.
    fn of(sub: &str, email: &str, name: Option<String>, roles: Vec<String>) -> Result<Self, AuthError> {
        let claim = |claim| move |source| AuthError::Claim { claim, source };
        Ok(Self {
            user_id: contracts::UserId::parse(sub).map_err(claim("sub"))?,
            email: contracts::Email::parse(email).map_err(claim("email"))?,
            name,
            roles,
        })
    }

    pub fn is_admin(&self) -> bool {
        contracts::Role::Admin.is_in(&self.roles)
    }
}

/// Why the key set could not be fetched again.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS fetch: {0}")]
    Fetch(#[source] reqwest::Error),
    #[error("JWKS fetch answered {0}")]
    Status(reqwest::StatusCode),
    #[error("JWKS parse: {0}")]
    Parse(#[source] reqwest::Error),
    #[error("JWKS holds no usable key")]
    NoUsableKey,
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
    #[error("algorithm not allowed for this key")]
    WrongAlgorithm,
    #[error("token rejected")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// A claim that verified but is not what it must be (`sub` a user id, `email` an address).
    #[error("the {claim} claim")]
    Claim {
        claim: &'static str,
        #[source]
        source: contracts::Invalid,
    },
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

/// Why a request was refused a service's endpoint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceRefusal {
    /// No token, or one that does not verify: 401.
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    /// A valid token of a user (customer or admin): 403.
    #[error("not a service token")]
    NotAService,
}

impl From<ServiceRefusal> for Problem {
    fn from(refusal: ServiceRefusal) -> Self {
        match refusal {
            ServiceRefusal::Unauthenticated(err) => err.into(),
            ServiceRefusal::NotAService => Problem::forbidden("this endpoint is for services only"),
        }
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
    /// A JWKS document fetched over HTTP, refreshed on unknown `kid` and past `max_age`.
    Remote { url: Url, client: reqwest::Client, min_refresh: Duration, max_age: Duration },
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
    /// When the key set was last fetched, in milliseconds since the Unix epoch (0: never).
    fetched_at_ms: AtomicU64,
    cache: TokenCache,
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

    /// A remote verifier that starts empty and fetches on first use; its keys are
    /// refetched once they are [`DEFAULT_JWKS_MAX_AGE`] old.
    pub fn remote_lazy(url: Url, expectations: Expectations, min_refresh: Duration) -> Result<Self, reqwest::Error> {
        Self::remote(url, expectations, min_refresh, DEFAULT_JWKS_MAX_AGE)
    }

    /// As [`Verifier::remote_lazy`], with the key set refetched once it is `max_age` old.
    pub fn remote(
        url: Url,
        expectations: Expectations,
        min_refresh: Duration,
        max_age: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self::build(HashMap::new(), Source::Remote { url, client, min_refresh, max_age }, expectations))
    }

    fn build(keys: HashMap<String, Arc<VerifyingKey>>, source: Source, expectations: Expectations) -> Self {
        Self {
            inner: Arc::new(Inner {
                keys: RwLock::new(keys),
                source,
                expectations,
                last_refresh: Mutex::new(None),
                fetched_at_ms: AtomicU64::new(0),
                cache: TokenCache::default(),
            }),
        }
    }

    /// Whether any key is loaded (for readiness).
    pub async fn has_keys(&self) -> bool {
        !self.inner.keys.read().await.is_empty()
    }

    /// Fetches the JWKS again (remote verifiers only).
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let Source::Remote { url, client, .. } = &self.inner.source else { return Ok(()) };
        let response = client.get(url.clone()).send().await.map_err(JwksError::Fetch)?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status()));
        }
        let jwks: JwkSet = response.json().await.map_err(JwksError::Parse)?;
        let keys = parse_jwks(&jwks);
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        *self.inner.keys.write().await = keys;
        self.inner.fetched_at_ms.store(unix_now_ms().max(1), Ordering::Relaxed);
        self.inner.cache.clear();
        *self.inner.last_refresh.lock().await = Some(Instant::now());
        Ok(())
    }

    /// Whether the keys were fetched longer than the maximum age ago.
    fn keys_are_stale(&self) -> bool {
        let Source::Remote { max_age, .. } = &self.inner.source else { return false };
        let fetched = self.inner.fetched_at_ms.load(Ordering::Relaxed);
        fetched != 0 && unix_now_ms().saturating_sub(fetched) >= u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX)
    }

    /// Refreshes for an unknown `kid` or a stale key set, unless that happened within
    /// the minimum interval.
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

    /// Verifies a compact JWS access token of a user.
    ///
    /// A token that verified is remembered until its `exp` (see [`TokenCache`]).
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        self.verify_shared(token).await.map(Arc::unwrap_or_clone)
    }

    /// [`Self::verify`], the identity shared with the remembered token rather than copied
    /// out of it: for a caller that only reads it (the gateway, on every request).
    pub async fn verify_shared(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        let now = unix_now();
        // A remembered token must not outlive a key set that is due for a refetch: the
        // refetch is what drops a withdrawn key (and empties the cache).
        if !self.keys_are_stale()
            && let Some(identity) = self.inner.cache.get(token, now)
        {
            return Ok(identity);
        }
        // Boxed: the future of a verification that may fetch the key set is large, and
        // every request would otherwise carry its room, and move it, for nothing.
        Box::pin(self.verify_anew(token, now)).await
    }

    /// [`Self::verify`] past the remembered tokens: refetches a stale key set, then checks
    /// the token.
    async fn verify_anew(&self, token: &str, now: u64) -> Result<Arc<Identity>, AuthError> {
        if self.keys_are_stale() {
            self.refresh_for_unknown_kid().await;
        }
        if let Some(identity) = self.inner.cache.get(token, now) {
            return Ok(identity);
        }
        let claims: Claims = self.decode(token, &[self.inner.expectations.audience.as_str()]).await?;
        let identity = Arc::new(Identity::of(&claims.registered.sub, &claims.email, claims.name, claims.roles)?);
        self.inner.cache.insert(token, &identity, claims.registered.exp, now);
        Ok(identity)
    }

    /// Verifies a service token: the audience [`SERVICE_AUDIENCE`] and the role
    /// [`SERVICE_ROLE`]. A valid user token is told apart from a bad token, so that it
    /// gets 403 rather than 401.
    pub async fn verify_service(&self, token: &str) -> Result<ServiceIdentity, ServiceRefusal> {
        let audiences = [SERVICE_AUDIENCE, self.inner.expectations.audience.as_str()];
        let claims: ServiceClaims = self.decode(token, &audiences).await?;
        let is_service = claims.registered.aud == SERVICE_AUDIENCE && claims.roles.iter().any(|r| r == SERVICE_ROLE);
        if !is_service {
            return Err(ServiceRefusal::NotAService);
        }
        let client_id = claims.client_id.unwrap_or(claims.registered.sub);
        Ok(ServiceIdentity { client_id })
    }

    /// Checks the signature, `typ`, `iss`, `exp`, `nbf` and that `aud` is one of `audiences`.
    async fn decode<T: DeserializeOwned>(&self, token: &str, audiences: &[&str]) -> Result<T, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.typ.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(AuthError::WrongType);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        if self.keys_are_stale() {
            self.refresh_for_unknown_kid().await;
        }
        let key = match self.key(&kid).await {
            Some(key) => key,
            None => {
                self.refresh_for_unknown_kid().await;
                self.key(&kid).await.ok_or(AuthError::UnknownKey)?
            }
        };
        // The key decides the algorithm, never the token's header.
        if header.alg != key.algorithm {
            return Err(AuthError::WrongAlgorithm);
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.inner.expectations.issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Ok(jsonwebtoken::decode::<T>(token, &key.key, &validation)?.claims)
    }

    async fn key(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.inner.keys.read().await.get(kid).cloned()
    }
}

/// How many verified tokens a verifier remembers.
pub const TOKEN_CACHE_ENTRIES: usize = 2048;
/// Longer tokens are verified every time, never remembered: with [`TOKEN_CACHE_ENTRIES`]
/// this bounds the cache to a few MiB whatever the clients send.
pub const MAX_CACHED_TOKEN_BYTES: usize = 2048;

/// User tokens that verified, each until its `exp`, keyed by the whole token: the same
/// token is not checked again on every request (an Ed25519 verification and two JSON
/// decodings). Only successes are kept, so a forged or altered token (other bytes) is
/// always verified and refused. Emptied when the key set changes, so a withdrawn key's
/// tokens stop at once.
///
/// Keys are hashed with foldhash (seeded per process) rather than SipHash: a token is
/// several hundred bytes and is hashed on every authenticated request, and only tokens
/// that verified are ever stored, so nobody can fill the map with colliding keys.
#[derive(Default)]
struct TokenCache {
    entries: std::sync::Mutex<HashMap<Box<str>, Verified, foldhash::quality::RandomState>>,
}

struct Verified {
    identity: Arc<Identity>,
    exp: u64,
}

impl TokenCache {
    /// The identity of `token` if it verified before and has not expired at `now`.
    fn get(&self, token: &str, now: u64) -> Option<Arc<Identity>> {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let verified = entries.get(token)?;
        if now < verified.exp {
            return Some(verified.identity.clone());
        }
        entries.remove(token);
        None
    }

    /// Remembers a token that just verified. When full, expired entries go first, and
    /// if none has expired everything goes (at most one re-verification per token).
    fn insert(&self, token: &str, identity: &Arc<Identity>, exp: u64, now: u64) {
        if token.len() > MAX_CACHED_TOKEN_BYTES || exp <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= TOKEN_CACHE_ENTRIES && !entries.contains_key(token) {
            entries.retain(|_, verified| now < verified.exp);
            if entries.len() >= TOKEN_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(token.into(), Verified { identity: identity.clone(), exp });
    }

    fn clear(&self) {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
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

/// Extractor: a request from another service, with a valid service token (401
/// without a valid token, 403 with a user's token, an admin's included).
#[derive(Debug, Clone)]
pub struct ServiceCaller(pub ServiceIdentity);

/// The one way each extractor reads a request: with the state's [`Verifier`] only.
macro_rules! verified_extractor {
    ($extractor:ident, $read:ident) => {
        impl<S> FromRequestParts<S> for $extractor
        where
            Verifier: FromRef<S>,
            S: Send + Sync,
        {
            type Rejection = Problem;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
                $read(parts, &Verifier::from_ref(state)).await.map(Self)
            }
        }
    };
}

verified_extractor!(User, user_of);
verified_extractor!(Admin, admin_of);
verified_extractor!(ServiceCaller, service_of);

/// The user a request's token names; remembered in the request for later extractors.
async fn user_of(parts: &mut Parts, verifier: &Verifier) -> Result<Identity, Problem> {
    if let Some(identity) = parts.extensions.get::<Identity>() {
        return Ok(identity.clone());
    }
    let token = bearer_token(parts)?;
    let identity = verifier.verify(token).await.inspect_err(|err| tracing::debug!(error = %err, "token refused"))?;
    tracing::Span::current().record("user_id", tracing::field::display(identity.user_id));
    parts.extensions.insert(identity.clone());
    Ok(identity)
}

async fn admin_of(parts: &mut Parts, verifier: &Verifier) -> Result<Identity, Problem> {
    let identity = user_of(parts, verifier).await?;
    if !identity.is_admin() {
        return Err(Problem::forbidden("this operation needs the admin role"));
    }
    Ok(identity)
}

async fn service_of(parts: &mut Parts, verifier: &Verifier) -> Result<ServiceIdentity, Problem> {
    let token = bearer_token(parts).map_err(ServiceRefusal::from)?;
    let caller = verifier
        .verify_service(token)
        .await
        .inspect_err(|err| tracing::debug!(error = %err, "service token refused"))?;
    tracing::Span::current().record("client_id", tracing::field::display(&caller.client_id));
    Ok(caller)
}

/// How long a verifier uses a fetched key set before it fetches it again.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// How a service finds and checks access tokens: `ECOM_JWKS_URL`, `ECOM_JWT_ISSUER`,
/// `ECOM_JWT_AUDIENCE`, `ECOM_JWKS_MIN_REFRESH_MS`, `ECOM_JWKS_MAX_AGE_MS`.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub jwks_url: Url,
    pub expectations: Expectations,
    /// The shortest interval between two refreshes caused by unknown `kid`s.
    pub min_refresh: Duration,
    /// The age past which the key set is fetched again before the next verification:
    /// the wait between publishing a next signing key and signing with it.
    pub max_age: Duration,
}

impl VerifierSettings {
    pub fn from_env(env: &crate::settings::Env) -> Result<Self, crate::settings::SettingsError> {
        Ok(Self {
            jwks_url: env.url("ECOM_JWKS_URL", "http://127.0.0.1:8081/.well-known/jwks.json", &["http", "https"])?,
            expectations: Expectations::from_env(env)?,
            min_refresh: env.millis("ECOM_JWKS_MIN_REFRESH_MS", Duration::from_secs(30))?,
            max_age: env.millis("ECOM_JWKS_MAX_AGE_MS", DEFAULT_JWKS_MAX_AGE)?,
        })
    }

    /// A verifier that fetches the key set on first use (services may start before auth-service).
    pub fn verifier(&self) -> Result<Verifier, reqwest::Error> {
        Verifier::remote(self.jwks_url.clone(), self.expectations.clone(), self.min_refresh, self.max_age)
    }
}

impl Expectations {
    pub fn from_env(env: &crate::settings::Env) -> Result<Self, crate::settings::SettingsError> {
        let audience = env.or("ECOM_JWT_AUDIENCE", "ecom".to_owned())?;
        if audience == SERVICE_AUDIENCE {
            return Err(crate::settings::SettingsError::new(
                "ECOM_JWT_AUDIENCE",
                format!("{SERVICE_AUDIENCE:?} is the audience of service tokens; user tokens need another"),
            ));
        }
        Ok(Self { issuer: env.or("ECOM_JWT_ISSUER", "ecom-auth".to_owned())?, audience })
    }
}

/// The client id and secret a service presents to auth-service for a service token:
/// `ECOM_SERVICE_CLIENT_ID` and `ECOM_SERVICE_CLIENT_SECRET` or
/// `ECOM_SERVICE_CLIENT_SECRET_FILE`. auth-service reads the same variables to know
/// the client.
///
/// There is no default secret and no placeholder is accepted: the value must look
/// random (at least [`MIN_SECRET_CHARS`] characters of `A-Z a-z 0-9 - . _ ~`, most of
/// them different). A file may hold several secrets, one per line: auth-service
/// accepts each of them and a client presents the first, which lets the secret be
/// rotated without downtime.
#[derive(Clone)]
pub struct ClientCredentials {
    client_id: String,
    secrets: Vec<SecretString>,
}

/// The shortest client secret accepted.
pub const MIN_SECRET_CHARS: usize = 32;
const MAX_SECRET_CHARS: usize = 512;
/// Fewer different characters than this is a pattern, not a random value.
const MIN_DISTINCT_CHARS: usize = 10;

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl ClientCredentials {
    /// The default client id: the one client that calls `/internal/*` today.
    pub const DEFAULT_CLIENT_ID: &str = "order-service";

    /// Credentials from values (tests, `ecom dev`); the same checks as configuration.
    pub fn new(client_id: &str, secret: &str) -> Result<Self, String> {
        check_client_id(client_id)?;
        check_secret(secret)?;
        Ok(Self { client_id: client_id.to_owned(), secrets: vec![SecretString::from(secret.to_owned())] })
    }

    pub fn from_env(env: &crate::settings::Env) -> Result<Self, crate::settings::SettingsError> {
        use crate::settings::SettingsError;
        const ID: &str = "ECOM_SERVICE_CLIENT_ID";
        const SECRET: &str = "ECOM_SERVICE_CLIENT_SECRET";
        const FILE: &str = "ECOM_SERVICE_CLIENT_SECRET_FILE";
        let client_id = env.or(ID, Self::DEFAULT_CLIENT_ID.to_owned())?;
        check_client_id(&client_id).map_err(|reason| SettingsError::new(ID, reason))?;
        // `ECOM_SERVICE_CLIENT_SECRET_FILE` is read with every other secret file, by `Env`.
        let text = env.secret(SECRET)?.ok_or_else(|| {
            SettingsError::new(
                FILE,
                format!(
                    "is required (or {SECRET}): the secret of the service client {client_id:?}, the same for \
                     auth-service and the client; create one with `openssl rand -hex 32`"
                ),
            )
        })?;
        let var = env.origin(SECRET);
        let var = var.as_str();
        let secrets: Vec<SecretString> = text
            .expose_secret()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| check_secret(line).map(|()| SecretString::from(line.to_owned())))
            .collect::<Result<_, _>>()
            .map_err(|reason| SettingsError::new(var, reason))?;
        if secrets.is_empty() {
            return Err(SettingsError::new(var, "holds no secret"));
        }
        Ok(Self { client_id, secrets })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The secret a client presents: the first one.
    pub fn secret(&self) -> &SecretString {
        &self.secrets[0]
    }

    /// Every secret auth-service accepts for this client.
    pub fn secrets(&self) -> &[SecretString] {
        &self.secrets
    }
}

fn check_client_id(id: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid { Ok(()) } else { Err("must be 1-64 characters of A-Z a-z 0-9 - _ .".into()) }
}

/// Never echoes the value: the reasons name only what is wrong with it.
fn check_secret(secret: &str) -> Result<(), String> {
    let chars = secret.chars().count();
    if !(MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&chars) {
        return Err(format!(
            "a secret must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters (`openssl rand -hex 32` makes one)"
        ));
    }
    if !secret.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')) {
        return Err("a secret may hold only A-Z a-z 0-9 - . _ ~ (`openssl rand -hex 32` makes one)".into());
    }
    let lower = secret.to_ascii_lowercase();
    let placeholder = ["change-me", "changeme", "change_me", "placeholder", "example", "secret", "password"]
        .iter()
        .any(|word| lower.contains(word));
    let distinct = secret.bytes().collect::<std::collections::HashSet<u8>>().len();
    if placeholder || distinct < MIN_DISTINCT_CHARS {
        return Err("this looks like a placeholder, not a random secret (`openssl rand -hex 32` makes one)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Env;

    const GOOD: &str = "3f9c2a7d81e64b05c9e7a1d2f4b8306e";

    #[test]
    fn a_missing_client_secret_stops_the_start_and_names_the_variable() {
        let err = ClientCredentials::from_env(&Env::default()).unwrap_err();
        assert_eq!(err.var, "ECOM_SERVICE_CLIENT_SECRET_FILE");
        assert!(err.reason.contains("openssl rand"), "{err}");
    }

    #[test]
    fn placeholders_and_short_or_patterned_secrets_are_refused_without_echoing_them() {
        for bad in [
            "change-me-service-client-secret-value",
            "short",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abababababababababababababababababab",
            "0123456789abcdef0123456789abcdef with spaces",
            "my-example-client-s3cr3t-0123456789",
        ] {
            let err = ClientCredentials::from_env(&Env::from_pairs([("ECOM_SERVICE_CLIENT_SECRET", bad)])).unwrap_err();
            assert_eq!(err.var, "ECOM_SERVICE_CLIENT_SECRET", "{bad}");
            assert!(!err.to_string().contains(bad), "the message repeats the secret: {err}");
        }
        let ok = ClientCredentials::from_env(&Env::from_pairs([("ECOM_SERVICE_CLIENT_SECRET", GOOD)])).unwrap();
        assert_eq!(ok.client_id(), "order-service");
        assert!(!format!("{ok:?}").contains(GOOD));
    }

    #[test]
    fn a_secret_file_may_hold_the_next_and_the_previous_secret() {
        let dir = std::env::temp_dir().join(format!("ecom-secret-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client-secret");
        let next = "9b1e44c07a3f2d6e8c5b0a7f1e2d3c4b";
        std::fs::write(&file, format!("{next}\n{GOOD}\n")).unwrap();
        let env = Env::from_pairs([("ECOM_SERVICE_CLIENT_SECRET_FILE", file.display().to_string())]);
        let credentials = ClientCredentials::from_env(&env).unwrap();
        assert_eq!(credentials.secret().expose_secret(), next);
        assert_eq!(credentials.secrets().len(), 2);

        let both = Env::from_pairs([
            ("ECOM_SERVICE_CLIENT_SECRET_FILE", file.display().to_string()),
            ("ECOM_SERVICE_CLIENT_SECRET", GOOD.to_owned()),
        ]);
        assert!(ClientCredentials::from_env(&both).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIE74Xb0Tdysu3FkfkKWrwog+BZ3o6SoWMXi0iSKfaQHm\n-----END PRIVATE KEY-----\n";
    const TEST_KEY_X: &str = "7eUhexJo1qijk7Bw8osNOWfNpkJ9pOBvgDok_V5l8bA";

    fn test_verifier() -> Verifier {
        let jwks: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": TEST_KEY_X, "kid": "k1", "alg": "EdDSA", "use": "sig"}
        ]}))
        .unwrap();
        Verifier::fixed(&jwks, Expectations { issuer: "ecom-auth".into(), audience: "ecom".into() })
    }

    fn signed_token(exp: u64) -> String {
        let now = unix_now();
        let claims = Claims {
            registered: Registered {
                iss: "ecom-auth".into(),
                aud: "ecom".into(),
                sub: uuid::Uuid::now_v7().to_string(),
                exp,
                iat: now,
                nbf: now,
                jti: "j-1".into(),
            },
            roles: vec!["customer".into()],
            email: "c@example.com".into(),
            name: None,
        };
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        let key = jsonwebtoken::EncodingKey::from_ed_pem(TEST_KEY.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    fn identity() -> Arc<Identity> {
        Arc::new(Identity {
            user_id: uuid::Uuid::now_v7().into(),
            email: contracts::Email::parse("c@example.com").unwrap(),
            name: None,
            roles: vec![],
        })
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_and_one_with_a_bad_signature_never_is() {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;

        let verifier = test_verifier();
        let good = signed_token(unix_now() + 600);
        let identity = verifier.verify(&good).await.unwrap();
        assert_eq!(verifier.inner.cache.len(), 1);
        assert_eq!(verifier.verify(&good).await.unwrap(), identity);

        let (signed_part, signature) = good.rsplit_once('.').unwrap();
        let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        signature[0] ^= 1;
        let forged = format!("{signed_part}.{}", URL_SAFE_NO_PAD.encode(signature));
        for _ in 0..2 {
            assert!(matches!(verifier.verify(&forged).await, Err(AuthError::Invalid(_))));
        }
        assert_eq!(verifier.inner.cache.len(), 1);
        assert!(verifier.inner.cache.get(&forged, unix_now()).is_none());
    }

    #[tokio::test]
    async fn an_expired_token_is_refused_even_when_it_is_remembered() {
        let verifier = test_verifier();
        let now = unix_now();
        let expired = signed_token(now - 60);
        // As if it had verified two minutes ago, a minute before it expired.
        verifier.inner.cache.insert(&expired, &identity(), now - 60, now - 120);
        assert_eq!(verifier.inner.cache.len(), 1);
        assert!(matches!(verifier.verify(&expired).await, Err(AuthError::Invalid(_))));
        assert_eq!(verifier.inner.cache.len(), 0, "the expired entry is dropped");
    }

    #[test]
    fn a_remembered_token_is_served_only_before_its_exp() {
        let cache = TokenCache::default();
        cache.insert("t", &identity(), 1_000, 990);
        assert!(cache.get("t", 999).is_some());
        assert!(cache.get("t", 1_000).is_none());
        assert!(cache.get("t", 999).is_none(), "dropped once seen expired");
        cache.insert("late", &identity(), 1_000, 1_000);
        assert_eq!(cache.len(), 0, "a token verified within the leeway after its exp is not remembered");
    }

    #[test]
    fn the_token_cache_stays_bounded_under_many_distinct_tokens() {
        let cache = TokenCache::default();
        let now = 1_000;
        for i in 0..3 * TOKEN_CACHE_ENTRIES {
            cache.insert(&format!("token-{i}"), &identity(), now + 600, now);
            assert!(cache.len() <= TOKEN_CACHE_ENTRIES);
        }
        assert!(cache.get(&format!("token-{}", 3 * TOKEN_CACHE_ENTRIES - 1), now).is_some());
        let long = "x".repeat(MAX_CACHED_TOKEN_BYTES + 1);
        cache.insert(&long, &identity(), now + 600, now);
        assert!(cache.get(&long, now).is_none(), "long tokens are not remembered");
    }

    #[test]
    fn a_full_token_cache_drops_expired_entries_first() {
        let cache = TokenCache::default();
        for i in 0..TOKEN_CACHE_ENTRIES {
            let exp = if i % 2 == 0 { 1_010 } else { 2_000 };
            cache.insert(&format!("token-{i}"), &identity(), exp, 1_000);
        }
        cache.insert("newest", &identity(), 2_000, 1_020);
        assert_eq!(cache.len(), TOKEN_CACHE_ENTRIES / 2 + 1);
        assert!(cache.get("token-1", 1_020).is_some());
    }

    #[test]
    fn the_user_audience_cannot_be_the_service_audience() {
        let err = Expectations::from_env(&Env::from_pairs([("ECOM_JWT_AUDIENCE", SERVICE_AUDIENCE)])).unwrap_err();
        assert_eq!(err.var, "ECOM_JWT_AUDIENCE");
    }
}
