//! order-service's identity towards product- and inventory-service: a service token
//! from auth-service (client-credentials grant), kept until shortly before it expires.
//!
//! A request fetches a token only when there is none it may use. Once half a token's
//! lifetime has passed, the background worker ([`ServiceToken::keep_renewed`]) renews it,
//! so no customer request waits for auth-service while a token is good. While a renewal
//! is under way, or after one failed, requests go on with the current token as long as
//! it has [`MIN_REMAINING`] left: an auth-service outage costs placements nothing for
//! about half a token's lifetime.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::auth::ClientCredentials;
use common::client::ResilientClient;
use common::retry::Schedule;
use reqwest::Method;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::clients::Unavailable;

/// A token with less than this left is not sent: it could expire on the way.
pub const MIN_REMAINING: Duration = Duration::from_secs(15);
/// After a failed renewal, the next attempt waits this long (the current token is used)…
const RETRY_RENEWAL_AFTER: Duration = Duration::from_secs(1);
/// …doubling with each failure in a row up to this, so an auth-service outage costs it
/// a request and a log line every 30 s, not every second. Requests that find no usable
/// token fetch one themselves, so the back-off never keeps them waiting.
const MAX_RETRY_RENEWAL_AFTER: Duration = Duration::from_secs(30);
const NAME: &str = "auth-service";

