use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::bus::{BusConfig, InProcessBus, Message, Publisher};
use common::settings::KafkaSettings;
use common::test_util::{Running, eventually, fresh_mysql_database, real_dependency, unique_name};
use notification_service::settings::MailTransport;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::startup::{settings, smtp};

pub fn event(kind: &str, order_id: Uuid, email: &str) -> Value {
    json!({
        "id": Uuid::now_v7(), "type": kind, "source": "order-service", "time": "2026-11-25T10:00:00Z",
        "data": {
            "id": order_id, "user_id": Uuid::now_v7(), "status": "CONFIRMED",
            "lines": [{"sku": "MUG-1", "name": "Mug", "quantity": 2, "unit_price": {"amount": 1299, "currency": "EUR"}}],
            "total": {"amount": 2598, "currency": "EUR"},
            "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z",
            "customer_email": email, "customer_name": "Ada Lovelace"
        }
    })
}

pub fn message(topic: &str, event: &Value) -> Message {
    Message {
        topic: topic.to_owned(),
        key: event["data"]["id"].as_str().unwrap().to_owned(),
        payload: Bytes::from(serde_json::to_vec(event).unwrap()),
        headers: BTreeMap::new(),
    }
}

fn eml_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn in_dev_mode_each_event_becomes_one_eml_file_and_a_redelivered_event_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail");
    let bus = InProcessBus::new();
    let url = format!("sqlite://{}/notifications.db", dir.path().display()).parse().unwrap();
    let settings = settings(url, BusConfig::InProcess(bus.clone()), MailTransport::Files { dir: mail_dir.clone() });
    let service = Running::spawn(move |l, s| notification_service::run(settings, l, s)).await;
    service.ready().await;

    let order = Uuid::now_v7();
    let confirmed = event("order.confirmed", order, "ada@example.com");
    bus.publish(message("orders.v1", &confirmed)).await.unwrap();
    bus.publish(message("orders.v1", &confirmed)).await.unwrap();
    let cancelled = event("order.cancelled", order, "ada@example.com");
    bus.publish(message("orders.v1", &cancelled)).await.unwrap();

    let files = eventually(Duration::from_secs(10), || async { Some(eml_files(&mail_dir)).filter(|f| f.len() >= 2) })
        .await
        .unwrap();
    // Both events are handled in order, so once the cancellation is there the duplicate was skipped.
    assert_eq!(files.len(), 2, "one file per event");
    assert!(files.iter().all(|f| f.contains(&order.to_string()) && f.contains("ada@example.com")));
    assert!(files.iter().any(|f| f.contains("is confirmed")) && files.iter().any(|f| f.contains("was cancelled")));
    assert!(files[0].contains("multipart/alternative"));
    service.stop().await.unwrap();
}

/// Messages Mailpit holds for `address`.
async fn mailpit_count(mailpit: &str, address: &str) -> usize {
    let url = format!("{mailpit}/api/v1/search?query=to:%22{address}%22");
    let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    body["messages"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn from_kafka_an_event_sends_exactly_one_email_a_duplicate_none_and_poison_goes_to_the_dlq() {
    let Some(brokers) = real_dependency("ECOM_TEST_KAFKA_BROKERS") else { return };
    let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") else { return };
    let Some(smtp_url) = real_dependency("ECOM_TEST_SMTP_URL") else { return };
    let Some(mailpit) = real_dependency("ECOM_TEST_MAILPIT_URL") else { return };
    common::test_util::init_telemetry();
    let topic = unique_name("orders-test");
    let mut settings = settings(
        fresh_mysql_database(&base).await,
        BusConfig::Kafka(KafkaSettings::plaintext(brokers.clone())),
        smtp(&smtp_url),
    );
    settings.orders_topic = topic.clone();
    settings.kafka_group = unique_name("notification-test");
    let producer = common::kafka::KafkaPublisher::new(&brokers, "test").unwrap();
    let order = Uuid::now_v7();
    let ada = format!("{}@example.com", unique_name("ada"));
    let bob = format!("{}@example.com", unique_name("bob"));
    let confirmed = event("order.confirmed", order, &ada);
    // The first message creates the topic before the consumer subscribes.
    producer
        .publish(Message { payload: Bytes::from_static(b"{not json"), ..message(&topic, &confirmed) })
        .await
        .unwrap();
    let service = Running::spawn(move |l, s| notification_service::run(settings, l, s)).await;
    service.ready().await;
    producer.publish(message(&topic, &confirmed)).await.unwrap();
    producer.publish(message(&topic, &confirmed)).await.unwrap();
    let later = Uuid::now_v7();
    producer.publish(message(&topic, &event("order.confirmed", later, &bob))).await.unwrap();

    // The last event arriving proves everything before it was handled (one partition per key... and
    // per-partition order): wait for it, then count.
    let arrived =
        eventually(Duration::from_secs(30), || async { (mailpit_count(&mailpit, &bob).await == 1).then_some(()) })
            .await;
    assert!(arrived.is_some(), "the email for the last event never arrived");
    let done =
        eventually(Duration::from_secs(30), || async { (mailpit_count(&mailpit, &ada).await >= 1).then_some(()) })
            .await;
    assert!(done.is_some());
    assert_eq!(mailpit_count(&mailpit, &ada).await, 1, "a duplicate event sent a second email");

    // The poison message is in the dead-letter topic with its provenance.
    let consumer: rdkafka::consumer::StreamConsumer = common::kafka::client_config(&brokers, "test")
        .set("group.id", unique_name("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    rdkafka::consumer::Consumer::subscribe(&consumer, &[format!("{topic}.dlq").as_str()]).unwrap();
    let dead = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.unwrap().unwrap();
    let headers = rdkafka::Message::headers(&dead).map(common::kafka::headers_to_map).unwrap();
    assert!(headers["x-error"].contains("not an order event"), "{headers:?}");
    assert_eq!(headers["x-original-topic"], topic);
    assert!(headers.contains_key("x-original-offset") && headers.contains_key("x-original-partition"));
    // Leaving the group can block until a rebalance completes: let it go on its own thread.
    std::thread::spawn(move || drop(consumer));
    service.stop().await.unwrap();
}
