//! notification-service: consumes order events and sends one email per event.

pub mod error;
pub mod events;
pub mod mailer;
pub mod routes;
pub mod settings;
pub mod smtp;
pub mod state;
pub mod store;
pub mod templates;

use axum::Router;
use common::bus::BusConfig;
use common::health::Health;
use common::{runtime, server};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use settings::Settings;
pub use state::AppState;

pub const SERVICE: &str = "notification-service";
pub const DEFAULT_PORT: u16 = 8085;

/// The service's routes inside the standard stack, with its readiness checks:
/// the database, the mail server and, in production, Kafka.
pub fn router(state: AppState, settings: &Settings) -> Router {
    register_metrics();
    let mailer = state.mailer.clone();
    let mut health = Health::new().database(state.store.pool.clone()).check("mail", move || {
        let mailer = mailer.clone();
        async move { mailer.check().await }
    });
    if let BusConfig::Kafka(kafka) = &settings.bus {
        let kafka = kafka.clone();
        health = health.check("kafka", move || common::kafka::check(kafka.clone()));
    }
    server::stack(routes::routes(state), health, server::stack_config(SERVICE, &settings.server))
}

/// Background work: the event consumer, from Kafka or from the in-process bus.
pub fn workers(state: AppState, settings: &Settings, shutdown: CancellationToken) -> JoinSet<()> {
    let mut set = JoinSet::new();
    match &settings.bus {
        BusConfig::Kafka(kafka) => {
            set.spawn(events::run_kafka(
                state,
                kafka.clone(),
                settings.kafka_group.clone(),
                settings.orders_topic.clone(),
                shutdown,
            ));
        }
        BusConfig::InProcess(bus) => {
            let deliveries = bus.subscribe(&settings.orders_topic);
            set.spawn(events::run_in_process(state, deliveries, shutdown));
        }
    }
    set
}

/// Connects, serves on `listener` until `shutdown`, then drains and closes.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = AppState::connect(&settings).await?;
    runtime::serve_state(state, &settings, listener, shutdown, router, workers).await
}

/// Declares the service's own series, with help text, at zero: dashboards and
/// alerts see them before the first event.
fn register_metrics() {
    use metrics::{counter, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("notification_events_consumed_total", "Order events received, by type");
    describe_counter!("notification_emails_sent_total", "Emails handed to the mail server, by event type");
    describe_counter!("notification_duplicates_skipped_total", "Redelivered events whose email had already gone out");
    describe_counter!(
        "notification_retries_total",
        "Failures retried, by reason: transient (mail server or database unreachable), deferred (4xx to the email)"
    );
    describe_counter!(
        "notification_dead_lettered_total",
        "Events that could not be handled, sent to the dead-letter topic"
    );
    describe_histogram!("notification_email_send_duration_seconds", "Time for the mail server to accept one email");
    describe_gauge!("kafka_consumer_lag", "Messages behind the partition's end, per group, topic and partition");
    for kind in [common::events::ORDER_CONFIRMED, common::events::ORDER_CANCELLED] {
        counter!("notification_events_consumed_total", "type" => kind).increment(0);
        counter!("notification_emails_sent_total", "type" => kind).increment(0);
    }
    counter!("notification_duplicates_skipped_total").increment(0);
    for reason in ["transient", "deferred"] {
        counter!("notification_retries_total", "reason" => reason).increment(0);
    }
    counter!("notification_dead_lettered_total").increment(0);
}
