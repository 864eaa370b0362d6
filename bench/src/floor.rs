//! `ecom-floor`: the least an HTTP/1.1 reverse proxy built on hyper and tokio costs, as a
//! peer in `scripts/bench/gateway.sh`.
//!
//! It forwards every request, as it came, to one upstream over kept-alive connections,
//! and does nothing else: no routing, no token, rate budget, body limit, timeout, breaker,
//! forwarding or security headers, request id, trace context, log line or metric. It
//! runs as the gateway's connections do: one single-threaded runtime per core, here each
//! with its own `SO_REUSEPORT` listener and its own idle upstream connections, so a
//! request never leaves its thread. What it spends per request is what hyper, tokio and
//! the kernel cost before any of the gateway's features: the floor under the gateway on
//! this stack. Not a product: an upstream that fails fails the request with no answer.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;

use anyhow::Context as _;
use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::LocalSet;

#[derive(Parser, Debug, Clone, Copy)]
#[command(about = "A bare hyper reverse proxy: the floor under the gateway's CPU per request")]
struct Args {
    /// Where to listen, `host:port`.
    #[arg(long)]
    bind: SocketAddr,
    /// The upstream, `host:port`.
    #[arg(long)]
    upstream: SocketAddr,
    /// Single-threaded runtimes, each with its own listener (default: the cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Most idle upstream connections one thread keeps.
const MAX_IDLE: usize = 256;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let threads = match args.threads {
        Some(threads) => threads,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let handles = (0..threads.max(1))
        .map(|i| std::thread::Builder::new().name(format!("floor-{i}")).spawn(move || serve(args)))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot start a thread")?;
    for handle in handles {
        handle.join().map_err(|_| anyhow::anyhow!("a thread panicked"))??;
    }
    Ok(())
}

/// One thread: its listener, its connections and its idle upstream connections.
fn serve(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    LocalSet::new().block_on(&runtime, async move {
        let socket = if args.bind.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(args.bind).with_context(|| format!("cannot listen on {}", args.bind))?;
        let listener = socket.listen(1024)?;
        let idle = Idle::default();
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let idle = idle.clone();
            tokio::task::spawn_local(async move {
                let service = service_fn(move |req| forward(idle.clone(), args.upstream, req));
                // A client gone or an upstream failed ends the connection; nothing to report.
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}

/// One thread's idle upstream connections.
#[derive(Clone, Default)]
struct Idle(Rc<RefCell<Vec<SendRequest<Incoming>>>>);

impl Idle {
    /// An idle connection ready for a request; closed ones are dropped on the way.
    fn take(&self) -> Option<SendRequest<Incoming>> {
        let mut idle = self.0.borrow_mut();
        idle.retain(|sender| !sender.is_closed());
        let ready = idle.iter().position(SendRequest::is_ready)?;
        Some(idle.swap_remove(ready))
    }

    /// Back to the list: ready again once its answer's body has been read.
    fn give_back(&self, sender: SendRequest<Incoming>) {
        let mut idle = self.0.borrow_mut();
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }
}

type Answer = Response<Either<Incoming, Empty<Bytes>>>;

async fn forward(idle: Idle, upstream: SocketAddr, req: Request<Incoming>) -> Result<Answer, Infallible> {
    match send(&idle, upstream, req).await {
        Ok(response) => Ok(response.map(Either::Left)),
        Err(_) => {
            let mut response = Response::new(Either::Right(Empty::new()));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            Ok(response)
        }
    }
}

async fn send(idle: &Idle, upstream: SocketAddr, req: Request<Incoming>) -> anyhow::Result<Response<Incoming>> {
    let mut sender = match idle.take() {
        Some(sender) => sender,
        None => connect(upstream).await?,
    };
    let response = sender.send_request(req).await?;
    idle.give_back(sender);
    Ok(response)
}

async fn connect(upstream: SocketAddr) -> anyhow::Result<SendRequest<Incoming>> {
    let stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::task::spawn_local(async move {
        // A closed connection is noticed by `is_closed` when it is next taken.
        let _ = connection.await;
    });
    Ok(sender)
}
