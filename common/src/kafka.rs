//! Kafka client configuration, trace-context headers and readiness.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};

/// A client configuration for `brokers` (comma-separated `host:port`).
pub fn client_config(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("client.id", client_id).set("socket.keepalive.enable", "true");
    config
}

/// Message headers carrying a trace context map.
pub fn headers_from_map(map: &BTreeMap<String, String>) -> OwnedHeaders {
    map.iter().fold(OwnedHeaders::new(), |headers, (key, value)| headers.insert(Header { key, value: Some(value) }))
}

/// The UTF-8 headers of a received message as a map.
pub fn headers_to_map<H: Headers>(headers: &H) -> BTreeMap<String, String> {
    headers.iter().filter_map(|h| Some((h.key.to_owned(), std::str::from_utf8(h.value?).ok()?.to_owned()))).collect()
}

/// Asks the cluster for its metadata; for readiness. Runs on a blocking thread
/// because the client's calls (and its drop) block.
pub async fn check_brokers(brokers: String) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config(&brokers, "ecom-health")
            .set("log_level", "3")
            .create()
            .map_err(|e| format!("client: {e}"))?;
        consumer
            .fetch_metadata(None, Duration::from_millis(1500))
            .map(drop)
            .map_err(|e| format!("no metadata from brokers: {e}"))
    })
    .await
    .map_err(|e| format!("check aborted: {e}"))?
}

/// Publishes to Kafka with an idempotent producer: `enable.idempotence=true`,
/// `acks=all`; `publish` resolves once the broker acknowledged the message.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: rdkafka::producer::FutureProducer,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher").finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    /// `linger.ms` is 5: the relay publishes a claimed batch at once, so a short
    /// linger lets the batch share requests without adding noticeable latency.
    pub fn new(brokers: &str, client_id: &str) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = client_config(brokers, client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "10000")
            .set("log_level", "4")
            .create()?;
        Ok(Self { producer, timeout: Duration::from_secs(10) })
    }
}

impl crate::bus::Publisher for KafkaPublisher {
    fn publish(
        &self,
        message: crate::bus::Message,
    ) -> futures::future::BoxFuture<'_, Result<(), crate::bus::BusError>> {
        Box::pin(async move {
            let headers = headers_from_map(&message.headers);
            let record = rdkafka::producer::FutureRecord::to(&message.topic)
                .key(&message.key)
                .payload(message.payload.as_ref())
                .headers(headers);
            self.producer
                .send(record, self.timeout)
                .await
                .map(drop)
                .map_err(|(err, _)| crate::bus::BusError::Unavailable(err.to_string()))
        })
    }
}
