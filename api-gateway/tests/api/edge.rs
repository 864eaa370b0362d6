use std::time::{Duration, Instant};

use common::test_util::Running;
use serde_json::json;

use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, Platform, gateway_settings, stall_six_bodies};

#[tokio::test]
async fn admin_routes_need_a_token_and_the_admin_role() {
    let platform = Platform::start(&[]).await;
    let product = json!({"sku": "MUG-1", "name": "Mug"});

    let response = platform.post("/api/products", product.clone(), None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");

    let customer = platform.customer_token().await;
    let response = platform.post("/api/products", product.clone(), Some(&customer)).await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let response = platform
        .http
        .put(platform.url("/api/inventory/MUG-1"))
        .bearer_auth(&customer)
        .json(&json!({"available": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // The admin passes the gate; product-service is not running here, so the proxy answers 503.
    let admin = platform.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let response = platform.post("/api/products", product, Some(&admin)).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));

    let response = platform.http.get(platform.url("/api/orders")).send().await.unwrap();
    assert_eq!(response.status(), 401, "orders need a user");
}

#[tokio::test]
async fn internal_paths_and_unknown_paths_are_not_routed() {
    let platform = Platform::start(&[]).await;
    for path in ["/internal/reservations", "/internal/products?skus=A", "/api/unknown", "/api/auth/../internal/x"] {
        let response = platform.http.get(platform.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let response = platform.http.delete(platform.url("/internal/reservations/abc")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    // Nor the grant that hands out service tokens.
    let response = platform
        .http
        .post(platform.url("/internal/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn the_login_budget_runs_out_with_429_and_retry_after_while_other_routes_still_answer() {
    let platform = Platform::start(&[("ECOM_RATE_LIMIT_AUTH_PER_MINUTE", "3")]).await;
    let body = json!({"email": "x@example.com", "password": "wrong password"});
    for _ in 0..3 {
        assert_eq!(platform.post("/api/auth/login", body.clone(), None).await.status(), 401);
    }
    let response = platform.post("/api/auth/login", body, None).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    let jwks = platform.http.get(platform.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(jwks.status(), 200, "the general budget is separate");
}

#[tokio::test]
async fn the_general_budget_allows_a_burst_of_twice_the_rate_then_429() {
    let platform = Platform::start(&[("ECOM_RATE_LIMIT_PER_SECOND", "2"), ("ECOM_TRUST_FORWARDED_FOR", "true")]).await;
    // A client address of its own: the readiness polls of the start spent loopback's budget.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let request =
            platform.http.get(platform.url("/.well-known/jwks.json")).header("x-forwarded-for", "203.0.113.7");
        statuses.push(request.send().await.unwrap().status().as_u16());
    }
    assert!(statuses[..4].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn a_stopped_upstream_is_a_fast_503_and_the_gateway_recovers_when_it_returns() {
    let platform = Platform::start(&[("ECOM_BREAKER_MIN_CALLS", "2"), ("ECOM_BREAKER_OPEN_MS", "200")]).await;
    let Platform { gateway, auth, auth_settings, http, .. } = platform;
    let auth_addr = auth.addr;
    auth.stop().await.unwrap();

    let jwks = gateway.url("/.well-known/jwks.json");
    for _ in 0..4 {
        let started = Instant::now();
        let response = http.get(&jwks).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        assert!(started.elapsed() < Duration::from_secs(5), "a dead upstream must not hang the client");
    }
    // The breaker is open now: rejected without touching the upstream.
    let response = http.get(&jwks).send().await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("circuit open"), "{body}");

    // auth-service comes back on the same address.
    let listener = tokio::net::TcpListener::bind(auth_addr).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let restarted = tokio::spawn(auth_service::run(auth_settings, listener, shutdown.clone()));
    let recovered = common::test_util::eventually(Duration::from_secs(10), || {
        let request = http.get(&jwks).send();
        async move { request.await.ok().filter(|r| r.status() == 200) }
    })
    .await;
    assert!(recovered.is_some(), "the gateway did not recover");
    shutdown.cancel();
    restarted.await.unwrap().unwrap();
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn an_upstream_that_accepts_but_never_answers_costs_a_503_after_the_upstream_timeout() {
    let platform = Platform::start(&[]).await;
    // A socket that accepts connections and never writes a byte.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let mut settings = gateway_settings(platform.auth.addr, &[("ECOM_UPSTREAM_TIMEOUT_MS", "300")]);
    settings.upstreams.product = format!("http://{silent_addr}").parse().unwrap();
    let gateway = Running::spawn(move |l, s| api_gateway::run(settings, l, s)).await;
    gateway.ready().await;

    let started = Instant::now();
    let response = platform.http.get(gateway.url("/api/products")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    held.abort();
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413_and_the_request_id_travels_through() {
    let platform = Platform::start(&[]).await;
    let huge = "x".repeat(1024 * 1024 + 10);
    let response = platform
        .http
        .post(platform.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    let response = platform
        .http
        .post(platform.url("/api/auth/register"))
        .header("x-request-id", "edge-test-42")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(response.headers()["x-request-id"], "edge-test-42");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "edge-test-42", "the service saw the gateway's request id");
}

#[tokio::test]
async fn the_merged_openapi_document_and_the_docs_page_are_served_without_a_cdn() {
    let platform = Platform::start(&[]).await;
    let document: serde_json::Value =
        platform.http.get(platform.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    for path in ["/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout", "/api/auth/me"] {
        assert!(document["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(document["components"]["schemas"].get("TokensResponse").is_some());

    let page = platform.http.get(platform.url("/api/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(!html.contains("://cdn") && !html.contains("unpkg.com"), "the page loads assets from a CDN");
    let bundle = platform.http.get(platform.url("/api/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(bundle.status(), 200);
}

#[tokio::test]
async fn clients_that_stall_their_bodies_get_408_and_never_open_the_upstreams_breaker() {
    let platform = Platform::start(&[
        ("ECOM_BREAKER_MIN_CALLS", "2"),
        ("ECOM_BREAKER_WINDOW", "4"),
        ("ECOM_UPSTREAM_TIMEOUT_MS", "300"),
    ])
    .await;
    for stall in stall_six_bodies(platform.gateway.addr) {
        let answer =
            tokio::time::timeout(Duration::from_secs(30), stall).await.expect("no answer, or never closed").unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    platform.admin_logs_in_right_away().await;
}
