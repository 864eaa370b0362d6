//! Serving a listener so that no client holds more than a bounded share of it: a
//! header-read timeout, a keep-alive idle timeout and a connection cap, with graceful
//! shutdown. (The body-read timeout is a layer of the standard stack.)
//!
//! hyper's own header-read timeout starts when a connection begins to wait for a
//! request, so on a kept-alive connection it is the idle timeout too. The two bounds are
//! different things: an idle pooled connection costs little and should outlive its
//! client's pool, while headers that arrive byte by byte are an attack. Each connection
//! therefore has a clock that knows which phase it is in:
//!
//! - waiting for the first byte of a request: a new connection has the header-read
//!   timeout from its accept, a kept-alive one the keep-alive timeout from its last answer;
//! - reading a request head: from its first byte, the header-read timeout;
//! - answering: bounded by the stack's request and body-read timeouts, not here.
//!
//! At the cap the listener stops accepting (new connections wait in the listen queue) and
//! makes room: it closes the connections that are not being answered and have had their
//! chance, those idle between requests and those that have been sending (or not sending)
//! a head for over a second. A request being answered is never cut. So a client holding
//! connections open without finishing a request delays a newcomer by about a second,
//! not by the header-read timeout.

use std::cell::Cell;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use futures::task::AtomicWaker;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::settings::{ConnectionLimits, ServerSettings};

/// Serves `app` on `listener` until `shutdown` fires, then stops accepting and gives
/// in-flight requests up to the shutdown grace to finish. Each connection is served on
/// the next of `threads`, or on the caller's runtime when it has none.
pub async fn serve<A: App>(
    listener: TcpListener,
    app: A,
    shutdown: CancellationToken,
    settings: &ServerSettings,
    threads: &ConnectionThreads,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let limits = settings.limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (pressure, pressure_seen) = watch::channel(0_u64);
    let mut cap_warning = CapWarning { max_connections: limits.max_connections, last: None };
    let mut connections = JoinSet::new();
    tracing::debug!(%addr, "listening");
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // At the cap this one waits (and the next ones in the listen queue) for a slot.
        let Some(slot) = next_slot(&slots, &pressure, &shutdown, &mut cap_warning, addr).await else { break };
        let _ = stream.set_nodelay(true);
        let accepted = Instant::now();
        let connection =
            Connection { peer, accepted, limits, shutdown: shutdown.clone(), pressure: pressure_seen.clone() };
        let app = app.clone();
        match threads.next() {
            None => {
                connections.spawn(connection.serve(stream, app, slot));
            }
            Some(thread) => match stream.into_std() {
                // Registered again with the reactor of the thread that serves it.
                Ok(stream) => {
                    connections.spawn_on(connection.serve_std(stream, app, slot), thread);
                }
                Err(err) => tracing::debug!(%peer, error = %err, "cannot hand a connection over"),
            },
        }
    }
    drop(listener);
    drain(connections, settings.shutdown_grace).await;
    Ok(())
}

/// Threads that serve a listener's connections, each with a single-threaded runtime of
/// its own: a connection, and every request on it, stays on one thread and its reactor,
/// so serving a request wakes no other thread (nginx's worker processes). The listener
/// accepts on the caller's runtime and hands each connection to the next thread in turn.
#[derive(Debug, Default)]
pub struct ConnectionThreads {
    runtimes: Vec<Handle>,
    next: AtomicUsize,
    stop: CancellationToken,
    stopped: Vec<oneshot::Receiver<()>>,
}

