use api_gateway::Settings;
use api_gateway::settings::Upstreams;
use common::settings::ServerSettings;
use common::test_util::Running;

fn settings(auth: &str) -> Settings {
    let url = |s: &str| s.parse().unwrap();
    Settings {
        server: ServerSettings::for_tests(),
        upstreams: Upstreams {
            auth: url(auth),
            product: url("http://127.0.0.1:9"),
            order: url("http://127.0.0.1:9"),
            inventory: url("http://127.0.0.1:9"),
        },
    }
}

#[tokio::test]
async fn the_gateway_is_not_ready_while_auth_service_is_down_and_ready_once_it_answers() {
    // A real listener that is not serving yet stands in for the auth-service port.
    let auth_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let auth_addr = auth_listener.local_addr().unwrap();
    drop(auth_listener);

    let gateway_settings = settings(&format!("http://{auth_addr}"));
    let gateway = Running::spawn(move |l, s| api_gateway::run(gateway_settings, l, s)).await;
    let response = reqwest::get(gateway.url("/health/ready")).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("auth-service"), "{body}");

    let dir = tempfile::tempdir().unwrap();
    let auth_settings = auth_service::Settings {
        server: ServerSettings::for_tests(),
        database_url: format!("sqlite://{}/auth.db", dir.path().display()).parse().unwrap(),
        pool: Default::default(),
        admin: None,
    };
    let listener = tokio::net::TcpListener::bind(auth_addr).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let auth = tokio::spawn(auth_service::run(auth_settings, listener, shutdown.clone()));

    gateway.ready().await;
    gateway.stop().await.unwrap();
    shutdown.cancel();
    auth.await.unwrap().unwrap();
}
