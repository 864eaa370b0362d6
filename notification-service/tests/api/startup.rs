use std::time::Duration;

use common::bus::{BusConfig, InProcessBus};
use common::db::PoolSettings;
use common::settings::{KafkaSettings, ServerSettings};
use common::test_util::{Running, eventually, fresh_mysql_database, real_dependency, unique_name};
use lettre::Message;
use notification_service::Settings;
use notification_service::mailer::Mailer;
use notification_service::settings::{MailSettings, MailTransport};
use url::Url;

fn mail(transport: MailTransport) -> MailSettings {
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

fn message(mailer: &Mailer, subject: &str) -> Message {
    Message::builder()
        .from(mailer.from().clone())
        .to("Ada Lovelace <ada@example.com>".parse().unwrap())
        .subject(subject)
        .body("Your order is confirmed.".to_owned())
        .unwrap()
}

#[tokio::test]
async fn a_message_sent_over_smtp_can_be_read_back_from_the_mail_server() {
    let Some(smtp_url) = real_dependency("ECOM_TEST_SMTP_URL") else { return };
    let Some(mailpit) = real_dependency("ECOM_TEST_MAILPIT_URL") else { return };
    let mailer = Mailer::new(&mail(smtp(&smtp_url))).unwrap();
    let subject = unique_name("smtp-proof");
    mailer.send(message(&mailer, &subject)).await.unwrap();

    let client = reqwest::Client::new();
    let url = format!("{mailpit}/api/v1/search?query=subject:{subject}");
    let found = eventually(Duration::from_secs(10), || {
        let request = client.get(&url).send();
        async move {
            let body: serde_json::Value = request.await.ok()?.json().await.ok()?;
            body["messages"].as_array()?.first().cloned()
        }
    })
    .await
    .expect("the message reached the mail server");
    assert_eq!(found["Subject"], subject.as_str());
    assert_eq!(found["To"][0]["Address"], "ada@example.com");
}

#[tokio::test]
async fn the_file_transport_writes_one_eml_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(&mail(MailTransport::Files { dir: dir.path().to_owned() })).unwrap();
    mailer.send(message(&mailer, "file proof")).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().unwrap(), "eml");
    assert!(std::fs::read_to_string(&files[0]).unwrap().contains("Subject: file proof"));
}

#[tokio::test]
async fn on_sqlite_with_mail_files_the_service_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/notifications.db", dir.path().display()).parse().unwrap();
    let settings =
        settings(url, BusConfig::InProcess(InProcessBus::new()), MailTransport::Files { dir: dir.path().join("mail") });
    let service =
        Running::spawn(move |listener, shutdown| notification_service::run(settings, listener, shutdown)).await;
    service.ready().await;
    service.stop().await.unwrap();
}

#[tokio::test]
async fn on_mariadb_kafka_and_smtp_the_service_becomes_ready() {
    let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") else { return };
    let Some(brokers) = real_dependency("ECOM_TEST_KAFKA_BROKERS") else { return };
    let Some(smtp_url) = real_dependency("ECOM_TEST_SMTP_URL") else { return };
    let settings = settings(
        fresh_mysql_database(&base).await,
        BusConfig::Kafka(KafkaSettings::plaintext(brokers)),
        smtp(&smtp_url),
    );
    let service =
        Running::spawn(move |listener, shutdown| notification_service::run(settings, listener, shutdown)).await;
    service.ready().await;
    service.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_names_the_mail_server_when_it_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/notifications.db", dir.path().display()).parse().unwrap();
    let settings = settings(url, BusConfig::InProcess(InProcessBus::new()), smtp("smtp://127.0.0.1:1"));
    let service =
        Running::spawn(move |listener, shutdown| notification_service::run(settings, listener, shutdown)).await;
    let response = reqwest::get(service.url("/health/ready")).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("mail"), "{body}");
    service.stop().await.unwrap();
}
