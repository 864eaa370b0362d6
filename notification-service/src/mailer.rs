//! Sending email: pooled SMTP in production, `.eml` files in dev mode.

use anyhow::Context as _;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use std::sync::Arc;

use crate::smtp::{SmtpPool, StartTls};

use crate::settings::{MailSettings, MailTransport};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth retrying: the server could not be reached or answered 4xx.
    #[error("transient mail failure: {0}")]
    Transient(String),
    /// Retrying will not help: the server rejected the message (5xx) or it is malformed.
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

#[derive(Clone)]
enum Transport {
    /// `smtp://`: our pool of `TCP_NODELAY` connections (see [`crate::smtp`]).
    Smtp(Arc<SmtpPool>),
    /// `smtps://`: lettre's pooled transport (implicit TLS).
    Smtps(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// The configured mail transport; cheap to clone (the SMTP pool is shared).
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Smtps(_) => "smtps",
            Transport::Files(_) => "files",
        };
        f.debug_struct("Mailer").field("from", &self.from.to_string()).field("transport", &kind).finish()
    }
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> anyhow::Result<Self> {
        let from: Mailbox = settings.from.parse().context("ECOM_MAIL_FROM: not a mailbox")?;
        let transport = match &settings.transport {
            MailTransport::Smtp { url, username, password } => {
                let credentials = match (username, password) {
                    (Some(user), Some(password)) => {
                        Some(Credentials::new(user.clone(), password.expose_secret().to_owned()))
                    }
                    _ => None,
                };
                if url.scheme() == "smtps" {
                    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
                        .context("ECOM_SMTP_URL: not a usable SMTP URL")?;
                    if let Some(credentials) = credentials {
                        builder = builder.credentials(credentials);
                    }
                    Transport::Smtps(builder.build())
                } else {
                    let host = url.host_str().context("ECOM_SMTP_URL: no host")?.to_owned();
                    let starttls = match url.query_pairs().find(|(k, _)| k == "tls").as_ref().map(|(_, v)| v.as_ref()) {
                        None => StartTls::Never,
                        Some("required") => StartTls::Required,
                        Some("opportunistic") => StartTls::Opportunistic,
                        Some(other) => anyhow::bail!("ECOM_SMTP_URL: tls={other}, expected required or opportunistic"),
                    };
                    let port = url.port().unwrap_or(if starttls == StartTls::Never { 25 } else { 587 });
                    Transport::Smtp(Arc::new(SmtpPool::new(host, port, starttls, credentials)))
                }
            }
            MailTransport::Files { dir } => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("ECOM_MAIL_DIR: cannot create {}", dir.display()))?;
                Transport::Files(AsyncFileTransport::<Tokio1Executor>::new(dir))
            }
        };
        Ok(Self { from, transport })
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Hands `message` to the transport.
    #[tracing::instrument(skip_all)]
    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        match &self.transport {
            Transport::Smtp(pool) => pool.send(message.envelope(), &message.formatted()).await,
            Transport::Smtps(smtp) => smtp.send(message).await.map(drop).map_err(|err| {
                if err.is_permanent() {
                    MailError::Permanent(err.to_string())
                } else {
                    MailError::Transient(err.to_string())
                }
            }),
            Transport::Files(files) => {
                files.send(message).await.map(drop).map_err(|err| MailError::Transient(err.to_string()))
            }
        }
    }

    /// Whether the mail server answers, for readiness.
    pub async fn check(&self) -> Result<(), String> {
        match &self.transport {
            Transport::Smtp(pool) => pool.check().await.map_err(|err| format!("SMTP: {err}")),
            Transport::Smtps(smtp) => match smtp.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err("the SMTP server did not accept a connection".into()),
                Err(err) => {
                    Err(format!("SMTP: {}", err.status().map_or_else(|| "unreachable".to_owned(), |s| s.to_string())))
                }
            },
            Transport::Files(_) => Ok(()),
        }
    }
}
