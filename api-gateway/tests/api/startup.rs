use common::settings::Env;
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

#[tokio::test]
async fn the_gateway_takes_its_metrics_listener_from_the_common_setting_and_refuses_the_old_name() {
    let dir = tempfile::tempdir().unwrap();
    let auth = test_support::start_auth(support::auth_settings(dir.path())).await;
    // A port free a moment ago: the setting names an address, the gateway binds it.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let env = Env::from_pairs([("ECOM_METRICS_BIND_ADDR", free.to_string())]);
    let parsed = api_gateway::Settings::from_env(&env).unwrap();
    assert_eq!(parsed.server.metrics_bind_addr, Some(free));
    let mut settings = support::gateway_settings(auth.addr, &[]);
    settings.server.metrics_bind_addr = parsed.server.metrics_bind_addr;
    let gateway = Running::spawn(move |l, s| api_gateway::run(settings, l, s)).await;
    gateway.ready().await;
    let scraped = reqwest::get(format!("http://{free}/metrics")).await.unwrap();
    assert_eq!(scraped.status(), 200, "the metrics listener is where the setting says");
    let metrics = reqwest::get(gateway.url("/metrics")).await.unwrap();
    assert_eq!(metrics.status(), 404, "never on the public listener");
    gateway.stop().await.unwrap();

    let old = Env::from_pairs([("ECOM_OPS_BIND_ADDR", "127.0.0.1:9080")]);
    let err = api_gateway::Settings::from_env(&old).unwrap_err();
    assert!(err.to_string().contains("ECOM_METRICS_BIND_ADDR"), "{err}");
}

#[test]
fn an_https_upstream_is_refused_at_start_since_the_gateway_speaks_plain_http_to_services() {
    for var in ["ECOM_AUTH_URL", "ECOM_PRODUCT_URL", "ECOM_ORDER_URL", "ECOM_INVENTORY_URL"] {
        let env = Env::from_pairs([(var, "https://service.internal:8443")]);
        let err = api_gateway::Settings::from_env(&env).unwrap_err().to_string();
        assert!(err.contains(var) && err.contains("\"https\""), "{var}: {err}");
    }
}
