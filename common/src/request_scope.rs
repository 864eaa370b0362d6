//! What the task serving a request knows of it while it is served: its id, its trace
//! context when it has no span, and the route that matched. One task-local for the
//! three: each task-local costs every poll of the request's future a swap in and out,
//! and a request's extensions cost an allocation and a hash for each value put in them.

use std::cell::OnceCell;

use axum::extract::MatchedPath;
use http::HeaderValue;
use opentelemetry::trace::SpanContext;

use crate::request_id::RequestId;

tokio::task_local! {
    static REQUEST: RequestScope;
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct RequestScope {
    id: Option<RequestId>,
    /// Set for a request served without a span (see `StackConfig::leaf_request_span`).
    context: Option<SpanContext>,
    /// `context` as a `traceparent` value, made once: the request passes it on to the
    /// service it calls and returns it to its caller.
    traceparent: OnceCell<Option<HeaderValue>>,
    /// Set by the route layer once the router has matched the request.
    route: OnceCell<MatchedPath>,
}

impl RequestScope {
    pub(crate) fn new(id: Option<RequestId>, context: Option<SpanContext>) -> Self {
        Self { id, context, traceparent: OnceCell::new(), route: OnceCell::new() }
    }

    /// Runs `work` in this scope.
    pub(crate) async fn run<F: Future>(self, work: F) -> F::Output {
        REQUEST.scope(self, work).await
    }
}

/// The id of the request the calling task is serving.
pub(crate) fn request_id() -> Option<RequestId> {
    REQUEST.try_with(|scope| scope.id.clone()).ok().flatten()
}

/// The trace context of the request the calling task is serving without a span.
pub(crate) fn context() -> Option<SpanContext> {
    REQUEST.try_with(|scope| scope.context.clone()).ok().flatten()
}

/// `f` of the trace context of the request the calling task is serving without a span,
/// and of its `traceparent` value.
pub(crate) fn with_context<R>(f: impl FnOnce(&SpanContext, Option<&HeaderValue>) -> R) -> Option<R> {
    let scoped = REQUEST.try_with(|scope| {
        let context = scope.context.as_ref()?;
        let traceparent = scope.traceparent.get_or_init(|| crate::propagation::traceparent_value(context));
        Some(f(context, traceparent.as_ref()))
    });
    scoped.ok().flatten()
}

/// Notes the route that matched the request the calling task is serving.
pub(crate) fn set_route(route: &MatchedPath) {
    let _ = REQUEST.try_with(|scope| scope.route.set(route.clone()));
}

/// The route that matched the request the calling task is serving, once it has.
pub(crate) fn route() -> Option<MatchedPath> {
    REQUEST.try_with(|scope| scope.route.get().cloned()).ok().flatten()
}
