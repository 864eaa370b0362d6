//! Every service on every backend over TLS with credentials: the stack's TLS variants
//! (`scripts/stack.sh up`; MariaDB with require_secure_transport, Kafka on SASL_SSL,
//! FerretDB on TLS, Mailpit with STARTTLS or implicit TLS and SMTP AUTH). Secrets are
//! given as `*_FILE`, as a Kubernetes Secret mounted as files gives them. A wrong CA, a
//! wrong host name or wrong credentials stop the service at start, with a message
//! naming the variable and the backend.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

#[path = "../platform/mod.rs"]
mod platform;

use std::path::Path;
use std::time::Duration;

use common::settings::Env;
use common::test_util::{Running, eventually, fresh_mysql_database, mailpit_subjects, real_dependency, unique_name};
use platform::{Host, Platform};
use serde_json::json;

/// The TLS variants of the stack, from `scripts/stack.sh env`.
struct Tls {
    ca: String,
    other_ca: String,
    /// The host name the servers' certificate is issued for (`localhost`).
    host: String,
    /// `mysql://ecom:password@localhost:3307`
    mysql: url::Url,
    /// `mongodb://localhost:27018`
    mongodb: url::Url,
    /// `localhost:9094`, SASL_SSL
    brokers: String,
    scram: (String, String),
    plain: (String, String),
    starttls: String,
    smtps: String,
    smtp_credentials: (String, String),
    mailpit_smtps: String,
    /// The plain stack's brokers, for a service whose Kafka is not what a test is about.
    plain_brokers: String,
    secrets: tempfile::TempDir,
}

fn pair(value: &str) -> (String, String) {
    let (user, password) = value.split_once(':').unwrap();
    (user.to_owned(), password.to_owned())
}

fn tls() -> Option<Tls> {
    Some(Tls {
        ca: real_dependency("ECOM_TEST_TLS_CA_FILE")?,
        other_ca: real_dependency("ECOM_TEST_TLS_OTHER_CA_FILE")?,
        host: real_dependency("ECOM_TEST_TLS_HOST")?,
        mysql: real_dependency("ECOM_TEST_TLS_MYSQL_URL")?.parse().unwrap(),
        mongodb: real_dependency("ECOM_TEST_TLS_MONGODB_URL")?.parse().unwrap(),
        brokers: real_dependency("ECOM_TEST_TLS_KAFKA_BROKERS")?,
        scram: pair(&real_dependency("ECOM_TEST_TLS_KAFKA_SCRAM")?),
        plain: pair(&real_dependency("ECOM_TEST_TLS_KAFKA_PLAIN")?),
        starttls: real_dependency("ECOM_TEST_TLS_SMTP_STARTTLS_URL")?,
        smtps: real_dependency("ECOM_TEST_TLS_SMTPS_URL")?,
        smtp_credentials: pair(&real_dependency("ECOM_TEST_TLS_SMTP_CREDENTIALS")?),
        mailpit_smtps: real_dependency("ECOM_TEST_TLS_MAILPIT_SMTPS_URL")?,
        plain_brokers: real_dependency("ECOM_TEST_KAFKA_BROKERS")?,
        secrets: tempfile::tempdir().unwrap(),
    })
}

/// The host name the certificate is not issued for: the same server by address.
fn wrong_host(url: &url::Url) -> url::Url {
    let mut url = url.clone();
    url.set_host(Some("127.0.0.1")).unwrap();
    url
}

impl Tls {
    /// A file holding `value`, as a mounted secret.
    fn secret_file(&self, value: &str) -> String {
        platform::secret_file(self.secrets.path(), value)
    }

    /// The MySQL server, its certificate checked against `ca` for the host name,
    /// without the password (that comes from `ECOM_DB_PASSWORD_FILE`).
    fn mysql_server(&self, ca: &str) -> url::Url {
        let mut url = self.mysql.clone();
        url.set_password(None).unwrap();
        url.query_pairs_mut().append_pair("ssl-mode", "verify_identity").append_pair("ssl-ca", ca);
        url
    }

    /// A fresh database on the TLS server: `DATABASE_URL` (no password) and
    /// `ECOM_DB_PASSWORD_FILE`.
    async fn database(&self) -> Vec<(&'static str, String)> {
        let mut admin = self.mysql.clone();
        admin.query_pairs_mut().append_pair("ssl-mode", "verify_identity").append_pair("ssl-ca", &self.ca);
        let fresh = fresh_mysql_database(admin.as_str()).await;
        let mut url = self.mysql_server(&self.ca);
        url.set_path(fresh.path());
        vec![
            ("DATABASE_URL", url.to_string()),
            ("ECOM_DB_PASSWORD_FILE", self.secret_file(self.mysql.password().unwrap())),
        ]
    }

