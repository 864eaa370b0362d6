//! The services behind the gateway and the kept-alive HTTP/1.1 connections to them.
//!
//! A connection is driven by the request that uses it: the request's own task writes the
//! request, reads the answer's head and, while hyper writes the answer to the client,
//! its body; then the connection goes back to an idle list. A pooled client that runs
//! each connection as a task of its own makes every proxied request cross two tasks, and
//! often two threads, each way. The idle lists are per connection thread
//! ([`common::listener::ConnectionThreads`]), so a connection stays on the thread whose
//! reactor it is registered with.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use common::breaker::CircuitBreaker;
use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

/// An idle connection unused this long is closed rather than reused (the services keep
/// an idle connection for 75 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle connections kept per upstream and connection thread.
const MAX_IDLE: usize = 256;

/// One service behind the gateway.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: &'static str,
    pub base: Url,
    pub breaker: CircuitBreaker,
    pub pool: Pool,
}

impl Upstream {
    pub fn new(name: &'static str, base: &Url, breaker: CircuitBreaker, pool: PoolConfig) -> Self {
        Self { name, base: base.clone(), breaker, pool: Pool::new(base, pool) }
    }

    /// The request's path and query on this upstream, in origin form (`/path?query`),
    /// after the base URL's own path if it has one.
    pub fn target(&self, uri: &Uri) -> Option<Uri> {
        let path_and_query = uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        let prefix = self.base.path().trim_end_matches('/');
        if prefix.is_empty() {
            return Some(Uri::from(path_and_query));
        }
        format!("{prefix}{path_and_query}").parse().ok()
    }
}

/// How connections to an upstream are made and kept.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    pub connect_timeout: Duration,
    /// Connection threads, each with its own idle list (plus one list for the others).
    pub threads: usize,
}

/// The kept-alive connections to one upstream. Cheap to clone.
#[derive(Clone)]
pub struct Pool(Arc<PoolShared>);

struct PoolShared {
    host: String,
    port: u16,
    /// The `Host` header of every request (hyper's connection does not add one).
    host_header: Option<HeaderValue>,
    connect_timeout: Duration,
    idle: Box<[Mutex<Vec<Idle>>]>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("host", &self.0.host).field("port", &self.0.port).finish_non_exhaustive()
    }
}

/// Why an upstream could not be asked.
#[derive(Debug)]
pub enum SendError {
    Connect(io::Error),
    Http(hyper::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(err) => write!(f, "cannot connect: {err}"),
            Self::Http(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(err) => Some(err),
            Self::Http(err) => Some(err),
        }
    }
}

