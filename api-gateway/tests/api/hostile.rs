//! Clients that try to hurt the gateway: made-up methods, slow or silent connections,
//! stalled bodies, too many connections, requests where no route is. Each gets a bounded
//! answer and costs nobody else anything.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::support::{Platform, read_until_closed, stall_six_bodies};

const STANDARD_METHODS: [&str; 10] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER"];

/// Reads one response with a `content-length` body; the text of head and body.
async fn read_response(socket: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed mid-response: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

/// Opens a connection and sends the start of a request head, never its end.
async fn slowloris(addr: SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(b"GET /api/products HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaa\r\n").await.unwrap();
    socket
}

fn label<'a>(series: &'a str, name: &str) -> Option<&'a str> {
    let start = series.find(&format!("{name}=\""))? + name.len() + 2;
    series[start..].split('"').next()
}

#[tokio::test]
async fn sixty_made_up_methods_add_no_series_and_are_counted_as_other() {
    let platform = Platform::start(&[]).await;
    for i in 0..60 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let path = if i % 2 == 0 { "/api/products" } else { "/no/such/path" };
        let response = platform.http.request(method, platform.url(path)).send().await.unwrap();
        assert!(!response.status().is_success(), "{path}: {}", response.status());
    }

    let metrics = platform.http.get(format!("http://{}/metrics", platform.ops)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(!metrics.contains("MADEUP"), "a made-up method became a label value");
    let methods: BTreeSet<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("http_server_requests_total{"))
        .filter_map(|line| label(line, "method"))
        .collect();
    assert!(methods.contains("_OTHER"), "{methods:?}");
    assert!(methods.iter().all(|method| STANDARD_METHODS.contains(method)), "{methods:?}");
    let routes: BTreeSet<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("http_server_requests_total{"))
        .filter_map(|line| label(line, "route"))
        .collect();
    assert!(!routes.contains("/no/such/path"), "a raw path became a label value: {routes:?}");
}

