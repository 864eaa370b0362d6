//! Consuming order events: one email per event id, never two.
//!
//! Order of operations per event: skip it if its id is in `processed_events`;
//! render; hand the email to the mail server; record the id. The one window left
//! is a crash after the mail server accepted and before the record commits: that
//! event's email is sent again on redelivery. It is a single INSERT long.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::events::OrderEvent;
use common::settings::KafkaSettings;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::AppState;
use crate::error::Cause;
use crate::templates::Templates;
use common::retry::{self, Schedule};

/// How handling an event failed, which decides whether it is retried.
pub use crate::error::Failure as HandleError;

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Sent,
    Duplicate,
    /// An event type that sends no email.
    Ignored,
}

/// A step of handling an event that failed, and the error it failed with.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct Failed {
    step: &'static str,
    #[source]
    source: Cause,
}

/// The cause of a failure at `step`.
fn at<E: Into<Cause>>(step: &'static str) -> impl FnOnce(E) -> Cause {
    move |source| Box::new(Failed { step, source: source.into() })
}

/// A deferred email given up on after `attempts`.
#[derive(Debug, thiserror::Error)]
#[error("{source} (gave up after {attempts} attempts)")]
pub struct GaveUp {
    attempts: u32,
    #[source]
    source: Cause,
}

/// How an event is retried, by the kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// [`HandleError::Transient`]: 200 ms doubling to 30 s, without end.
    pub transient: Schedule,
    /// [`HandleError::Deferred`]: `ECOM_MAIL_MAX_ATTEMPTS` attempts, 250 ms doubling
    /// to 30 s apart (five attempts wait 3.75 s in all).
    pub deferred: Schedule,
}

impl RetryPolicy {
    pub fn new(max_attempts: NonZeroU32) -> Self {
        Self {
            transient: Schedule::unbounded(Duration::from_millis(200), Duration::from_secs(30)),
            deferred: Schedule::bounded(max_attempts.get(), Duration::from_millis(250), Duration::from_secs(30)),
        }
    }
}

/// Writing a dead letter: until it is written, however long the broker is away.
const DEAD_LETTER_RETRY: Schedule = Schedule::unbounded(Duration::from_millis(200), Duration::from_secs(10));

/// Handles one raw event payload.
#[tracing::instrument(skip_all, fields(event_id, order_id))]
pub async fn handle(state: &AppState, templates: &Templates, payload: &[u8]) -> Result<Handled, HandleError> {
    let event: OrderEvent =
        serde_json::from_slice(payload).map_err(at("not an order event")).map_err(HandleError::Permanent)?;
    let span = tracing::Span::current();
    span.record("event_id", tracing::field::display(event.id));
    span.record("order_id", tracing::field::display(event.data.id));
    let event_id = event.id.to_string();
    let transient = |e: sqlx::Error| HandleError::Transient(at("database")(e));
    if state.store.already_handled(&event_id).await.map_err(transient)? {
        metrics::counter!("notification_duplicates_skipped_total").increment(1);
        return Ok(Handled::Duplicate);
    }
    let rendered = templates.render(&event).map_err(at("template")).map_err(HandleError::Permanent)?;
    let Some(rendered) = rendered else {
        return Err(HandleError::Permanent(format!("unknown event type {:?}", event.kind).into()));
    };
    let to = recipient(&event.data.customer_name, &event.data.customer_email)
        .map_err(at("recipient"))
        .map_err(HandleError::Permanent)?;
    let message = Message::builder()
        .from(state.mailer.from().clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(format!("<{}@ecom>", event.id)))
        .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))
        .map_err(at("message"))
        .map_err(HandleError::Permanent)?;
    let started = Instant::now();
    state.mailer.send(message).await?;
    metrics::histogram!("notification_email_send_duration_seconds").record(started.elapsed().as_secs_f64());
    state.store.record_handled(&event).await.map_err(transient)?;
    metrics::counter!("notification_emails_sent_total", "type" => event.kind).increment(1);
    Ok(Handled::Sent)
}

