//! The service token is renewed in the background once half its lifetime has passed,
//! so no customer request waits for auth-service while the current token is good.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::auth::ClientCredentials;
use common::client::{ClientConfig, ResilientClient};
use order_service::service_token::ServiceToken;
use serde_json::{Value, json};
use test_support::{Auth, SERVICE_CLIENT};
use tokio::time::Instant;
use url::Url;

use crate::support::{Databases, Shop};

fn token_source(auth: &Auth) -> ServiceToken {
    let config = ClientConfig::from_env(&common::settings::Env::default()).unwrap();
    ServiceToken::new(
        ResilientClient::new("auth-service", &config).unwrap(),
        &auth.url("").parse().unwrap(),
        ClientCredentials::new(SERVICE_CLIENT, &auth.service_secret).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_service_token_is_renewed_at_half_its_life_without_any_order_being_placed() {
    let auth = Auth::start().await;
    let tokens = token_source(&auth);
    assert_eq!(tokens.renew_if_due(Instant::now()).await, None, "there was a token before any request");

    let first = tokens.bearer().await.unwrap();
    // Before half of its 300 s: the renewal step leaves it and says when to come back.
    let now = Instant::now();
    let due = tokens.renew_if_due(now).await.unwrap();
    assert!(due > now + Duration::from_secs(140) && due <= now + Duration::from_secs(150), "{:?}", due - now);
    assert_eq!(tokens.bearer().await.unwrap(), first);

    // At half its life the step renews it, and requests get the new one from the cache.
    let next = tokens.renew_if_due(due).await.unwrap();
    assert!(next > due, "the next renewal is not later: {:?}", due - next);
    let renewed = tokens.bearer().await.unwrap();
    assert_ne!(renewed, first, "the token was not renewed");
    assert_eq!(tokens.renew_if_due(Instant::now()).await, Some(next), "a fresh token was renewed again");

    // With auth-service gone the step fails, keeps the current token and retries shortly.
    auth.stop().await;
    let retry_at = tokens.renew_if_due(next).await.unwrap();
    assert!(retry_at <= Instant::now() + Duration::from_secs(1), "{:?}", retry_at - Instant::now());
    assert_eq!(tokens.bearer().await.unwrap(), renewed);

    // Each failure in a row doubles the wait for the next attempt.
    let second_retry_at = tokens.renew_if_due(retry_at).await.unwrap();
    let wait = second_retry_at - Instant::now();
    assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(2), "{wait:?}");
    assert_eq!(tokens.bearer().await.unwrap(), renewed);
}

/// The way from order-service to auth-service's token endpoint, noting every service
/// token auth-service hands out. A stalling tap holds every request after the first one
/// unanswered, as a hung auth-service would.
#[derive(Clone)]
struct TokenTap {
    auth: String,
    http: reqwest::Client,
    issued: Arc<Mutex<Vec<String>>>,
    stall_after_first: bool,
    stalled: Arc<tokio::sync::Notify>,
}

impl TokenTap {
    /// Serves the tap on port 0; the base URL order-service asks for its token at.
    async fn start(auth: &Auth, stall_after_first: bool) -> (Self, Url) {
        let tap = Self {
            auth: auth.url("/internal/token"),
            http: reqwest::Client::new(),
            issued: Arc::default(),
            stall_after_first,
            stalled: Arc::default(),
        };
        let app = Router::new().route("/internal/token", axum::routing::post(relay)).with_state(tap.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap()).parse().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (tap, url)
    }

    fn issued(&self) -> Vec<String> {
        self.issued.lock().unwrap().clone()
    }

    /// Polls until auth-service has issued `n` tokens through the tap; panics after 20 s.
    async fn until_issued(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let issued = self.issued();
            if issued.len() >= n {
                return issued;
            }
            assert!(Instant::now() < deadline, "{} service tokens issued, waited for {n}", issued.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn relay(State(tap): State<TokenTap>, headers: HeaderMap, body: Bytes) -> Response {
    if tap.stall_after_first && !tap.issued().is_empty() {
        tap.stalled.notify_one();
        std::future::pending::<()>().await;
    }
    let mut request = tap.http.post(&tap.auth).body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let body: Value = response.json().await.unwrap();
    if status.is_success() {
        tap.issued.lock().unwrap().push(body["access_token"].as_str().unwrap().to_owned());
    }
    (status, axum::Json(body)).into_response()
}

/// A shop whose auth-service issues 2 s service tokens through `tap`, and an order for
/// an unknown product: it fetches order-service's first service token and places nothing.
async fn shop_after_one_token_fetch(stall_after_first: bool, client_env: &[(&str, &str)]) -> (Shop, TokenTap) {
    let auth = Auth::with_service_token_ttl(Duration::from_secs(2)).await;
    let (tap, url) = TokenTap::start(&auth, stall_after_first).await;
    let shop = Shop::with_auth(Databases::sqlite(), client_env, auth, url).await;
    let customer = shop.customer("renewal@example.com").await;
    let (status, body) = shop.place(&customer, json!([{"sku": "NOT-SOLD-1", "quantity": 1}]), None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(tap.issued().len(), 1, "the order did not fetch exactly one service token");
    (shop, tap)
}

#[tokio::test]
async fn the_running_service_renews_its_token_in_the_background_with_no_order_placed() {
    let (shop, tap) = shop_after_one_token_fetch(false, &[]).await;
    let issued = tap.until_issued(2).await;
    assert_ne!(issued[0], issued[1], "auth-service issued the same token twice");
    shop.orders.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_a_token_renewal_under_way_at_once() {
    // A client timeout far beyond the deadline below: only shutdown can end the renewal.
    let (shop, tap) = shop_after_one_token_fetch(true, &[("ECOM_CLIENT_TIMEOUT_MS", "120000")]).await;
    tap.stalled.notified().await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), shop.orders.stop()).await;
    assert!(stopped.is_ok(), "order-service waited for the renewal under way");
    stopped.unwrap().unwrap();
}
