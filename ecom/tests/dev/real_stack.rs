//! The six services on the real backends: MariaDB, FerretDB, Kafka and Mailpit. An
//! order placed through the gateway travels the outbox, the relay, the topic and the
//! consumer to become exactly one email.

use std::collections::HashMap;
use std::time::Duration;

use common::test_util::{
    eventually, fresh_mysql_database, kafka_group_settles, mailpit_subjects, real_dependency, unique_name,
};
use serde_json::{Value, json};

use crate::jaeger;
use crate::platform::{self, Host, Platform};
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

/// The names one run's services share on the stack: the topic, the consumer group and
/// order-service's database.
pub(crate) struct Run {
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) order_db: url::Url,
}

impl Backends {
    /// Every service on its own fresh database (or catalog), order- and
    /// notification-service on a topic and group of their own named after `prefix`.
    pub(crate) async fn services(&self, prefix: &str) -> (platform::Backends, Run) {
        let (auth_db, inventory_db, order_db, notification_db) = tokio::join!(
            fresh_mysql_database(&self.mysql),
            fresh_mysql_database(&self.mysql),
            fresh_mysql_database(&self.mysql),
            fresh_mysql_database(&self.mysql),
        );
        let run = Run {
            topic: unique_name(&format!("orders-{prefix}")),
            group: unique_name(&format!("notification-{prefix}")),
            order_db,
        };
        let kafka = |more: &[(&'static str, String)]| {
            let mut pairs =
                vec![("ECOM_KAFKA_BROKERS", self.brokers.clone()), ("ECOM_ORDERS_TOPIC", run.topic.clone())];
            pairs.extend_from_slice(more);
            pairs
        };
        let services = platform::Backends {
            auth: vec![("DATABASE_URL", auth_db.to_string())],
            product: vec![(
                "DATABASE_URL",
                format!("{}/{}", self.mongodb.trim_end_matches('/'), unique_name("products")),
            )],
            inventory: vec![("DATABASE_URL", inventory_db.to_string())],
            order: kafka(&[("DATABASE_URL", run.order_db.to_string())]),
            notification: kafka(&[
                ("DATABASE_URL", notification_db.to_string()),
                ("ECOM_KAFKA_GROUP", run.group.clone()),
                ("ECOM_SMTP_URL", self.smtp.clone()),
            ]),
        };
        (services, run)
    }
}

/// The platform in this process on the plain stack.
struct Stack {
    platform: Platform,
    run: Run,
}

/// A customer of the shop: (email, access token).
type Customer = (String, String);

impl Stack {
    /// The platform with `sku` in stock and a new customer named `name`.
    async fn shop(b: &Backends, (sku, amount, stock): (&str, i64, i64), name: &str) -> (Self, Customer) {
        let (services, run) = b.services("e2e").await;
        let platform = Platform::start(services, Host::InProcess).await;
        platform.product(sku, amount, stock).await;
        let customer = platform.customer(name).await;
        (Self { platform, run }, customer)
    }