impl Pool {
    pub fn new(base: &Url, config: PoolConfig) -> Self {
        let host = base.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = base.port_or_known_default().unwrap_or(80);
        let authority = match base.port() {
            Some(port) => format!("{}:{port}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_owned(),
        };
        let idle = (0..=config.threads).map(|_| Mutex::new(Vec::new())).collect();
        Self(Arc::new(PoolShared {
            host,
            port,
            host_header: HeaderValue::from_str(&authority).ok(),
            connect_timeout: config.connect_timeout,
            idle,
        }))
    }

    /// Sends `request` (origin-form target) on an idle connection or a new one, and
    /// waits for the answer's head while driving the connection. The answer's body
    /// drives the connection on and gives it back once read to its end.
    ///
    /// An idle connection the upstream closed after it was taken, found so before the
    /// request was written, hands the request to a new connection: the upstream never
    /// saw it, so sending it again cannot do anything twice.
    pub async fn send(&self, mut request: Request<Body>) -> Result<Response<UpstreamBody>, SendError> {
        // The upstream's own name, never the client's `Host`.
        match &self.0.host_header {
            Some(host) => request.headers_mut().insert(http::header::HOST, host.clone()),
            None => request.headers_mut().remove(http::header::HOST),
        };
        let kept = self.checkout().await;
        self.send_on_kept(kept, request).await
    }

    /// Sends `request` on `kept`, or on a new connection when there is none or `kept`
    /// turns out closed before the request was written; drives the connection until the
    /// answer's head arrives.
    async fn send_on_kept(
        &self,
        kept: Option<Connection>,
        mut request: Request<Body>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        // One loop, no nested `async fn`s: each would keep room for its own copy of the
        // request and the connection in every request's future.
        let mut fresh = kept.is_none();
        let mut connection = match kept {
            Some(connection) => connection,
            None => self.connect_boxed().await?,
        };
        loop {
            let mut answer = std::pin::pin!(connection.sender.try_send_request(request));
            let head = std::future::poll_fn(|cx| {
                connection.drive(cx);
                answer.as_mut().poll(cx)
            })
            .await;
            let mut failed = match head {
                Ok(head) => {
                    let pool = self.clone();
                    return Ok(head.map(|body| UpstreamBody {
                        body,
                        ended: false,
                        connection: Some(connection),
                        pool,
                    }));
                }
                Err(failed) => failed,
            };
            match failed.take_message() {
                Some(unsent) if !fresh => request = unsent,
                _ => return Err(SendError::Http(failed.into_error())),
            }
            connection = self.connect_boxed().await?;
            fresh = true;
        }
    }

    /// [`Self::connect`], boxed: connecting is rare, and its future would otherwise make
    /// every request's larger, and moved as a whole.
    async fn connect_boxed(&self) -> Result<Connection, SendError> {
        Box::pin(self.connect()).await
    }

    /// The idle list of the calling thread.
    fn idle(&self) -> &Mutex<Vec<Idle>> {
        let lists = &self.0.idle;
        let index = common::listener::thread_index().map_or(lists.len() - 1, |i| i.min(lists.len() - 1));
        &lists[index]
    }

    /// The most recently used idle connection that is still open and ready.
    async fn checkout(&self) -> Option<Connection> {
        std::future::poll_fn(|cx| {
            loop {
                let popped = self.idle().lock().unwrap_or_else(PoisonError::into_inner).pop();
                let Some(Idle { mut connection, since }) = popped else { return Poll::Ready(None) };
                if since.elapsed() < IDLE_TIMEOUT && connection.is_reusable(cx) {
                    return Poll::Ready(Some(connection));
                }
            }
        })
        .await
    }

    /// Keeps `connection` for a next request. Whether it is still open and done with
    /// this exchange is checked when it is taken again ([`Self::checkout`]), by the
    /// request that will be woken by it.
    fn give_back(&self, connection: Connection) {
        if connection.io.is_none() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle().lock().unwrap_or_else(PoisonError::into_inner);
        if idle.first().is_some_and(|oldest| now.duration_since(oldest.since) >= IDLE_TIMEOUT) {
            idle.remove(0);
        }
        if idle.len() < MAX_IDLE {
            idle.push(Idle { connection, since: now });
        }
    }

    async fn connect(&self) -> Result<Connection, SendError> {
        let address = (self.0.host.as_str(), self.0.port);
        let stream = match tokio::time::timeout(self.0.connect_timeout, TcpStream::connect(address)).await {
            Ok(stream) => stream.map_err(SendError::Connect)?,
            Err(_) => return Err(SendError::Connect(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))),
        };
        stream.set_nodelay(true).map_err(SendError::Connect)?;
        let (sender, io) =
            http1::Builder::new().writev(false).handshake(TokioIo::new(stream)).await.map_err(SendError::Http)?;
        Ok(Connection { sender, io: Some(Box::pin(io)) })
    }
}

struct Idle {
    connection: Connection,
    since: Instant,
}

/// The I/O half of a connection, a future that ends when the connection closes.
type Io = http1::Connection<TokioIo<TcpStream>, Body>;

/// One connection: the handle that sends requests on it, and its I/O, done by whoever
/// polls it.
struct Connection {
    sender: http1::SendRequest<Body>,
    /// `None` once closed: dropping it hands any request it had not written back to its
    /// sender ([`TrySendError::take_message`]).
    io: Option<Pin<Box<Io>>>,
}

impl Connection {
    /// Does what I/O the connection can do now; false once it has closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(io) = &mut self.io
            && io.as_mut().poll(cx).is_ready()
        {
            self.io = None;
        }
        self.io.is_some()
    }

    /// Open, and done with its last exchange.
    fn is_reusable(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx) && self.sender.is_ready()
    }
}

