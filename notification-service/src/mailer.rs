//! Sending email: pooled SMTP in production, `.eml` files in dev mode.

use anyhow::Context as _;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use std::sync::Arc;

use crate::smtp::{Encryption, SetupStage, SmtpPool};

use crate::settings::{MailSettings, MailTransport};

/// How sending failed: transient (the server, or setting a connection up), deferred
/// (a 4xx to this message) or permanent (a 5xx, or a message the server cannot take).
pub use crate::error::Failure as MailError;

impl MailError {
    /// An SMTP error met while handing one message over on a connection that is set up
    /// (MAIL, RCPT, DATA, the content), as a mail error; set-up errors are
    /// [`crate::smtp::SetupError`]. A 4xx reply is about this message unless it speaks
    /// for the whole server: 421 (closing), 454 (TLS or authentication unavailable), or
    /// an enhanced status of class 4.3 (mail system) or 4.4 (network, routing).
    pub fn from_smtp(err: lettre::transport::smtp::Error) -> Self {
        // A client error in the transaction is the message's own (a non-ASCII address
        // the server cannot take): no retry can help.
        if err.is_permanent() || err.is_client() {
            return Self::Permanent(err.into());
        }
        let Some(code) = err.status().filter(|_| err.is_transient()) else {
            return Self::Transient(err.into());
        };
        let text = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
        if speaks_for_the_server(code.into(), &text) { Self::Transient(err.into()) } else { Self::Deferred(err.into()) }
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
    /// `smtp://` and `smtps://`: our pool of `TCP_NODELAY` connections (see [`crate::smtp`]).
    Smtp {
        pool: Arc<SmtpPool>,
        server: String,
    },
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
        let kind = match &self.transport {
            Transport::Smtp { server, .. } => server.as_str(),
            Transport::Files(_) => "files",
        };
        f.debug_struct("Mailer").field("from", &self.from.to_string()).field("transport", &kind).finish()
    }
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> anyhow::Result<Self> {
        let from: Mailbox = settings.from.parse().context("ECOM_MAIL_FROM: not a mailbox")?;
        let transport = match &settings.transport {
            MailTransport::Smtp { url, username, password, ca_file } => {
                let server = url.redacted();
                let exposed = url.expose();
                let credentials = match (username, password) {
                    (Some(user), Some(password)) => {
                        Some(Credentials::new(user.clone(), password.expose_secret().to_owned()))
                    }
                    _ if !exposed.username().is_empty() => {
                        let decode = |s: &str| percent_decode(s).context("ECOM_SMTP_URL: credentials are not UTF-8");
                        Some(Credentials::new(decode(exposed.username())?, decode(exposed.password().unwrap_or(""))?))
                    }
                    _ => None,
                };
                let host = exposed.host_str().context("ECOM_SMTP_URL: no host")?.to_owned();
                let tls = exposed.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
                let encryption = match (exposed.scheme(), tls.as_deref()) {
                    ("smtps", None | Some("required" | "implicit")) => Encryption::Implicit,
                    ("smtps", Some(other)) => anyhow::bail!("ECOM_SMTP_URL: tls={other} does not go with smtps://"),
                    (_, None) => Encryption::Plain,
                    (_, Some("required")) => Encryption::StartTls,
                    (_, Some("opportunistic")) => Encryption::StartTlsOpportunistic,
                    (_, Some(other)) => anyhow::bail!("ECOM_SMTP_URL: tls={other}, expected required or opportunistic"),
                };
                let port = exposed.port().unwrap_or(match encryption {
                    Encryption::Plain => 25,
                    Encryption::Implicit => 465,
                    Encryption::StartTls | Encryption::StartTlsOpportunistic => 587,
                });
                let pool = SmtpPool::new(host, port, encryption, credentials, ca_file.as_deref())
                    .map_err(|reason| anyhow::anyhow!("ECOM_SMTP_CA_FILE: {reason}"))?;
                Transport::Smtp { pool: Arc::new(pool), server }
            }
            MailTransport::Files { dir } => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("ECOM_MAIL_DIR: cannot create {}", dir.display()))?;
                Transport::Files(AsyncFileTransport::<Tokio1Executor>::new(dir))
            }
        };
        Ok(Self { from, transport })
    }

    /// Checks at start that the mail server accepts the TLS and credentials
    /// configured: a certificate not trusted, a host name it does not carry or refused
    /// credentials end the start with a message naming the variable. A server that
    /// cannot be reached is no configuration error: readiness reports it, and sending
    /// retries until it is back.
    pub async fn verify(&self) -> anyhow::Result<()> {
        let Transport::Smtp { pool, server } = &self.transport else { return Ok(()) };
        let Ok(result) = tokio::time::timeout(std::time::Duration::from_secs(15), pool.connect_now()).await else {
            tracing::warn!(server, "the SMTP server did not answer at start; starting anyway");
            return Ok(());
        };
        let Err(err) = result else { return Ok(()) };
        match err.stage {
            SetupStage::Tls => {
                let hint = common::tls::diagnose(&err.reason, "ECOM_SMTP_CA_FILE", "ECOM_SMTP_URL")
                    .unwrap_or_else(|| "TLS could not be set up".to_owned());
                anyhow::bail!(
                    "ECOM_SMTP_URL / ECOM_SMTP_CA_FILE: TLS with the SMTP server at {server} failed: {hint}: {}",
                    err.reason
                )
            }
            SetupStage::Authentication => anyhow::bail!(
                "ECOM_SMTP_USERNAME / ECOM_SMTP_PASSWORD: the SMTP server at {server} refused the credentials: {}",
                err.reason
            ),
            SetupStage::Connect | SetupStage::Greeting => {
                tracing::warn!(server, error = %err, "the SMTP server cannot be reached at start; starting anyway");
                Ok(())
            }
        }
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Hands `message` to the transport.
    #[tracing::instrument(skip_all)]
    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        match &self.transport {
            Transport::Smtp { pool, .. } => pool.send(message.envelope(), &message.formatted()).await,
            Transport::Files(files) => {
                files.send(message).await.map(drop).map_err(|err| MailError::Transient(err.into()))
            }
        }
    }

    /// Whether the mail server answers, for readiness.
    pub async fn check(&self) -> Result<(), String> {
        match &self.transport {
            Transport::Smtp { pool, .. } => pool.check().await.map_err(|err| format!("SMTP: {err}")),
            Transport::Files(_) => Ok(()),
        }
    }
}

/// `%xx` escapes in a URL's user name or password, decoded.
fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
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
