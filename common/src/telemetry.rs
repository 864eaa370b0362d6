//! Telemetry set up once per process: tracing to stdout (JSON or pretty) and, when
//! an OTLP endpoint is configured, spans exported over OTLP/HTTP.
//!
//! A tracer provider is installed even without an exporter so that trace ids exist
//! for propagation (`traceparent` in, through and out) and log correlation.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use url::Url;

use crate::settings::{Env, SettingsError};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable, coloured (development).
    Pretty,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" | "text" => Ok(Self::Pretty),
            other => Err(format!("expected json or pretty, got {other:?}")),
        }
    }
}

/// `OTEL_SERVICE_NAME`, `RUST_LOG`, `ECOM_LOG_FORMAT`, `OTEL_EXPORTER_OTLP_ENDPOINT`.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    pub service_name: String,
    pub filter: String,
    pub log_format: LogFormat,
    /// Base URL of an OTLP/HTTP receiver (`/v1/traces` is appended).
    pub otlp_endpoint: Option<Url>,
}

impl TelemetrySettings {
    pub fn from_env(env: &Env, default_service_name: &str) -> Result<Self, SettingsError> {
        Ok(Self {
            service_name: env.or("OTEL_SERVICE_NAME", default_service_name.to_owned())?,
            filter: env.or("RUST_LOG", "info".to_owned())?,
            log_format: env.or("ECOM_LOG_FORMAT", LogFormat::Json)?,
            otlp_endpoint: env.optional_url("OTEL_EXPORTER_OTLP_ENDPOINT", &["http", "https"])?,
        })
    }
}

/// Flushes and stops telemetry when the process ends.
#[must_use = "dropping the guard immediately stops span export"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl TelemetryGuard {
    /// Exports what is buffered and stops the exporter.
    pub fn shutdown(self) {
        // The batch processor joins its own thread here; keep it off async workers.
        let provider = self.provider;
        let _ = std::thread::spawn(move || {
            if let Err(err) = provider.shutdown() {
                eprintln!("telemetry shutdown: {err}");
            }
        })
        .join();
    }
}

