//! The service token is renewed in the background once half its lifetime has passed,
//! so no customer request waits for auth-service while the current token is good.

use std::time::Duration;

use common::auth::ClientCredentials;
use common::client::{ClientConfig, ResilientClient};
use order_service::service_token::ServiceToken;
use test_support::{Auth, SERVICE_CLIENT};
use tokio::time::Instant;

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
}
