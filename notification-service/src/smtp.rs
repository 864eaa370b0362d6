//! SMTP connections with `TCP_NODELAY`, pooled: plain, STARTTLS and implicit TLS.
//!
//! lettre writes a message's body and its terminating `\r\n.\r\n` in two writes. On a
//! socket with Nagle's algorithm on (lettre's own transport does not turn it off) the
//! terminator waits for the server to acknowledge the body, and servers delay that
//! acknowledgement by about 40 ms: every email took 40 ms longer than its work. These
//! connections are lettre's, opened on our own socket with `TCP_NODELAY` set; STARTTLS
//! and authentication are lettre's too. For implicit TLS (`smtps://`) the handshake is
//! ours, on that same socket, before lettre reads the greeting through it.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

use crate::mailer::MailError;

/// How the connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// None (`smtp://host:port`).
    Plain,
    /// STARTTLS when the server offers it (`?tls=opportunistic`).
    StartTlsOpportunistic,
    /// STARTTLS, refusing a server that does not offer it (`?tls=required`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// Where setting a connection up failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupStage {
    Connect,
    Tls,
    Greeting,
    Authentication,
}

/// A failure to set a connection up: about the server or the configuration, never
/// about a message.
#[derive(Debug)]
pub struct SetupError {
    pub stage: SetupStage,
    pub reason: String,
}

impl SetupError {
    fn at(stage: SetupStage) -> impl FnOnce(String) -> Self {
        move |reason| Self { stage, reason }
    }
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = match self.stage {
            SetupStage::Connect => "connect",
            SetupStage::Tls => "TLS",
            SetupStage::Greeting => "greeting",
            SetupStage::Authentication => "authentication",
        };
        write!(f, "{stage}: {}", self.reason)
    }
}

impl std::error::Error for SetupError {}

/// The trust the server's certificate is checked against: the public web roots, plus
/// the CAs of `ECOM_SMTP_CA_FILE`.
struct Trust {
    /// For implicit TLS, where the handshake is ours.
    config: Arc<rustls::ClientConfig>,
    /// For STARTTLS, which lettre performs.
    parameters: TlsParameters,
}

impl Trust {
    fn new(host: &str, ca_file: Option<&Path>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let mut parameters = TlsParameters::builder(host.to_owned());
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let certificates = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{} holds no PEM certificates: {e}", path.display()))?;
            if certificates.is_empty() {
                return Err(format!("{} holds no PEM certificates", path.display()));
            }
            for certificate in certificates {
                roots.add(certificate).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let certificate = Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
            parameters = parameters.add_root_certificate(certificate);
        }
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let parameters = parameters.build_rustls().map_err(|e| e.to_string())?;
        Ok(Self { config: Arc::new(config), parameters })
    }
}

/// A pool of SMTP connections to one server.
pub struct SmtpPool {
    host: String,
    port: u16,
    encryption: Encryption,
    credentials: Option<Credentials>,
    trust: Trust,
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
    /// Connections open at once, in use or idle.
    slots: Arc<Semaphore>,
}

/// Most connections to the server at once.
const MAX_CONNECTIONS: usize = 16;

impl SmtpPool {
    /// A pool for `host:port`; fails on a CA file that holds no usable certificate.
    pub fn new(
        host: String,
        port: u16,
        encryption: Encryption,
        credentials: Option<Credentials>,
        ca_file: Option<&Path>,
    ) -> Result<Self, String> {
        let trust = Trust::new(&host, ca_file)?;
        Ok(Self {
            host,
            port,
            encryption,
            credentials,
            trust,
            hello: ClientId::default(),
            timeout: Duration::from_secs(10),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        })
    }

    /// A new connection: TCP with `TCP_NODELAY`, TLS as configured, greeting,
    /// authentication.
    pub async fn open(&self) -> Result<AsyncSmtpConnection, SetupError> {
        use SetupStage::{Authentication, Connect, Greeting, Tls};
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let stream = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| SetupError { stage: Connect, reason: "timed out".into() })?
            .map_err(|e| SetupError { stage: Connect, reason: e.to_string() })?;
        stream.set_nodelay(true).map_err(|e| SetupError { stage: Connect, reason: format!("TCP_NODELAY: {e}") })?;
        let stream: Box<dyn AsyncTokioStream> = if self.encryption == Encryption::Implicit {
            let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                .map_err(|e| SetupError { stage: Tls, reason: e.to_string() })?;
            let handshake = tokio_rustls::TlsConnector::from(self.trust.config.clone()).connect(name, stream);
            let tls = tokio::time::timeout(self.timeout, handshake)
                .await
                .map_err(|_| SetupError { stage: Tls, reason: "handshake timed out".into() })?
                .map_err(|e| SetupError { stage: Tls, reason: e.to_string() })?;
            Box::new(TlsStream(tls))
        } else {
            Box::new(stream)
        };
        let mut connection = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|e| SetupError::at(Greeting)(e.to_string()))?;
        let upgrade = match self.encryption {
            Encryption::Plain | Encryption::Implicit => false,
            Encryption::StartTlsOpportunistic => connection.can_starttls(),
            Encryption::StartTls => true,
        };
        if upgrade {
            connection
                .starttls(self.trust.parameters.clone(), &self.hello)
                .await
                .map_err(|e| SetupError::at(Tls)(e.to_string()))?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| SetupError::at(Authentication)(e.to_string()))?;
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
                // A set-up error is about the server, never about a message, whatever
                // the reply: retried for as long as it takes.
                None => return self.open().await.map_err(|e| MailError::Transient(e.into())),
            }
        }
    }

    /// Sends one message; the connection goes back to the pool unless it failed.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), MailError> {
        let _slot = self.slots.acquire().await.map_err(|e| MailError::Transient(e.into()))?;
        let mut connection = self.checkout().await?;
        match connection.send(envelope, message).await {
            Ok(_) => {
                self.idle.lock().await.push(connection);
                Ok(())
            }
            Err(err) => {
                connection.abort().await;
                Err(MailError::from_smtp(err))
            }
        }
    }

    /// Whether the server accepts a connection and answers, for readiness.
    pub async fn check(&self) -> Result<(), MailError> {
        let _slot = self.slots.acquire().await.map_err(|e| MailError::Transient(e.into()))?;
        let connection = self.checkout().await?;
        self.idle.lock().await.push(connection);
        Ok(())
    }

    /// One connection set up now, kept in the pool; the set-up error otherwise.
    pub async fn connect_now(&self) -> Result<(), SetupError> {
        let connection = self.open().await?;
        self.idle.lock().await.push(connection);
        Ok(())
    }
}

/// A TLS stream lettre can read its SMTP session through.
#[derive(Debug)]
struct TlsStream(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}
