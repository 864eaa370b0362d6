//! The event bus seen by producers and consumers, with the in-process backend used
//! when all services share one process (`ecom dev`). The Kafka backend is in
//! [`crate::kafka`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

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
    #[error("the event bus is unavailable: a subscriber stopped before it handled the message")]
    SubscriberStopped,
    #[cfg(feature = "kafka")]
    #[error("the event bus is unavailable: {0}")]
    Kafka(#[source] rdkafka::error::KafkaError),
}

/// Publishing: resolves once the message is durably accepted by the bus.
pub trait Publisher: Send + Sync + std::fmt::Debug + 'static {
    fn publish(&self, message: Message) -> BoxFuture<'_, Result<(), BusError>>;
}

/// Which bus a service talks to.
#[derive(Debug, Clone)]
pub enum BusConfig {
    /// Kafka (`ECOM_KAFKA_BROKERS` and, for TLS and SASL, the other `ECOM_KAFKA_*`).
    Kafka(crate::settings::KafkaSettings),
    /// Topics inside this process (`ecom dev`).
    InProcess(InProcessBus),
}

/// In-process topics: each subscriber gets every message published after it
/// subscribed; messages published to a topic nobody has subscribed to yet are held
/// for its first subscriber, so nothing is lost while services start in any order.
///
/// Delivery is in publish order per topic. A publish resolves once every subscriber
/// has acknowledged the message ([`Delivery::ack`]), which a consumer does after it
/// has handled and recorded it. Nothing survives the process, so that is what makes
/// the bus durable: the outbox relay marks an event sent only then, and an event not
/// yet handled when the process stops is still unsent in the outbox at the next start.
#[derive(Debug, Clone, Default)]
pub struct InProcessBus {
    topics: Arc<Mutex<HashMap<String, Topic>>>,
}

#[derive(Debug, Default)]
struct Topic {
    subscribers: Vec<mpsc::UnboundedSender<Delivery>>,
    held: Vec<Delivery>,
    /// Deliveries neither acknowledged nor dropped yet.
    in_flight: Arc<AtomicUsize>,
}

/// A message as a subscriber receives it. Its publisher waits for the acknowledgement;
/// dropped without one (the subscriber stopped first), the publish fails, and the
/// publisher keeps the message to publish again.
#[derive(Debug)]
pub struct Delivery {
    pub message: Message,
    ack: oneshot::Sender<()>,
    _in_flight: InFlight,
}

/// Counts its delivery in its topic's [`InProcessBus::in_flight`] until dropped.
#[derive(Debug)]
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Delivery {
    fn new(message: Message, in_flight: &Arc<AtomicUsize>) -> (Self, oneshot::Receiver<()>) {
        let (ack, acked) = oneshot::channel();
        (Self { message, ack, _in_flight: InFlight::new(in_flight) }, acked)
    }

    /// The subscriber is done with the message: handled, or given up on for good.
    pub fn ack(self) {
        // The publisher may have stopped waiting (shutdown); nothing is owed to it then.
        let _ = self.ack.send(());
    }
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn subscribe(&self, topic: &str) -> mpsc::UnboundedReceiver<Delivery> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut topics = self.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let topic = topics.entry(topic.to_owned()).or_default();
        for delivery in topic.held.drain(..) {
            let _ = tx.send(delivery);
        }
        topic.subscribers.push(tx);
        rx
    }

    /// Messages on `topic` that were handed to a subscriber (or held for one) and are
    /// not acknowledged yet: being handled, or waiting to be. The in-process bus's lag.
    pub fn in_flight(&self, topic: &str) -> usize {
        let topics = self.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        topics.get(topic).map_or(0, |t| t.in_flight.load(Ordering::SeqCst))
    }

    /// Hands `message` to every subscriber (or holds it for the first); the
    /// acknowledgements to wait for.
    fn deliver(&self, message: Message) -> Vec<oneshot::Receiver<()>> {
        let mut topics = self.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let topic = topics.entry(message.topic.clone()).or_default();
        let mut acks = Vec::with_capacity(topic.subscribers.len().max(1));
        let in_flight = topic.in_flight.clone();
        topic.subscribers.retain(|tx| {
            let (delivery, acked) = Delivery::new(message.clone(), &in_flight);
            let open = tx.send(delivery).is_ok();
            if open {
                acks.push(acked);
            }
            open
        });
        if topic.subscribers.is_empty() {
            let (delivery, acked) = Delivery::new(message, &in_flight);
            topic.held.push(delivery);
            acks.push(acked);
        }
        acks
    }
}

impl Publisher for InProcessBus {
    fn publish(&self, message: Message) -> BoxFuture<'_, Result<(), BusError>> {
        // Handed over now, so that messages keep their publish order whoever awaits first.
        let acks = self.deliver(message);
        Box::pin(async move {
            for acked in acks {
                acked.await.map_err(|_| BusError::SubscriberStopped)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

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
        let first = bus.publish(message("orders.v1", "1"));
        let second = bus.publish(message("orders.v1", "2"));
        for rx in [&mut a, &mut b] {
            for key in ["1", "2"] {
                let delivery = rx.recv().await.unwrap();
                assert_eq!(delivery.message.key, key);
                delivery.ack();
            }
        }
        first.await.unwrap();
        second.await.unwrap();
        assert!(other.try_recv().is_err());
    }

    #[tokio::test]
    async fn messages_published_before_anyone_subscribed_reach_the_first_subscriber() {
        let bus = InProcessBus::new();
        let published = bus.publish(message("orders.v1", "early"));
        let mut late = bus.subscribe("orders.v1");
        let delivery = late.recv().await.unwrap();
        assert_eq!(delivery.message.key, "early");
        delivery.ack();
        published.await.unwrap();
    }

    #[tokio::test]
    async fn a_publish_resolves_only_once_every_subscriber_acknowledged_it() {
        let bus = InProcessBus::new();
        let (mut a, mut b) = (bus.subscribe("orders.v1"), bus.subscribe("orders.v1"));
        let mut published = bus.publish(message("orders.v1", "1"));
        assert!((&mut published).now_or_never().is_none(), "nobody acknowledged it yet");
        assert_eq!(bus.in_flight("orders.v1"), 2);
        a.recv().await.unwrap().ack();
        assert!((&mut published).now_or_never().is_none(), "one subscriber has not acknowledged it");
        assert_eq!(bus.in_flight("orders.v1"), 1);
        b.recv().await.unwrap().ack();
        published.await.unwrap();
        assert_eq!(bus.in_flight("orders.v1"), 0);
    }

    #[tokio::test]
    async fn a_message_its_subscriber_dropped_unacknowledged_fails_its_publish() {
        let bus = InProcessBus::new();
        let mut consumer = bus.subscribe("orders.v1");
        let published = bus.publish(message("orders.v1", "1"));
        let queued = bus.publish(message("orders.v1", "2"));
        drop(consumer.recv().await.unwrap());
        assert!(published.await.is_err(), "dropped while being handled");
        drop(consumer);
        assert!(queued.await.is_err(), "never handled: the subscriber stopped");
        assert_eq!(bus.in_flight("orders.v1"), 0);
    }
}