    /// The product catalog on FerretDB over TLS.
    fn catalog(&self, ca: &str) -> url::Url {
        let mut url = self.mongodb.clone();
        url.set_path(&unique_name("products"));
        url.query_pairs_mut().append_pair("tls", "true").append_pair("tlsCAFile", ca);
        url
    }

    /// Kafka over SASL_SSL with `mechanism` and `credentials`, brokers checked against `ca`.
    fn kafka(
        &self,
        brokers: &str,
        ca: &str,
        mechanism: &str,
        (user, password): &(String, String),
    ) -> Vec<(&'static str, String)> {
        vec![
            ("ECOM_KAFKA_BROKERS", brokers.to_owned()),
            ("ECOM_KAFKA_SECURITY_PROTOCOL", "sasl_ssl".into()),
            ("ECOM_KAFKA_SASL_MECHANISM", mechanism.into()),
            ("ECOM_KAFKA_SASL_USERNAME_FILE", self.secret_file(user)),
            ("ECOM_KAFKA_SASL_PASSWORD_FILE", self.secret_file(password)),
            ("ECOM_KAFKA_SSL_CA_FILE", ca.to_owned()),
        ]
    }

    /// The plain stack's Kafka on a topic and group of the test's own, for a
    /// notification-service whose Kafka is not what the test is about.
    fn plain_kafka(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ECOM_KAFKA_BROKERS", self.plain_brokers.clone()),
            ("ECOM_ORDERS_TOPIC", unique_name("orders-unused")),
            ("ECOM_KAFKA_GROUP", unique_name("notification-unused")),
        ]
    }

    /// Mail to `url` with the stack's SMTP credentials (or `password`), trusting `ca`.
    fn smtp(&self, url: &str, ca: &str, password: &str) -> Vec<(&'static str, String)> {
        vec![
            ("ECOM_SMTP_URL_FILE", self.secret_file(url)),
            ("ECOM_SMTP_USERNAME", self.smtp_credentials.0.clone()),
            ("ECOM_SMTP_PASSWORD_FILE", self.secret_file(password)),
            ("ECOM_SMTP_CA_FILE", ca.to_owned()),
        ]
    }
}

