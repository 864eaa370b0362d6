//! The log lines of a real run: JSON, correlated with traces and requests, and free of
//! secrets.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "admin-secret-password-7";
const CUSTOMER_PASSWORD: &str = "customer-secret-password-9";
const BOGUS_TOKEN: &str = "not.a-real-token.SECRETSECRET";

/// Register, log in, refresh, order, look at yourself, and one bad token: every
/// secret the platform handles passes through. Returns the tokens it saw.
async fn traffic(gateway: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{gateway}{path}");
    let post = |path: &str, token: Option<&str>, body: Value| {
        test_support::send(test_support::bearer(http.post(api(path)).json(&body), token))
    };
    let (status, admin) =
        post("/api/auth/login", None, json!({"email": "logs@example.com", "password": ADMIN_PASSWORD})).await;
    assert_eq!(status, 200, "{admin}");
    let admin_token = admin["access_token"].as_str().unwrap().to_owned();
    let product = json!({"sku": "LOG-1", "name": "Log", "price": {"amount": 100, "currency": "EUR"}});
    assert_eq!(post("/api/products", Some(&admin_token), product).await.0, 201);
    let stock =
        http.put(api("/api/inventory/LOG-1")).bearer_auth(&admin_token).json(&json!({"available": 5})).send().await;
    assert_eq!(stock.unwrap().status(), 200);

    let customer = json!({"email": "reader@example.com", "password": CUSTOMER_PASSWORD, "name": "Reader"});
    assert_eq!(post("/api/auth/register", None, customer).await.0, 201);
    let (_, tokens) =
        post("/api/auth/login", None, json!({"email": "reader@example.com", "password": CUSTOMER_PASSWORD})).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, renewed) = post("/api/auth/refresh", None, json!({"refresh_token": refresh})).await;
    assert_eq!(status, 200, "{renewed}");
    let access = renewed["access_token"].as_str().unwrap().to_owned();
    let (status, order) = post("/api/orders", Some(&access), json!({"lines": [{"sku": "LOG-1", "quantity": 1}]})).await;
    assert_eq!(status, 201, "{order}");
    let me = http.get(api("/api/auth/me")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let bogus = http.get(api("/api/orders")).bearer_auth(BOGUS_TOKEN).send().await.unwrap();
    assert_eq!(bogus.status(), 401);
    vec![
        admin_token,
        admin["refresh_token"].as_str().unwrap().to_owned(),
        tokens["access_token"].as_str().unwrap().to_owned(),
        refresh,
        access,
        renewed["refresh_token"].as_str().unwrap().to_owned(),
    ]
}

#[test]
fn json_logs_carry_trace_span_and_request_ids_and_never_a_password_or_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["dev", "--any-ports", "--data-dir"])
        .arg(dir.path())
        .env("ECOM_ADMIN_EMAIL", "logs@example.com")
        .env("ECOM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("ECOM_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = test_support::PipeLines::read(vec![
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines.so_far().iter().any(|l| l.contains("Ctrl-C stops it")) {
        assert!(Instant::now() < deadline, "ecom dev never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let gateway = crate::listener_urls(lines.so_far().iter().map(String::as_str))
        .into_iter()
        .find_map(|(name, url)| (name == "gateway").then_some(url))
        .expect("the banner names the gateway");
    let tokens = runtime.block_on(traffic(&gateway));

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
    let lines = lines.all();

    let json: Vec<Value> =
        lines.iter().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(json.len() > 20, "too few log lines: {}", json.len());
    for line in &json {
        for key in ["timestamp", "level", "service", "target", "message"] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
    }
    let served: Vec<&Value> = json.iter().filter(|l| l["message"] == "request served").collect();
    assert!(!served.is_empty());
    for line in &served {
        assert_eq!(line["trace_id"].as_str().unwrap().len(), 32, "{line}");
        assert_eq!(line["span_id"].as_str().unwrap().len(), 16, "{line}");
        assert!(!line["request_id"].as_str().unwrap().is_empty(), "{line}");
    }
    let services: std::collections::BTreeSet<&str> = served.iter().filter_map(|l| l["service"].as_str()).collect();
    for service in ["api-gateway", "auth-service", "order-service", "product-service", "inventory-service"] {
        assert!(services.contains(service), "no request line from {service}: {services:?}");
    }
    // One request's lines share its ids across services: the gateway's and order-service's.
    let order_lines: Vec<&&Value> =
        served.iter().filter(|l| l["url.path"] == "/api/orders" && l["http.request.method"] == "POST").collect();
    let trace_ids: std::collections::BTreeSet<&str> =
        order_lines.iter().filter_map(|l| l["trace_id"].as_str()).collect();
    assert!(order_lines.len() >= 2 && trace_ids.len() < order_lines.len(), "{order_lines:?}");

    for secret in tokens.iter().map(String::as_str).chain([ADMIN_PASSWORD, CUSTOMER_PASSWORD, BOGUS_TOKEN]) {
        let leaked: Vec<&String> = lines.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaked.is_empty(), "a secret is in the logs: {leaked:?}");
    }
    assert!(!lines.iter().any(|l| l.to_ascii_lowercase().contains("bearer ")), "an Authorization header was logged");
}
