//! W3C trace-context propagation across HTTP headers and message headers.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Registry;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

struct MapInjector<'a>(&'a mut BTreeMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// The most `tracestate` list members kept (W3C Trace Context, section 3.3.1.1).
pub const TRACESTATE_MAX_MEMBERS: usize = 32;
/// The longest `tracestate` kept, in characters: what the W3C asks every vendor to
/// propagate, and what any store of the context must hold.
pub const TRACESTATE_MAX_CHARS: usize = 512;
/// The longest `traceparent` looked at: version 00 is exactly 55 characters; a later
/// version may append fields, which are ignored.
const TRACEPARENT_MAX_CHARS: usize = 256;
const TRACEPARENT_CHARS: usize = 55;

/// An incoming trace context, cut down to what the W3C grammar allows within its
/// bounds. A malformed or oversized `traceparent` is dropped (the request starts a new
/// trace); a malformed or oversized `tracestate` is dropped whole (the trace goes on
/// without it). Both are what the specification allows a receiver to do, and they
/// keep a stranger's headers from reaching a log line, a span or a stored row unbounded.
#[derive(Debug, Default, PartialEq, Eq)]
struct Incoming {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Incoming {
    /// `tracestate` is `None` when a header line of it was not visible ASCII.
    fn new(traceparent: &[&str], tracestate: Option<Vec<&str>>) -> Self {
        let traceparent = match traceparent {
            [one] => valid_traceparent(one),
            // None, or several: which one would be the caller's is unknowable.
            _ => None,
        };
        // A trace state belongs to its trace: without a parent there is nothing to continue.
        let tracestate = traceparent.as_ref().and(tracestate).and_then(bounded_tracestate);
        Self { traceparent, tracestate }
    }

    fn from_headers(headers: &HeaderMap) -> Self {
        let traceparent: Vec<&str> = headers.get_all(TRACEPARENT).iter().map(|v| v.to_str().unwrap_or("")).collect();
        let tracestate = headers.get_all(TRACESTATE).iter().map(|v| v.to_str().ok()).collect();
        Self::new(&traceparent, tracestate)
    }

    fn from_map(map: &BTreeMap<String, String>) -> Self {
        let traceparent: Vec<&str> = map.get(TRACEPARENT).map(String::as_str).into_iter().collect();
        Self::new(&traceparent, Some(map.get(TRACESTATE).map(String::as_str).into_iter().collect()))
    }
}

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

impl Extractor for Incoming {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent.as_deref(),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        let present = [(TRACEPARENT, &self.traceparent), (TRACESTATE, &self.tracestate)];
        present.into_iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k).collect()
    }
}

/// `version "-" trace-id "-" parent-id "-" trace-flags`, lowercase hex, ids not all
/// zeros; version `ff` is invalid. A later version's extra fields are cut off.
fn valid_traceparent(value: &str) -> Option<String> {
    let value = value.trim_matches([' ', '\t']);
    if value.len() > TRACEPARENT_MAX_CHARS || !value.is_ascii() {
        return None;
    }
    let (head, rest) = value.split_at_checked(TRACEPARENT_CHARS)?;
    let fields: Vec<&str> = head.split('-').collect();
    let [version, trace_id, parent_id, flags] = fields[..] else { return None };
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    let well_formed = hex(version, 2)
        && version != "ff"
        && hex(trace_id, 32)
        && nonzero(trace_id)
        && hex(parent_id, 16)
        && nonzero(parent_id)
        && hex(flags, 2);
    let rest_allowed = rest.is_empty() || (version != "00" && rest.starts_with('-'));
    (well_formed && rest_allowed).then(|| head.to_owned())
}

/// The `tracestate` list (several header lines are one list), with empty members
/// removed, if it has at most [`TRACESTATE_MAX_MEMBERS`] members, at most
/// [`TRACESTATE_MAX_CHARS`] characters, unique keys, and every member in the W3C
/// grammar. Values with `"` or `\` are refused too: the grammar allows them, no
/// tracing system uses them, and they would double in size where the context is
/// stored as JSON.
fn bounded_tracestate(values: Vec<&str>) -> Option<String> {
    let mut members: Vec<&str> = Vec::new();
    let mut chars = 0usize;
    for value in values {
        chars += value.len();
        if chars > TRACESTATE_MAX_CHARS {
            return None;
        }
        members.extend(value.split(',').map(|m| m.trim_matches([' ', '\t'])).filter(|m| !m.is_empty()));
    }
    if members.is_empty() || members.len() > TRACESTATE_MAX_MEMBERS {
        return None;
    }
    let mut keys = std::collections::BTreeSet::new();
    for member in &members {
        let (key, value) = member.split_once('=')?;
        if !valid_tracestate_key(key) || !valid_tracestate_value(value) || !keys.insert(key) {
            return None;
        }
    }
    Some(members.join(","))
}