fn env(pairs: Vec<(&'static str, String)>) -> Env {
    Env::from_pairs(pairs)
}

/// Runs a service that must not start; its error, with every cause.
async fn start_failure<F, Fut>(run: F) -> String
where
    F: FnOnce(tokio::net::TcpListener, tokio_util::sync::CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let service = Running::spawn(run).await;
    let ended = tokio::time::timeout(Duration::from_secs(60), service.handle).await;
    match ended.expect("the service neither failed nor stopped within 60 s").unwrap() {
        Ok(()) => panic!("the service started"),
        Err(err) => format!("{err:#}"),
    }
}

fn assert_names(message: &str, expected: &[&str]) {
    eprintln!("start error: {message}");
    for part in expected {
        assert!(message.contains(part), "the start error should name {part:?}: {message}");
    }
}

/// How inventory-service fails to start on a fresh database of the TLS server, its
/// `DATABASE_URL` and `ECOM_DB_PASSWORD_FILE` changed by `change`.
async fn mysql_start_error(t: &Tls, change: impl FnOnce(&mut String, &mut String)) -> String {
    let mut pairs = t.database().await;
    let [(_, url), (_, password_file)] = &mut pairs[..] else { panic!("a URL and a password file") };
    change(url, password_file);
    pairs.push(("ECOM_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json".into()));
    let settings = inventory_service::Settings::from_env(&env(pairs)).unwrap();
    start_failure(move |l, s| inventory_service::run(settings, l, s)).await
}

fn orders(pairs: Vec<(&'static str, String)>) -> order_service::Settings {
    let mut pairs = pairs;
    pairs.extend([
        ("ECOM_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json".into()),
        ("ECOM_SERVICE_CLIENT_SECRET", test_support::random_secret()),
    ]);
    order_service::Settings::from_env(&env(pairs)).unwrap()
}

// ------------------------------------------------------------- the platform --

#[tokio::test]
async fn an_order_travels_every_backend_over_tls_with_credentials_from_secret_files() {
    let Some(t) = tls() else { return };
    let topic = ("ECOM_ORDERS_TOPIC", unique_name("orders-tls"));
    let mut services = platform::Backends {
        auth: t.database().await,
        product: vec![("DATABASE_URL_FILE", t.secret_file(t.catalog(&t.ca).as_str()))],
        inventory: t.database().await,
        order: t.database().await,
        notification: t.database().await,
    };
    // The relay publishes with SCRAM-SHA-512, the consumer reads with PLAIN.
    services.order.extend(t.kafka(&t.brokers, &t.ca, "SCRAM-SHA-512", &t.scram));
    services.order.push(topic.clone());
    services.notification.extend(t.kafka(&t.brokers, &t.ca, "PLAIN", &t.plain));
    services.notification.extend(t.smtp(&t.smtps, &t.ca, &t.smtp_credentials.1));
    services.notification.extend([topic, ("ECOM_KAFKA_GROUP", unique_name("notification-tls"))]);
    let printed =
        format!("{:?}", notification_service::Settings::from_env(&env(services.notification.clone())).unwrap());
    for secret in [t.mysql.password().unwrap(), &t.plain.1, &t.smtp_credentials.1] {
        assert!(!printed.contains(secret), "Debug shows a secret: {printed}");
    }
    // Readiness: each database, the mail server (implicit TLS, AUTH) and Kafka.
    let platform = Platform::start(services, Host::InProcess).await;
    platform.product("TLS-MUG", 1299, 5).await;
    let (email, token) = platform.customer("Ada").await;
    let lines = json!({"lines": [{"sku": "TLS-MUG", "quantity": 1}]});
    let (status, order) = platform.call(reqwest::Method::POST, "/api/orders", &token, Some(lines)).await;
    assert_eq!(status, 201, "{order}");

    // Outbox -> SCRAM producer -> SASL_SSL topic -> PLAIN consumer -> SMTPS with AUTH.
    let delivered = eventually(Duration::from_secs(60), || async {
        let subjects = mailpit_subjects(&t.mailpit_smtps, &email).await;
        (!subjects.is_empty()).then_some(subjects)
    })
    .await;
    assert_eq!(delivered.map(|s| s.len()), Some(1), "one confirmation email over implicit TLS");
}

#[tokio::test]
async fn notification_service_is_ready_with_starttls_and_smtp_auth() {
    let Some(t) = tls() else { return };
    let mut pairs = t.database().await;
    pairs.extend(t.smtp(&t.starttls, &t.ca, &t.smtp_credentials.1));
    pairs.extend(t.plain_kafka());
    let settings = notification_service::Settings::from_env(&env(pairs)).unwrap();
    let service = Running::spawn(move |l, s| notification_service::run(settings, l, s)).await;
    service.ready().await;
    service.stop().await.unwrap();
}

// ------------------------------------------------------------------ MySQL --

#[tokio::test]
async fn mysql_with_a_wrong_ca_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    let message = mysql_start_error(&t, |url, _| *url = url.replace(&urlencode(&t.ca), &urlencode(&t.other_ca))).await;
    assert_names(&message, &["DATABASE_URL", "MySQL", "does not chain to a CA"]);
}

#[tokio::test]
async fn mysql_under_a_wrong_host_name_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    let message = mysql_start_error(&t, |url, _| *url = wrong_host(&url.parse().unwrap()).to_string()).await;
    assert_names(&message, &["DATABASE_URL", "MySQL", "not issued for the host name"]);
}

#[tokio::test]
async fn mysql_with_a_wrong_password_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    let message = mysql_start_error(&t, |_, password_file| *password_file = t.secret_file("not-the-password")).await;
    assert_names(&message, &["DATABASE_URL", "ECOM_DB_PASSWORD", "MySQL", "refused"]);
    assert!(!message.contains("not-the-password"), "{message}");
}

#[tokio::test]
async fn mysql_without_tls_is_refused_by_the_server_at_start() {
    let Some(t) = tls() else { return };
    let without_tls = |url: &mut String| {
        let mut parsed: url::Url = url.parse().unwrap();
        parsed.set_query(Some("ssl-mode=disabled"));
        *url = parsed.to_string();
    };
    let message = mysql_start_error(&t, |url, _| without_tls(url)).await;
    assert_names(&message, &["DATABASE_URL", "cannot connect to MySQL", "without TLS", "may require TLS"]);
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

// ---------------------------------------------------------------- MongoDB --

async fn product_start_error(url: url::Url) -> String {
    let settings = product_service::Settings::from_env(&env(vec![
        ("DATABASE_URL", url.to_string()),
        ("ECOM_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json".into()),
    ]))
    .unwrap();
    start_failure(move |l, s| product_service::run(settings, l, s)).await
}

#[tokio::test]
async fn mongodb_with_a_wrong_ca_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    let message = product_start_error(t.catalog(&t.other_ca)).await;
    assert_names(&message, &["DATABASE_URL", "MongoDB", "does not chain to a CA"]);
}

