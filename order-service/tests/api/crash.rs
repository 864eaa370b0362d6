//! The order-service binary killed with SIGKILL right after confirming orders.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::test_util::{ChildService, eventually, fresh_mysql_database, real_dependency, unique_name};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};

use crate::support::Shop;

/// Every message on `topic`, from the beginning to the current end of each partition.
fn read_topic(brokers: &str, topic: &str) -> Vec<Value> {
    let consumer: BaseConsumer = common::kafka::client_config(brokers, "test")
        .set("group.id", unique_name("crash-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(5);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (_, high) = consumer.fetch_watermarks(topic, p.id(), timeout).unwrap();
        if high > 0 {
            ends.insert(p.id(), high);
            assignment.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning).unwrap();
        }
    }
    consumer.assign(&assignment).unwrap();
    let mut events = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ends.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the topic could not be read to its end");
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message.unwrap();
        let payload = rdkafka::Message::payload(&message).unwrap();
        events.push(serde_json::from_slice(payload).unwrap());
        let partition = rdkafka::Message::partition(&message);
        if ends.get(&partition).is_some_and(|end| rdkafka::Message::offset(&message) + 1 >= *end) {
            ends.remove(&partition);
        }
    }
    events
}

async fn unsent(db: &url::Url) -> i64 {
    let pool = sqlx::MySqlPool::connect(db.as_str()).await.unwrap();
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn killed_with_sigkill_right_after_confirming_every_confirmed_order_is_published_once_after_restart() {
    let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") else { return };
    let Some(brokers) = real_dependency("ECOM_TEST_KAFKA_BROKERS") else { return };
    let dir = tempfile::tempdir().unwrap();
    // The shop's own order-service stands unused: the binary under test takes its place.
    let shop = Shop::on_sqlite().await.selling(&[("CRASH-1", 500, "EUR", 1000)]).await;
    let token = shop.customer(&format!("{}@example.com", unique_name("crash"))).await;

    let db = fresh_mysql_database(&base).await;
    let topic = unique_name("orders-crash");
    let env = [
        ("DATABASE_URL", db.to_string()),
        ("ECOM_KAFKA_BROKERS", brokers.clone()),
        ("ECOM_ORDERS_TOPIC", topic.clone()),
        ("ECOM_PRODUCT_URL", shop.products.url("")),
        ("ECOM_INVENTORY_URL", shop.inventory.url("")),
        ("ECOM_JWKS_URL", shop.auth.url("/.well-known/jwks.json")),
        ("ECOM_AUTH_URL", shop.auth.url("")),
        ("ECOM_SERVICE_CLIENT_SECRET", shop.auth.service_secret.clone()),
    ];
    let log = dir.path().join("order-service.log");
    let binary = env!("CARGO_BIN_EXE_order-service");
    let child = ChildService::start(binary, &env, &log).await;

    let url = child.url("/api/orders");
    let placements = (0..30).map(|_| {
        let request =
            shop.http.post(&url).bearer_auth(&token).json(&json!({"lines": [{"sku": "CRASH-1", "quantity": 1}]}));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
        }
    });
    let confirmed: HashSet<String> = futures::future::join_all(placements).await.into_iter().collect();
    // No shutdown, no flush: whatever the relay was doing is cut short.
    child.kill().await;
    let sent_before_restart = 30 - unsent(&db).await;

    let _child = ChildService::start(binary, &env, &log).await;
    let drained = eventually(Duration::from_secs(30), || async { (unsent(&db).await == 0).then_some(()) }).await;
    assert!(drained.is_some(), "the outbox never emptied after the restart");

    let events = {
        let (brokers, topic) = (brokers.clone(), topic.clone());
        tokio::task::spawn_blocking(move || read_topic(&brokers, &topic)).await.unwrap()
    };
    let mut by_order: HashMap<String, HashSet<String>> = HashMap::new();
    for event in &events {
        assert_eq!(event["type"], "order.confirmed");
        let order = event["data"]["id"].as_str().unwrap().to_owned();
        by_order.entry(order).or_default().insert(event["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(by_order.keys().cloned().collect::<HashSet<_>>(), confirmed, "events for exactly the confirmed orders");
    assert!(by_order.values().all(|ids| ids.len() == 1), "one event id per order: {by_order:?}");
    // At least once on the wire: a batch cut short may be published again, with the same ids.
    assert!(events.len() >= confirmed.len());
    eprintln!("{sent_before_restart} of 30 marked sent before the kill; {} messages on the topic", events.len());
}
