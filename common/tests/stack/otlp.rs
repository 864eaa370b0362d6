use std::time::Duration;

use common::telemetry::{self, LogFormat, TelemetrySettings};
use common::test_util::{eventually, real_dependency, unique_name};
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn a_span_exported_over_otlp_arrives_in_the_trace_backend() {
    let Some(endpoint) = real_dependency("ECOM_TEST_OTLP_ENDPOINT") else { return };
    let Some(jaeger) = real_dependency("ECOM_TEST_JAEGER_URL") else { return };
    let service = unique_name("otlp-proof");
    let provider = telemetry::tracer_provider(&TelemetrySettings {
        service_name: service.clone(),
        filter: "info".into(),
        log_format: LogFormat::Json,
        otlp_endpoint: Some(endpoint.parse().unwrap()),
    })
    .expect("tracer provider");
    // This thread only: other tests in the binary keep their own subscriber.
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("otlp-proof")));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("proof-operation", order_id = "o-1");
        let _entered = span.enter();
        tracing::info!("inside the proof span");
    });
    // Shutting down flushes the batch exporter (off the async workers: it blocks).
    tokio::task::spawn_blocking(move || provider.shutdown()).await.unwrap().expect("flush spans");

    let client = reqwest::Client::new();
    let url = format!("{jaeger}/api/traces?service={service}&limit=5");
    let found = eventually(Duration::from_secs(20), || {
        let request = client.get(&url).send();
        async move {
            let body: serde_json::Value = request.await.ok()?.json().await.ok()?;
            let spans =
                body["data"].as_array()?.iter().flat_map(|t| t["spans"].as_array().cloned().unwrap_or_default());
            spans.into_iter().find(|s| s["operationName"] == "proof-operation")
        }
    })
    .await;
    let span = found.unwrap_or_else(|| panic!("no span for {service} in the trace backend"));
    let tags = span["tags"].to_string();
    assert!(tags.contains("order_id") && tags.contains("o-1"), "{tags}");
}
