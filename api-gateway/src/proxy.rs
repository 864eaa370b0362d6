//! The reverse proxy: small request bodies read whole, larger ones and every answer
//! streamed, over kept-alive upstream connections ([`crate::upstream`]); hop-by-hop
//! headers removed, `x-forwarded-*` set, an upstream timeout, and one circuit breaker per
//! upstream.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use common::breaker::{Outcome, Permit};
use common::http::MAX_BODY_BYTES;
use http::StatusCode;
use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::{Body as HttpBody, Frame};

use crate::error::ApiError;
use crate::state::AppState;
use crate::upstream::{SendError, Upstream, UpstreamBody};

/// How many [`HOP_BY_HOP`] names there are.
const HOP_BY_HOP_COUNT: usize = 8;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1). A static,
/// not a constant: a constant would be built and dropped at each use.
static HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Where `name` is in [`HOP_BY_HOP`]. Told by its text: a name's length rules out all
/// but one or two of them at once, where comparing header names would compare each.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-authenticate" => 2,
        "proxy-authorization" => 3,
        "te" => 4,
        "trailer" => 5,
        "transfer-encoding" => 6,
        "upgrade" => 7,
        _ => return None,
    })
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none, or only `Connection`: one pass over their few names finds
    // those present, and only those are looked up again to be removed.
    let mut present = [false; HOP_BY_HOP_COUNT];
    for name in headers.keys() {
        if let Some(at) = hop_by_hop_index(name) {
            present[at] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    // Names `Connection` adds to the standard ones (rare): collected before removing. Its
    // usual options, `keep-alive` and `close`, are told by their text, with no header
    // name made of them.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|option| !is_standard_connection_option(option))
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for (hop, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, present)| *present) {
        headers.remove(hop);
    }
    for name in &named {
        headers.remove(name);
    }
}

/// `close`, or a name the standard hop-by-hop list removes anyway, in any case.
fn is_standard_connection_option(option: &str) -> bool {
    option.eq_ignore_ascii_case("close") || HOP_BY_HOP.iter().any(|hop| option.eq_ignore_ascii_case(hop.as_str()))
}

/// The address a request came from (the peer, or the last `X-Forwarded-For`
/// entry when a trusted proxy sits in front).
pub fn client_ip(req: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(ip) = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return Some(ip);
    }
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

/// Bodies announced at most this long are read whole before the upstream is asked, as
/// nginx buffers request bodies. The upstream then gets the request in one piece: a
/// service that answers without reading the body (a 405, a 401) finds it already there,
/// drains it and keeps the connection, instead of closing a connection the gateway
/// still counts on, or resetting it under an answer not yet read. Larger bodies stream;
/// this bounds what the buffers of 1024 connections can hold to 64 MiB.
const WHOLE_BODY_BYTES: u64 = 64 * 1024;

/// Forwards `req` to `upstream` and streams the answer back.
pub async fn forward(
    state: &AppState,
    upstream: &Upstream,
    req: Request,
    client: Option<IpAddr>,
) -> Result<Response, ApiError> {
    refuse_oversized(req.headers())?;
    let (req, whole) = read_small_body(req).await?;
    let permit = upstream
        .breaker
        .try_acquire()
        .map_err(|rejected| ApiError::CircuitOpen { upstream: upstream.name, retry_after: rejected.retry_after })?;
    let (request, sent) = upstream_request(upstream, req, client, whole)?;
    let answer = tokio::time::timeout(state.upstream_timeout, upstream.pool.send(request)).await;
    let answer = match answer {
        Ok(answer) => answer.map_err(Failure::Send),
        Err(_) => Err(Failure::TimedOut(state.upstream_timeout)),
    };
    settle(upstream, permit, answer, &sent)
}

/// The length the request's `Content-Length` announces.
fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

/// 413 at once for a body announced larger than the limit.
fn refuse_oversized(headers: &HeaderMap) -> Result<(), ApiError> {
    match announced_length(headers) {
        Some(length) if length > MAX_BODY_BYTES as u64 => Err(ApiError::PayloadTooLarge),
        _ => Ok(()),
    }
}

/// The request with its body read whole when it announces at most [`WHOLE_BODY_BYTES`],
/// and whether it was.
async fn read_small_body(req: Request) -> Result<(Request, bool), ApiError> {
    if req.body().is_end_stream() || announced_length(req.headers()).is_none_or(|length| length > WHOLE_BODY_BYTES) {
        return Ok((req, false));
    }
    // Boxed: most requests have no body, and would otherwise carry room for reading one.
    Ok((Box::pin(read_whole_body(req)).await?, true))
}

