//! The six services on the real backends: MariaDB, FerretDB, Kafka and Mailpit. An
//! order placed through the gateway travels the outbox, the relay, the topic and the
//! consumer to become exactly one email.

use std::collections::HashMap;
use std::time::Duration;

use common::settings::Env;
use common::test_util::{
    Running, eventually, fresh_mysql_database, kafka_group_caught_up, mailpit_subjects, real_dependency, unique_name,
};
use serde_json::{Value, json};

use crate::{BROKER, BrokerStopped};

pub(crate) struct Backends {
    pub(crate) mysql: String,
    pub(crate) mongodb: String,
    pub(crate) brokers: String,
    pub(crate) smtp: String,
    pub(crate) mailpit: String,
}

pub(crate) fn backends() -> Option<Backends> {
    Some(Backends {
        mysql: real_dependency("ECOM_TEST_MYSQL_URL")?,
        mongodb: real_dependency("ECOM_TEST_MONGODB_URL")?,
        brokers: real_dependency("ECOM_TEST_KAFKA_BROKERS")?,
        smtp: real_dependency("ECOM_TEST_SMTP_URL")?,
        mailpit: real_dependency("ECOM_TEST_MAILPIT_URL")?,
    })
}

struct Platform {
    gateway: Running,
    notification: Running,
    _rest: Vec<Running>,
    http: reqwest::Client,
    admin: String,
    topic: String,
    group: String,
    order_db: url::Url,
}

