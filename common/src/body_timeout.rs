//! The request-body read timeout: a body that has not fully arrived within the bound
//! (from the end of the headers) fails its reader, and the request is answered 408
//! whatever the handler made of that failure.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::problem::Problem;

/// The error a timed-out body gives its reader.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyReadTimeout(pub Duration);

/// Layer: bounds the time the request's body may take to arrive. A plain service rather
/// than a `from_fn` middleware: a request without a body, most of them, costs it one
/// check, with no boxed future and no clone of the stack below.
#[derive(Debug, Clone, Copy)]
pub struct ReadBodyInTimeLayer(pub Duration);

impl<S> Layer<S> for ReadBodyInTimeLayer {
    type Service = ReadBodyInTime<S>;

    fn layer(&self, inner: S) -> ReadBodyInTime<S> {
        ReadBodyInTime { limit: self.0, inner }
    }
}

/// The service of [`ReadBodyInTimeLayer`].
#[derive(Debug, Clone)]
pub struct ReadBodyInTime<S> {
    limit: Duration,
    inner: S,
}

impl<S> Service<Request> for ReadBodyInTime<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.body().is_end_stream() {
            return Either::Left(self.inner.call(req));
        }
        let limit = self.limit;
        let expired = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + limit;
        let req = req
            .map(|body| Body::new(TimedBody { inner: body, limit, deadline, sleep: None, expired: expired.clone() }));
        let answer = self.inner.call(req);
        Either::Right(Box::pin(async move {
            let response = answer.await?;
            if expired.load(Ordering::Acquire) {
                tracing::debug!(timeout_ms = limit.as_millis() as u64, "request body too slow");
                return Ok(Problem::request_timeout(BodyReadTimeout(limit).to_string()).into_response());
            }
            Ok(response)
        }))
    }
}

/// A request body with a deadline for its end.
struct TimedBody {
    inner: Body,
    limit: Duration,
    deadline: Instant,
    /// Armed at the first wait for data.
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for TimedBody {
    type Data = <Body as HttpBody>::Data;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(BodyReadTimeout(this.limit).into())));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(BodyReadTimeout(this.limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