/// The tracer provider: spans always get ids; they are exported over OTLP/HTTP
/// only when an endpoint is configured.
pub fn tracer_provider(settings: &TelemetrySettings) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &settings.otlp_endpoint {
        let traces = endpoint.join("v1/traces").map_err(|e| anyhow::anyhow!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
        // The blocking client: the batch processor exports from its own OS thread.
        let exporter =
            opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(traces.as_str()).build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether the log filter lets any info line or span through (true until [`init`] says
/// otherwise, so that code running without it keeps its spans).
static LOGGING_INFO: AtomicBool = AtomicBool::new(true);

/// Whether this process's spans leave it (an OTLP endpoint is configured): span data only
/// an exporter reads, such as span names, need not be built otherwise.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Whether a request span would be recorded by anything: exported, or read by info-level
/// log lines. When neither, a leaf request needs no span, only its trace context
/// (`server::StackConfig::leaf_request_span`).
pub(crate) fn request_spans_recorded() -> bool {
    exporting() || LOGGING_INFO.load(Ordering::Relaxed)
}

/// Installs the global subscriber, tracer provider and propagator.
pub fn init(settings: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    let provider = tracer_provider(settings)?;
    let tracer = provider.tracer(settings.service_name.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());

    // RUST_LOG filters log lines only; spans are recorded at info and above whatever
    // the log level, so quieter logs never break propagation or traces.
    let log_filter = EnvFilter::try_new(&settings.filter).map_err(|e| anyhow::anyhow!("RUST_LOG: {e}"))?;
    let logs_info = log_filter.max_level_hint().is_none_or(|max| max >= tracing::level_filters::LevelFilter::INFO);
    LOGGING_INFO.store(logs_info, Ordering::Relaxed);
    let span_filter = EnvFilter::new(SPAN_FILTER);
    // Events become span events only to be exported; without an exporter, spans are kept
    // (for their ids) and events skipped, which is per-request work nobody would see.
    let exporting = settings.otlp_endpoint.is_some();
    EXPORTING.store(exporting, Ordering::Relaxed);
    // A span with a trace context of its own (made without an exporter) is not recorded.
    let otel_filter = AskEveryTime(span_filter.and(tracing_subscriber::filter::filter_fn(move |meta| {
        (exporting || meta.is_span()) && meta.target() != OWN_CONTEXT_TARGET
    })));
    // Nothing reads OpenTelemetry's current context (propagation and log lines read the
    // tracing span's), so entering a span need not activate it; busy/idle times, thread and
    // source location are span attributes only an exporter would ship.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_context_activation(false)
        .with_tracked_inactivity(exporting)
        .with_threads(exporting)
        .with_location(exporting)
        .with_filter(otel_filter);
    // Keeps those spans alive when no other layer records them (quieter logs): their
    // context is read from the span, so it must exist.
    let own_context_spans = tracing_subscriber::layer::Identity::new()
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.target() == OWN_CONTEXT_TARGET));
    let registry = tracing_subscriber::registry().with(otel).with(own_context_spans);
    match settings.log_format {
        LogFormat::Json => {
            let format = crate::logs::JsonLines::new(settings.service_name.clone());
            let dispatch = tracing::Dispatch::new(
                registry.with(
                    tracing_subscriber::fmt::layer()
                        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                        .event_format(format.clone())
                        .with_filter(log_filter),
                ),
            );
            format.attach(&dispatch);
            dispatch.try_init()?
        }
        LogFormat::Pretty => {
            registry.with(tracing_subscriber::fmt::layer().compact().with_filter(log_filter)).try_init()?
        }
    }
    Ok(TelemetryGuard { provider })
}

/// The target of request spans that carry their own trace context instead of an
/// OpenTelemetry span (`StackConfig::leaf_request_span`, without an exporter); under
/// `common::server`, so log filters for that module still cover them.
pub(crate) const OWN_CONTEXT_TARGET: &str = "common::server::request";

/// Which spans become trace spans: ours and the drivers' at info, not the HTTP plumbing's.
const SPAN_FILTER: &str = "info,h2=off,hyper=off,hyper_util=off,tower=off,reqwest=off,rustls=off";

/// A per-layer filter whose callsites are never cached as "always enabled", so that
/// every span and event is asked about (`enabled`) before it is recorded.
///
/// Per-layer filters hand their verdict from `enabled` to `on_new_span`/`on_event`
/// through a thread-local. A caller that asks `enabled` without recording anything
/// (sqlx after every query, `tracing::enabled!`, `log::log_enabled!`) leaves a verdict
/// there, and a callsite every filter had accepted for good skips `enabled` and reads
/// that stale verdict: the next span or event silently missed the OpenTelemetry and
/// log layers. A request span lost that way took its `traceparent` with it, so its
/// children started traces of their own (a known limitation of tracing-subscriber's
/// per-layer filtering). One filter that answers "sometimes" makes the whole stack ask
/// each time; the cost is one filter evaluation per span and event.
struct AskEveryTime<F>(F);

impl<S, F: tracing_subscriber::layer::Filter<S>> tracing_subscriber::layer::Filter<S> for AskEveryTime<F> {
    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        self.0.enabled(meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        let interest = self.0.callsite_enabled(meta);
        if interest.is_never() { interest } else { tracing::subscriber::Interest::sometimes() }
    }

    fn event_enabled(&self, event: &tracing::Event<'_>, cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        self.0.event_enabled(event, cx)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.0.max_level_hint()
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_new_span(attrs, id, cx);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_record(id, values, cx);
    }

    fn on_enter(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_enter(id, cx);
    }

    fn on_exit(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_exit(id, cx);
    }

    fn on_close(&self, id: tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_close(id, cx);
    }
}
