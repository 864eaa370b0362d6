//! The gateway binary at `RUST_LOG=warn` without an exporter, where it serves requests
//! without a request span: traces still continue, and warn lines still name them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::test_util::eventually;
use serde_json::Value;

use crate::support;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const FAILED_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// Kills the gateway process even when an assertion fails first.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn at_warn_level_a_request_keeps_its_trace_without_a_span_and_its_warn_lines_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let auth = test_support::start_auth(support::auth_settings(dir.path())).await;
    // Nothing listens on a port that was free a moment ago: inventory-service is down.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_api-gateway"))
        .env_clear()
        .env("ECOM_BIND_ADDR", free.to_string())
        .env("ECOM_AUTH_URL", format!("http://{}", auth.addr))
        .env("ECOM_PRODUCT_URL", format!("http://{down}"))
        .env("ECOM_ORDER_URL", format!("http://{down}"))
        .env("ECOM_INVENTORY_URL", format!("http://{down}"))
        .env("ECOM_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = test_support::PipeLines::read(vec![Box::new(child.stdout.take().unwrap())]);
    let gateway = Gateway(child);
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{free}{path}");

    // auth-service's key set, through the gateway, in the caller's trace.
    let (http, url) = (&http, &url);
    let served = eventually(Duration::from_secs(30), move || async move {
        let sent = http
            .get(url("/.well-known/jwks.json"))
            .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
            .send()
            .await
            .ok()?;
        (sent.status() == 200).then_some(sent)
    })
    .await
    .expect("the gateway never served");
    let returned = served.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(returned.starts_with(&format!("00-{TRACE}-")), "the caller's trace continues: {returned}");
    assert!(!returned.contains("00f067aa0ba902b7"), "under a span of the gateway's own: {returned}");

    let failed = http
        .get(url("/api/inventory/SKU-1"))
        .header("traceparent", format!("00-{FAILED_TRACE}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 503);
    let failed_span = failed.headers()["traceparent"].to_str().unwrap()[36..52].to_owned();

    // SIGKILL: the lines were written when logged, and none is needed after it.
    drop(gateway);
    let lines = lines.all();
    let warns: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["level"] == "WARN")
        .collect();
    for message in ["upstream request failed", "request failed"] {
        let line =
            warns.iter().find(|line| line["message"] == message).unwrap_or_else(|| panic!("{message}: {lines:?}"));
        assert_eq!(line["trace_id"], FAILED_TRACE, "{line}");
        assert_eq!(line["span_id"], failed_span.as_str(), "{line}");
    }
    assert!(warns.iter().all(|line| line["trace_id"] != TRACE), "the served request logged no warning");
    auth.stop().await.unwrap();
}
