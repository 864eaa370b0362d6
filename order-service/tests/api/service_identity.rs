//! order-service proves its identity to product- and inventory-service with a service
//! token from auth-service; without the right client secret it cannot touch stock.

use common::auth::ClientCredentials;
use common::client::{ClientConfig, ResilientClient};
use common::test_util::Running;
use order_service::clients::Products;
use order_service::service_token::ServiceToken;
use serde_json::json;

use crate::support::Shop;

fn client() -> ResilientClient {
    ResilientClient::new("test", &ClientConfig::from_env(&common::settings::Env::default()).unwrap()).unwrap()
}

fn token_source(shop: &Shop, secret: &str) -> ServiceToken {
    let credentials = ClientCredentials::new("order-service", secret).unwrap();
    ServiceToken::new(client(), &shop.auth.url("").parse().unwrap(), credentials).unwrap()
}

#[tokio::test]
async fn the_service_token_is_fetched_once_reused_and_fetched_again_once_refused() {
    let mut shop = Shop::on_sqlite().await.selling(&[("SI-1", 500, "EUR", 3)]).await;
    let tokens = token_source(&shop, &shop.auth.service_secret);

    let first = tokens.bearer().await.unwrap();
    assert_eq!(tokens.bearer().await.unwrap(), first, "a valid token was not reused");
    // A clone shares the cache: one token for product- and inventory-service.
    assert_eq!(tokens.clone().bearer().await.unwrap(), first);

    // auth-service now signs with a new key and no longer publishes the old one: a
    // product-service that fetches the key set from now on refuses the cached token.
    shop.auth.rotate_signing_key().await;
    let settings = shop.product_settings.clone();
    let products = Running::spawn(move |l, s| product_service::run(settings, l, s)).await;
    products.ready().await;
    let lookup = |token: &str| shop.http.get(products.url("/internal/products?skus=SI-1")).bearer_auth(token).send();
    assert_eq!(lookup(&first).await.unwrap().status(), 401, "the old key still verifies");

    // The lookup is refused with the cached token, drops it and is sent again with a new one.
    let catalog = Products { client: client(), base: products.url("").parse().unwrap(), token: tokens.clone() };
    let found = catalog.lookup(&["SI-1".parse().unwrap()]).await.unwrap();
    assert_eq!(found["SI-1"].price.amount, 500, "{found:?}");
    let second = tokens.bearer().await.unwrap();
    assert_ne!(second, first, "a refused token was sent again");
    assert_eq!(lookup(&second).await.unwrap().status(), 200);
    products.stop().await.unwrap();
}

#[tokio::test]
async fn an_order_service_with_the_wrong_client_secret_answers_503_and_reserves_nothing() {
    let shop = Shop::on_sqlite().await.selling(&[("SI-2", 700, "EUR", 4)]).await;
    let customer = shop.customer("impostor-victim@example.com").await;

    let wrong = test_support::random_secret();
    let impostor_dir = tempfile::tempdir().unwrap();
    let settings = order_service::Settings {
        database_url: test_support::sqlite_url(impostor_dir.path(), "orders.db").into(),
        service_client: ClientCredentials::new("order-service", &wrong).unwrap(),
        ..shop.order_settings.clone()
    };
    let impostor = Running::spawn(move |l, s| order_service::run(settings, l, s)).await;
    impostor.ready().await;

    let response = shop
        .http
        .post(impostor.url("/api/orders"))
        .bearer_auth(&customer)
        .json(&json!({"lines": [{"sku": "SI-2", "quantity": 4}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(shop.stock("SI-2").await, (4, 0), "stock moved without a service token");

    // The right secret, same everything else: the order goes through.
    let (status, order) = shop.place(&customer, json!([{"sku": "SI-2", "quantity": 4}]), None).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(shop.stock("SI-2").await, (0, 4));
    impostor.stop().await.unwrap();
}
