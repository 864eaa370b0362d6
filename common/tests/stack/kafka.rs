use std::time::Duration;

use common::test_util::{real_dependency, unique_name};
use rdkafka::Message as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

fn producer(brokers: &str) -> FutureProducer {
    common::kafka::client_config(brokers, "stack-test")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer")
}

fn consumer(brokers: &str, group: &str, topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = common::kafka::client_config(brokers, "stack-test")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

async fn produce(producer: &FutureProducer, topic: &str, key: &str, payload: &str) {
    let headers = common::kafka::headers_from_map(
        &[("traceparent".to_owned(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned())].into(),
    );
    producer
        .send(FutureRecord::to(topic).key(key).payload(payload).headers(headers), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("delivery report");
}

async fn next_payload(consumer: &StreamConsumer) -> (String, std::collections::BTreeMap<String, String>) {
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a message within 30 s")
        .expect("consume");
    let payload = String::from_utf8(message.payload().unwrap_or_default().to_vec()).unwrap();
    let headers = message.headers().map(common::kafka::headers_to_map).unwrap_or_default();
    consumer.commit_message(&message, CommitMode::Sync).expect("commit");
    (payload, headers)
}

/// Consumers block when dropped; drop them off the runtime.
async fn close(consumer: StreamConsumer) {
    tokio::task::spawn_blocking(move || drop(consumer)).await.unwrap();
}

#[tokio::test]
async fn a_message_produced_with_acks_all_is_consumed_with_its_headers_and_a_committed_offset_is_not_redelivered() {
    let Some(brokers) = real_dependency("ECOM_TEST_KAFKA_BROKERS") else { return };
    let topic = unique_name("stack-test");
    let group = unique_name("stack-group");
    let producer = producer(&brokers);

    produce(&producer, &topic, "order-1", "first").await;
    let first = consumer(&brokers, &group, &topic);
    let (payload, headers) = next_payload(&first).await;
    assert_eq!(payload, "first");
    assert!(headers["traceparent"].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736"));
    close(first).await;

    produce(&producer, &topic, "order-1", "second").await;
    let second = consumer(&brokers, &group, &topic);
    let (payload, _) = next_payload(&second).await;
    assert_eq!(payload, "second", "the committed first message was delivered again");
    close(second).await;
}

#[tokio::test]
async fn readiness_sees_a_live_cluster_and_reports_a_dead_one() {
    let Some(brokers) = real_dependency("ECOM_TEST_KAFKA_BROKERS") else { return };
    assert_eq!(common::kafka::check_brokers(brokers).await, Ok(()));
    assert!(common::kafka::check_brokers("127.0.0.1:1".to_owned()).await.is_err());
}