fn valid_tracestate_key(key: &str) -> bool {
    let tail = |s: &str, max: usize| {
        s.len() <= max
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/'))
    };
    match key.split_once('@') {
        None => key.as_bytes().first().is_some_and(u8::is_ascii_lowercase) && tail(key, 256),
        Some((tenant, system)) => {
            tenant.as_bytes().first().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && tail(tenant, 241)
                && system.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
                && tail(system, 14)
        }
    }
}

fn valid_tracestate_value(value: &str) -> bool {
    (1..=256).contains(&value.len())
        && !value.ends_with(' ')
        && value.bytes().all(|b| (0x20..=0x7e).contains(&b) && !matches!(b, b',' | b'=' | b'"' | b'\\'))
}

/// The context a request's `traceparent` (and `tracestate`) names, within the W3C
/// bounds (empty when there is none, or it is malformed).
pub fn extract_http(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&Incoming::from_headers(headers))
}

/// Writes the current span's `traceparent` into outgoing headers, and its `tracestate`
/// (or none: one that came in and was dropped as out of bounds is not passed on).
pub fn inject_http(headers: &mut HeaderMap) {
    let scoped = crate::request_scope::with_context(|context, traceparent| {
        write_context_as(headers, context, traceparent.cloned());
    });
    if scoped.is_none() {
        write_context(headers, &current_context());
    }
}

/// A span's trace context kept in the span itself rather than in an OpenTelemetry span
/// (see [`own_context_for_http`]).
#[derive(Debug, Clone)]
struct OwnContext(SpanContext);

/// The trace context of a request span made without OpenTelemetry's span: a new span in
/// the trace the request's `traceparent` names (its sampled flag and `tracestate`
/// kept), or the root of a new, sampled trace; what the OpenTelemetry layer with the
/// SDK's default sampler (parent-based, always on) would give the span, without the
/// span builder, attributes and sampling it does for every span.
pub(crate) fn own_context_for_http(headers: &HeaderMap) -> SpanContext {
    let ids = RandomIdGenerator::default();
    // Most requests from outside carry no trace context: no parsing for them.
    if !headers.contains_key(&TRACEPARENT_HEADER) {
        return SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
    }
    let parent = extract_http(headers);
    let parent = parent.span();
    let parent = parent.span_context();
    if parent.is_valid() {
        let flags = parent.trace_flags() & TraceFlags::SAMPLED;
        SpanContext::new(parent.trace_id(), ids.new_span_id(), flags, false, parent.trace_state().clone())
    } else {
        SpanContext::new(ids.new_trace_id(), ids.new_span_id(), TraceFlags::SAMPLED, false, TraceState::default())
    }
}

/// Gives `span` its own trace context, which [`inject_http`], [`current_as_map`] and the
/// JSON log lines read instead of an OpenTelemetry span's; for a span the OpenTelemetry
/// layer does not record.
pub(crate) fn attach_own_context(span: &tracing::Span, context: SpanContext) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(span) = dispatch.downcast_ref::<Registry>().and_then(|registry| registry.span(id)) {
            span.extensions_mut().insert(OwnContext(context));
        }
    });
}

/// The trace context a span was given by [`attach_own_context`].
pub(crate) fn own_context<'a>(span: &SpanRef<'a, impl LookupSpan<'a>>) -> Option<SpanContext> {
    span.extensions().get::<OwnContext>().map(|own| own.0.clone())
}

/// Runs `work` with `context` as its trace context, for a request whose span nobody
/// would record (no exporter, and a log level above info): [`inject_http`],
/// [`current_as_map`] and the JSON log lines read it as they read a span's own context,
/// and the request pays for no span in the registry, nor for entering and leaving one on
/// every poll.
#[cfg(test)]
pub(crate) async fn within_own_context<F: Future>(context: SpanContext, work: F) -> F::Output {
    crate::request_scope::RequestScope::new(None, Some(context)).run(work).await
}