async fn read_whole_body(req: Request) -> Result<Request, ApiError> {
    let (parts, body) = req.into_parts();
    // A body that stalls is ended by the body read timeout, whose layer answers 408.
    let whole = body.collect().await.map_err(|_| ApiError::BrokenBody)?.to_bytes();
    Ok(Request::from_parts(parts, Body::from(whole)))
}

/// The request as the upstream gets it: its target in origin form, hop-by-hop headers
/// removed, `X-Forwarded-*` and `traceparent` set, a body not read `whole` limited and
/// watched on its way.
fn upstream_request(
    upstream: &Upstream,
    req: Request,
    client: Option<IpAddr>,
    whole: bool,
) -> Result<(http::Request<Body>, BodyProgress), ApiError> {
    let uri = upstream.target(req.uri()).ok_or(ApiError::BadTarget)?;
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    forwarding_headers(&mut parts.headers, client);
    if whole {
        return Ok((http::Request::from_parts(parts, body), BodyProgress::complete()));
    }
    let (body, sent) = TrackedBody::new(Limited::new(body, MAX_BODY_BYTES).map_err(axum::Error::new));
    Ok((http::Request::from_parts(parts, Body::new(body)), sent))
}

/// Hop-by-hop headers removed; `X-Forwarded-For` (appended to), `X-Forwarded-Proto` and
/// the trace context set. (`Host` is the upstream's own, set by its pool.)
fn forwarding_headers(headers: &mut HeaderMap, client: Option<IpAddr>) {
    strip_hop_by_hop(headers);
    if let Some(ip) = client {
        // One lookup for reading and writing it.
        match headers.entry(&X_FORWARDED_FOR) {
            Entry::Occupied(mut previous) => {
                let value = match previous.get().to_str() {
                    Ok(text) => HeaderValue::try_from(format!("{text}, {ip}")),
                    Err(_) => ip_header_value(ip),
                };
                if let Ok(value) = value {
                    previous.insert(value);
                }
            }
            Entry::Vacant(vacant) => {
                if let Ok(value) = ip_header_value(ip) {
                    vacant.insert(value);
                }
            }
        }
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    common::propagation::inject_http(headers);
}

/// Why no answer came from an upstream.
enum Failure {
    Send(SendError),
    TimedOut(Duration),
}

/// The upstream's answer, or what the gateway says instead; and what the breaker learns
/// from it. A failure the client caused (an oversized or broken body, one still arriving)
/// is not held against the upstream.
fn settle(
    upstream: &Upstream,
    permit: Permit,
    answer: Result<http::Response<UpstreamBody>, Failure>,
    sent: &BodyProgress,
) -> Result<Response, ApiError> {
    let err = match answer {
        Ok(response) => return Ok(passed_on(response, permit, sent)),
        Err(Failure::Send(err)) if is_body_too_large(&err) => ApiError::PayloadTooLarge,
        Err(Failure::Send(_)) if sent.failed() => ApiError::BrokenBody,
        Err(Failure::TimedOut(_)) if !sent.is_complete() => ApiError::SlowBody,
        Err(Failure::Send(err)) => {
            tracing::warn!(upstream = upstream.name, error = %err, "upstream request failed");
            permit.record(Outcome::Failure);
            return Err(ApiError::Unreachable { upstream: upstream.name });
        }
        Err(Failure::TimedOut(limit)) => {
            let timeout_ms = limit.as_millis() as u64;
            tracing::warn!(upstream = upstream.name, timeout_ms, "upstream timed out");
            permit.record(Outcome::Failure);
            return Err(ApiError::UpstreamTimeout { upstream: upstream.name });
        }
    };
    drop(permit);
    Err(err)
}

/// The upstream's answer for the client, judged for the breaker, without its hop-by-hop
/// headers or the fault header meant for the gateway.
fn passed_on(response: http::Response<UpstreamBody>, permit: Permit, sent: &BodyProgress) -> Response {
    let (mut parts, body) = response.into_parts();
    let blames_dependency = parts.headers.remove(common::problem::FAULT_HEADER).is_some();
    match judge(parts.status, blames_dependency, sent.is_complete()) {
        Some(outcome) => permit.record(outcome),
        None => drop(permit),
    }
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::new(body))
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// An address as a header value; IPv4, by far the common case, without the formatting
/// machinery.
fn ip_header_value(ip: IpAddr) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let IpAddr::V4(v4) = ip else { return HeaderValue::from_str(&ip.to_string()) };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for digit in &digits[skip..] {
            text[len] = b'0' + digit;
            len += 1;
        }
    }
    HeaderValue::from_bytes(&text[..len])
}