thread_local! {
    static THREAD_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Which of the [`ConnectionThreads`] the caller runs on (0-based), if any: for state
/// kept per thread, such as a proxy's idle upstream connections.
pub fn thread_index() -> Option<usize> {
    THREAD_INDEX.with(Cell::get)
}

impl ConnectionThreads {
    /// No threads: connections are served on the caller's runtime.
    pub fn none() -> Self {
        Self::default()
    }

    /// `count` threads named `name-<index>`.
    pub fn start(count: usize, name: &str) -> io::Result<Self> {
        let mut threads = Self::default();
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            threads.runtimes.push(runtime.handle().clone());
            let stop = threads.stop.clone();
            let (stopped, stopped_seen) = oneshot::channel();
            threads.stopped.push(stopped_seen);
            std::thread::Builder::new().name(format!("{name}-{index}")).spawn(move || {
                THREAD_INDEX.with(|cell| cell.set(Some(index)));
                runtime.block_on(stop.cancelled());
                // Drops what is left on it before saying so.
                drop(runtime);
                let _ = stopped.send(());
            })?;
        }
        Ok(threads)
    }

    /// The runtime of the next connection, in turn.
    fn next(&self) -> Option<&Handle> {
        if self.runtimes.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, AtomicOrdering::Relaxed);
        self.runtimes.get(turn % self.runtimes.len())
    }

    /// Stops the threads once their listeners have drained, and waits until they have.
    pub async fn stop(mut self) {
        self.stop.cancel();
        for stopped in std::mem::take(&mut self.stopped) {
            let _ = stopped.await;
        }
    }
}

impl Drop for ConnectionThreads {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A free connection slot for an accepted connection; at the cap, waits for one while
/// asking stale connections to make room. `None` once `shutdown` fires.
async fn next_slot(
    slots: &Arc<Semaphore>,
    pressure: &watch::Sender<u64>,
    shutdown: &CancellationToken,
    cap_warning: &mut CapWarning,
    addr: SocketAddr,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    cap_warning.warn(addr);
    let mut make_room = tokio::time::interval(MAKE_ROOM_EVERY);
    loop {
        tokio::select! {
            slot = slots.clone().acquire_owned() => return slot.ok(),
            _ = make_room.tick() => pressure.send_modify(|generation| *generation = generation.wrapping_add(1)),
            () = shutdown.cancelled() => return None,
        }
    }
}

/// At the cap, a connection that has not begun a request this long after its accept or
/// its last answer, or has been sending its head this long, is closed to make room.
const STALE_AT_THE_CAP: Duration = Duration::from_secs(1);

/// How often the listener, at the cap, asks the connections to make room.
const MAKE_ROOM_EVERY: Duration = Duration::from_millis(250);

/// Waits for the connections to finish their requests, at most `grace`, then cuts them.
async fn drain(mut connections: JoinSet<()>, grace: Duration) {
    let drained = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            connections = connections.len(),
            "in-flight requests outlived the grace period"
        );
        connections.shutdown().await;
    }
}

async fn accept_failed(err: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    if matches!(err.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted) {
        return;
    }
    // Out of file descriptors and the like: let connections close rather than spin.
    tracing::error!(error = %err, "cannot accept connections");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One warning per ten seconds while the cap is reached, not one per connection.
#[derive(Debug)]
struct CapWarning {
    max_connections: usize,
    last: Option<Instant>,
}

impl CapWarning {
    const EVERY: Duration = Duration::from_secs(10);

    fn warn(&mut self, addr: SocketAddr) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < Self::EVERY) {
            return;
        }
        self.last = Some(now);
        tracing::warn!(
            %addr,
            max_connections = self.max_connections,
            "connection cap reached: new connections wait, stale ones are closed (ECOM_MAX_CONNECTIONS)"
        );
    }
}

/// One accepted connection and what bounds it.
struct Connection {
    peer: SocketAddr,
    /// Its clock starts here, not when a connection thread gets to it.
    accepted: Instant,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    /// Bumped by the listener when it is at the cap.
    pressure: watch::Receiver<u64>,
}

impl Connection {
    async fn serve_std<A: App>(self, stream: std::net::TcpStream, app: A, slot: OwnedSemaphorePermit) {
        match TcpStream::from_std(stream) {
            Ok(stream) => self.serve(stream, app, slot).await,
            Err(err) => tracing::debug!(peer = %self.peer, error = %err, "cannot serve a handed-over connection"),
        }
    }