impl Platform {
    async fn start(b: &Backends) -> Self {
        let topic = unique_name("orders-e2e");
        let group = unique_name("notification-e2e");
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem").display().to_string();
        std::mem::forget(dir);
        let env = |pairs: &[(&str, String)]| Env::from_pairs(pairs.iter().map(|(k, v)| (*k, v.clone())));
        let service_secret = ("ECOM_SERVICE_CLIENT_SECRET", uuid::Uuid::new_v4().simple().to_string());

        let auth = auth_service::Settings::from_env(&env(&[
            ("DATABASE_URL", fresh_mysql_database(&b.mysql).await.to_string()),
            ("ECOM_ADMIN_EMAIL", "admin@example.com".into()),
            ("ECOM_ADMIN_PASSWORD", "admin-password-1".into()),
            ("ECOM_JWT_SIGNING_KEY_FILE", key),
            ("ECOM_JWT_GENERATE_KEY", "true".into()),
            service_secret.clone(),
        ]))
        .unwrap();
        let auth = Running::spawn(move |l, s| auth_service::run(auth, l, s)).await;
        auth.ready().await;
        let jwks = ("ECOM_JWKS_URL", auth.url("/.well-known/jwks.json"));

        let products = product_service::Settings::from_env(&env(&[
            ("DATABASE_URL", format!("{}/{}", b.mongodb.trim_end_matches('/'), unique_name("products"))),
            jwks.clone(),
        ]))
        .unwrap();
        let products = Running::spawn(move |l, s| product_service::run(products, l, s)).await;
        let inventory = inventory_service::Settings::from_env(&env(&[
            ("DATABASE_URL", fresh_mysql_database(&b.mysql).await.to_string()),
            jwks.clone(),
        ]))
        .unwrap();
        let inventory = Running::spawn(move |l, s| inventory_service::run(inventory, l, s)).await;
        let order_db = fresh_mysql_database(&b.mysql).await;
        let orders = order_service::Settings::from_env(&env(&[
            ("DATABASE_URL", order_db.to_string()),
            ("ECOM_KAFKA_BROKERS", b.brokers.clone()),
            ("ECOM_ORDERS_TOPIC", topic.clone()),
            ("ECOM_PRODUCT_URL", products.url("")),
            ("ECOM_INVENTORY_URL", inventory.url("")),
            ("ECOM_AUTH_URL", auth.url("")),
            service_secret.clone(),
            jwks.clone(),
        ]))
        .unwrap();
        let orders = Running::spawn(move |l, s| order_service::run(orders, l, s)).await;
        let notification = notification_service::Settings::from_env(&env(&[
            ("DATABASE_URL", fresh_mysql_database(&b.mysql).await.to_string()),
            ("ECOM_KAFKA_BROKERS", b.brokers.clone()),
            ("ECOM_ORDERS_TOPIC", topic.clone()),
            ("ECOM_KAFKA_GROUP", group.clone()),
            ("ECOM_SMTP_URL", b.smtp.clone()),
        ]))
        .unwrap();
        let notification = Running::spawn(move |l, s| notification_service::run(notification, l, s)).await;
        let gateway = api_gateway::Settings::from_env(&env(&[
            ("ECOM_AUTH_URL", auth.url("")),
            ("ECOM_PRODUCT_URL", products.url("")),
            ("ECOM_ORDER_URL", orders.url("")),
            ("ECOM_INVENTORY_URL", inventory.url("")),
        ]))
        .unwrap();
        let gateway = Running::spawn(move |l, s| api_gateway::run(gateway, l, s)).await;
        for service in [&products, &inventory, &orders, &notification, &gateway] {
            service.ready().await;
        }

        let http = reqwest::Client::new();
        let admin = login(&http, &gateway, "admin@example.com", "admin-password-1").await;
        Self {
            gateway,
            notification,
            _rest: vec![auth, products, inventory, orders],
            http,
            admin,
            topic,
            group,
            order_db,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, self.gateway.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn product(&self, sku: &str, amount: i64, stock: i64) {
        let product = json!({"sku": sku, "name": format!("{sku} mug"), "price": {"amount": amount, "currency": "EUR"}});
        let (status, body) = self.call(reqwest::Method::POST, "/api/products", &self.admin, Some(product)).await;
        assert_eq!(status, 201, "{body}");
        let path = format!("/api/inventory/{sku}");
        let (status, body) =
            self.call(reqwest::Method::PUT, &path, &self.admin, Some(json!({"available": stock}))).await;
        assert_eq!(status, 200, "{body}");
    }

    /// A new customer's (email, token).
    async fn customer(&self, name: &str) -> (String, String) {
        let email = format!("{}@example.com", unique_name("customer"));
        let response = self
            .http
            .post(self.gateway.url("/api/auth/register"))
            .json(&json!({"email": email, "password": "customer-password", "name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let token = login(&self.http, &self.gateway, &email, "customer-password").await;
        (email, token)
    }

    async fn unsent_events(&self) -> i64 {
        let pool = sqlx::MySqlPool::connect(self.order_db.as_str()).await.unwrap();
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }

    /// Waits until every event is published and the consumer group committed them all:
    /// from then on no email can still be on its way.
    async fn settle(&self, brokers: &str) {
        let published =
            eventually(Duration::from_secs(60), || async { (self.unsent_events().await == 0).then_some(()) }).await;
        assert!(published.is_some(), "the outbox never emptied");
        let consumed = eventually(Duration::from_secs(60), || {
            let (brokers, group, topic) = (brokers.to_owned(), self.group.clone(), self.topic.clone());
            async move {
                tokio::task::spawn_blocking(move || kafka_group_caught_up(&brokers, &group, &topic))
                    .await
                    .unwrap()
                    .then_some(())
            }
        })
        .await;
        assert!(consumed.is_some(), "notification-service never caught up with the topic");
    }
}

async fn login(http: &reqwest::Client, gateway: &Running, email: &str, password: &str) -> String {
    let response =
        http.post(gateway.url("/api/auth/login")).json(&json!({"email": email, "password": password})).send().await;
    let body: Value = response.unwrap().json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn message_text(mailpit: &str, address: &str, subject_part: &str) -> Value {
    let query = format!("to:\"{address}\" subject:\"{subject_part}\"");
    let http = reqwest::Client::new();
    let found: Value = http
        .get(format!("{mailpit}/api/v1/search"))
        .query(&[("query", query.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = found["messages"][0]["ID"].as_str().unwrap();
    http.get(format!("{mailpit}/api/v1/message/{id}")).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn an_order_through_the_gateway_sends_one_confirmation_and_its_cancellation_one_cancellation_email() {
    let Some(b) = backends() else { return };
    let _broker = BROKER.lock().await;
    let platform = Platform::start(&b).await;
    platform.product("E2E-MUG", 1299, 100).await;
    let (email, token) = platform.customer("Grace Hopper").await;

    let lines = json!({"lines": [{"sku": "E2E-MUG", "quantity": 2}]});
    let (status, order) = platform.call(reqwest::Method::POST, "/api/orders", &token, Some(lines)).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_owned();
    let confirmed = eventually(Duration::from_secs(60), || async {
        (!mailpit_subjects(&b.mailpit, &email).await.is_empty()).then_some(())
    })
    .await;
    assert!(confirmed.is_some(), "no confirmation email");

    let (status, cancelled) =
        platform.call(reqwest::Method::POST, &format!("/api/orders/{id}/cancel"), &token, None).await;
    assert_eq!(status, 200, "{cancelled}");
    platform.settle(&b.brokers).await;

    let subjects = mailpit_subjects(&b.mailpit, &email).await;
    assert_eq!(subjects.len(), 2, "one email per event: {subjects:?}");
    assert!(subjects.iter().all(|s| s.contains(&id)), "{subjects:?}");
    let confirmation = message_text(&b.mailpit, &email, "confirmed").await;
    let text = confirmation["Text"].as_str().unwrap();
    for expected in [id.as_str(), "Grace Hopper", "E2E-MUG", "25.98"] {
        assert!(text.contains(expected), "confirmation lacks {expected}: {text}");
    }
    assert!(confirmation["HTML"].as_str().unwrap().contains(&id));
    let cancellation = message_text(&b.mailpit, &email, "cancelled").await;
    assert!(cancellation["Text"].as_str().unwrap().contains(&id));

    // The consumer reports its lag per partition (from the client's statistics).
    let lag = eventually(Duration::from_secs(20), || async {
        let metrics = reqwest::get(platform.notification.url("/metrics")).await.ok()?.text().await.ok()?;
        metrics
            .lines()
            .any(|l| l.starts_with("kafka_consumer_lag{") && l.contains(&platform.topic) && l.ends_with(" 0"))
            .then_some(())
    })
    .await;
    assert!(lag.is_some(), "no kafka_consumer_lag series for the topic");
}

#[tokio::test]
async fn with_the_broker_stopped_fifty_orders_are_placed_and_fifty_emails_arrive_once_it_returns() {
    let Some(b) = backends() else { return };
    common::test_util::init_telemetry();
    let _broker = BROKER.lock().await;
    let platform = Platform::start(&b).await;
    platform.product("E2E-DOWN", 500, 100).await;
    let (email, token) = platform.customer("Katherine Johnson").await;

    let stopped = tokio::task::spawn_blocking(BrokerStopped::new).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..50 {
        let lines = json!({"lines": [{"sku": "E2E-DOWN", "quantity": 1}]});
        let (status, order) = platform.call(reqwest::Method::POST, "/api/orders", &token, Some(lines)).await;
        assert_eq!(status, 201, "a placement failed while the broker was away: {order}");
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(platform.unsent_events().await, 50, "the events wait in the outbox");
    tokio::task::spawn_blocking(move || drop(stopped)).await.unwrap();

    let arrived = eventually(Duration::from_secs(120), || async {
        (mailpit_subjects(&b.mailpit, &email).await.len() >= 50).then_some(())
    })
    .await;
    let (unsent, emails) = (platform.unsent_events().await, mailpit_subjects(&b.mailpit, &email).await.len());
    assert!(arrived.is_some(), "after the broker returned: {unsent} events unsent, {emails} of 50 emails");
    platform.settle(&b.brokers).await;
    let mut per_order: HashMap<&str, usize> = HashMap::new();
    for subject in mailpit_subjects(&b.mailpit, &email).await {
        if let Some(id) = ids.iter().find(|id| subject.contains(id.as_str())) {
            *per_order.entry(id).or_default() += 1;
        }
    }
    assert_eq!(per_order.len(), 50, "every order has its email");
    assert!(per_order.values().all(|n| *n == 1), "an email was sent twice: {per_order:?}");
}

/// A span of a trace as Jaeger's query API returns it.
struct Span {
    name: String,
    tags: HashMap<String, String>,
}

async fn trace_spans(jaeger: &str, trace_id: &str) -> Vec<Span> {
    let Ok(response) = reqwest::get(format!("{jaeger}/api/traces/{trace_id}")).await else { return Vec::new() };
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let spans = body["data"][0]["spans"].as_array().cloned().unwrap_or_default();
    spans
        .iter()
        .map(|s| Span {
            name: s["operationName"].as_str().unwrap_or_default().to_owned(),
            tags: s["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let value = t["value"].as_str().map_or_else(|| t["value"].to_string(), str::to_owned);
                    (t["key"].as_str().unwrap_or_default().to_owned(), value)
                })
                .collect(),
        })
        .collect()
}

#[tokio::test]
async fn one_placed_order_is_one_trace_in_the_trace_backend_from_the_gateway_to_the_email() {
    let Some(b) = backends() else { return };
    let Some(jaeger) = real_dependency("ECOM_TEST_JAEGER_URL") else { return };
    if real_dependency("ECOM_TEST_OTLP_ENDPOINT").is_none() {
        return;
    }
    common::test_util::init_telemetry();
    let _broker = BROKER.lock().await;
    let platform = Platform::start(&b).await;
    platform.product("E2E-TRACE", 700, 10).await;
    let (email, token) = platform.customer("Barbara Liskov").await;

    // The client starts the trace: its id is the one to look up.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let response = platform
        .http
        .post(platform.gateway.url("/api/orders"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"lines": [{"sku": "E2E-TRACE", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(response.headers()["traceparent"].to_str().unwrap().contains(&trace_id));
    let emailed = eventually(Duration::from_secs(60), || async {
        (!mailpit_subjects(&b.mailpit, &email).await.is_empty()).then_some(())
    })
    .await;
    assert!(emailed.is_some(), "no email");

    let served_by = |spans: &[Span], service: &str| {
        spans.iter().any(|s| {
            s.tags.get("service").is_some_and(|v| v == service)
                && s.tags.get("span.kind").is_some_and(|k| k == "server")
        })
    };
    // Spans are exported in batches every few seconds: poll until the whole journey is there.
    let complete = eventually(Duration::from_secs(60), || async {
        let spans = trace_spans(&jaeger, &trace_id).await;
        let has = |name: &str| spans.iter().any(|s| s.name.starts_with(name));
        let services = ["api-gateway", "order-service", "product-service", "inventory-service"];
        (services.iter().all(|s| served_by(&spans, s))
            && has("insert_pending")
            && has("reserve")
            && has("publish ")
            && has("consume")
            && has("handle")
            && has("send"))
        .then_some(spans)
    })
    .await;
    let spans = trace_spans(&jaeger, &trace_id).await;
    let names: Vec<String> =
        spans.iter().map(|s| format!("{} [{}]", s.name, s.tags.get("service").map_or("", String::as_str))).collect();
    assert!(complete.is_some(), "the order's trace is incomplete: {names:?}");
    let publish = spans.iter().find(|s| s.name.starts_with("publish ")).unwrap();
    assert_eq!(publish.tags.get("span.kind").map(String::as_str), Some("producer"), "{names:?}");
    let consume = spans.iter().find(|s| s.name.starts_with("consume")).unwrap();
    assert_eq!(consume.tags.get("span.kind").map(String::as_str), Some("consumer"), "{names:?}");
}
