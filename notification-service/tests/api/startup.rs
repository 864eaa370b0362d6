use std::time::Duration;

use common::bus::{BusConfig, InProcessBus};
use common::test_util::{Running, mailpit_subjects, real_dependency, unique_name};
use lettre::Message;
use notification_service::mailer::Mailer;
use notification_service::settings::MailTransport;

use crate::support::{Stack, emails_arrive, mail, on_sqlite, smtp, start};

fn message(mailer: &Mailer, to: &str, subject: &str) -> Message {
    Message::builder()
        .from(mailer.from().clone())
        .to(format!("Ada Lovelace <{to}>").parse().unwrap())
        .subject(subject)
        .body("Your order is confirmed.".to_owned())
        .unwrap()
}

#[tokio::test]
async fn a_message_sent_over_smtp_can_be_read_back_from_the_mail_server() {
    let Some(smtp_url) = real_dependency("ECOM_TEST_SMTP_URL") else { return };
    let Some(mailpit) = real_dependency("ECOM_TEST_MAILPIT_URL") else { return };
    let mailer = Mailer::new(&mail(smtp(&smtp_url))).unwrap();
    let to = format!("{}@example.com", unique_name("smtp-proof"));
    mailer.send(message(&mailer, &to, "smtp proof")).await.unwrap();

    assert!(
        emails_arrive(&mailpit, &to, 1, Duration::from_secs(10)).await,
        "the message never reached the mail server"
    );
    assert_eq!(mailpit_subjects(&mailpit, &to).await, ["smtp proof"]);
}

#[tokio::test]
async fn the_file_transport_writes_one_eml_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(&mail(MailTransport::Files { dir: dir.path().to_owned() })).unwrap();
    mailer.send(message(&mailer, "ada@example.com", "file proof")).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().unwrap(), "eml");
    assert!(std::fs::read_to_string(&files[0]).unwrap().contains("Subject: file proof"));
}

#[tokio::test]
async fn on_sqlite_with_mail_files_the_service_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    let files = MailTransport::Files { dir: dir.path().join("mail") };
    start(on_sqlite(dir.path(), BusConfig::InProcess(InProcessBus::new()), files)).await.stop().await.unwrap();
}

#[tokio::test]
async fn on_mariadb_kafka_and_smtp_the_service_becomes_ready() {
    let Some(stack) = Stack::from_env() else { return };
    let settings = stack.settings(&unique_name("orders-ready"), &stack.smtp_url).await;
    start(settings).await.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_names_the_mail_server_when_it_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let settings = on_sqlite(dir.path(), BusConfig::InProcess(InProcessBus::new()), smtp("smtp://127.0.0.1:1"));
    let service = Running::spawn(move |l, s| notification_service::run(settings, l, s)).await;
    let response = reqwest::get(service.url("/health/ready")).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("mail"), "{body}");
    service.stop().await.unwrap();
}
