use std::time::Duration;

use bytes::Bytes;
use common::bus::{BusConfig, InProcessBus, Message, Publisher};
use common::test_util::{eventually, unique_name};
use notification_service::settings::MailTransport;
use uuid::Uuid;

use crate::support::{Stack, emails_arrive, emails_to, event, message, on_sqlite, start};

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
    let files = MailTransport::Files { dir: mail_dir.clone() };
    let service = start(on_sqlite(dir.path(), BusConfig::InProcess(bus.clone()), files)).await;

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

#[tokio::test]
async fn from_kafka_an_event_sends_exactly_one_email_a_duplicate_none_and_poison_goes_to_the_dlq() {
    let Some(stack) = Stack::from_env() else { return };
    common::test_util::init_telemetry();
    let topic = unique_name("orders-test");
    let settings = stack.settings(&topic, &stack.smtp_url).await;
    let producer = stack.producer();
    let order = Uuid::now_v7();
    let ada = format!("{}@example.com", unique_name("ada"));
    let bob = format!("{}@example.com", unique_name("bob"));
    let confirmed = event("order.confirmed", order, &ada);
    // The first message creates the topic before the consumer subscribes.
    producer
        .publish(Message { payload: Bytes::from_static(b"{not json"), ..message(&topic, &confirmed) })
        .await
        .unwrap();
    let service = start(settings).await;
    producer.publish(message(&topic, &confirmed)).await.unwrap();
    producer.publish(message(&topic, &confirmed)).await.unwrap();
    let later = Uuid::now_v7();
    producer.publish(message(&topic, &event("order.confirmed", later, &bob))).await.unwrap();

    // The last event arriving proves everything before it was handled (one partition per key... and
    // per-partition order): wait for it, then count.
    let arrived = emails_arrive(&stack.mailpit, &bob, 1, Duration::from_secs(30)).await;
    assert!(arrived, "the email for the last event never arrived");
    assert!(emails_arrive(&stack.mailpit, &ada, 1, Duration::from_secs(30)).await);
    assert_eq!(emails_to(&stack.mailpit, &ada).await, 1, "a duplicate event sent a second email");

    // The poison message is in the dead-letter topic with its provenance.
    let (_, headers) = stack.first_dead_letter(&topic).await;
    assert!(headers["x-error"].contains("not an order event"), "{headers:?}");
    assert_eq!(headers["x-original-topic"], topic);
    assert!(headers.contains_key("x-original-offset") && headers.contains_key("x-original-partition"));
    service.stop().await.unwrap();
}
