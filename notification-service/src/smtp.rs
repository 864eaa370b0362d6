//! SMTP connections with `TCP_NODELAY`, pooled.
//!
//! lettre writes a message's body and its terminating `\r\n.\r\n` in two writes. On a
//! socket with Nagle's algorithm on (lettre's own transport does not turn it off) the
//! terminator waits for the server to acknowledge the body, and servers delay that
//! acknowledgement by about 40 ms: every email took 40 ms longer than its work. These
//! connections are lettre's, opened on our own socket with `TCP_NODELAY` set; STARTTLS
//! and authentication are lettre's too. (Implicit TLS, `smtps://`, needs the TLS
//! handshake before lettre sees the stream and stays on lettre's transport.)

use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::sync::{Mutex, Semaphore};

use crate::mailer::{MailError, SmtpStage};

/// An error while setting a connection up (greeting, EHLO, STARTTLS, AUTH): about the
/// server, never about a message, whatever the reply, so retried for as long as it takes.
fn setup(what: &str) -> impl FnOnce(lettre::transport::smtp::Error) -> MailError + '_ {
    move |err| transient(what, err)
}

fn transient(what: &str, err: impl std::fmt::Display) -> MailError {
    MailError::Transient(format!("{what}: {err}"))
}

/// When the connection is upgraded to TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    Never,
    /// When the server offers it.
    Opportunistic,
    Required,
}

/// A pool of SMTP connections to one server.
pub struct SmtpPool {
    host: String,
    port: u16,
    starttls: StartTls,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
    /// Connections open at once, in use or idle.
    slots: Arc<Semaphore>,
}

/// Most connections to the server at once.
const MAX_CONNECTIONS: usize = 16;

impl SmtpPool {
    pub fn new(host: String, port: u16, starttls: StartTls, credentials: Option<Credentials>) -> Self {
        Self {
            host,
            port,
            starttls,
            credentials,
            hello: ClientId::default(),
            timeout: Duration::from_secs(10),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, MailError> {
        let connect = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
        let stream = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| transient("connect", "timed out"))?
            .map_err(|e| transient("connect", e))?;
        stream.set_nodelay(true).map_err(|e| transient("TCP_NODELAY", e))?;
        let mut connection = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
            .await
            .map_err(setup("greeting"))?;
        let upgrade = match self.starttls {
            StartTls::Never => false,
            StartTls::Opportunistic => connection.can_starttls(),
            StartTls::Required => true,
        };
        if upgrade {
            let parameters = TlsParameters::new(self.host.clone()).map_err(setup("TLS"))?;
            connection.starttls(parameters, &self.hello).await.map_err(setup("STARTTLS"))?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(setup("authentication"))?;
        }
        Ok(connection)
    }

    /// An idle connection that still answers, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, MailError> {
        loop {
            let idle = self.idle.lock().await.pop();
            match idle {
                Some(mut connection) => {
                    if connection.test_connected().await {
                        return Ok(connection);
                    }
                    connection.abort().await;
                }
                None => return self.connect().await,
            }
        }
    }

    /// Sends one message; the connection goes back to the pool unless it failed.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), MailError> {
        let _slot = self.slots.acquire().await.map_err(|e| transient("pool", e))?;
        let mut connection = self.checkout().await?;
        match connection.send(envelope, message).await {
            Ok(_) => {
                self.idle.lock().await.push(connection);
                Ok(())
            }
            Err(err) => {
                connection.abort().await;
                Err(MailError::from_smtp(&err, SmtpStage::Transaction))
            }
        }
    }

    /// Whether the server accepts a connection and answers, for readiness.
    pub async fn check(&self) -> Result<(), MailError> {
        let _slot = self.slots.acquire().await.map_err(|e| transient("pool", e))?;
        let connection = self.checkout().await?;
        self.idle.lock().await.push(connection);
        Ok(())
    }
}