/// An upstream answer's body; it drives its connection and gives it back to the pool
/// when dropped after its end (a body dropped before its end closes the connection).
pub struct UpstreamBody {
    body: Incoming,
    /// Read to its end (a chunked body's end is not its `is_end_stream`).
    ended: bool,
    connection: Option<Connection>,
    pool: Pool,
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(connection) = &mut this.connection {
            connection.drive(cx);
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            this.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take()
            && (self.ended || self.body.is_end_stream())
        {
            self.pool.give_back(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use common::breaker::BreakerConfig;
    use http_body_util::{BodyExt as _, Full};

    use super::*;

    /// An HTTP/1.1 server on port 0 answering `hello` to everything; counts the
    /// connections it accepted.
    async fn counting_server() -> (Url, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (url, accepted)
    }

    fn get() -> Request<Body> {
        Request::builder().uri("/").body(Body::empty()).unwrap()
    }

    fn upstream(base: &str) -> Upstream {
        let config = PoolConfig { connect_timeout: Duration::from_secs(1), threads: 0 };
        Upstream::new("test", &base.parse().unwrap(), CircuitBreaker::new("test", BreakerConfig::default()), config)
    }

    #[test]
    fn the_target_keeps_the_path_and_query_after_any_base_path() {
        let uri: Uri = "/api/products/1?page=2".parse().unwrap();
        assert_eq!(upstream("http://127.0.0.1:8082").target(&uri).unwrap(), "/api/products/1?page=2");
        assert_eq!(upstream("http://127.0.0.1:8082/svc/").target(&uri).unwrap(), "/svc/api/products/1?page=2");
    }

    #[test]
    fn requests_name_the_upstream_host_as_its_base_url_does() {
        let host = |base: &str| upstream(base).pool.0.host_header.clone().unwrap();
        assert_eq!(host("http://127.0.0.1:8082"), "127.0.0.1:8082");
        assert_eq!(host("http://product-service"), "product-service");
        assert_eq!(host("http://[::1]:8082/svc"), "[::1]:8082");
    }

    #[tokio::test]
    async fn the_upstream_hears_its_own_host_never_the_clients() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Url = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                let host = req.headers().get_all(http::header::HOST).iter().map(|v| v.to_str().unwrap().to_owned());
                let hosts: Vec<String> = host.collect();
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(hosts.join(",")))))
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
        let pool = Pool::new(&url, PoolConfig { connect_timeout: Duration::from_secs(1), threads: 0 });
        let mut request = get();
        request.headers_mut().insert(http::header::HOST, HeaderValue::from_static("shop.example"));
        let body = pool.send(request).await.unwrap().into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, url.authority());
    }

    #[tokio::test]
    async fn answers_read_to_their_end_leave_their_connection_for_the_next_request() {
        let (url, accepted) = counting_server().await;
        let pool = Pool::new(&url, PoolConfig { connect_timeout: Duration::from_secs(1), threads: 0 });
        for _ in 0..3 {
            let body = pool.send(get()).await.unwrap().into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "hello");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_request_meeting_a_kept_connection_closed_under_it_goes_out_on_a_new_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Url = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
        let (close, closing) = tokio::sync::oneshot::channel::<()>();
        let (closed, was_closed) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            // The first connection answers once, then closes when told to, as a service
            // does that gave up on a body it did not read.
            let (mut first, _) = listener.accept().await.unwrap();
            let mut buf = [0; 1024];
            let _ = first.read(&mut buf).await.unwrap();
            first.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst").await.unwrap();
            closing.await.unwrap();
            drop(first);
            closed.send(()).unwrap();
            let (mut second, _) = listener.accept().await.unwrap();
            let _ = second.read(&mut buf).await.unwrap();
            second.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecond").await.unwrap();
            let _ = second.read(&mut buf).await;
        });
        let pool = Pool::new(&url, PoolConfig { connect_timeout: Duration::from_secs(1), threads: 0 });
        let body = pool.send(get()).await.unwrap().into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "first");

        let kept = pool.checkout().await.expect("the first connection was not kept");
        close.send(()).unwrap();
        was_closed.await.unwrap();
        // A request left in a closed connection's queue would wait forever: bound it.
        let answer = tokio::time::timeout(Duration::from_secs(5), pool.send_on_kept(Some(kept), get()))
            .await
            .expect("the request waited in the closed connection")
            .unwrap();
        assert_eq!(answer.into_body().collect().await.unwrap().to_bytes(), "second");
    }

    #[tokio::test]
    async fn an_answer_dropped_before_its_end_takes_its_connection_with_it() {
        let (url, accepted) = counting_server().await;
        let pool = Pool::new(&url, PoolConfig { connect_timeout: Duration::from_secs(1), threads: 0 });
        drop(pool.send(get()).await.unwrap());
        let body = pool.send(get()).await.unwrap().into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