    async fn serve<A: App>(mut self, stream: TcpStream, app: A, _slot: OwnedSemaphorePermit) {
        let clock = Arc::new(Clock::new(self.limits, self.accepted));
        let io = TokioIo::new(ClockedIo { inner: stream, clock: clock.clone() });
        let service = ConnectionService { app, peer: self.peer, clock: clock.clone() };
        let mut builder = http1::Builder::new();
        // The clock bounds the head and the idle wait separately; hyper's header timeout
        // would also cut every kept-alive connection after the header-read time.
        builder.timer(TokioTimer::new()).header_read_timeout(None).keep_alive(true).writev(false);
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let signals = Arc::new(Signals::default());
        let signal_waker = Waker::from(signals.clone());
        let mut draining = false;
        let mut pressure_open = true;
        loop {
            let watch = Watch { pressure: !draining && pressure_open, shutdown: !draining };
            let event = self.next_event(connection.as_mut(), &clock, (&signals, &signal_waker), watch).await;
            match event {
                Event::Ended(result) => {
                    if let Err(err) = result {
                        tracing::debug!(peer = %self.peer, error = %err, "connection ended with an error");
                    }
                    return;
                }
                Event::DeadlinePassed => {
                    if clock.deadline().is_some_and(|deadline| deadline <= Instant::now()) {
                        tracing::debug!(peer = %self.peer, phase = clock.phase_name(), "closing a connection past its deadline");
                        return;
                    }
                }
                Event::ClockChanged => {}
                Event::Pressure { open } => {
                    pressure_open = open;
                    if open && clock.is_stale() {
                        tracing::debug!(peer = %self.peer, phase = clock.phase_name(), "closing a connection to make room");
                        return;
                    }
                }
                Event::Shutdown => {
                    // Finishes the request in flight, if any, then closes.
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
        }
    }

    /// One round of a connection's loop: serves it until it ends or one of its signals
    /// fires, which this round registers anew.
    async fn next_event<C>(
        &mut self,
        mut connection: Pin<&mut C>,
        clock: &Clock,
        (signals, signal_waker): (&Signals, &Waker),
        watch: Watch,
    ) -> Event
    where
        C: Future<Output = Result<(), hyper::Error>>,
    {
        let mut deadline_passed = pin!(sleep_until(clock.arm()));
        let mut clock_changed = pin!(clock.changed.notified());
        let mut pressure = pin!(self.pressure.changed());
        let mut cancelled = pin!(self.shutdown.cancelled());
        // Each round polls its new signals once, to register them.
        signals.woken.store(true, AtomicOrdering::Release);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(Event::Ended(result));
            }
            signals.task.register(cx.waker());
            if !signals.woken.swap(false, AtomicOrdering::AcqRel) {
                return Poll::Pending;
            }
            let cx = &mut Context::from_waker(signal_waker);
            if deadline_passed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::DeadlinePassed);
            }
            if clock_changed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::ClockChanged);
            }
            if watch.pressure
                && let Poll::Ready(changed) = pressure.as_mut().poll(cx)
            {
                return Poll::Ready(Event::Pressure { open: changed.is_ok() });
            }
            if watch.shutdown && cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Shutdown);
            }
            Poll::Pending
        })
        .await
    }
}

/// Which of the listener's signals a connection still waits for.
#[derive(Debug, Clone, Copy)]
struct Watch {
    pressure: bool,
    shutdown: bool,
}

/// What ends a round of a connection's loop.
enum Event {
    /// The connection is done.
    Ended(Result<(), hyper::Error>),
    /// The timer of its phase's deadline fired (maybe early: see [`ClockState::armed`]).
    DeadlinePassed,
    /// Its deadline moved sooner than its timer.
    ClockChanged,
    /// The listener is at its cap (`open`), or has stopped watching it.
    Pressure {
        open: bool,
    },
    Shutdown,
}

/// The waker a connection's signals (its timer, its clock, the listener's pressure and
/// shutdown) are polled with: it notes that one of them woke the task. The task is woken
/// about four times a request by its own I/O, and then polls only its connection, not
/// the four signals as well.
#[derive(Default)]
struct Signals {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Signals {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, AtomicOrdering::Release);
        self.task.wake();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is between requests, and its deadline there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No byte of the next request yet, since the accept or the last answer.
    Waiting { since: Instant, until: Instant, kept_alive: bool },
    /// Part of a request head has arrived, the first of it at `since`.
    Head { since: Instant, until: Instant },
    /// This many requests are being answered (their responses not yet written).
    Busy(usize),
}

impl Phase {
    fn deadline(self) -> Option<Instant> {
        match self {
            Phase::Waiting { until, .. } | Phase::Head { until, .. } => Some(until),
            Phase::Busy(_) => None,
        }
    }
}

