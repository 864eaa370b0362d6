//! A trace as the trace backend's (Jaeger's) query API returns it.

use std::collections::HashMap;

use common::test_util::real_dependency;
use serde_json::{Value, json};

use crate::platform::Platform;

/// The trace backend's query URL, when the stack has one and services can export to it.
pub(crate) fn backend() -> Option<String> {
    let jaeger = real_dependency("ECOM_TEST_JAEGER_URL")?;
    real_dependency("ECOM_TEST_OTLP_ENDPOINT")?;
    Some(jaeger)
}

/// The client's span, the parent of the gateway's.
pub(crate) const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// Places one unit of `sku` as the customer of `token`, the client starting the trace
/// (the platform must continue it); the trace's id, to look it up.
pub(crate) async fn place_traced(platform: &Platform, token: &str, sku: &str) -> String {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let placed = platform
        .http
        .post(platform.gateway.url("/api/orders"))
        .bearer_auth(token)
        .header("traceparent", format!("00-{trace_id}-{CLIENT_SPAN}-01"))
        .json(&json!({"lines": [{"sku": sku, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    let answered = placed.headers().get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(answered.contains(&trace_id), "the answer continues the client's trace: {answered:?}");
    trace_id
}

/// One span of a trace.
#[derive(Debug)]
pub(crate) struct Span {
    /// The service of the process that exported it.
    pub(crate) service: String,
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) parent: Option<String>,
    tags: HashMap<String, String>,
}

impl Span {
    pub(crate) fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// `server`, `client`, `producer`, `consumer`, or empty for an internal span.
    pub(crate) fn kind(&self) -> &str {
        self.tag("span.kind").unwrap_or_default()
    }
}

/// The spans of `trace_id` so far (none while the backend does not know it).
pub(crate) async fn trace(jaeger: &str, trace_id: &str) -> Vec<Span> {
    let Ok(response) = reqwest::get(format!("{jaeger}/api/traces/{trace_id}")).await else { return Vec::new() };
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let trace = &body["data"][0];
    let spans = trace["spans"].as_array().cloned().unwrap_or_default();
    spans
        .iter()
        .map(|s| {
            let process = s["processID"].as_str().unwrap_or_default();
            let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
            Span {
                service: text(&trace["processes"][process]["serviceName"]),
                name: text(&s["operationName"]),
                id: text(&s["spanID"]),
                parent: s["references"][0]["spanID"].as_str().map(str::to_owned),
                tags: s["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        (text(&t["key"]), t["value"].as_str().map_or_else(|| t["value"].to_string(), str::to_owned))
                    })
                    .collect(),
            }
        })
        .collect()
}
