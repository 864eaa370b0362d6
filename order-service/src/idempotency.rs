//! The `Idempotency-Key` protocol of POST /api/orders.
//!
//! A key is held by one request at a time, under a lease longer than any request can
//! run (the server's request timeout). A second request with the key answers at once:
//! the stored answer, or 409 "in use" with `Retry-After`. A request that finds the
//! lease run out (its holder crashed or was dropped) takes the key over and first
//! settles the order the holder recorded: a confirmed order is the answer; a pending
//! one is rolled back before the placement runs again. Nobody ever waits on a key.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use common::auth::Identity;
use common::problem::{FieldError, Problem};
use sha2::{Digest, Sha256};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::AppState;
use crate::domain::Order;
use crate::saga::{self, SagaError};
use crate::store::{KeyRef, KeyState, Store};

/// The request header that carries the key.
pub const HEADER: &str = "idempotency-key";
/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;
/// How long a key and its answer are remembered; after that the key may be used afresh.
pub const KEY_RETENTION: chrono::Duration = chrono::Duration::hours(24);
/// Largest answer stored for replay (an order of 100 lines is far below it).
const MAX_STORED_ANSWER: usize = 4 * 1024 * 1024;

/// A request's hold on its key: answer it with [`KeyLease::finish`]. Dropped unanswered
/// (the request was cancelled), the lease ends at once so a retry takes over.
#[derive(Debug)]
pub struct KeyLease {
    store: Store,
    key: KeyRef,
    answered: bool,
}

/// What a request with a key does next.
#[derive(Debug)]
enum Begun {
    /// Run the placement under this lease.
    Run(KeyLease),
    /// Answer this without placing anything.
    Answer(Response),
}

/// Runs `place` once per key: a request without a key runs it; one with a key runs it
/// under the key's lease and stores the answer, or answers as the key says without
/// running it. `request_hash` is the body's [`request_hash`].
pub async fn once<F, Fut>(
    state: &AppState,
    who: &Identity,
    headers: &HeaderMap,
    request_hash: &str,
    place: F,
) -> Response
where
    F: FnOnce(Option<KeyRef>) -> Fut,
    Fut: Future<Output = Response>,
{
    let key = match key_from(headers) {
        Ok(Some(key)) => key,
        Ok(None) => return place(None).await,
        Err(refused) => return Problem::validation(vec![refused]).into_response(),
    };
    match begin(state, who, key, request_hash).await {
        Ok(Begun::Run(lease)) => {
            let response = place(Some(lease.key().clone())).await;
            lease.finish(response).await
        }
        Ok(Begun::Answer(answer)) => answer,
        Err(err) => err.into_response(),
    }
}

/// The fingerprint a key is bound to: a repeat must send the same body.
pub fn request_hash(body: &crate::routes::PlaceOrderRequest) -> String {
    // Plain fields only: serialising it cannot fail.
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses the header: `None` without one, the field error for an unusable value.
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, FieldError> {
    match headers.get(HEADER).map(|v| v.to_str().map(str::to_owned)) {
        None => Ok(None),
        Some(Ok(key)) if (1..=MAX_KEY_LEN).contains(&key.len()) => Ok(Some(key)),
        Some(_) => Err(FieldError::new("Idempotency-Key", format!("must be 1-{MAX_KEY_LEN} visible characters"))),
    }
}

/// Claims `key` for this request of `who`, whose body hashes to `request_hash`.
async fn begin(state: &AppState, who: &Identity, key: String, request_hash: &str) -> Result<Begun, SagaError> {
    let key = KeyRef { user: who.user_id, key, owner: Uuid::new_v4() };
    let lease_until = Utc::now() + state.key_lease;
    let claimed = state.store.claim_key(&key, request_hash, lease_until).await?;
    let lease = KeyLease { store: state.store.clone(), key, answered: false };
    match claimed {
        KeyState::Claimed => Ok(Begun::Run(lease)),
        KeyState::TakenOver { previous_order: None } => Ok(Begun::Run(lease)),
        KeyState::TakenOver { previous_order: Some(id) } => match saga::settle_abandoned(state, id).await? {
            // The previous holder confirmed it but died before answering: that is the answer.
            Some(order) if order.user_id == who.user_id => Ok(Begun::Answer(lease.finish(created(order)).await)),
            _ => Ok(Begun::Run(lease)),
        },
        KeyState::Replay { status, body } => {
            lease.disarm();
            Ok(Begun::Answer(replay(status, body)))
        }
        KeyState::Mismatch => {
            lease.disarm();
            Ok(Begun::Answer(
                Problem::validation(vec![FieldError::new(
                    "Idempotency-Key",
                    "was already used with a different request body",
                )])
                .into_response(),
            ))
        }
        KeyState::InProgress { until } => {
            lease.disarm();
            let wait = (until - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            Ok(Begun::Answer(in_use(wait)))
        }
    }
}

impl KeyLease {
    pub fn key(&self) -> &KeyRef {
        &self.key
    }

    /// Stores `response` as the key's answer, unless it is a 5xx (nothing final was
    /// decided: the lease ends and a retry takes the key over).
    pub async fn finish(mut self, response: Response) -> Response {
        self.answered = true;
        let status = response.status();
        if status.is_server_error() {
            if let Err(err) = self.store.release_key(&self.key).await {
                tracing::error!(error = %err, "cannot end an idempotency key's lease");
            }
            return response;
        }
        let (parts, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_STORED_ANSWER).await else {
            return Problem::internal().into_response();
        };
        if let Err(err) = self.store.complete_key(&self.key, status.as_u16(), &String::from_utf8_lossy(&bytes)).await {
            // The lease runs out and a retry settles the recorded order instead.
            tracing::error!(error = %err, "cannot store the idempotent answer");
        }
        Response::from_parts(parts, Body::from(bytes))
    }

    /// This request never held the key: nothing to give back.
    fn disarm(mut self) {
        self.answered = true;
    }
}

impl Drop for KeyLease {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let store = self.store.clone();
        let key = self.key.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // In the dropped request's span: the warning belongs to its trace and log lines.
            runtime.spawn(
                async move {
                    if let Err(err) = store.release_key(&key).await {
                        tracing::warn!(error = %err, "cannot end a dropped request's key lease; it runs out by itself");
                    }
                }
                .in_current_span(),
            );
        }
    }
}

/// 201 with the order and its `Location`.
pub fn created(order: Order) -> Response {
    let location = format!("/api/orders/{}", order.id);
    let mut response = (StatusCode::CREATED, axum::Json(order)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() { "application/json" } else { common::problem::CONTENT_TYPE };
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// 409: another request holds the key; retry after its lease at the latest.
fn in_use(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Problem::new(StatusCode::CONFLICT, "idempotency-key-in-use", "Idempotency key in use")
        .detail("a request with this Idempotency-Key is still in progress; retry after the indicated time")
        .header(header::RETRY_AFTER, HeaderValue::from(secs.max(1)))
        .into_response()
}
