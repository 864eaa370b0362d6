//! Kafka client configuration (TLS and SASL included), trace-context headers,
//! the start-up check and readiness.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use secrecy::ExposeSecret as _;

use crate::settings::KafkaSettings;

/// A plaintext client configuration for `brokers` (comma-separated `host:port`).
pub fn client_config(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("client.id", client_id).set("socket.keepalive.enable", "true");
    config
}

/// A client configuration for the cluster `kafka` describes, with its TLS and SASL.
pub fn configure(kafka: &KafkaSettings, client_id: &str) -> ClientConfig {
    let mut config = client_config(&kafka.brokers, client_id);
    let security = &kafka.security;
    config.set("security.protocol", security.protocol.as_str());
    if let Some(sasl) = &security.sasl {
        config
            .set("sasl.mechanisms", sasl.mechanism.as_str())
            .set("sasl.username", &sasl.username)
            .set("sasl.password", sasl.password.expose_secret());
    }
    if security.protocol.uses_tls() {
        // Librdkafka's default since 2.0, stated: the certificate must name the broker.
        config.set("ssl.endpoint.identification.algorithm", "https");
        if let Some(ca) = &security.ca_file {
            config.set("ssl.ca.location", ca.to_string_lossy());
        }
        if let Some((cert, key)) = &security.client_cert {
            config
                .set("ssl.certificate.location", cert.to_string_lossy())
                .set("ssl.key.location", key.to_string_lossy());
        }
        if let Some(password) = &security.key_password {
            config.set("ssl.key.password", password.expose_secret());
        }
    }
    config
}

/// Keeps the errors a client reports (TLS handshakes, SASL), which its calls only
/// summarise as a timeout or a transport failure.
#[derive(Default)]
struct Reports(Mutex<Vec<String>>);

impl Reports {
    fn push(&self, report: String) {
        if let Ok(mut reports) = self.0.lock() {
            reports.push(report);
        }
    }
}

