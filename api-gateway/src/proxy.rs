//! The reverse proxy: streaming bodies both ways over pooled keep-alive
//! connections, hop-by-hop headers removed, `x-forwarded-*` set, an upstream
//! timeout, and one circuit breaker per upstream.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use common::breaker::Outcome;
use common::http::MAX_BODY_BYTES;
use common::problem::Problem;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Uri};
use http_body_util::{BodyExt as _, Limited};

use crate::state::{AppState, Upstream};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
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

/// Forwards `req` to `upstream` and streams the answer back.
pub async fn forward(state: &AppState, upstream: &Upstream, mut req: Request, client: Option<IpAddr>) -> Response {
    if let Some(length) = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > MAX_BODY_BYTES as u64
    {
        return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large")
            .detail(format!("request bodies are limited to {MAX_BODY_BYTES} bytes"))
            .into_response();
    }
    let permit = match upstream.breaker.try_acquire() {
        Ok(permit) => permit,
        Err(rejected) => {
            return Problem::unavailable(
                format!("{} is unavailable (circuit open)", upstream.name),
                rejected.retry_after.as_secs().max(1),
            )
            .into_response();
        }
    };

    let path_and_query = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let target = format!("{}{}", upstream.base.as_str().trim_end_matches('/'), path_and_query);
    let Ok(uri) = target.parse::<Uri>() else {
        return Problem::bad_request("the request target is not valid").into_response();
    };
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    headers.remove(header::HOST);
    if let Some(ip) = client {
        let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(previous) => format!("{previous}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded) {
            headers.insert("x-forwarded-for", value);
        }
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    common::propagation::inject_http(headers);
    *req.uri_mut() = uri;
    let (parts, body) = req.into_parts();
    let body = Body::new(Limited::new(body, MAX_BODY_BYTES).map_err(axum::Error::new));
    let request = http::Request::from_parts(parts, body);

    match tokio::time::timeout(state.upstream_timeout, state.client.request(request)).await {
        Ok(Ok(response)) => {
            permit.record(if response.status().is_server_error() { Outcome::Failure } else { Outcome::Success });
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Ok(Err(err)) => {
            if is_body_too_large(&err) {
                // The client's fault, not the upstream's.
                drop(permit);
                return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large")
                    .detail(format!("request bodies are limited to {MAX_BODY_BYTES} bytes"))
                    .into_response();
            }
            permit.record(Outcome::Failure);
            tracing::warn!(upstream = upstream.name, error = %err, "upstream request failed");
            Problem::unavailable(format!("{} cannot be reached", upstream.name), 1).into_response()
        }
        Err(_) => {
            permit.record(Outcome::Failure);
            tracing::warn!(
                upstream = upstream.name,
                timeout_ms = state.upstream_timeout.as_millis() as u64,
                "upstream timed out"
            );
            Problem::unavailable(format!("{} did not answer in time", upstream.name), 1).into_response()
        }
    }
}

fn is_body_too_large(err: &hyper_util::client::legacy::Error) -> bool {
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
    use super::*;

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
    }
}
