//! One order's trace when every service is its own process, as in Kubernetes: each
//! exports its own spans, and only the W3C headers (and the outbox row and the Kafka
//! message) carry the trace from one to the next. The in-process real-stack test
//! shares one tracer and cannot see a context lost between processes.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::test_util::{ChildService, eventually, fresh_mysql_database, real_dependency, unique_name};
use serde_json::{Value, json};

use crate::BROKER;
use crate::real_stack::backends;

const ECOM: &str = env!("CARGO_BIN_EXE_ecom");
const ADMIN: (&str, &str) = ("admin@example.com", "admin-password-1");
/// The client's span, the parent of the gateway's.
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// A span as Jaeger's query API returns it.
#[derive(Debug)]
struct Span {
    service: String,
    name: String,
    id: String,
    parent: Option<String>,
    kind: String,
}

async fn trace(jaeger: &str, trace_id: &str) -> Vec<Span> {
    let Ok(response) = reqwest::get(format!("{jaeger}/api/traces/{trace_id}")).await else { return Vec::new() };
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let trace = &body["data"][0];
    let spans = trace["spans"].as_array().cloned().unwrap_or_default();
    spans
        .iter()
        .map(|s| {
            let process = s["processID"].as_str().unwrap_or_default();
            let tag = |key: &str| {
                s["tags"].as_array().into_iter().flatten().find(|t| t["key"] == key).and_then(|t| t["value"].as_str())
            };
            Span {
                service: trace["processes"][process]["serviceName"].as_str().unwrap_or_default().to_owned(),
                name: s["operationName"].as_str().unwrap_or_default().to_owned(),
                id: s["spanID"].as_str().unwrap_or_default().to_owned(),
                parent: s["references"][0]["spanID"].as_str().map(str::to_owned),
                kind: tag("span.kind").unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

/// What the trace should hold: (service, span name, kind), the server spans named by
/// method and route.
const JOURNEY: &[(&str, &str, &str)] = &[
    ("api-gateway", "POST /api/orders", "server"),
    ("order-service", "POST /api/orders", "server"),
    ("order-service", "place", ""),
    ("auth-service", "POST /internal/token", "server"),
    ("product-service", "GET /internal/products", "server"),
    ("inventory-service", "POST /internal/reservations", "server"),
    ("inventory-service", "reserve", ""),
    ("order-service", "publish ", "producer"),
    ("notification-service", "consume", "consumer"),
    ("notification-service", "send", ""),
];

fn holds(spans: &[Span], (service, name, kind): (&str, &str, &str)) -> bool {
    spans.iter().any(|s| s.service == service && s.name.starts_with(name) && (kind.is_empty() || s.kind == kind))
}

async fn serve(service: &str, env: &[(&str, String)], logs: &Path) -> ChildService {
    let mut env = env.to_vec();
    env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", real_dependency("ECOM_TEST_OTLP_ENDPOINT").unwrap_or_default()),
        // The batch goes out every 200 ms rather than every 5 s: the test waits for it.
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]);
    ChildService::start_with_args(ECOM, &["serve", service], &env, &logs.join(format!("{service}.log"))).await
}

async fn login(http: &reqwest::Client, gateway: &ChildService, email: &str, password: &str) -> String {
    let response =
        http.post(gateway.url("/api/auth/login")).json(&json!({"email": email, "password": password})).send().await;
    let body: Value = response.unwrap().json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_order_placed_across_separate_processes_is_one_trace_from_the_client_to_the_email() {
    let Some(b) = backends() else { return };
    let Some(jaeger) = real_dependency("ECOM_TEST_JAEGER_URL") else { return };
    if real_dependency("ECOM_TEST_OTLP_ENDPOINT").is_none() {
        return;
    }
    let _broker = BROKER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    let secret = ("ECOM_SERVICE_CLIENT_SECRET", uuid::Uuid::new_v4().simple().to_string());
    let (auth_db, inventory_db, order_db, notification_db) = tokio::join!(
        fresh_mysql_database(&b.mysql),
        fresh_mysql_database(&b.mysql),
        fresh_mysql_database(&b.mysql),
        fresh_mysql_database(&b.mysql),
    );
    let auth_env = [
        ("DATABASE_URL", auth_db.to_string()),
        ("ECOM_ADMIN_EMAIL", ADMIN.0.to_owned()),
        ("ECOM_ADMIN_PASSWORD", ADMIN.1.to_owned()),
        ("ECOM_JWT_SIGNING_KEY_FILE", logs.join("jwt-signing-key.pem").display().to_string()),
        ("ECOM_JWT_GENERATE_KEY", "true".to_owned()),
        secret.clone(),
    ];
    let auth = serve("auth-service", &auth_env, logs).await;
    let jwks = ("ECOM_JWKS_URL", auth.url("/.well-known/jwks.json"));
    let catalog = format!("{}/{}", b.mongodb.trim_end_matches('/'), unique_name("products"));
    let topic = unique_name("orders-traces");
    let order_env = |products: &ChildService, inventory: &ChildService| {
        [
            ("DATABASE_URL", order_db.to_string()),
            ("ECOM_KAFKA_BROKERS", b.brokers.clone()),
            ("ECOM_ORDERS_TOPIC", topic.clone()),
            ("ECOM_PRODUCT_URL", products.url("")),
            ("ECOM_INVENTORY_URL", inventory.url("")),
            ("ECOM_AUTH_URL", auth.url("")),
            secret.clone(),
            jwks.clone(),
        ]
    };
    let notification_env = [
        ("DATABASE_URL", notification_db.to_string()),
        ("ECOM_KAFKA_BROKERS", b.brokers.clone()),
        ("ECOM_ORDERS_TOPIC", topic.clone()),
        ("ECOM_KAFKA_GROUP", unique_name("notification-traces")),
        ("ECOM_SMTP_URL", b.smtp.clone()),
    ];
    let product_env = [("DATABASE_URL", catalog), jwks.clone()];
    let inventory_env = [("DATABASE_URL", inventory_db.to_string()), jwks.clone()];
    let (products, inventory, notification) = tokio::join!(
        serve("product-service", &product_env, logs),
        serve("inventory-service", &inventory_env, logs),
        serve("notification-service", &notification_env, logs),
    );
    let orders = serve("order-service", &order_env(&products, &inventory), logs).await;
    let gateway_env = [
        ("ECOM_AUTH_URL", auth.url("")),
        ("ECOM_PRODUCT_URL", products.url("")),
        ("ECOM_ORDER_URL", orders.url("")),
        ("ECOM_INVENTORY_URL", inventory.url("")),
    ];
    let gateway = serve("api-gateway", &gateway_env, logs).await;

    let http = reqwest::Client::new();
    let admin = login(&http, &gateway, ADMIN.0, ADMIN.1).await;
    let product = json!({"sku": "TRACE-MUG", "name": "Trace mug", "price": {"amount": 700, "currency": "EUR"}});
    let created = http.post(gateway.url("/api/products")).bearer_auth(&admin).json(&product).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let stocked = http.put(gateway.url("/api/inventory/TRACE-MUG")).bearer_auth(&admin);
    assert_eq!(stocked.json(&json!({"available": 5})).send().await.unwrap().status(), 200);
    let email = format!("{}@example.com", unique_name("traced"));
    let account = json!({"email": email, "password": "customer-password", "name": "Trace Customer"});
    let registered = http.post(gateway.url("/api/auth/register")).json(&account).send().await.unwrap();
    assert_eq!(registered.status(), 201);
    let token = login(&http, &gateway, &email, "customer-password").await;

    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let placed = http
        .post(gateway.url("/api/orders"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-{CLIENT_SPAN}-01"))
        .json(&json!({"lines": [{"sku": "TRACE-MUG", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);

    let complete = eventually(Duration::from_secs(20), || async {
        let spans = trace(&jaeger, &trace_id).await;
        JOURNEY.iter().all(|step| holds(&spans, *step)).then_some(spans)
    })
    .await;
    let spans = match complete {
        Some(spans) => spans,
        None => {
            let spans = trace(&jaeger, &trace_id).await;
            let seen: Vec<String> = spans.iter().map(|s| format!("{} [{}] {}", s.name, s.service, s.kind)).collect();
            let missing: Vec<_> = JOURNEY.iter().filter(|step| !holds(&spans, **step)).collect();
            panic!("the order's trace is incomplete: missing {missing:?}; it holds {seen:?}");
        }
    };
    // One tree: every span's parent is in the trace, but the gateway's, which is the client's.
    let ids: HashMap<&str, &Span> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    for span in &spans {
        match span.parent.as_deref() {
            Some(CLIENT_SPAN) => assert_eq!((span.service.as_str(), span.kind.as_str()), ("api-gateway", "server")),
            Some(parent) => assert!(ids.contains_key(parent), "{span:?} has a parent outside the trace"),
            None => panic!("{span:?} is a second root"),
        }
    }
    drop((gateway, orders, notification, products, inventory, auth));
}