    async fn unsent_events(&self) -> i64 {
        let pool = sqlx::MySqlPool::connect(self.run.order_db.as_str()).await.unwrap();
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
        let consumed = kafka_group_settles(brokers, &self.run.group, &self.run.topic, Duration::from_secs(60)).await;
        assert!(consumed, "notification-service never caught up with the topic");
    }
}

async fn message_text(mailpit: &str, address: &str, subject_part: &str) -> Value {
    let query = format!("to:\"{address}\" subject:\"{subject_part}\"");
    let http = reqwest::Client::new();
    let search = http.get(format!("{mailpit}/api/v1/search")).query(&[("query", query.as_str())]);
    let (_, found) = test_support::send(search).await;
    let id = found["messages"][0]["ID"].as_str().unwrap();
    test_support::send(http.get(format!("{mailpit}/api/v1/message/{id}"))).await.1
}

#[tokio::test]
async fn an_order_through_the_gateway_sends_one_confirmation_and_its_cancellation_one_cancellation_email() {
    let Some(b) = backends() else { return };
    let _broker = BROKER.lock().await;
    let (stack, (email, token)) = Stack::shop(&b, ("E2E-MUG", 1299, 100), "Grace Hopper").await;
    let platform = &stack.platform;

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
    stack.settle(&b.brokers).await;

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
            .any(|l| l.starts_with("kafka_consumer_lag{") && l.contains(&stack.run.topic) && l.ends_with(" 0"))
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
    let (stack, (email, token)) = Stack::shop(&b, ("E2E-DOWN", 500, 100), "Katherine Johnson").await;
    let platform = &stack.platform;

    let stopped = tokio::task::spawn_blocking(BrokerStopped::new).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..50 {
        let lines = json!({"lines": [{"sku": "E2E-DOWN", "quantity": 1}]});
        let (status, order) = platform.call(reqwest::Method::POST, "/api/orders", &token, Some(lines)).await;
        assert_eq!(status, 201, "a placement failed while the broker was away: {order}");
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(stack.unsent_events().await, 50, "the events wait in the outbox");
    tokio::task::spawn_blocking(move || drop(stopped)).await.unwrap();

    let arrived = eventually(Duration::from_secs(120), || async {
        (mailpit_subjects(&b.mailpit, &email).await.len() >= 50).then_some(())
    })
    .await;
    let (unsent, emails) = (stack.unsent_events().await, mailpit_subjects(&b.mailpit, &email).await.len());
    assert!(arrived.is_some(), "after the broker returned: {unsent} events unsent, {emails} of 50 emails");
    stack.settle(&b.brokers).await;
    let mut per_order: HashMap<&str, usize> = HashMap::new();
    for subject in mailpit_subjects(&b.mailpit, &email).await {
        if let Some(id) = ids.iter().find(|id| subject.contains(id.as_str())) {
            *per_order.entry(id).or_default() += 1;
        }
    }
    assert_eq!(per_order.len(), 50, "every order has its email");
    assert!(per_order.values().all(|n| *n == 1), "an email was sent twice: {per_order:?}");
}

#[tokio::test]
async fn one_placed_order_is_one_trace_in_the_trace_backend_from_the_gateway_to_the_email() {
    let Some(b) = backends() else { return };
    let Some(jaeger) = jaeger::backend() else { return };
    common::test_util::init_telemetry();
    let _broker = BROKER.lock().await;
    let (stack, (email, token)) = Stack::shop(&b, ("E2E-TRACE", 700, 10), "Barbara Liskov").await;
    let platform = &stack.platform;

    let trace_id = jaeger::place_traced(platform, &token, "E2E-TRACE").await;
    let emailed = eventually(Duration::from_secs(60), || async {
        (!mailpit_subjects(&b.mailpit, &email).await.is_empty()).then_some(())
    })
    .await;
    assert!(emailed.is_some(), "no email");

    // One tracer serves every service here: a span names its service in a tag.
    let served_by = |spans: &[jaeger::Span], service: &str| {
        spans.iter().any(|s| s.tag("service") == Some(service) && s.kind() == "server")
    };
    // Spans are exported in batches every few seconds: poll until the whole journey is there.
    let complete = eventually(Duration::from_secs(60), || async {
        let spans = jaeger::trace(&jaeger, &trace_id).await;
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
    let spans = jaeger::trace(&jaeger, &trace_id).await;
    let names: Vec<String> = spans.iter().map(|s| format!("{} [{}]", s.name, s.tag("service").unwrap_or(""))).collect();
    assert!(complete.is_some(), "the order's trace is incomplete: {names:?}");
    let publish = spans.iter().find(|s| s.name.starts_with("publish ")).unwrap();
    assert_eq!(publish.kind(), "producer", "{names:?}");
    let consume = spans.iter().find(|s| s.name.starts_with("consume")).unwrap();
    assert_eq!(consume.kind(), "consumer", "{names:?}");
}