/// What an upstream's answer says about its health, for its breaker: `None` when it
/// says nothing (the call is not counted).
///
/// Only a 5xx the upstream owns is a failure. A 5xx it attributes to one of its own
/// dependencies (`ecom-fault: dependency`) shows it alive and answering; a 5xx given
/// before the client finished sending its body was the client's doing.
fn judge(status: StatusCode, blames_dependency: bool, body_complete: bool) -> Option<Outcome> {
    if !status.is_server_error() || blames_dependency {
        Some(Outcome::Success)
    } else if body_complete {
        Some(Outcome::Failure)
    } else {
        None
    }
}

/// How far the client's body got on its way to the upstream.
#[derive(Debug, Clone, Default)]
struct BodyProgress(Arc<[AtomicBool; 2]>);

impl BodyProgress {
    const COMPLETE: usize = 0;
    const FAILED: usize = 1;

    fn complete() -> Self {
        let progress = Self::default();
        progress.set(Self::COMPLETE);
        progress
    }

    fn is_complete(&self) -> bool {
        self.0[Self::COMPLETE].load(Ordering::Acquire)
    }

    fn failed(&self) -> bool {
        self.0[Self::FAILED].load(Ordering::Acquire)
    }

    fn set(&self, which: usize) {
        self.0[which].store(true, Ordering::Release);
    }
}

/// A request body that reports when it has been read to its end (or failed), so a
/// timeout or an error can be blamed on the side that caused it.
struct TrackedBody<B> {
    inner: B,
    progress: BodyProgress,
}

impl<B: HttpBody> TrackedBody<B> {
    fn new(inner: B) -> (Self, BodyProgress) {
        let progress = BodyProgress::default();
        if inner.is_end_stream() {
            progress.set(BodyProgress::COMPLETE);
        }
        (Self { inner, progress: progress.clone() }, progress)
    }
}

impl<B: HttpBody + Unpin> HttpBody for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.progress.set(BodyProgress::COMPLETE),
            Poll::Ready(Some(Err(_))) => self.progress.set(BodyProgress::FAILED),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.progress.set(BodyProgress::COMPLETE),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

