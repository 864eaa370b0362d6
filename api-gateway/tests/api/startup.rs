use common::test_util::Running;

use crate::support;

#[tokio::test]
async fn the_gateway_is_not_ready_until_it_holds_the_signing_keys_of_auth_service() {
    // A real listener that is not serving yet stands in for the auth-service port.
    let auth_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let auth_addr = auth_listener.local_addr().unwrap();
    drop(auth_listener);

    let gateway_settings = support::gateway_settings(auth_addr, &[]);
    let gateway = Running::spawn(move |l, s| api_gateway::run(gateway_settings, l, s)).await;
    let response = reqwest::get(gateway.url("/health/ready")).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("jwks"), "{body}");

    let dir = tempfile::tempdir().unwrap();
    let auth_settings = support::auth_settings(dir.path());
    let listener = tokio::net::TcpListener::bind(auth_addr).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let auth = tokio::spawn(auth_service::run(auth_settings, listener, shutdown.clone()));

    gateway.ready().await;
    gateway.stop().await.unwrap();
    shutdown.cancel();
    auth.await.unwrap().unwrap();
}