/// The current trace context: the one a request was given without a span, or the
/// current span's own, or its OpenTelemetry span's.
fn current_context() -> SpanContext {
    if let Some(context) = crate::request_scope::context() {
        return context;
    }
    let span = tracing::Span::current();
    let own = span.with_subscriber(|(id, dispatch)| {
        dispatch.downcast_ref::<Registry>().and_then(|registry| registry.span(id)).and_then(|span| own_context(&span))
    });
    own.flatten().unwrap_or_else(|| span.context().span().span_context().clone())
}

static TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(TRACEPARENT);
static TRACESTATE_HEADER: HeaderName = HeaderName::from_static(TRACESTATE);

/// What `TraceContextPropagator` writes, without its string formatting and header-name
/// parsing (which every proxied request paid twice); an empty `tracestate` is removed
/// rather than sent empty.
pub(crate) fn write_context(headers: &mut HeaderMap, context: &SpanContext) {
    write_context_as(headers, context, traceparent_value(context));
}

/// `context` as a `traceparent` value; `None` for an invalid context.
pub(crate) fn traceparent_value(context: &SpanContext) -> Option<HeaderValue> {
    if !context.is_valid() {
        return None;
    }
    HeaderValue::from_bytes(&traceparent(context)).ok()
}

/// [`write_context`] with the `traceparent` value made already.
fn write_context_as(headers: &mut HeaderMap, context: &SpanContext, traceparent: Option<HeaderValue>) {
    let Some(value) = traceparent else { return };
    headers.insert(&TRACEPARENT_HEADER, value);
    // The common case, no state, without building its (empty) text.
    if *context.trace_state() == TraceState::default() {
        headers.remove(&TRACESTATE_HEADER);
        return;
    }
    let state = context.trace_state().header();
    match HeaderValue::from_str(&state) {
        Ok(value) if !state.is_empty() => {
            headers.insert(&TRACESTATE_HEADER, value);
        }
        _ => {
            headers.remove(&TRACESTATE_HEADER);
        }
    }
}

/// `00-<trace id>-<span id>-<flags>`, lowercase hex; of the flags only `sampled`.
fn traceparent(context: &SpanContext) -> [u8; TRACEPARENT_CHARS] {
    fn hex_into(out: &mut [u8], bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
    }
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(&mut out[3..35], &context.trace_id().to_bytes());
    hex_into(&mut out[36..52], &context.span_id().to_bytes());
    hex_into(&mut out[53..55], &[context.trace_flags().to_u8() & TraceFlags::SAMPLED.to_u8()]);
    out
}

/// The current span's context as a map (`traceparent`, `tracestate`), for an outbox
/// row or Kafka message headers.
pub fn current_as_map() -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let cx = Context::new().with_remote_span_context(current_context());
    TraceContextPropagator::new().inject_context(&cx, &mut MapInjector(&mut map));
    map
}