/// The customer's mailbox, named as they named themselves where lettre can write that
/// name into a header, else the bare address (which parsed with the event).
fn recipient(name: &str, email: &contracts::Email) -> Result<Mailbox, lettre::address::AddressError> {
    format!("{} <{email}>", name.replace(['<', '>', '"'], "")).parse().or_else(|_| email.as_str().parse())
}

/// The event type as a metric label: the known types, `other` or `invalid` (bounded,
/// whatever arrives on the topic).
fn event_type(payload: &[u8]) -> &'static str {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    match serde_json::from_slice::<Kind<'_>>(payload) {
        Ok(k) if k.kind == common::events::ORDER_CONFIRMED => common::events::ORDER_CONFIRMED,
        Ok(k) if k.kind == common::events::ORDER_CANCELLED => common::events::ORDER_CANCELLED,
        Ok(_) => "other",
        Err(_) => "invalid",
    }
}

/// Handles `payload`, retrying what may succeed later as `state.retry` says: until it
/// succeeds, fails for good (permanent, or deferred once too often), or shutdown.
/// `None` means shutdown came first.
pub async fn handle_with_retry(
    state: &AppState,
    templates: &Templates,
    payload: &[u8],
    shutdown: &CancellationToken,
) -> Option<Result<Handled, HandleError>> {
    metrics::counter!("notification_events_consumed_total", "type" => event_type(payload)).increment(1);
    let mut transient = state.retry.transient.start();
    let mut deferred = state.retry.deferred.start();
    let outcome = retry::run_with_retries(
        shutdown,
        || handle(state, templates, payload),
        |err| {
            let (delay, reason) = match err {
                HandleError::Transient(_) => (transient.next_delay(), "transient"),
                HandleError::Deferred(_) => (deferred.next_delay(), "deferred"),
                HandleError::Permanent(_) => return None,
            };
            if let Some(delay) = delay {
                metrics::counter!("notification_retries_total", "reason" => reason).increment(1);
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "{reason} failure; retrying");
            }
            delay
        },
    )
    .await;
    match outcome {
        Some(Err(HandleError::Deferred(source))) => {
            Some(Err(HandleError::Deferred(Box::new(GaveUp { attempts: deferred.failures(), source }))))
        }
        other => other,
    }
}

/// The in-process consumer of dev mode. Each message is acknowledged once it is
/// handled (or given up on): only then does the outbox relay mark it sent, so one
/// still being handled when the process stops is published again at the next start.
pub async fn run_in_process(
    state: AppState,
    mut deliveries: tokio::sync::mpsc::UnboundedReceiver<common::bus::Delivery>,
    shutdown: CancellationToken,
) {
    let templates = match Templates::new() {
        Ok(t) => Arc::new(t),
        Err(err) => {
            tracing::error!(error = %err, "email templates do not compile");
            return;
        }
    };
    loop {
        let delivery = tokio::select! {
            delivery = deliveries.recv() => match delivery { Some(d) => d, None => return },
            () = shutdown.cancelled() => return,
        };
        let message = &delivery.message;
        let span = tracing::info_span!("consume", topic = %message.topic, otel.kind = "consumer");
        let _ = span.set_parent(common::propagation::extract_map(&message.headers));
        let outcome = handle_with_retry(&state, &templates, &message.payload, &shutdown).instrument(span).await;
        match outcome {
            // Shutdown: unacknowledged, so the event stays unsent in the outbox.
            None => return,
            Some(Ok(_)) => {}
            Some(Err(err)) => {
                metrics::counter!("notification_dead_lettered_total").increment(1);
                tracing::error!(error = %err, "event cannot be handled; dropped (no dead-letter topic in dev mode)");
            }
        }
        delivery.ack();
    }
}

