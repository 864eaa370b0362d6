//! Time per email over implicit TLS (`smtps://`): notification-service's pooled
//! `TCP_NODELAY` connections against lettre's own transport, to the stack's SMTPS Mailpit
//! (docs/benchmarks/commerce.md). Sequential sends of a 2 KB message on one warm
//! connection each way:
//!
//!   eval "$(bash scripts/stack.sh env)"
//!   cargo run --release -p notification-service --example smtps_latency [COUNT]

use std::time::Instant;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use notification_service::mailer::Mailer;
use notification_service::settings::{DEFAULT_MAIL_MAX_ATTEMPTS, MailSettings, MailTransport};

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set: eval \"$(bash scripts/stack.sh env)\""))
}

fn message(i: usize) -> anyhow::Result<Message> {
    Ok(Message::builder()
        .from("ecom <no-reply@ecom.test>".parse()?)
        .to("Ada <ada@example.com>".parse()?)
        .subject(format!("smtps latency {i}"))
        .body("x".repeat(2000))?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::install_crypto_provider();
    let count: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(200);
    let ca = var("ECOM_TEST_TLS_CA_FILE")?;
    let url: url::Url = var("ECOM_TEST_TLS_SMTPS_URL")?.parse()?;
    let credentials = var("ECOM_TEST_TLS_SMTP_CREDENTIALS")?;
    let (user, password) =
        credentials.split_once(':').ok_or_else(|| anyhow::anyhow!("credentials are user:password"))?;
    let host = url.host_str().unwrap_or("localhost").to_owned();
    let port = url.port().unwrap_or(465);

    let ours = Mailer::new(&MailSettings {
        from: "ecom <no-reply@ecom.test>".into(),
        transport: MailTransport::Smtp {
            url: url.clone().into(),
            username: Some(user.to_owned()),
            password: Some(password.to_owned().into()),
            ca_file: Some(ca.clone().into()),
        },
        max_attempts: DEFAULT_MAIL_MAX_ATTEMPTS,
    })?;
    ours.send(message(0)?).await?;
    let started = Instant::now();
    for i in 0..count {
        ours.send(message(i)?).await?;
    }
    let pooled = started.elapsed().as_secs_f64() * 1000.0 / count as f64;

    let tls = TlsParameters::builder(host.clone())
        .add_root_certificate(Certificate::from_pem(&std::fs::read(&ca)?)?)
        .build_rustls()?;
    let lettre = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(Tls::Wrapper(tls))
        .credentials(Credentials::new(user.to_owned(), password.to_owned()))
        .build();
    lettre.send(message(0)?).await?;
    let started = Instant::now();
    for i in 0..count {
        lettre.send(message(i)?).await?;
    }
    let theirs = started.elapsed().as_secs_f64() * 1000.0 / count as f64;

    println!("{count} emails over smtps:// each way");
    println!("  pooled TCP_NODELAY connection: {pooled:.2} ms per email");
    println!("  lettre's own transport:        {theirs:.2} ms per email");
    Ok(())
}
