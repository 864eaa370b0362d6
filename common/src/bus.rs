//! The event bus seen by producers and consumers, with the in-process backend used
//! when all services share one process (`ecom dev`). The Kafka backend is in
//! [`crate::kafka`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

/// One message on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub key: String,
    pub payload: Bytes,
    /// Trace context and other metadata (`traceparent`, ...).
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the event bus is unavailable: {0}")]
    Unavailable(String),
}

/// Publishing: resolves once the message is durably accepted by the bus.
pub trait Publisher: Send + Sync + std::fmt::Debug + 'static {
    fn publish(&self, message: Message) -> BoxFuture<'_, Result<(), BusError>>;
}

/// Which bus a service talks to.
#[derive(Debug, Clone)]
pub enum BusConfig {
    /// Kafka at these bootstrap servers (`ECOM_KAFKA_BROKERS`).
    Kafka { brokers: String },
    /// Topics inside this process (`ecom dev`).
    InProcess(InProcessBus),
}

/// In-process topics: each subscriber gets every message published after it
/// subscribed; messages published to a topic nobody has subscribed to yet are held
/// for its first subscriber, so nothing is lost while services start in any order.
///
/// Delivery is in publish order per topic. Nothing survives the process; durability
/// in dev mode comes from the outbox, which is re-read at start.
#[derive(Debug, Clone, Default)]
pub struct InProcessBus {
    topics: Arc<Mutex<HashMap<String, Topic>>>,
}

#[derive(Debug, Default)]
struct Topic {
    subscribers: Vec<mpsc::UnboundedSender<Message>>,
    held: Vec<Message>,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn subscribe(&self, topic: &str) -> mpsc::UnboundedReceiver<Message> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut topics = self.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let topic = topics.entry(topic.to_owned()).or_default();
        for message in topic.held.drain(..) {
            let _ = tx.send(message);
        }
        topic.subscribers.push(tx);
        rx
    }
}

impl Publisher for InProcessBus {
    fn publish(&self, message: Message) -> BoxFuture<'_, Result<(), BusError>> {
        let mut topics = self.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let topic = topics.entry(message.topic.clone()).or_default();
        topic.subscribers.retain(|tx| tx.send(message.clone()).is_ok());
        if topic.subscribers.is_empty() {
            topic.held.push(message);
        }
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, key: &str) -> Message {
        Message { topic: topic.into(), key: key.into(), payload: Bytes::from_static(b"{}"), headers: BTreeMap::new() }
    }

    #[tokio::test]
    async fn every_subscriber_of_a_topic_receives_its_messages_in_order() {
        let bus = InProcessBus::new();
        let mut a = bus.subscribe("orders.v1");
        let mut b = bus.subscribe("orders.v1");
        let mut other = bus.subscribe("other");
        bus.publish(message("orders.v1", "1")).await.unwrap();
        bus.publish(message("orders.v1", "2")).await.unwrap();
        for rx in [&mut a, &mut b] {
            assert_eq!(rx.recv().await.unwrap().key, "1");
            assert_eq!(rx.recv().await.unwrap().key, "2");
        }
        assert!(other.try_recv().is_err());
    }

    #[tokio::test]
    async fn messages_published_before_anyone_subscribed_reach_the_first_subscriber() {
        let bus = InProcessBus::new();
        bus.publish(message("orders.v1", "early")).await.unwrap();
        let mut late = bus.subscribe("orders.v1");
        assert_eq!(late.recv().await.unwrap().key, "early");
    }
}
