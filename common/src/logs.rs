//! JSON log lines: one object per event with `timestamp`, `level`, `service`,
//! `target`, `message`, the trace correlation (`trace_id`, `span_id`) and the fields
//! of the event and of its enclosing spans (so `request_id`, `order_id`... appear at
//! the top level, where log queries look for them).

use std::fmt;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt as _;
use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Keys every line has; fields with these names are kept under `fields` instead.
const RESERVED: &[&str] = &["timestamp", "level", "service", "target", "message", "trace_id", "span_id", "span"];

/// The event formatter of the JSON log format.
#[derive(Debug, Clone)]
pub struct JsonLines {
    service: String,
    /// The dispatcher this formatter runs in, to read spans' trace context: while an
    /// event is being dispatched, `Span::current()` sees no dispatcher (re-entrance guard).
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl JsonLines {
    pub fn new(service: impl Into<String>) -> Self {
        Self { service: service.into(), dispatch: Arc::default() }
    }

    /// Tells the formatter which dispatcher it is installed in (before any event).
    pub fn attach(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().to_owned(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The trace context first: reading it takes the span's extensions, which must
        // not be borrowed below at the same time.
        let trace = self.trace_ids(ctx);
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("service".into(), Value::from(self.service.as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        if let Some((trace_id, span_id)) = trace {
            line.insert("trace_id".into(), Value::from(trace_id));
            line.insert("span_id".into(), Value::from(span_id));
        }
        let (mut fields, innermost) = span_fields(ctx);
        if let Some(name) = innermost {
            line.insert("span".into(), Value::from(name));
        }
        let mut own = Map::new();
        event.record(&mut Fields(&mut own));
        fields.extend(own);
        add_fields(&mut line, fields);
        writeln!(writer, "{}", Value::Object(line))
    }
}

impl JsonLines {
    /// The trace and span id of the current span, when it is in a valid trace.
    fn trace_ids<S>(&self, ctx: &FmtContext<'_, S, JsonFields>) -> Option<(String, String)>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let leaf = ctx.lookup_current();
        if leaf.is_none()
            && let Some(scoped) = crate::request_scope::context()
        {
            return Some((scoped.trace_id().to_string(), scoped.span_id().to_string()));
        }
        if let Some(own) = leaf.as_ref().and_then(crate::propagation::own_context) {
            return Some((own.trace_id().to_string(), own.span_id().to_string()));
        }
        let leaf = leaf.map(|span| span.id());
        let dispatch = self.dispatch.get().and_then(WeakDispatch::upgrade);
        leaf.zip(dispatch).and_then(|(id, dispatch)| {
            let context = tracing_opentelemetry::get_otel_context(&id, &dispatch)?;
            let span = context.span();
            let sc = span.span_context();
            sc.is_valid().then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
        })
    }
}

/// The fields of the event's spans, outermost first so the innermost span's value
/// wins, without the `otel.` ones; and the innermost span's name.
fn span_fields<S>(ctx: &FmtContext<'_, S, JsonFields>) -> (Map<String, Value>, Option<&'static str>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut fields = Map::new();
    let mut innermost = None;
    if let Some(scope) = ctx.event_scope() {
        for span in scope.from_root() {
            innermost = Some(span.name());
            let extensions = span.extensions();
            if let Some(formatted) = extensions.get::<FormattedFields<JsonFields>>()
                && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(formatted.as_str())
            {
                fields.extend(map.into_iter().filter(|(k, _)| !k.starts_with("otel.")));
            }
        }
    }
    (fields, innermost)
}

/// Adds the span and event `fields` to `line`: `message` and `service` at the top,
/// the rest beside them, except those that would overwrite a reserved key, which go
/// under `fields`.
fn add_fields(line: &mut Map<String, Value>, mut fields: Map<String, Value>) {
    // In one process hosting several services (`ecom dev`), the request span names the service.
    if let Some(Value::String(service)) = fields.remove("service") {
        line.insert("service".into(), Value::from(service));
    }
    let message = fields.remove("message").unwrap_or(Value::from(""));
    line.insert("message".into(), message);
    let mut clashing = Map::new();
    for (key, value) in fields {
        if RESERVED.contains(&key.as_str()) {
            clashing.insert(key, value);
        } else {
            line.insert(key, value);
        }
    }
    if !clashing.is_empty() {
        line.insert("fields".into(), Value::Object(clashing));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(run: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let format = JsonLines::new("order-service");
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(format.clone())
                    .with_writer(move || writer.clone()),
            );
        let dispatch = Dispatch::new(subscriber);
        format.attach(&dispatch);
        tracing::dispatcher::with_default(&dispatch, run);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn a_line_inside_a_request_carries_trace_span_and_request_ids_at_the_top_level() {
        let lines = lines(|| {
            tracing::info_span!("request", request_id = "req-1", otel.kind = "server").in_scope(|| {
                tracing::info_span!("place", order_id = "o-1").in_scope(|| tracing::info!(lines = 2, "order placed"));
            });
        });
        let line = &lines[0];
        assert_eq!(line["message"], "order placed");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["service"], "order-service");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["order_id"], "o-1");
        assert_eq!(line["lines"], 2);
        assert_eq!(line["span"], "place");
        assert_eq!(line["trace_id"].as_str().unwrap().len(), 32);
        assert_eq!(line["span_id"].as_str().unwrap().len(), 16);
        assert!(line.get("otel.kind").is_none());
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    /// A context with the W3C example's trace and span ids.
    fn known_context() -> opentelemetry::trace::SpanContext {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    }

    #[test]
    fn a_line_inside_a_span_with_its_own_trace_context_carries_that_context() {
        let context = known_context();
        let lines = lines(|| {
            let span = tracing::info_span!("request", request_id = "req-1");
            crate::propagation::attach_own_context(&span, context);
            span.in_scope(|| tracing::info!("served"));
        });
        assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(lines[0]["span_id"], "00f067aa0ba902b7");
        assert_eq!(lines[0]["request_id"], "req-1");
    }

    #[test]
    fn a_line_in_a_request_served_without_a_span_carries_the_requests_trace_context() {
        let context = known_context();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let lines = lines(|| {
            runtime.block_on(crate::propagation::within_own_context(context, async {
                tracing::warn!(status = 503, "request failed");
            }));
            tracing::warn!("after the request");
        });
        assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(lines[0]["span_id"], "00f067aa0ba902b7");
        assert!(lines[1].get("trace_id").is_none());
    }

    #[test]
    fn a_line_outside_any_span_has_no_trace_ids_and_the_span_service_names_the_service() {
        let lines = lines(|| {
            tracing::warn!(message_count = 1, "idle");
            tracing::info_span!("request", service = "inventory-service").in_scope(|| tracing::info!("served"));
        });
        assert!(lines[0].get("trace_id").is_none());
        assert_eq!(lines[0]["service"], "order-service");
        assert_eq!(lines[1]["service"], "inventory-service");
    }
}