/// The context stored in a map by [`current_as_map`].
pub fn extract_map(map: &BTreeMap<String, String>) -> Context {
    TraceContextPropagator::new().extract(&Incoming::from_map(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[tokio::test]
    async fn a_request_given_a_context_without_a_span_passes_that_context_on_until_it_ends() {
        let context = own_context_for_http(&headers(&[("traceparent", PARENT)]));
        let outgoing = within_own_context(context.clone(), async {
            tokio::task::yield_now().await;
            let mut outgoing = HeaderMap::new();
            inject_http(&mut outgoing);
            outgoing
        })
        .await;
        let sent = outgoing["traceparent"].to_str().unwrap();
        assert_eq!(&sent[..36], &PARENT[..36], "same trace");
        assert_eq!(&sent[36..52], context.span_id().to_string(), "the request's own span id");
        assert!(crate::request_scope::context().is_none(), "the context ends with the request");
        let mut after = HeaderMap::new();
        inject_http(&mut after);
        assert!(after.get("traceparent").is_none());
    }

    #[test]
    fn a_well_formed_traceparent_is_kept_and_malformed_ones_are_dropped() {
        assert_eq!(valid_traceparent(PARENT).as_deref(), Some(PARENT));
        let later_version = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert_eq!(valid_traceparent(later_version).as_deref(), Some(&later_version[..55]));
        for bad in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-1-1-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            &format!("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-{}", "x".repeat(300)),
        ] {
            assert_eq!(valid_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tracestate_within_the_w3c_bounds_is_kept_and_anything_beyond_drops_it_whole() {
        assert_eq!(
            bounded_tracestate(vec!["congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"]).as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        assert_eq!(
            bounded_tracestate(vec!["a=1", "b@sys=2"]).as_deref(),
            Some("a=1,b@sys=2"),
            "two header lines are one list"
        );
        let thirty_two: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert!(bounded_tracestate(vec![&thirty_two.join(",")]).is_some());
        let thirty_three: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(bounded_tracestate(vec![&thirty_three.join(",")]), None);
        let long = format!("k={}", "v".repeat(TRACESTATE_MAX_CHARS));
        assert_eq!(bounded_tracestate(vec![&long]), None);
        for bad in ["noequals", "UPPER=1", "k=", "k=a,k=b", "k=has\"quote", "k=back\\slash", "k=a\tb", "1a=1"] {
            assert_eq!(bounded_tracestate(vec![bad]), None, "{bad:?}");
        }
    }

    #[test]
    fn the_written_context_is_what_the_w3c_propagator_writes() {
        use opentelemetry::trace::{SpanId, TraceId, TraceState};
        let state = TraceState::from_key_value([("vendor", "v1"), ("other", "x")]).unwrap();
        for (flags, state) in [(TraceFlags::SAMPLED, state), (TraceFlags::default(), TraceState::default())] {
            let context = SpanContext::new(
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                flags,
                false,
                state,
            );
            let mut expected = BTreeMap::new();
            let cx = Context::new().with_remote_span_context(context.clone());
            TraceContextPropagator::new().inject_context(&cx, &mut MapInjector(&mut expected));
            // A tracestate that came in and was not kept must not go out either.
            let mut written = headers(&[("tracestate", "k=dropped")]);
            write_context(&mut written, &context);
            assert_eq!(written["traceparent"], expected["traceparent"].as_str());
            match expected["tracestate"].as_str() {
                "" => assert!(written.get("tracestate").is_none()),
                state => assert_eq!(written["tracestate"], state),
            }
        }
    }

    #[test]
    fn a_tracestate_without_a_valid_traceparent_is_not_kept() {
        let incoming = Incoming::from_headers(&headers(&[("traceparent", "garbage"), ("tracestate", "a=1")]));
        assert_eq!(incoming, Incoming::default());
        let incoming = Incoming::from_headers(&headers(&[
            ("traceparent", PARENT),
            ("traceparent", PARENT),
            ("tracestate", "a=1"),
        ]));
        assert_eq!(incoming, Incoming::default(), "two traceparent lines are ambiguous");
    }

    #[test]
    fn an_oversized_tracestate_is_dropped_and_the_trace_continues() {
        let huge = vec!["k=v"; 1000].join(",");
        let incoming = Incoming::from_headers(&headers(&[("traceparent", PARENT), ("tracestate", &huge)]));
        assert_eq!(incoming, Incoming { traceparent: Some(PARENT.into()), tracestate: None });
        let cx = TraceContextPropagator::new().extract(&incoming);
        use opentelemetry::trace::TraceContextExt as _;
        assert_eq!(cx.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.span().span_context().trace_state().header(), "");
    }

    #[test]
    fn the_largest_accepted_context_fits_in_1024_bytes_of_json() {
        // What order-service stores with each outbox row (VARCHAR(1024)).
        let members: Vec<String> = (0..8).map(|i| format!("k{i}={}", "~".repeat(60))).collect();
        let state = members.join(",");
        assert!(state.len() <= TRACESTATE_MAX_CHARS);
        let map = BTreeMap::from([
            (TRACEPARENT.to_owned(), PARENT.to_owned()),
            (TRACESTATE.to_owned(), bounded_tracestate(vec![&state]).unwrap()),
        ]);
        let worst = TRACESTATE_MAX_CHARS + TRACEPARENT_CHARS + 64;
        assert!(serde_json::to_string(&map).unwrap().len() <= worst && worst <= 1024);
    }
}
