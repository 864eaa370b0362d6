//! One order's trace when every service is its own process, as in Kubernetes: each
//! exports its own spans, and only the W3C headers (and the outbox row and the Kafka
//! message) carry the trace from one to the next. The in-process real-stack test
//! shares one tracer and cannot see a context lost between processes.

use std::collections::HashMap;
use std::time::Duration;

use common::test_util::{eventually, real_dependency};

use crate::BROKER;
use crate::jaeger::{self, CLIENT_SPAN, Span};
use crate::platform::{Host, Platform};
use crate::real_stack::backends;

/// What the trace should hold: (service, span name, kind), the server spans named by
/// method and route.
const JOURNEY: &[(&str, &str, &str)] = &[
    ("api-gateway", "POST /api/orders", "server"),
    ("order-service", "POST /api/orders", "server"),
    ("order-service", "place", ""),
    ("auth-service", "POST /internal/token", "server"),
    ("product-service", "GET /internal/products", "server"),
    ("inventory-service", "POST /internal/reservations", "server"),
    ("inventory-service", "reserve", ""),
    ("order-service", "publish ", "producer"),
    ("notification-service", "consume", "consumer"),
    ("notification-service", "send", ""),
];

fn holds(spans: &[Span], (service, name, kind): (&str, &str, &str)) -> bool {
    spans.iter().any(|s| s.service == service && s.name.starts_with(name) && (kind.is_empty() || s.kind() == kind))
}

#[tokio::test]
async fn an_order_placed_across_separate_processes_is_one_trace_from_the_client_to_the_email() {
    let Some(b) = backends() else { return };
    let Some(jaeger) = jaeger::backend() else { return };
    let _broker = BROKER.lock().await;
    let (services, _run) = b.services("traces").await;
    let telemetry = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", real_dependency("ECOM_TEST_OTLP_ENDPOINT").unwrap_or_default()),
        // The batch goes out every 200 ms rather than every 5 s: the test waits for it.
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let platform = Platform::start(services, Host::Processes(telemetry)).await;
    platform.product("TRACE-MUG", 700, 5).await;
    let (_, token) = platform.customer("Trace Customer").await;

    let trace_id = jaeger::place_traced(&platform, &token, "TRACE-MUG").await;

    let complete = eventually(Duration::from_secs(20), || async {
        let spans = jaeger::trace(&jaeger, &trace_id).await;
        JOURNEY.iter().all(|step| holds(&spans, *step)).then_some(spans)
    })
    .await;
    let spans = match complete {
        Some(spans) => spans,
        None => {
            let spans = jaeger::trace(&jaeger, &trace_id).await;
            let seen: Vec<String> = spans.iter().map(|s| format!("{} [{}] {}", s.name, s.service, s.kind())).collect();
            let missing: Vec<_> = JOURNEY.iter().filter(|step| !holds(&spans, **step)).collect();
            panic!("the order's trace is incomplete: missing {missing:?}; it holds {seen:?}");
        }
    };
    // One tree: every span's parent is in the trace, but the gateway's, which is the client's.
    let ids: HashMap<&str, &Span> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    for span in &spans {
        match span.parent.as_deref() {
            Some(CLIENT_SPAN) => assert_eq!((span.service.as_str(), span.kind()), ("api-gateway", "server")),
            Some(parent) => assert!(ids.contains_key(parent), "{span:?} has a parent outside the trace"),
            None => panic!("{span:?} is a second root"),
        }
    }
}
