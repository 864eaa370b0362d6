use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use common::health::Health;
use common::http::Json;
use common::server::{self, StackConfig};
use common::settings::ServerSettings;
use common::test_util::Running;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EchoRequest {
    name: String,
    quantity: u32,
}

async fn echo(Json(body): Json<EchoRequest>) -> String {
    body.name
}

async fn boom() -> &'static str {
    panic!("handler bug")
}

fn stack_config() -> StackConfig {
    StackConfig {
        service: "test-service",
        request_timeout: Duration::from_secs(5),
        body_read_timeout: Duration::from_secs(3),
        leaf_request_span: false,
    }
}

async fn start(healthy: Arc<AtomicBool>) -> Running {
    common::test_util::init_telemetry();
    let health = Health::new().check("widget-store", move || {
        let healthy = healthy.clone();
        async move { if healthy.load(Ordering::SeqCst) { Ok(()) } else { Err("connection refused".to_owned()) } }
    });
    let routes = Router::new()
        .route("/echo", post(echo))
        .route("/boom", get(boom))
        .route("/items/{id}", get(|| async { "item" }));
    let app = server::stack(routes, health, stack_config());
    Running::spawn(move |listener, shutdown| async move {
        server::serve(listener, app, shutdown, &ServerSettings::for_tests()).await?;
        Ok(())
    })
    .await
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn problem(response: reqwest::Response) -> serde_json::Value {
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_sane_request_id_is_echoed_and_a_missing_one_is_generated() {
    let service = start(Arc::new(AtomicBool::new(true))).await;
    let response =
        client().get(service.url("/health/live")).header("x-request-id", "client-id-1").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-id-1");

    let response =
        client().get(service.url("/health/live")).header("x-request-id", "bad id with spaces").send().await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(generated, "bad id with spaces");
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    service.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_path_is_a_404_problem_carrying_the_request_id() {
    let service = start(Arc::new(AtomicBool::new(true))).await;
    let response = client().get(service.url("/nope")).header("x-request-id", "rid-404").send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body = problem(response).await;
    assert_eq!(body["status"], 404);
    assert_eq!(body["request_id"], "rid-404");
    service.stop().await.unwrap();
}

#[tokio::test]
async fn bodies_are_checked_for_type_syntax_fields_and_size() {
    let service = start(Arc::new(AtomicBool::new(true))).await;
    let url = service.url("/echo");

    let ok = client().post(&url).json(&serde_json::json!({"name": "a", "quantity": 1})).send().await.unwrap();
    assert_eq!(ok.status(), 200);

    let wrong_type = client().post(&url).header("content-type", "text/plain").body("{}").send().await.unwrap();
    assert_eq!(wrong_type.status(), 415);
    problem(wrong_type).await;

    let malformed =
        client().post(&url).header("content-type", "application/json").body("{\"name\":").send().await.unwrap();
    assert_eq!(malformed.status(), 400);
    problem(malformed).await;

    let unknown =
        client().post(&url).json(&serde_json::json!({"name": "a", "quantity": 1, "extra": true})).send().await.unwrap();
    assert_eq!(unknown.status(), 422);
    let body = problem(unknown).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("extra"), "{body}");

    let mistyped = client().post(&url).json(&serde_json::json!({"name": "a", "quantity": -1})).send().await.unwrap();
    assert_eq!(mistyped.status(), 422);
    let body = problem(mistyped).await;
    assert_eq!(body["errors"][0]["field"], "quantity", "{body}");

    let huge = format!("{{\"name\": \"{}\", \"quantity\": 1}}", "x".repeat(1024 * 1024 + 1));
    let too_large = client().post(&url).header("content-type", "application/json").body(huge).send().await.unwrap();
    assert_eq!(too_large.status(), 413);
    problem(too_large).await;
    service.stop().await.unwrap();
}

#[tokio::test]
async fn a_panicking_handler_answers_an_opaque_500_problem_with_its_request_id_and_is_counted() {
    let service = start(Arc::new(AtomicBool::new(true))).await;
    let response = client().get(service.url("/boom")).header("x-request-id", "boom-1").send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-request-id"], "boom-1");
    let body = problem(response).await;
    assert!(!body.to_string().contains("handler bug"));
    let text = client().get(service.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("http_server_requests_total")
            && l.contains("route=\"/boom\"")
            && l.contains("status=\"500\"")
            && l.contains("service=\"test-service\"")),
        "no 500 series for /boom in:\n{text}"
    );
    service.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_names_the_failing_dependency_and_recovers_without_a_restart() {
    let healthy = Arc::new(AtomicBool::new(true));
    let service = start(healthy.clone()).await;
    service.ready().await;

    healthy.store(false, Ordering::SeqCst);
    let response = client().get(service.url("/health/ready")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body = problem(response).await;
    assert!(body["detail"].as_str().unwrap().contains("widget-store: connection refused"), "{body}");
    assert_eq!(body["checks"]["widget-store"], "connection refused");

    // Liveness does not depend on the dependency.
    assert_eq!(client().get(service.url("/health/live")).send().await.unwrap().status(), 200);

    healthy.store(true, Ordering::SeqCst);
    assert_eq!(client().get(service.url("/health/ready")).send().await.unwrap().status(), 200);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_count_requests_by_matched_route_and_status() {
    let service = start(Arc::new(AtomicBool::new(true))).await;
    for id in ["1", "2", "3"] {
        client().get(service.url(&format!("/items/{id}"))).send().await.unwrap();
    }
    client().get(service.url("/unknown/path")).send().await.unwrap();
    let text = client().get(service.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_requests_total")
                && l.contains("route=\"/items/{id}\"")
                && l.contains("service=\"test-service\"")
        })
        .unwrap_or_else(|| panic!("no series for /items/{{id}} in:\n{text}"));
    assert!(line.contains("status=\"200\"") && line.contains("method=\"GET\""), "{line}");
    assert!(
        line.trim_end().ends_with(" 3") || line.split_whitespace().last().unwrap().parse::<f64>().unwrap() >= 3.0,
        "{line}"
    );
    assert!(text.contains("route=\"unmatched\""));
    assert!(text.contains("http_server_request_duration_seconds_bucket"));
    service.stop().await.unwrap();
}

#[tokio::test]
async fn a_traceparent_is_continued_and_returned() {
    let service = start(Arc::new(AtomicBool::new(true))).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = client()
        .get(service.url("/health/live"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    let returned = response.headers()["traceparent"].to_str().unwrap();
    assert!(returned.starts_with(&format!("00-{trace_id}-")), "{returned}");
    assert!(!returned.contains("00f067aa0ba902b7"), "the server's own span id is returned: {returned}");
    service.stop().await.unwrap();
}

/// A proxy's request span: the `traceparent` a handler would send upstream.
async fn start_leaf() -> Running {
    common::test_util::init_telemetry();
    let routes = Router::new().route(
        "/forwarded",
        get(|| async {
            let mut headers = http::HeaderMap::new();
            common::propagation::inject_http(&mut headers);
            headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
        }),
    );
    let app = server::stack(routes, Health::new(), StackConfig { leaf_request_span: true, ..stack_config() });
    Running::spawn(move |listener, shutdown| async move {
        server::serve(listener, app, shutdown, &ServerSettings::for_tests()).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_leaf_request_span_forwards_and_returns_a_child_of_the_incoming_traceparent() {
    let service = start_leaf().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    for flags in ["01", "00"] {
        let response = client()
            .get(service.url("/forwarded"))
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-{flags}"))
            .header("tracestate", "vendor=v1")
            .send()
            .await
            .unwrap();
        let returned = response.headers()["traceparent"].to_str().unwrap().to_owned();
        assert_eq!(response.headers()["tracestate"], "vendor=v1");
        let forwarded = response.text().await.unwrap();
        assert_eq!(forwarded, returned, "what goes upstream names the same span as what is returned");
        assert!(returned.starts_with(&format!("00-{trace_id}-")), "{returned}");
        assert!(returned.ends_with(&format!("-{flags}")), "{returned}");
        assert!(!returned.contains("00f067aa0ba902b7"), "the server's own span id is returned: {returned}");
    }
    service.stop().await.unwrap();
}

#[tokio::test]
async fn a_leaf_request_span_without_a_traceparent_starts_a_sampled_trace() {
    let service = start_leaf().await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let response = client().get(service.url("/forwarded")).send().await.unwrap();
        let returned = response.headers()["traceparent"].to_str().unwrap().to_owned();
        assert_eq!(response.text().await.unwrap(), returned);
        assert_eq!(returned.len(), 55, "{returned}");
        assert!(returned.starts_with("00-") && returned.ends_with("-01"), "{returned}");
        seen.push(returned[3..35].to_owned());
    }
    assert_ne!(seen[0], seen[1], "each request starts a trace of its own");
    service.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish_and_then_refuses_connections() {
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (e, r) = (entered.clone(), release.clone());
    let routes = Router::new().route(
        "/held",
        get(move || async move {
            e.notify_one();
            r.notified().await;
            "done"
        }),
    );
    let app = server::stack(routes, Health::new(), stack_config());
    let service = Running::spawn(move |listener, shutdown| async move {
        server::serve(listener, app, shutdown, &ServerSettings::for_tests()).await?;
        Ok(())
    })
    .await;
    let url = service.url("/held");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    entered.notified().await;

    service.shutdown.cancel();
    release.notify_one();
    let addr = service.addr;
    service.stop().await.unwrap();
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "done");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_by_the_body_read_timeout_before_the_request_timeout_answers_503() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let routes = Router::new().route("/echo", post(echo));
    let config = StackConfig { body_read_timeout: Duration::from_millis(300), ..stack_config() };
    let app = server::stack(routes, Health::new(), config);
    let service = Running::spawn(move |listener, shutdown| async move {
        server::serve(listener, app, shutdown, &ServerSettings::for_tests()).await?;
        Ok(())
    })
    .await;
    let mut socket = tokio::net::TcpStream::connect(service.addr).await.unwrap();
    let head =
        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n{\"name\"";
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer and the connection still open after 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("/problems/request-timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}: the request timeout is 5 s", started.elapsed());
    service.stop().await.unwrap();
}

#[tokio::test]
async fn the_metrics_listener_answers_metrics_and_health_and_nothing_else() {
    common::test_util::init_telemetry();
    let routes = Router::new().route("/internal/secrets", get(|| async { "internal" }));
    let app = server::stack(routes, Health::new(), stack_config());
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_url = format!("http://{}", metrics.local_addr().unwrap());
    let service = Running::spawn(move |listener, shutdown| async move {
        server::serve_with_metrics(listener, Some(metrics), app, shutdown, &ServerSettings::for_tests()).await?;
        Ok(())
    })
    .await;

    let get = |url: String| async move { client().get(url).send().await.unwrap() };
    assert_eq!(get(service.url("/internal/secrets")).await.status(), 200, "the API stays on its own port");
    let scraped = get(format!("{metrics_url}/metrics")).await;
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("http_server_requests_total"));
    assert_eq!(get(format!("{metrics_url}/health/live")).await.status(), 200);
    assert_eq!(get(format!("{metrics_url}/health/ready")).await.status(), 200);
    for path in ["/internal/secrets", "/", "/metrics/../internal/secrets", "/healthz"] {
        assert_eq!(get(format!("{metrics_url}{path}")).await.status(), 404, "{path} on the metrics listener");
    }
}

#[tokio::test]
async fn a_metrics_address_equal_to_the_service_address_names_the_variable() {
    let env = common::settings::Env::from_pairs([
        ("ECOM_BIND_ADDR", "0.0.0.0:8082"),
        ("ECOM_METRICS_BIND_ADDR", "0.0.0.0:8082"),
    ]);
    let err = ServerSettings::from_env(&env, 8082).unwrap_err();
    assert!(err.to_string().contains("ECOM_METRICS_BIND_ADDR"), "{err}");
}