/// The phase of one connection, moved by its reads and its requests.
#[derive(Debug)]
struct Clock {
    state: Mutex<ClockState>,
    /// Wakes the connection's task when its deadline moved sooner than its timer.
    changed: Notify,
    limits: ConnectionLimits,
}

#[derive(Debug)]
struct ClockState {
    phase: Phase,
    /// The deadline the connection's timer is set for ([`Clock::arm`]). A phase whose
    /// deadline is later, or that has none, wakes nobody: the timer fires early, and the
    /// connection sets it again for the deadline of its phase then. So a kept-alive
    /// connection's task is woken about once per header-read time, not three times for
    /// every request.
    armed: Option<Instant>,
}

impl Clock {
    fn new(limits: ConnectionLimits, since: Instant) -> Self {
        let until = since + limits.header_read_timeout;
        let phase = Phase::Waiting { since, until, kept_alive: false };
        Self { state: Mutex::new(ClockState { phase, armed: None }), changed: Notify::new(), limits }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, step: impl FnOnce(Phase) -> Phase) {
        let mut state = self.state();
        let next = step(state.phase);
        if next == state.phase {
            return;
        }
        state.phase = next;
        let sooner = match (next.deadline(), state.armed) {
            (Some(deadline), Some(armed)) => deadline < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        drop(state);
        if sooner {
            self.changed.notify_one();
        }
    }

    /// The deadline of the current phase, which the caller sets its timer for.
    fn arm(&self) -> Option<Instant> {
        let mut state = self.state();
        state.armed = state.phase.deadline();
        state.armed
    }

    fn phase(&self) -> Phase {
        self.state().phase
    }

    /// Bytes came in: a waiting connection starts reading a head.
    fn bytes_arrived(&self) {
        let header_read_timeout = self.limits.header_read_timeout;
        self.update(|phase| match phase {
            // A new connection's head is due a header-read time after the accept.
            Phase::Waiting { since, until, kept_alive: false } => Phase::Head { since, until },
            Phase::Waiting { kept_alive: true, .. } => {
                let now = Instant::now();
                Phase::Head { since: now, until: now + header_read_timeout }
            }
            other => other,
        });
    }

    fn request_started(&self) {
        self.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
    }

    fn request_finished(&self) {
        let keep_alive_timeout = self.limits.keep_alive_timeout;
        self.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => {
                let now = Instant::now();
                Phase::Waiting { since: now, until: now + keep_alive_timeout, kept_alive: true }
            }
        });
    }

    fn deadline(&self) -> Option<Instant> {
        self.phase().deadline()
    }

    /// Kept alive and not a byte of a next request: safe to close, its client reconnects.
    #[cfg(test)]
    fn is_idle(&self) -> bool {
        matches!(self.phase(), Phase::Waiting { kept_alive: true, .. })
    }

    /// Idle between requests, or past [`STALE_AT_THE_CAP`] without a whole head: what the
    /// listener closes at the cap. Never a connection whose request is being answered.
    fn is_stale(&self) -> bool {
        match self.phase() {
            Phase::Waiting { kept_alive: true, .. } => true,
            Phase::Waiting { since, .. } | Phase::Head { since, .. } => since.elapsed() >= STALE_AT_THE_CAP,
            Phase::Busy(_) => false,
        }
    }

    fn phase_name(&self) -> &'static str {
        match self.phase() {
            Phase::Waiting { kept_alive: false, .. } => "new, no request",
            Phase::Waiting { kept_alive: true, .. } => "idle",
            Phase::Head { .. } => "reading headers",
            Phase::Busy(_) => "answering",
        }
    }
}

/// A request being answered; finished when dropped (with its response body, once hyper
/// has written it, or with the request if the connection goes away first).
struct InFlight(Arc<Clock>);