impl ClientContext for Reports {
    /// The client's warnings say why a connection failed (a TLS handshake, SASL) the
    /// moment it does; they come from its own threads.
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            self.push(format!("{facility}: {message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Reports {}

/// At most one line per kind of client error in this long (see [`ErrorLog`]).
pub const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The errors a long-lived client reports, logged with back-off. While its brokers
/// are away a client reports the same error at every poll (tens a second); it keeps
/// reconnecting on its own, so a line per poll says nothing new. The first of each
/// kind is logged at once, then one line per kind at most every
/// [`ERROR_LOG_INTERVAL`], with how many were left out since the last. When the client
/// works again ([`ErrorLog::recovered`]), one line per kind says how many were left out
/// since its last line, so the end of an outage is accounted for too.
/// Clones share their counts: the client holds one, its owner another.
#[derive(Debug, Default, Clone)]
pub struct ErrorLog {
    counts: std::sync::Arc<Mutex<ErrorCounts>>,
    /// Set by every error, so that [`ErrorLog::recovered`] costs a healthy client no lock.
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// When each kind of error was last logged, and how many have come since.
#[derive(Debug, Default)]
struct ErrorCounts(std::collections::HashMap<String, (std::time::Instant, u64)>);

impl ErrorCounts {
    /// Counts one `kind` at `now`; the number left out since the last line when this
    /// one is to be logged.
    fn due(&mut self, kind: &str, now: std::time::Instant) -> Option<u64> {
        match self.0.get_mut(kind) {
            Some((last, left_out)) if now.duration_since(*last) < ERROR_LOG_INTERVAL => {
                *left_out += 1;
                None
            }
            Some((last, left_out)) => {
                *last = now;
                Some(std::mem::take(left_out))
            }
            None => {
                self.0.insert(kind.to_owned(), (now, 0));
                Some(0)
            }
        }
    }

    /// Forgets every kind (the next error is logged at once); each kind with errors
    /// left out since its last line, with how many, by kind.
    fn recovered(&mut self) -> Vec<(String, u64)> {
        let mut left_out: Vec<_> = self.0.drain().map(|(kind, (_, n))| (kind, n)).filter(|(_, n)| *n > 0).collect();
        left_out.sort();
        left_out
    }
}

impl ErrorLog {
    pub fn report(&self, error: &KafkaError, reason: &str) {
        let kind = error.to_string();
        self.failing.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(left_out) = self.counts().due(&kind, std::time::Instant::now()) {
            tracing::error!(error = %kind, reason, left_out, "Kafka client error; the client keeps reconnecting");
        }
    }

    /// The client works again (a message was delivered): logs how many errors of each
    /// kind were left out since its last line, and logs the next error at once.
    pub fn recovered(&self) {
        if !self.failing.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        for (kind, left_out) in self.counts().recovered() {
            tracing::warn!(error = %kind, left_out, "Kafka client works again; errors left out since the last line");
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, ErrorCounts> {
        // A panic elsewhere while the counts were held must not silence every later error.
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ClientContext for ErrorLog {
    fn error(&self, error: KafkaError, reason: &str) {
        self.report(&error, reason);
    }
}

/// How long the start-up check waits for brokers that do not answer at all.
pub const START_PATIENCE: Duration = Duration::from_secs(5);

/// Checks at start that the brokers accept a TLS or SASL configuration: a
/// certificate not trusted, a host name the certificate does not carry, refused
/// credentials or a protocol the listener does not speak end the start with a
/// message naming the variable. Brokers that do not answer within
/// [`START_PATIENCE`] are no configuration error: the service starts, and its
/// clients keep reconnecting. Plaintext has nothing to get wrong but the address,
/// so it is not checked (a broker being restarted must not delay a start).
pub async fn verify(kafka: &KafkaSettings) -> anyhow::Result<()> {
    if kafka.security.protocol == crate::settings::SecurityProtocol::Plaintext {
        return Ok(());
    }
    let kafka = kafka.clone();
    let patience = START_PATIENCE;
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer<Reports> = configure(&kafka, "ecom-start-check")
            .set("log_level", "4")
            .create_with_context(Reports::default())
            .map_err(|e| anyhow::anyhow!("ECOM_KAFKA_*: the Kafka client refuses the configuration: {e}"))?;
        let until = std::time::Instant::now() + patience;
        loop {
            let attempt = consumer.fetch_metadata(None, Duration::from_millis(500));
            if attempt.is_ok() {
                return Ok(());
            }
            // Serves the error callbacks queued meanwhile.
            let _ = consumer.poll(Duration::ZERO);
            let reports = consumer.context().0.lock().map(|r| r.clone()).unwrap_or_default();
            if let Some(message) = reports.iter().find_map(|report| misconfiguration(&kafka, report)) {
                anyhow::bail!(message);
            }
            if std::time::Instant::now() >= until {
                tracing::warn!(
                    brokers = %kafka.brokers,
                    reports = ?reports,
                    "Kafka did not answer at start; starting anyway, the clients keep reconnecting"
                );
                return Ok(());
            }
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("the Kafka start-up check was aborted: {e}"))?
}

/// The configuration error a client's report points to, as a message naming the
/// variable; `None` for reports that say nothing about configuration.
fn misconfiguration(kafka: &KafkaSettings, report: &str) -> Option<String> {
    let text = report.to_ascii_lowercase();
    let protocol = kafka.security.protocol.as_str();
    if text.contains("hostname mismatch") || text.contains("ip address mismatch") {
        return Some(format!(
            "ECOM_KAFKA_BROKERS: the Kafka broker's TLS certificate is not issued for the host name in \
             {} ({report})",
            kafka.brokers
        ));
    }
    if text.contains("certificate verify failed") || text.contains("ssl handshake failed") {
        return Some(format!(
            "ECOM_KAFKA_SSL_CA_FILE: the Kafka broker's TLS certificate was not accepted: it must chain to a CA \
             in ECOM_KAFKA_SSL_CA_FILE (or the system's) and name the host in ECOM_KAFKA_BROKERS ({report})"
        ));
    }
    if text.contains("sasl authentication") || text.contains("authentication failed") {
        let mechanism = kafka.security.sasl.as_ref().map_or("none", |s| s.mechanism.as_str());
        return Some(format!(
            "ECOM_KAFKA_SASL_USERNAME / ECOM_KAFKA_SASL_PASSWORD: Kafka refused the SASL credentials \
             (ECOM_KAFKA_SASL_MECHANISM {mechanism}) ({report})"
        ));
    }
    if text.contains("incorrect security.protocol") || text.contains("wrong security.protocol") {
        return Some(format!(
            "ECOM_KAFKA_SECURITY_PROTOCOL: Kafka does not speak {protocol} on {} ({report})",
            kafka.brokers
        ));
    }
    None
}

/// Message headers carrying a trace context map.
pub fn headers_from_map(map: &BTreeMap<String, String>) -> OwnedHeaders {
    map.iter().fold(OwnedHeaders::new(), |headers, (key, value)| headers.insert(Header { key, value: Some(value) }))
}

/// The UTF-8 headers of a received message as a map.
pub fn headers_to_map<H: Headers>(headers: &H) -> BTreeMap<String, String> {
    headers.iter().filter_map(|h| Some((h.key.to_owned(), std::str::from_utf8(h.value?).ok()?.to_owned()))).collect()
}

/// Asks plaintext `brokers` for the cluster's metadata; see [`check`].
pub async fn check_brokers(brokers: String) -> Result<(), String> {
    check(KafkaSettings::plaintext(brokers)).await
}

/// Asks the cluster for its metadata; for readiness. Runs on a blocking thread
/// because the client's calls (and its drop) block.
pub async fn check(kafka: KafkaSettings) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer =
            configure(&kafka, "ecom-health").set("log_level", "3").create().map_err(|e| format!("client: {e}"))?;
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
    producer: rdkafka::producer::FutureProducer<ErrorLog>,
    /// The producer's own, told when a delivery succeeds.
    errors: ErrorLog,
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
        Self::configured(&KafkaSettings::plaintext(brokers), client_id)
    }

    /// A producer for the cluster `kafka` describes, with its TLS and SASL.
    pub fn configured(kafka: &KafkaSettings, client_id: &str) -> Result<Self, rdkafka::error::KafkaError> {
        let errors = ErrorLog::default();
        let producer = configure(kafka, client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "10000")
            .set("log_level", "4")
            .create_with_context(errors.clone())?;
        Ok(Self { producer, errors, timeout: Duration::from_secs(10) })
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
                .map(|_| self.errors.recovered())
                .map_err(|(err, _)| crate::bus::BusError::Kafka(err))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::{ERROR_LOG_INTERVAL, ErrorCounts};

    #[test]
    fn a_repeated_client_error_is_logged_once_per_interval_with_how_many_were_left_out() {
        let mut counts = ErrorCounts::default();
        let start = Instant::now();
        let at = |millis: u64| start + std::time::Duration::from_millis(millis);
        assert_eq!(counts.due("AllBrokersDown", at(0)), Some(0), "the first is logged at once");
        for millis in (40..10_000).step_by(40) {
            assert_eq!(counts.due("AllBrokersDown", at(millis)), None, "at {millis} ms");
        }
        assert_eq!(counts.due("BrokerTransportFailure", at(5_000)), Some(0), "another kind is not held back");
        let next = ERROR_LOG_INTERVAL.as_millis() as u64;
        assert_eq!(counts.due("AllBrokersDown", at(next)), Some(249));
        assert_eq!(counts.due("AllBrokersDown", at(next + 1)), None);
    }

    #[test]
    fn on_recovery_the_errors_left_out_since_the_last_line_are_counted_and_the_next_is_logged_at_once() {
        let mut counts = ErrorCounts::default();
        let start = Instant::now();
        let at = |millis: u64| start + std::time::Duration::from_millis(millis);
        assert_eq!(counts.due("AllBrokersDown", at(0)), Some(0));
        for millis in [40, 80, 120] {
            assert_eq!(counts.due("AllBrokersDown", at(millis)), None);
        }
        assert_eq!(counts.due("BrokerTransportFailure", at(100)), Some(0));
        assert_eq!(
            counts.recovered(),
            vec![("AllBrokersDown".to_owned(), 3)],
            "a kind with nothing left out has nothing to say"
        );
        assert_eq!(counts.recovered(), vec![], "a second recovery repeats nothing");
        assert_eq!(counts.due("AllBrokersDown", at(200)), Some(0), "the next outage is logged at once");
    }
}