/// The Kafka consumer: group `ECOM_KAFKA_GROUP`, offsets committed only after an
/// event is handled (or dead-lettered), so a crash or a revoked partition means
/// redelivery, which the processed-events record turns into "send nothing".
pub async fn run_kafka(
    state: AppState,
    kafka: KafkaSettings,
    group: String,
    topic: String,
    shutdown: CancellationToken,
) {
    use rdkafka::consumer::{CommitMode, Consumer};

    let started = Templates::new().map_err(anyhow::Error::from).and_then(|templates| {
        let consumer = subscribe(&kafka, &group, &topic)?;
        let dlq = common::kafka::KafkaPublisher::configured(&kafka, crate::SERVICE)
            .map_err(|err| anyhow::anyhow!("cannot create the dead-letter producer: {err}"))?;
        Ok((templates, consumer, dlq))
    });
    let (templates, consumer, dlq) = match started {
        Ok(parts) => parts,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "the event consumer cannot start");
            return;
        }
    };
    while let Some(batch) = next_batch(&consumer, &shutdown).await {
        let worker = Worker { state: &state, templates: &templates, dlq: &dlq, topic: &topic, shutdown: &shutdown };
        if !worker.handle_batch(&batch).await {
            // Shutdown mid-batch: nothing of it is committed; what was handled is
            // recorded and skipped on redelivery.
            break;
        }
        if let Err(err) = consumer.commit(&offsets_after(&batch), CommitMode::Async) {
            tracing::warn!(error = %err, "offset commit failed; the events may be redelivered (and skipped)");
        }
    }
    drop_off_runtime(consumer);
}

/// A consumer in `group` subscribed to `topic`, committing only by hand.
fn subscribe(
    kafka: &KafkaSettings,
    group: &str,
    topic: &str,
) -> anyhow::Result<rdkafka::consumer::StreamConsumer<LagContext>> {
    use anyhow::Context as _;
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::StreamConsumer<LagContext> = common::kafka::configure(kafka, crate::SERVICE)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // Notice a topic created after subscribing within seconds, not minutes.
        .set("topic.metadata.refresh.interval.ms", "5000")
        // Statistics (and so the lag gauges) every 5 s.
        .set("statistics.interval.ms", "5000")
        // A consumer that dies without leaving the group holds its partitions until its
        // session expires: 10 s, not the default 45 s, bounds how long emails stop after
        // a crash (heartbeats every 3 s keep a live one in the group).
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        .set("log_level", "4")
        .create_with_context(LagContext { group: group.to_owned(), errors: Default::default() })
        .context("cannot create the Kafka consumer")?;
    consumer.subscribe(&[topic]).context("cannot subscribe")?;
    Ok(consumer)
}

/// The next message and whatever else is already fetched, up to [`BATCH`]; `None` at
/// shutdown.
///
/// Errors from `recv` are the client's reports (broker down, reconnecting), queued
/// as they happen while the client keeps reconnecting by itself: they are read
/// promptly, or a long outage would leave a queue of stale reports in front of the
/// first message. They are logged by the client's [`common::kafka::ErrorLog`], which a
/// message received tells that the client works again.
async fn next_batch(
    consumer: &rdkafka::consumer::StreamConsumer<LagContext>,
    shutdown: &CancellationToken,
) -> Option<Vec<rdkafka::message::OwnedMessage>> {
    let errors = &rdkafka::consumer::Consumer::context(consumer).errors;
    let first = loop {
        let received = tokio::select! {
            message = consumer.recv() => message,
            () = shutdown.cancelled() => return None,
        };
        match received {
            Ok(m) => break m.detach(),
            Err(err) => errors.report(&err, "consume failed"),
        }
        // A short pause, so that an error repeating at once cannot spin.
        tokio::select! {
            () = tokio::time::sleep(ERROR_PAUSE) => {}
            () = shutdown.cancelled() => return None,
        }
    };
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
            Ok(Ok(m)) => batch.push(m.detach()),
            Ok(Err(err)) => {
                errors.report(&err, "consume failed");
                break;
            }
            Err(_) => break,
        }
    }
    errors.recovered();
    Some(batch)
}

