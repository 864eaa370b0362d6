//! A trace as the trace backend's (Jaeger's) query API returns it.

use std::collections::HashMap;

use serde_json::Value;

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