#[tokio::test]
async fn mongodb_under_a_wrong_host_name_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    let message = product_start_error(wrong_host(&t.catalog(&t.ca))).await;
    assert_names(&message, &["DATABASE_URL", "MongoDB", "not issued for the host name"]);
}

// ------------------------------------------------------------------ Kafka --

async fn order_start_error(t: &Tls, kafka: Vec<(&'static str, String)>) -> String {
    let mut pairs = t.database().await;
    pairs.extend(kafka);
    let settings = orders(pairs);
    start_failure(move |l, s| order_service::run(settings, l, s)).await
}

#[tokio::test]
async fn kafka_with_a_wrong_ca_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    let message = order_start_error(&t, t.kafka(&t.brokers, &t.other_ca, "SCRAM-SHA-512", &t.scram)).await;
    assert_names(&message, &["ECOM_KAFKA_SSL_CA_FILE", "the Kafka broker's TLS certificate was not accepted"]);
}

#[tokio::test]
async fn kafka_under_a_wrong_host_name_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    let brokers = t.brokers.replace(&t.host, "127.0.0.1");
    let message = order_start_error(&t, t.kafka(&brokers, &t.ca, "SCRAM-SHA-512", &t.scram)).await;
    assert_names(&message, &["ECOM_KAFKA_", "Kafka", "127.0.0.1"]);
}

/// order-service with `user` and a wrong password over `mechanism` fails to start,
/// naming the variable, Kafka and the mechanism, never the password.
async fn kafka_refuses_a_wrong_password(t: &Tls, mechanism: &str, user: &str) {
    let wrong = (user.to_owned(), "not-the-password".to_owned());
    let message = order_start_error(t, t.kafka(&t.brokers, &t.ca, mechanism, &wrong)).await;
    assert_names(&message, &["ECOM_KAFKA_SASL_PASSWORD", "Kafka refused the SASL credentials", mechanism]);
    assert!(!message.contains("not-the-password"), "{message}");
}

#[tokio::test]
async fn kafka_with_a_wrong_scram_password_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    kafka_refuses_a_wrong_password(&t, "SCRAM-SHA-512", &t.scram.0).await;
}

#[tokio::test]
async fn kafka_with_a_wrong_plain_password_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    kafka_refuses_a_wrong_password(&t, "PLAIN", &t.plain.0).await;
}

// ------------------------------------------------------------------- SMTP --

async fn notification_start_error(t: &Tls, smtp: Vec<(&'static str, String)>) -> String {
    let mut pairs = t.database().await;
    pairs.extend(smtp);
    pairs.extend(t.plain_kafka());
    let settings = notification_service::Settings::from_env(&env(pairs)).unwrap();
    start_failure(move |l, s| notification_service::run(settings, l, s)).await
}

#[tokio::test]
async fn smtps_with_a_wrong_ca_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    let message = notification_start_error(&t, t.smtp(&t.smtps, &t.other_ca, &t.smtp_credentials.1)).await;
    assert_names(&message, &["ECOM_SMTP_CA_FILE", "SMTP server", "does not chain to a CA"]);
}

#[tokio::test]
async fn smtps_under_a_wrong_host_name_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    let url = t.smtps.replace(&t.host, "127.0.0.1");
    let message = notification_start_error(&t, t.smtp(&url, &t.ca, &t.smtp_credentials.1)).await;
    assert_names(&message, &["ECOM_SMTP_URL", "SMTP server", "not issued for the host name"]);
}

#[tokio::test]
async fn smtps_with_a_wrong_password_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    let message = notification_start_error(&t, t.smtp(&t.smtps, &t.ca, "not-the-password")).await;
    assert_names(&message, &["ECOM_SMTP_PASSWORD", "SMTP server", "refused the credentials"]);
    assert!(!message.contains("not-the-password"), "{message}");
}

#[tokio::test]
async fn starttls_with_a_wrong_ca_fails_at_start_naming_the_variable() {
    let Some(t) = tls() else { return };
    let message = notification_start_error(&t, t.smtp(&t.starttls, &t.other_ca, &t.smtp_credentials.1)).await;
    assert_names(&message, &["ECOM_SMTP_CA_FILE", "SMTP server", "does not chain to a CA"]);
}

/// The CA files exist where the stack says: a missing one would make every test above
/// pass for the wrong reason.
#[test]
fn the_stack_ca_files_hold_certificates() {
    let Some(t) = tls() else { return };
    for file in [&t.ca, &t.other_ca] {
        let text = std::fs::read_to_string(Path::new(file)).unwrap();
        assert!(text.contains("BEGIN CERTIFICATE"), "{file}");
    }
}
