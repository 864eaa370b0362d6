//! `ecom-rate`: GET one URL at a fixed rate over kept-alive HTTP/1.1 connections and
//! print the latency distribution as one JSON object, for the rated runs of
//! `scripts/bench/gateway.sh` (Debian's `wrk` has no fixed-rate mode).
//!
//! The load is open: request `i` of connection `k` is due at
//! `start + (i * connections + k) / rate`, whatever happened to the previous one. When a connection is still busy
//! with an earlier answer at a request's due time, that request's latency counts from its
//! due time, so a stall is charged to every request it delayed (no coordinated omission).
//! When the connection was free, latency counts from the moment the request was written:
//! tokio's timer wakes at millisecond granularity, and its lateness is the load
//! generator's, not the server's. One thread drives every connection, so the generator
//! takes at most one core from the targets.

mod stats;

use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::stats::Latencies;

#[derive(Parser, Debug)]
#[command(about = "GET one URL at a fixed rate and print its latency distribution as JSON")]
struct Args {
    /// `http://host:port/path` (plain HTTP only).
    #[arg(long)]
    url: Uri,
    /// Requests per second, over all connections together.
    #[arg(long)]
    rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Kept-alive connections; each carries `rate / connections` requests per second.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// An extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    ok: u64,
    other_status: u64,
    errors: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(args.rate > 0.0 && args.seconds > 0.0 && args.connections > 0) {
        bail!("--rate, --seconds and --connections must be above 0");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.url.scheme_str() != Some("http") {
        bail!("--url must be an http:// URL");
    }
    let authority = args.url.authority().context("--url has no host")?.clone();
    let address = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header.split_once(':').context("--header must be `Name: value`")?;
        headers.push((HeaderName::try_from(name.trim())?, HeaderValue::try_from(value.trim())?));
    }
    let path = args.url.path_and_query().map_or("/", |pq| pq.as_str()).to_owned();
    let request = move || {
        let mut request = Request::get(path.as_str()).header(http::header::HOST, authority.as_str());
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        request.body(Empty::<Bytes>::new())
    };

    let schedule = Schedule {
        start: Instant::now() + Duration::from_millis(50),
        interval: Duration::from_secs_f64(args.connections as f64 / args.rate),
        per_connection: (args.seconds * args.rate / args.connections as f64).floor() as u64,
        offset: Duration::ZERO,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..args.connections {
        let stream = TcpStream::connect(&address).await.with_context(|| format!("cannot connect to {address}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let schedule = Schedule { offset: Duration::from_secs_f64(k as f64 / args.rate), ..schedule };
        tasks.spawn(schedule.drive(sender, request.clone()));
    }
    report(&args, schedule.start, tasks).await
}

/// When one connection sends: `per_connection` requests, `interval` apart, from
/// `start + offset`.
#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    interval: Duration,
    per_connection: u64,
    offset: Duration,
}

impl Schedule {
    /// Sends on `sender` as scheduled; latency counts from when a request was due,
    /// unless the connection was still busy then (the open-loop correction).
    async fn drive<F>(self, mut sender: SendRequest<Empty<Bytes>>, request: F) -> Tally
    where
        F: Fn() -> Result<Request<Empty<Bytes>>, http::Error>,
    {
        let mut tally = Tally { latencies: Vec::with_capacity(self.per_connection as usize), ..Tally::default() };
        let mut free_since = self.start;
        for i in 0..self.per_connection {
            let due = self.start + self.offset + self.interval * u32::try_from(i).unwrap_or(u32::MAX);
            tokio::time::sleep_until(due).await;
            let from = if free_since > due { due } else { Instant::now() };
            let outcome = match (sender.ready().await, request()) {
                (Ok(()), Ok(request)) => match sender.send_request(request).await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        response.into_body().collect().await.map(|_| ok).map_err(anyhow::Error::from)
                    }
                    Err(err) => Err(err.into()),
                },
                (Err(err), _) => Err(err.into()),
                (_, Err(err)) => Err(err.into()),
            };
            free_since = Instant::now();
            match outcome {
                Ok(true) => tally.ok += 1,
                Ok(false) => tally.other_status += 1,
                Err(_) => {
                    tally.errors += 1;
                    // The connection is gone: the rest of its requests cannot be sent.
                    tally.errors += self.per_connection - i - 1;
                    break;
                }
            }
            tally.latencies.push(free_since - from);
        }
        tally
    }
}

/// Adds up every connection's tally and prints the run as one JSON line.
async fn report(args: &Args, start: Instant, mut tasks: tokio::task::JoinSet<Tally>) -> anyhow::Result<()> {
    let mut all = Tally::default();
    while let Some(tally) = tasks.join_next().await {
        let tally = tally?;
        all.latencies.extend(tally.latencies);
        all.ok += tally.ok;
        all.other_status += tally.other_status;
        all.errors += tally.errors;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sent = all.latencies.len();
    let latencies = Latencies::new(all.latencies);
    let report = serde_json::json!({
        "rate": args.rate,
        "connections": args.connections,
        "achieved_rate": sent as f64 / elapsed,
        "requests": sent,
        "ok": all.ok,
        "other_status": all.other_status,
        "errors": all.errors,
        "p50_ms": latencies.ms(0.50),
        "p90_ms": latencies.ms(0.90),
        "p99_ms": latencies.ms(0.99),
        "p999_ms": latencies.ms(0.999),
        "max_ms": latencies.ms(1.0),
    });
    println!("{report}");
    Ok(())
}