/// Fetches and caches the service token; cheap to clone, shared by every client.
#[derive(Clone)]
pub struct ServiceToken {
    client: ResilientClient,
    url: Url,
    credentials: ClientCredentials,
    current: Arc<Mutex<Option<Cached>>>,
    /// When the last fetch failed: requests waiting for a token then fail at once
    /// instead of each waiting for another attempt.
    failed_at: Arc<Mutex<Option<Instant>>>,
    /// Held by whoever fetches; requests wait on it only when no token is usable.
    fetching: Arc<tokio::sync::Mutex<()>>,
    /// Tells the renewal worker that a request fetched a token.
    fetched: Arc<tokio::sync::Notify>,
    /// Renewals failed in a row, for the worker's back-off.
    renewals_failed: Arc<std::sync::atomic::AtomicU32>,
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceToken")
            .field("url", &self.url.as_str())
            .field("client_id", &self.credentials.client_id())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Cached {
    token: String,
    renew_at: Instant,
    usable_until: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl ServiceToken {
    /// `auth` is auth-service's base URL; the token comes from `<auth>/internal/token`.
    pub fn new(client: ResilientClient, auth: &Url, credentials: ClientCredentials) -> Result<Self, url::ParseError> {
        Ok(Self {
            client,
            url: auth.join("internal/token")?,
            credentials,
            current: Arc::default(),
            failed_at: Arc::default(),
            fetching: Arc::default(),
            fetched: Arc::default(),
            renewals_failed: Arc::default(),
        })
    }

    /// A token to send now: the cached one while it is usable (renewing it is the
    /// worker's job), or a new one.
    pub async fn bearer(&self) -> Result<String, Unavailable> {
        if let Some(cached) = self.cached().filter(|c| Instant::now() < c.usable_until) {
            return Ok(cached.token);
        }
        let _fetching = self.fetching.lock().await;
        // Another request may have fetched one while this one waited.
        if let Some(cached) = self.cached().filter(|c| Instant::now() < c.usable_until) {
            return Ok(cached.token);
        }
        let failed_at = *self.failed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failed_at.is_some_and(|at| at.elapsed() < RETRY_RENEWAL_AFTER) {
            return Err(Unavailable {
                service: NAME,
                reason: "no service token: the last request for one failed just now".into(),
                retry_after_secs: 1,
            });
        }
        let fetched = self.fetch().await;
        *self.failed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = fetched.is_err().then(Instant::now);
        if fetched.is_ok() {
            self.fetched.notify_one();
        }
        fetched
    }

    /// One step of the renewal worker, at `now`: renews the cached token if half its
    /// lifetime has passed. Answers when the next step is due, or `None` while there is
    /// no token to renew (a request fetches the first one).
    pub async fn renew_if_due(&self, now: Instant) -> Option<Instant> {
        let cached = self.cached()?;
        if now < cached.renew_at {
            return Some(cached.renew_at);
        }
        let _renewing = self.fetching.lock().await;
        match self.cached() {
            // A request fetched a new token meanwhile, or it was refused and forgotten.
            Some(current) if current.token != cached.token => return Some(current.renew_at),
            None => return None,
            Some(_) => {}
        }
        match self.fetch().await {
            Ok(_) => {
                let failed = self.renewals_failed.swap(0, Ordering::Relaxed);
                if failed > 0 {
                    tracing::info!(failed_attempts = failed, "service token renewed again");
                }
                self.cached().map(|c| c.renew_at)
            }
            Err(err) => {
                // The worker retries for as long as auth-service fails, also once the
                // current token is past use: say how long it still serves.
                let failed_attempts = self.renewals_failed.fetch_add(1, Ordering::Relaxed) + 1;
                let retry_in = retry_renewal_after(failed_attempts);
                let usable_for_secs = cached.usable_until.saturating_duration_since(Instant::now()).as_secs();
                tracing::warn!(
                    error = %err,
                    usable_for_secs,
                    failed_attempts,
                    retry_in_secs = retry_in.as_secs(),
                    "service token renewal failed; requests use the current one while it is usable"
                );
                Some(self.postpone_renewal(&cached.token, retry_in))
            }
        }
    }

    /// The renewal worker: renews the token whenever it is due, until `shutdown` (which
    /// also ends a renewal under way: nothing waits for it).
    pub async fn keep_renewed(self, shutdown: CancellationToken) {
        let renewing = async {
            loop {
                match self.renew_if_due(Instant::now()).await {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => self.fetched.notified().await,
                }
            }
        };
        shutdown.run_until_cancelled(renewing).await;
    }

    /// Drops `token` if it is still the cached one (a service refused it).
    pub fn forget(&self, token: &str) {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| c.token == token) {
            *current = None;
        }
    }

    fn cached(&self) -> Option<Cached> {
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The next attempt at renewing `token`, `retry_in` after a failed one.
    fn postpone_renewal(&self, token: &str, retry_in: Duration) -> Instant {
        let retry_at = Instant::now() + retry_in;
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cached) = current.as_mut().filter(|c| c.token == token) {
            cached.renew_at = retry_at;
        }
        retry_at
    }

    #[tracing::instrument(skip_all)]
    async fn fetch(&self) -> Result<String, Unavailable> {
        let started = Instant::now();
        let request = self
            .client
            .request(Method::POST, self.url.clone())
            .basic_auth(self.credentials.client_id(), Some(self.credentials.secret().expose_secret()))
            .form(&[("grant_type", "client_credentials")]);
        let response = self.client.send(request).await.map_err(|err| Unavailable {
            service: NAME,
            retry_after_secs: err.retry_after_secs(),
            reason: err.into(),
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::BAD_REQUEST {
            // Configuration, not an outage: the secret differs from auth-service's.
            tracing::error!(
                %status,
                client_id = self.credentials.client_id(),
                "auth-service refused this service's credentials: ECOM_SERVICE_CLIENT_SECRET[_FILE] must hold \
                 the same secret as auth-service's"
            );
        }
        if !status.is_success() {
            return Err(Unavailable {
                service: NAME,
                reason: format!("token request answered {status}").into(),
                retry_after_secs: 1,
            });
        }
        let body: TokenResponse =
            response.json().await.map_err(|e| Unavailable { service: NAME, reason: e.into(), retry_after_secs: 1 })?;
        let lifetime = Duration::from_secs(body.expires_in);
        let cached = Cached {
            token: body.access_token.clone(),
            renew_at: started + lifetime / 2,
            usable_until: started + lifetime.saturating_sub(MIN_REMAINING).max(lifetime / 2),
        };
        *self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cached);
        Ok(body.access_token)
    }
}

/// How long the worker waits after `failed_attempts` renewals failed in a row.
fn retry_renewal_after(failed_attempts: u32) -> Duration {
    Schedule::unbounded(RETRY_RENEWAL_AFTER, MAX_RETRY_RENEWAL_AFTER)
        .delay(failed_attempts)
        .unwrap_or(MAX_RETRY_RENEWAL_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_retries_back_off_from_a_second_to_half_a_minute() {
        let waits: Vec<u64> = (1..=8).map(|n| retry_renewal_after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry_renewal_after(u32::MAX), MAX_RETRY_RENEWAL_AFTER);
    }
}