#[tokio::test]
async fn metrics_are_served_to_operators_on_their_own_listener_and_never_to_the_public() {
    let platform = Platform::start(&[]).await;
    let public = platform.http.get(platform.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    assert!(!public.text().await.unwrap().contains("http_server_requests_total"));

    let ops = platform.http.get(format!("http://{}/metrics", platform.ops)).send().await.unwrap();
    assert_eq!(ops.status(), 200);
    assert!(ops.text().await.unwrap().contains("http_server_requests_total"));
    let ready = platform.http.get(format!("http://{}/health/ready", platform.ops)).send().await.unwrap();
    assert_eq!(ready.status(), 200, "probes can use the operations listener too");
}

#[tokio::test]
async fn every_path_draws_from_the_rate_budget_the_fallback_docs_and_health_included() {
    let platform = Platform::start(&[("ECOM_RATE_LIMIT_PER_SECOND", "1")]).await;
    for path in ["/no/such/path", "/metrics", "/health/live", "/health/ready", "/api/docs/", "/api/openapi.json"] {
        let mut statuses = Vec::new();
        // A burst of two is allowed; one more refills each second.
        for _ in 0..8 {
            let response = platform.http.get(platform.url(path)).send().await.unwrap();
            statuses.push(response.status().as_u16());
            if response.status() == 429 {
                assert!(response.headers().contains_key("retry-after"), "{path}");
                assert_eq!(response.headers()["content-type"], "application/problem+json", "{path}");
                break;
            }
        }
        assert_eq!(statuses.last(), Some(&429), "{path} is not under the budget: {statuses:?}");
    }
    let ops = platform.http.get(format!("http://{}/health/ready", platform.ops)).send().await.unwrap();
    assert_eq!(ops.status(), 200, "the operations listener is not the public's budget");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_the_docs_page_a_policy_it_runs_under() {
    let platform = Platform::start(&[]).await;
    let customer = platform.customer_token().await;
    let answers = [
        ("/.well-known/jwks.json", None),
        ("/api/auth/me", Some(customer.as_str())),
        ("/api/orders", None),
        ("/api/products", None),
        ("/no/such/path", None),
        ("/api/openapi.json", None),
    ];
    for (path, token) in answers {
        let mut request = platform.http.get(platform.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let headers = response.headers();
        let status = response.status();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path} {status}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path} {status}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path} {status}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"), "{path}: {policy}");
        assert!(!headers.contains_key("strict-transport-security"), "HSTS belongs to the TLS terminator");
    }

    let docs = platform.http.get(platform.url("/api/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let policy = docs.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-eval"), "{policy}");
    let page = docs.text().await.unwrap();
    assert!(!page.contains("<script>") && !page.contains("<script type"), "an inline script would be blocked:\n{page}");
    for asset in page.split(['"', '\'']).filter(|s| s.ends_with(".js") || s.ends_with(".css")) {
        assert!(!asset.contains("://"), "the page loads {asset} from elsewhere");
        let response = platform.http.get(platform.url(&format!("/api/docs/{}", asset.trim_start_matches("./")))).send();
        assert_eq!(response.await.unwrap().status(), 200, "{asset}");
    }
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed_within_the_header_read_timeout() {
    let platform = Platform::start(&[("ECOM_HEADER_READ_TIMEOUT_MS", "800")]).await;
    let started = Instant::now();
    let mut silent = slowloris(platform.gateway.addr).await;
    // Another sends a byte of a header now and then: the bound is on the whole head.
    let (mut trickle_read, mut trickle_write) = slowloris(platform.gateway.addr).await.into_split();
    let trickler = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        loop {
            every.tick().await;
            if trickle_write.write_all(b"a").await.is_err() {
                return;
            }
        }
    });

    let answered = timeout(Duration::from_secs(10), read_until_closed(&mut silent)).await;
    let silent_closed = started.elapsed();
    assert!(answered.is_ok(), "a silent connection is still open after 10 s");
    assert!(silent_closed < Duration::from_millis(800) + Duration::from_secs(2), "{silent_closed:?}");
    let mut buf = [0; 64];
    let trickled = timeout(Duration::from_secs(10), async {
        loop {
            match trickle_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(trickled.is_ok(), "a trickling connection is still open after 10 s");
    assert!(started.elapsed() < Duration::from_millis(800) + Duration::from_secs(2), "{:?}", started.elapsed());
    trickler.abort();

    // Honest clients are served as before.
    assert_eq!(platform.http.get(platform.url("/health/live")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_outlives_the_header_timeout_and_closes_at_the_keep_alive_timeout() {
    let platform =
        Platform::start(&[("ECOM_HEADER_READ_TIMEOUT_MS", "300"), ("ECOM_KEEP_ALIVE_TIMEOUT_MS", "1500")]).await;
    let mut socket = TcpStream::connect(platform.gateway.addr).await.unwrap();
    let request = b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n";
    socket.write_all(request).await.unwrap();
    assert!(read_response(&mut socket).await.starts_with("HTTP/1.1 200"));

    // Three header timeouts of silence between requests: the connection is still there.
    let mut buf = [0; 64];
    let quiet = timeout(Duration::from_millis(900), socket.read(&mut buf)).await;
    assert!(quiet.is_err(), "an idle kept-alive connection was closed after the header timeout: {quiet:?}");
    socket.write_all(request).await.unwrap();
    assert!(read_response(&mut socket).await.starts_with("HTTP/1.1 200"));

    let idle_since = Instant::now();
    let closed = timeout(Duration::from_secs(10), read_until_closed(&mut socket)).await;
    assert_eq!(closed.as_deref(), Ok(&[][..]), "still open 10 s after its last answer");
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(1400) && idle < Duration::from_millis(1500) + Duration::from_secs(2),
        "{idle:?}"
    );
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_within_the_body_read_timeout_and_never_opens_a_breaker() {
    let platform = Platform::start(&[
        ("ECOM_BODY_READ_TIMEOUT_MS", "500"),
        ("ECOM_UPSTREAM_TIMEOUT_MS", "10000"),
        ("ECOM_BREAKER_MIN_CALLS", "2"),
        ("ECOM_BREAKER_WINDOW", "4"),
    ])
    .await;
    let started = Instant::now();
    let stalls = stall_six_bodies(platform.gateway.addr);
    for stall in stalls {
        let answer =
            timeout(Duration::from_secs(9), stall).await.expect("no answer before the upstream timeout").unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(500) + Duration::from_secs(2), "{elapsed:?}");

    platform.admin_logs_in_right_away().await;
}

#[tokio::test]
async fn a_client_over_the_cap_waits_and_is_served_once_connections_without_a_request_make_room() {
    let platform = Platform::start(&[("ECOM_MAX_CONNECTIONS", "3"), ("ECOM_HEADER_READ_TIMEOUT_MS", "20000")]).await;
    let addr = platform.gateway.addr;
    // Three connections that will never send a whole request hold every slot.
    let started = Instant::now();
    let mut holders = Vec::new();
    for _ in 0..3 {
        holders.push(slowloris(addr).await);
    }

    // A fresh client is not refused: it waits, and is served as soon as the holders have
    // had a second to finish their heads, long before their 20 s header timeout.
    let served = timeout(Duration::from_secs(10), reqwest::get(platform.url("/health/live"))).await;
    let waited = started.elapsed();
    assert_eq!(served.expect("never served").expect("refused").status(), 200);
    assert!(waited >= Duration::from_millis(800), "served after {waited:?}, while every slot was held");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    for holder in &mut holders {
        assert!(timeout(Duration::from_secs(10), read_until_closed(holder)).await.is_ok(), "a holder is still open");
    }
}

#[tokio::test]
async fn at_the_cap_an_idle_kept_alive_connection_makes_room_for_a_new_client() {
    let platform = Platform::start(&[("ECOM_MAX_CONNECTIONS", "2"), ("ECOM_HEADER_READ_TIMEOUT_MS", "20000")]).await;
    let addr = platform.gateway.addr;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    let _holder = slowloris(addr).await;

    // Both slots are taken, one by a connection waiting idle for its next request: it is
    // closed (its client may reconnect at will) and the new client is served at once.
    let started = Instant::now();
    let response = timeout(Duration::from_secs(10), reqwest::get(platform.url("/health/live"))).await;
    assert_eq!(response.expect("not served while the cap is held").unwrap().status(), 200);
    assert!(started.elapsed() < Duration::from_millis(800), "{:?}", started.elapsed());
    let closed = timeout(Duration::from_secs(5), read_until_closed(&mut idle)).await;
    assert!(closed.is_ok(), "the idle connection was not closed to make room");
}