/// The messages of `batch` by key, each key's in their order, keys in order of first
/// appearance.
fn by_key(batch: &[rdkafka::message::OwnedMessage]) -> Vec<Vec<&rdkafka::message::OwnedMessage>> {
    use rdkafka::Message as _;
    let mut groups: Vec<(Option<&[u8]>, Vec<&rdkafka::message::OwnedMessage>)> = Vec::new();
    for message in batch {
        let key = message.key();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, messages)) => messages.push(message),
            None => groups.push((key, vec![message])),
        }
    }
    groups.into_iter().map(|(_, messages)| messages).collect()
}

/// The offsets to commit once `batch` is handled: per partition, one past its last message.
fn offsets_after(batch: &[rdkafka::message::OwnedMessage]) -> rdkafka::TopicPartitionList {
    use rdkafka::Message as _;
    let mut next: std::collections::BTreeMap<(&str, i32), i64> = std::collections::BTreeMap::new();
    for message in batch {
        let at = next.entry((message.topic(), message.partition())).or_default();
        *at = (*at).max(message.offset() + 1);
    }
    let mut offsets = rdkafka::TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        let _ = offsets.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset));
    }
    offsets
}

/// `message` for the dead-letter topic of `topic`: its key, payload and headers,
/// and headers saying why and where it came from.
fn dead_letter(
    topic: &str,
    message: &rdkafka::message::OwnedMessage,
    mut headers: std::collections::BTreeMap<String, String>,
    err: &HandleError,
) -> common::bus::Message {
    use rdkafka::Message as _;
    headers.insert("x-error".into(), err.to_string());
    headers.insert("x-original-topic".into(), message.topic().to_owned());
    headers.insert("x-original-partition".into(), message.partition().to_string());
    headers.insert("x-original-offset".into(), message.offset().to_string());
    common::bus::Message {
        topic: format!("{topic}.dlq"),
        key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        payload: bytes::Bytes::copy_from_slice(message.payload().unwrap_or_default()),
        headers,
    }
}

/// What handling a message needs.
#[derive(Clone, Copy)]
struct Worker<'a> {
    state: &'a AppState,
    templates: &'a Templates,
    dlq: &'a common::kafka::KafkaPublisher,
    topic: &'a str,
    shutdown: &'a CancellationToken,
}

impl Worker<'_> {
    /// Events of one order (one key) in order, different orders concurrently; `false`
    /// when shutdown interrupted it. The next `recv`, and so any rebalance, waits for
    /// the whole batch.
    async fn handle_batch(&self, batch: &[rdkafka::message::OwnedMessage]) -> bool {
        let done = futures::future::join_all(by_key(batch).into_iter().map(|messages| async move {
            for message in messages {
                if !self.handle_message(message).await {
                    return false;
                }
            }
            true
        }))
        .await;
        done.into_iter().all(|finished| finished)
    }

    /// Handles one message: the email, or the dead-letter topic for what cannot be
    /// handled. `false` when shutdown interrupted it (it is then neither handled nor
    /// dead-lettered).
    async fn handle_message(&self, message: &rdkafka::message::OwnedMessage) -> bool {
        use rdkafka::Message as _;
        let Self { state, templates, dlq, topic, shutdown } = *self;
        let headers = message.headers().map(common::kafka::headers_to_map).unwrap_or_default();
        let span = tracing::info_span!(
            "consume",
            otel.name = format!("consume {}", message.topic()),
            otel.kind = "consumer",
            messaging.system = "kafka",
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset()
        );
        let _ = span.set_parent(common::propagation::extract_map(&headers));
        let payload = message.payload().unwrap_or_default();
        let outcome = handle_with_retry(state, templates, payload, shutdown).instrument(span.clone()).await;
        let err = match outcome {
            None => return false,
            Some(Ok(_)) => return true,
            Some(Err(err)) => err,
        };
        let dead = dead_letter(topic, message, headers, &err);
        // Not committed until the dead letter is safely written.
        let mut backoff = DEAD_LETTER_RETRY.start();
        let written = retry::run_with_retries(
            shutdown,
            || common::bus::Publisher::publish(dlq, dead.clone()),
            |publish_err| {
                let delay = backoff.next_delay();
                tracing::warn!(error = %publish_err, "dead-letter publish failed; retrying");
                delay
            },
        )
        .await;
        if written.is_none() {
            return false;
        }
        metrics::counter!("notification_dead_lettered_total").increment(1);
        span.in_scope(|| tracing::error!(error = %err, "event dead-lettered"));
        true
    }
}