fn is_body_too_large(err: &SendError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::io;

    use bytes::Bytes;
    use common::breaker::{BreakerConfig, CircuitBreaker, State};

    use super::*;
    use crate::upstream::PoolConfig;

    /// An upstream whose breaker opens at its first failure.
    fn touchy_upstream() -> Upstream {
        let config = BreakerConfig { window: 1, min_calls: 1, ..BreakerConfig::default() };
        let pool = PoolConfig { connect_timeout: Duration::from_secs(1), threads: 0 };
        Upstream::new("test-service", &"http://127.0.0.1:9".parse().unwrap(), CircuitBreaker::new("test", config), pool)
    }

    fn settled(answer: Failure, body_complete: bool) -> (ApiError, State) {
        let upstream = touchy_upstream();
        let sent = BodyProgress::default();
        if body_complete {
            sent.set(BodyProgress::COMPLETE);
        }
        let permit = upstream.breaker.try_acquire().unwrap();
        let Err(err) = settle(&upstream, permit, Err(answer), &sent) else { panic!("no answer came") };
        (err, upstream.breaker.state())
    }

    #[test]
    fn an_upstream_that_does_not_answer_in_time_is_blamed_unless_the_body_was_still_arriving() {
        let limit = Duration::from_millis(10);
        let (err, state) = settled(Failure::TimedOut(limit), true);
        assert!(matches!(err, ApiError::UpstreamTimeout { upstream: "test-service" }), "{err:?}");
        assert_eq!(state, State::Open);

        let (err, state) = settled(Failure::TimedOut(limit), false);
        assert!(matches!(err, ApiError::SlowBody), "{err:?}");
        assert_eq!(state, State::Closed, "the client's slowness is not the upstream's");
    }

    #[test]
    fn an_unreachable_upstream_is_blamed() {
        let refused = SendError::Connect(io::Error::from(io::ErrorKind::ConnectionRefused));
        let (err, state) = settled(Failure::Send(refused), true);
        assert!(matches!(err, ApiError::Unreachable { upstream: "test-service" }), "{err:?}");
        assert_eq!(state, State::Open);
    }

    #[test]
    fn a_body_announced_over_the_limit_is_refused_before_anything_is_sent() {
        let mut headers = HeaderMap::new();
        assert!(refuse_oversized(&headers).is_ok());
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(MAX_BODY_BYTES as u64));
        assert!(refuse_oversized(&headers).is_ok());
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(MAX_BODY_BYTES as u64 + 1));
        assert!(matches!(refuse_oversized(&headers), Err(ApiError::PayloadTooLarge)));
    }

    /// A request announcing `length` bytes, whose body comes through the sender returned.
    fn request_with_body_to_come(length: usize) -> (Request, futures::channel::mpsc::Sender<Result<Bytes, io::Error>>) {
        let (sender, receiver) = futures::channel::mpsc::channel(1);
        let body = Body::from_stream(receiver);
        let request = Request::builder().method("PUT").uri("/").header(header::CONTENT_LENGTH, length).body(body);
        (request.unwrap(), sender)
    }

    #[tokio::test]
    async fn a_small_body_is_read_whole_before_the_upstream_hears_of_its_request() {
        let (request, mut sender) = request_with_body_to_come(16);
        let mut read = std::pin::pin!(read_small_body(request));
        let polled = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx).is_ready())).await;
        assert!(!polled, "the request went on before its body came");
        futures::SinkExt::send(&mut sender, Ok(Bytes::from_static(b"{\"stock\": 25}  "))).await.unwrap();
        drop(sender);
        let Ok((request, whole)) = read.await else { panic!("the body was not read") };
        assert!(whole);
        let body = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "{\"stock\": 25}  ");
    }

    #[tokio::test]
    async fn a_large_or_unannounced_body_streams_on_at_once() {
        // The bodies never come: a request that waited for one would fail the timeout.
        let at_once = |request| tokio::time::timeout(Duration::from_secs(5), read_small_body(request));
        let (request, _sender) = request_with_body_to_come(WHOLE_BODY_BYTES as usize + 1);
        let Ok(Ok((_, whole))) = at_once(request).await else { panic!("a large body was waited for") };
        assert!(!whole);
        let (mut request, _sender) = request_with_body_to_come(16);
        request.headers_mut().remove(header::CONTENT_LENGTH);
        let Ok(Ok((_, whole))) = at_once(request).await else { panic!("an unannounced body was waited for") };
        assert!(!whole);
    }

    #[test]
    fn each_hop_by_hop_name_is_told_by_its_text_and_no_other_name_is() {
        for (at, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(at), "{name}");
        }
        for name in [header::CONTENT_TYPE, header::HOST, HeaderName::from_static("x-upgrade"), header::TRAILER] {
            assert_eq!(hop_by_hop_index(&name).is_some(), HOP_BY_HOP.contains(&name), "{name}");
        }
    }

    #[test]
    fn the_upstream_learns_the_client_address_after_any_proxy_before_it() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        forwarding_headers(&mut headers, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(headers[&X_FORWARDED_FOR], "203.0.113.7, 10.0.0.2");
        assert_eq!(headers[&X_FORWARDED_PROTO], "http");

        let mut headers = HeaderMap::new();
        forwarding_headers(&mut headers, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(headers[&X_FORWARDED_FOR], "10.0.0.2");
    }

    #[test]
    fn only_a_5xx_the_upstream_owns_after_the_whole_request_counts_against_it() {
        let cases = [
            (StatusCode::OK, false, true, Some(Outcome::Success)),
            (StatusCode::CONFLICT, false, true, Some(Outcome::Success)),
            (StatusCode::UNPROCESSABLE_ENTITY, false, false, Some(Outcome::Success)),
            (StatusCode::INTERNAL_SERVER_ERROR, false, true, Some(Outcome::Failure)),
            (StatusCode::SERVICE_UNAVAILABLE, false, true, Some(Outcome::Failure)),
            (StatusCode::SERVICE_UNAVAILABLE, true, true, Some(Outcome::Success)),
            (StatusCode::SERVICE_UNAVAILABLE, false, false, None),
        ];
        for (status, blames_dependency, body_complete, expected) in cases {
            assert_eq!(
                judge(status, blames_dependency, body_complete),
                expected,
                "{status} {blames_dependency} {body_complete}"
            );
        }
    }

    #[test]
    fn an_address_header_reads_as_the_address_prints() {
        let addresses =
            ["0.0.0.0", "127.0.0.1", "10.20.30.40", "255.255.255.255", "192.168.1.100", "::1", "2001:db8::7"];
        for address in addresses {
            let ip: IpAddr = address.parse().unwrap();
            assert_eq!(ip_header_value(ip).unwrap(), ip.to_string().as_str());
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-custom-hop"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-custom-hop", HeaderValue::from_static("1"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::AUTHORIZATION));

        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive, Close, X-Custom-Hop"));
        headers.insert("x-custom-hop", HeaderValue::from_static("1"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.keys().collect::<Vec<_>>(), [header::ACCEPT]);
    }
}
