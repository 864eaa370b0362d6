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
    /// Not this message's fault: the server cannot be reached, is not accepting mail
    /// (421, 4.3.x, 4.4.x) or could not be set up (greeting, TLS, authentication).
    /// Worth retrying for as long as it takes.
    #[error("transient mail failure: {0}")]
    Transient(String),
    /// The server answered this message or its recipient with a temporary refusal
    /// (4xx during the mail transaction): worth a few more attempts, not many.
    #[error("mail deferred: {0}")]
    Deferred(String),
    /// Retrying will not help: the server rejected the message (5xx) or it is malformed.
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

/// Where an SMTP error was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpStage {
    /// Handing one message over on a connection that is set up (MAIL, RCPT, DATA, the
    /// content).
    Transaction,
    /// Anywhere: lettre's own transport sets its connections up inside `send`.
    Any,
}

impl MailError {
    /// An SMTP error as a mail error. A 4xx reply is about this message unless it
    /// speaks for the whole server: 421 (closing), 454 (TLS or authentication
    /// unavailable), or an enhanced status of class 4.3 (mail system) or 4.4 (network,
    /// routing).
    pub fn from_smtp(err: &lettre::transport::smtp::Error, stage: SmtpStage) -> Self {
        // A client error in the transaction is the message's own (a non-ASCII address
        // the server cannot take): no retry can help. Elsewhere it may be the set-up's.
        if err.is_permanent() || (err.is_client() && stage == SmtpStage::Transaction) {
            return Self::Permanent(err.to_string());
        }
        let Some(code) = err.status().filter(|_| err.is_transient()) else {
            return Self::Transient(err.to_string());
        };
        let text = std::error::Error::source(err).map(ToString::to_string).unwrap_or_default();
        if speaks_for_the_server(code.into(), &text) {
            Self::Transient(err.to_string())
        } else {
            Self::Deferred(err.to_string())
        }
    }
}

/// Whether a 4xx reply (`code`, then `text`, which starts with the enhanced status
/// when the server sends one) is about the server rather than one message.
fn speaks_for_the_server(code: u16, text: &str) -> bool {
    let enhanced = text.split_whitespace().next().unwrap_or_default();
    matches!(code, 421 | 454) || ["4.3.", "4.4."].iter().any(|class| enhanced.starts_with(class))
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
            Transport::Smtps(smtp) => {
                smtp.send(message).await.map(drop).map_err(|err| MailError::from_smtp(&err, SmtpStage::Any))
            }
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

#[cfg(test)]
mod tests {
    use super::speaks_for_the_server;

    #[test]
    fn a_4xx_reply_is_the_servers_only_when_it_says_so() {
        let server = [
            (421, "4.3.2 Service shutting down"),
            (454, "4.7.0 TLS not available"),
            (451, "4.3.0 Temporary lookup failure"),
            (451, "4.4.1 No answer from host"),
            (421, "Too many connections"),
        ];
        let message = [
            (450, "4.2.1 Mailbox busy, try again later"),
            (452, "4.2.2 Mailbox full"),
            (451, "4.7.1 Greylisted, please retry"),
            (450, "Requested mail action not taken: mailbox unavailable"),
            (451, ""),
        ];
        for (code, text) in server {
            assert!(speaks_for_the_server(code, text), "{code} {text}");
        }
        for (code, text) in message {
            assert!(!speaks_for_the_server(code, text), "{code} {text}");
        }
    }
}