impl InFlight {
    fn start(clock: Arc<Clock>) -> Self {
        clock.request_started();
        Self(clock)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The socket, telling the clock when bytes arrive.
struct ClockedIo {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for ClockedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for ClockedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What a listener serves: a router, or a stack of layers around one that need no router
/// of their own outside them (the gateway's).
pub trait App:
    tower::Service<Request, Response = Response, Error = Infallible, Future: Send + 'static> + Clone + Send + Sync + 'static
{
}

impl<S> App for S where
    S: tower::Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The app, seen by hyper for one connection: knows the peer and the clock.
#[derive(Clone)]
struct ConnectionService<A> {
    app: A,
    peer: SocketAddr,
    clock: Arc<Clock>,
}

impl<A: App> hyper::service::Service<http::Request<Incoming>> for ConnectionService<A> {
    // Not boxed again into a `Body`: hyper takes any body.
    type Response = http::Response<InFlightBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: http::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::start(self.clock.clone());
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(req.map(Body::new)).await?;
            Ok(response.map(|body| InFlightBody { body, _in_flight: in_flight }))
        })
    }
}

/// A response body that holds its request in flight until hyper is done with it.
struct InFlightBody {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for InFlightBody {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(5),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: 4,
        }
    }

    /// `deadline` lies `after` from some instant between `before` and now.
    fn due_in(deadline: Option<Instant>, before: Instant, after: Duration) -> bool {
        deadline.is_some_and(|deadline| deadline >= before + after && deadline <= Instant::now() + after)
    }

    #[test]
    fn a_connection_moves_from_head_to_answering_to_idle_with_the_deadline_of_each() {
        let before = Instant::now();
        let clock = Clock::new(limits(), Instant::now());
        assert!(due_in(clock.deadline(), before, Duration::from_secs(10)));
        assert!(!clock.is_idle(), "a new connection is not idle: it may be about to send");
        assert!(!clock.is_stale(), "nor stale before it had a second to send");
        let accepted_deadline = clock.deadline();
        clock.bytes_arrived();
        assert_eq!(clock.deadline(), accepted_deadline, "a new connection's head is due 10 s after the accept");

        clock.request_started();
        assert_eq!(clock.deadline(), None);
        let before = Instant::now();
        clock.request_finished();
        assert!(due_in(clock.deadline(), before, Duration::from_secs(75)));
        assert!(clock.is_idle());

        let before = Instant::now();
        clock.bytes_arrived();
        assert!(due_in(clock.deadline(), before, Duration::from_secs(10)), "the next head has its own 10 s");
        assert!(!clock.is_idle());
    }

    #[test]
    fn only_a_deadline_sooner_than_the_armed_one_wakes_the_connection() {
        use futures::FutureExt as _;
        let woken = |clock: &Clock| clock.changed.notified().now_or_never().is_some();
        let clock = Clock::new(limits(), Instant::now());
        let first_head = clock.arm();
        clock.bytes_arrived();
        clock.request_started();
        clock.request_finished();
        assert!(!woken(&clock), "no deadline, then a later one: the armed timer fires first");

        assert_eq!(clock.arm(), clock.deadline(), "the timer fired early and is set again");
        assert!(clock.deadline() > first_head);
        clock.bytes_arrived();
        assert!(woken(&clock), "the next head is due sooner than the idle deadline");
        clock.arm();
        clock.request_started();
        clock.request_finished();
        clock.bytes_arrived();
        assert!(!woken(&clock), "a later head than the armed one");

        clock.request_started();
        assert_eq!(clock.arm(), None);
        clock.request_finished();
        assert!(woken(&clock), "an idle deadline after none");
    }

    #[tokio::test]
    async fn connections_go_to_the_threads_in_turn_and_the_threads_stop_when_asked() {
        let threads = ConnectionThreads::start(2, "test-connections").unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let runtime = threads.next().unwrap();
            seen.push(runtime.spawn(async { thread_index() }).await.unwrap());
        }
        assert_eq!(seen, [Some(0), Some(1), Some(0), Some(1)]);
        assert_eq!(thread_index(), None, "the caller is none of them");
        threads.stop().await;
        assert!(ConnectionThreads::none().next().is_none());
    }

    #[test]
    fn a_request_in_flight_keeps_the_connection_busy_until_its_response_is_dropped() {
        let clock = Arc::new(Clock::new(limits(), Instant::now()));
        let first = InFlight::start(clock.clone());
        let second = InFlight::start(clock.clone());
        drop(first);
        assert_eq!(clock.deadline(), None);
        assert!(!clock.is_stale(), "a request being answered is never closed to make room");
        drop(second);
        assert!(clock.is_idle());
        assert!(clock.is_stale(), "an idle kept-alive connection makes room at once");
    }
}
