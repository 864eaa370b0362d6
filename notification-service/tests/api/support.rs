//! The real stack a notification-service test runs against, its settings, and the
//! order events it publishes.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::bus::{BusConfig, Message};
use common::db::PoolSettings;
use common::settings::{KafkaSettings, ServerSettings};
use common::test_util::{Running, eventually, fresh_mysql_database, mailpit_subjects, real_dependency, unique_name};
use notification_service::Settings;
use notification_service::settings::{MailSettings, MailTransport};
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

pub fn mail(transport: MailTransport) -> MailSettings {
    MailSettings {
        from: "ecom <no-reply@ecom.test>".into(),
        transport,
        max_attempts: notification_service::settings::DEFAULT_MAIL_MAX_ATTEMPTS,
    }
}

pub fn smtp(url: &str) -> MailTransport {
    MailTransport::Smtp { url: url.parse().unwrap(), username: None, password: None, ca_file: None }
}

pub fn settings(database_url: Url, bus: BusConfig, transport: MailTransport) -> Settings {
    Settings {
        server: ServerSettings::for_tests(),
        database_url: database_url.into(),
        pool: PoolSettings::default(),
        bus,
        mail: mail(transport),
        orders_topic: common::events::ORDERS_TOPIC.to_owned(),
        kafka_group: "notification-service".to_owned(),
    }
}

/// notification-service on SQLite in `dir` with the in-process `bus`.
pub fn on_sqlite(dir: &std::path::Path, bus: BusConfig, transport: MailTransport) -> Settings {
    let url = format!("sqlite://{}/notifications.db", dir.display()).parse().unwrap();
    settings(url, bus, transport)
}

/// Runs notification-service with `settings` until it is ready.
pub async fn start(settings: Settings) -> Running {
    let service = Running::spawn(move |l, s| notification_service::run(settings, l, s)).await;
    service.ready().await;
    service
}

/// The real stack of the environment (`scripts/stack.sh env`), when it is configured.
pub struct Stack {
    pub brokers: String,
    pub mysql: String,
    pub smtp_url: String,
    pub mailpit: String,
}

impl Stack {
    pub fn from_env() -> Option<Self> {
        Some(Self {
            brokers: real_dependency("ECOM_TEST_KAFKA_BROKERS")?,
            mysql: real_dependency("ECOM_TEST_MYSQL_URL")?,
            smtp_url: real_dependency("ECOM_TEST_SMTP_URL")?,
            mailpit: real_dependency("ECOM_TEST_MAILPIT_URL")?,
        })
    }

    /// notification-service on a fresh MariaDB database, consuming `topic` from
    /// Kafka with a group of its own, sending mail over `smtp_url`.
    pub async fn settings(&self, topic: &str, smtp_url: &str) -> Settings {
        let bus = BusConfig::Kafka(KafkaSettings::plaintext(self.brokers.clone()));
        let mut settings = settings(fresh_mysql_database(&self.mysql).await, bus, smtp(smtp_url));
        settings.orders_topic = topic.to_owned();
        settings.kafka_group = unique_name("notification-test");
        settings
    }

    /// The address of the stack's mail server.
    pub fn smtp_addr(&self) -> std::net::SocketAddr {
        let url: Url = self.smtp_url.parse().unwrap();
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap()).parse().unwrap()
    }

    pub fn producer(&self) -> common::kafka::KafkaPublisher {
        common::kafka::KafkaPublisher::new(&self.brokers, "test").unwrap()
    }

    /// The first message of `topic`'s dead-letter topic: its payload and its headers.
    pub async fn first_dead_letter(&self, topic: &str) -> (Vec<u8>, BTreeMap<String, String>) {
        let consumer: rdkafka::consumer::StreamConsumer = common::kafka::client_config(&self.brokers, "test")
            .set("group.id", unique_name("dlq-reader"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        rdkafka::consumer::Consumer::subscribe(&consumer, &[format!("{topic}.dlq").as_str()]).unwrap();
        let dead = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.unwrap().unwrap();
        let payload = rdkafka::Message::payload(&dead).unwrap_or_default().to_vec();
        let headers = rdkafka::Message::headers(&dead).map(common::kafka::headers_to_map).unwrap_or_default();
        drop(dead);
        // Leaving the group can block until a rebalance completes: let it go on its own thread.
        std::thread::spawn(move || drop(consumer));
        (payload, headers)
    }
}

/// Emails Mailpit holds for `address`.
pub async fn emails_to(mailpit: &str, address: &str) -> usize {
    mailpit_subjects(mailpit, address).await.len()
}

/// Whether Mailpit comes to hold exactly `count` emails for `address` within `deadline`.
pub async fn emails_arrive(mailpit: &str, address: &str, count: usize, deadline: Duration) -> bool {
    eventually(deadline, || async { (emails_to(mailpit, address).await == count).then_some(()) }).await.is_some()
}

/// An order event of `kind` for `order_id`, to be emailed to `email`.
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

/// `event` as a message on `topic`, keyed by its order.
pub fn message(topic: &str, event: &Value) -> Message {
    Message {
        topic: topic.to_owned(),
        key: event["data"]["id"].as_str().unwrap().to_owned(),
        payload: Bytes::from(serde_json::to_vec(event).unwrap()),
        headers: BTreeMap::new(),
    }
}