/// The pause after a consumer error before polling again.
const ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Most messages handled together between two polls of the consumer.
const BATCH: usize = 64;

/// Publishes `kafka_consumer_lag` per partition from the client's statistics; logs the
/// client's errors with back-off.
struct LagContext {
    group: String,
    errors: common::kafka::ErrorLog,
}

impl rdkafka::ClientContext for LagContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.errors.report(&error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // -1 is the client's internal "unassigned" partition.
                if *partition < 0 {
                    continue;
                }
                // Not ours (revoked or never assigned): this consumer is behind on nothing there.
                // Ours but not known yet (no committed offset or end offset yet): keep the last value.
                let lag = match (p.fetch_state.as_str(), p.consumer_lag) {
                    ("none", _) => 0,
                    (_, lag) if lag >= 0 => lag,
                    _ => continue,
                };
                metrics::gauge!(
                    "kafka_consumer_lag",
                    "group" => self.group.clone(),
                    "topic" => topic.clone(),
                    "partition" => partition.to_string()
                )
                .set(lag as f64);
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for LagContext {}

/// Dropping a consumer blocks while it leaves the group: do it on a detached thread,
/// so neither an async worker nor the runtime's shutdown waits on it.
fn drop_off_runtime(consumer: rdkafka::consumer::StreamConsumer<LagContext>) {
    let _ = std::thread::Builder::new().name("kafka-consumer-close".into()).spawn(move || drop(consumer));
}

#[cfg(test)]
mod tests {
    use rdkafka::Message as _;
    use rdkafka::message::OwnedMessage;

    use super::*;

    fn message(key: &str, partition: i32, offset: i64) -> OwnedMessage {
        let timestamp = rdkafka::Timestamp::NotAvailable;
        OwnedMessage::new(None, Some(key.as_bytes().to_vec()), "orders.v1".into(), timestamp, partition, offset, None)
    }

    #[test]
    fn a_batch_is_grouped_by_key_keeping_each_keys_order() {
        let batch = [message("a", 0, 1), message("b", 1, 7), message("a", 0, 2), message("c", 0, 3)];
        let groups: Vec<Vec<i64>> = by_key(&batch).iter().map(|g| g.iter().map(|m| m.offset()).collect()).collect();
        assert_eq!(groups, [vec![1, 2], vec![7], vec![3]]);
    }

    #[test]
    fn the_committed_offset_of_each_partition_is_one_past_its_last_message() {
        let batch = [message("a", 0, 4), message("b", 1, 9), message("a", 0, 5)];
        let offsets = offsets_after(&batch);
        let at = |partition| offsets.find_partition("orders.v1", partition).map(|p| p.offset());
        assert_eq!(at(0), Some(rdkafka::Offset::Offset(6)));
        assert_eq!(at(1), Some(rdkafka::Offset::Offset(10)));
    }

    #[test]
    fn a_dead_letter_keeps_the_message_and_says_why_and_where_from() {
        let err = HandleError::Permanent("no such template".into());
        let dead = dead_letter("orders.v1", &message("o-1", 2, 40), Default::default(), &err);
        assert_eq!((dead.topic.as_str(), dead.key.as_str()), ("orders.v1.dlq", "o-1"));
        assert_eq!(dead.headers["x-error"], "permanent: no such template");
        assert_eq!(dead.headers["x-original-partition"], "2");
        assert_eq!(dead.headers["x-original-offset"], "40");
    }
}
