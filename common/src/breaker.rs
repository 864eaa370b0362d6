//! A circuit breaker with Resilience4j's semantics: a count-based sliding window of
//! call outcomes; it opens when, after a minimum number of calls, the failure rate
//! or the slow-call rate reaches its threshold; it stays open for a wait, then lets
//! a limited number of probe calls through (half-open) and closes if they succeed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

// tokio's clock, so tests can pause and advance it instead of sleeping.
use tokio::time::Instant;

use crate::settings::{Env, SettingsError};

/// Thresholds and timings of one breaker.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Outcomes remembered (count-based window).
    pub window: usize,
    /// Calls needed in the window before the rates are judged.
    pub min_calls: usize,
    /// Failure share (0..=1) that opens the breaker.
    pub failure_rate: f64,
    /// Slow-call share (0..=1) that opens the breaker.
    pub slow_call_rate: f64,
    /// A successful call slower than this counts as slow.
    pub slow_call_duration: Duration,
    /// How long the breaker stays open before probing.
    pub open_for: Duration,
    /// Probe calls allowed while half-open; all must succeed to close.
    pub half_open_calls: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: 20,
            min_calls: 10,
            failure_rate: 0.5,
            slow_call_rate: 1.0,
            slow_call_duration: Duration::from_secs(5),
            open_for: Duration::from_secs(5),
            half_open_calls: 3,
        }
    }
}

impl BreakerConfig {
    /// `ECOM_BREAKER_WINDOW`, `ECOM_BREAKER_MIN_CALLS`, `ECOM_BREAKER_FAILURE_RATE`
    /// (percent), `ECOM_BREAKER_SLOW_CALL_RATE` (percent), `ECOM_BREAKER_SLOW_CALL_MS`,
    /// `ECOM_BREAKER_OPEN_MS`, `ECOM_BREAKER_HALF_OPEN_CALLS`.
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let d = Self::default();
        let percent = |var: &str, default: f64| -> Result<f64, SettingsError> {
            let value: f64 = env.or(var, default * 100.0)?;
            if !(0.0..=100.0).contains(&value) || value == 0.0 {
                return Err(SettingsError::new(var, "must be a percentage above 0 and at most 100"));
            }
            Ok(value / 100.0)
        };
        let config = Self {
            window: env.or("ECOM_BREAKER_WINDOW", d.window)?,
            min_calls: env.or("ECOM_BREAKER_MIN_CALLS", d.min_calls)?,
            failure_rate: percent("ECOM_BREAKER_FAILURE_RATE", d.failure_rate)?,
            slow_call_rate: percent("ECOM_BREAKER_SLOW_CALL_RATE", d.slow_call_rate)?,
            slow_call_duration: env.millis("ECOM_BREAKER_SLOW_CALL_MS", d.slow_call_duration)?,
            open_for: env.millis("ECOM_BREAKER_OPEN_MS", d.open_for)?,
            half_open_calls: env.or("ECOM_BREAKER_HALF_OPEN_CALLS", d.half_open_calls)?,
        };
        if config.window == 0 || config.min_calls == 0 || config.half_open_calls == 0 {
            return Err(SettingsError::new(
                "ECOM_BREAKER_WINDOW",
                "window, minimum calls and half-open calls must be > 0",
            ));
        }
        Ok(config)
    }
}

/// The breaker's state as exported (`circuit_breaker_state`: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl State {
    fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// How one call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    Success,
    Slow,
    Failure,
}

#[derive(Debug)]
struct Inner {
    state: State,
    window: VecDeque<Recorded>,
    opened_at: Option<Instant>,
    probes_started: usize,
    probes_succeeded: usize,
}

/// The call was not made: the breaker is open (or half-open with no probe left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit open; retry in {} s", retry_after.as_secs().max(1))]
pub struct Rejected {
    pub retry_after: Duration,
}

/// One named breaker; cheap to clone, shared by every caller of one dependency.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    name: Arc<str>,
    /// `circuit_breaker_calls_total` for success, slow and failure, registered once: a
    /// proxied request records one, and looking the series up each time cost more than
    /// the rest of the breaker.
    calls: Arc<[metrics::Counter; 3]>,
    config: Arc<BreakerConfig>,
    inner: Arc<Mutex<Inner>>,
}

/// Permission to make one call; report how it went with [`Permit::record`].
/// Dropped without a record (the caller gave up), it counts as nothing.
#[derive(Debug)]
pub struct Permit {
    breaker: CircuitBreaker,
    started: Instant,
    probe: bool,
    recorded: bool,
}

impl CircuitBreaker {
    pub fn new(name: &str, config: BreakerConfig) -> Self {
        // The handles below must come from the process's recorder, not the no-op one.
        crate::metrics::handle();
        let calls = ["success", "slow", "failure"].map(
            |outcome| metrics::counter!("circuit_breaker_calls_total", "name" => name.to_owned(), "outcome" => outcome),
        );
        metrics::gauge!("circuit_breaker_state", "name" => name.to_owned()).set(0.0);
        // Every series at zero from the start, so rates and alerts see the first change.
        for outcome in ["success", "slow", "failure", "rejected"] {
            metrics::counter!("circuit_breaker_calls_total", "name" => name.to_owned(), "outcome" => outcome)
                .increment(0);
        }
        for (from, to) in [("closed", "open"), ("open", "half_open"), ("half_open", "closed"), ("half_open", "open")] {
            metrics::counter!("circuit_breaker_transitions_total", "name" => name.to_owned(), "from" => from, "to" => to)
                .increment(0);
        }
        Self {
            name: name.into(),
            calls: Arc::new(calls),
            config: Arc::new(config),
            inner: Arc::new(Mutex::new(Inner {
                state: State::Closed,
                window: VecDeque::new(),
                opened_at: None,
                probes_started: 0,
                probes_succeeded: 0,
            })),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn state(&self) -> State {
        let mut inner = self.lock();
        self.advance(&mut inner);
        inner.state
    }

    /// Asks to make a call.
    pub fn try_acquire(&self) -> Result<Permit, Rejected> {
        let mut inner = self.lock();
        self.advance(&mut inner);
        let probe = match inner.state {
            State::Closed => false,
            State::Open => {
                let waited = inner.opened_at.map_or(Duration::ZERO, |at| at.elapsed());
                drop(inner);
                return Err(self.reject(self.config.open_for.saturating_sub(waited)));
            }
            State::HalfOpen if inner.probes_started >= self.config.half_open_calls => {
                drop(inner);
                return Err(self.reject(Duration::from_secs(1)));
            }
            State::HalfOpen => {
                inner.probes_started += 1;
                true
            }
        };
        Ok(Permit { breaker: self.clone(), started: Instant::now(), probe, recorded: false })
    }

    fn reject(&self, retry_after: Duration) -> Rejected {
        metrics::counter!("circuit_breaker_calls_total", "name" => self.name.to_string(), "outcome" => "rejected")
            .increment(1);
        Rejected { retry_after }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Open → half-open once the wait is over.
    fn advance(&self, inner: &mut Inner) {
        if inner.state == State::Open && inner.opened_at.is_some_and(|at| at.elapsed() >= self.config.open_for) {
            self.transition(inner, State::HalfOpen);
        }
    }

    fn transition(&self, inner: &mut Inner, to: State) {
        let from = inner.state;
        if from == to {
            return;
        }
        inner.state = to;
        inner.probes_started = 0;
        inner.probes_succeeded = 0;
        match to {
            State::Open => inner.opened_at = Some(Instant::now()),
            State::Closed => {
                inner.window.clear();
                inner.opened_at = None;
            }
            State::HalfOpen => {}
        }
        tracing::warn!(breaker = %self.name, from = from.label(), to = to.label(), "circuit breaker changed state");
        metrics::gauge!("circuit_breaker_state", "name" => self.name.to_string()).set(f64::from(to as u8));
        metrics::counter!(
            "circuit_breaker_transitions_total",
            "name" => self.name.to_string(), "from" => from.label(), "to" => to.label()
        )
        .increment(1);
    }

    fn record(&self, probe: bool, outcome: Outcome, elapsed: Duration) {
        let recorded = match outcome {
            Outcome::Failure => Recorded::Failure,
            Outcome::Success if elapsed >= self.config.slow_call_duration => Recorded::Slow,
            Outcome::Success => Recorded::Success,
        };
        let calls = match recorded {
            Recorded::Success => &self.calls[0],
            Recorded::Slow => &self.calls[1],
            Recorded::Failure => &self.calls[2],
        };
        calls.increment(1);

        let mut inner = self.lock();
        match inner.state {
            State::HalfOpen if probe => {
                if recorded == Recorded::Failure {
                    self.transition(&mut inner, State::Open);
                } else {
                    inner.probes_succeeded += 1;
                    if inner.probes_succeeded >= self.config.half_open_calls {
                        self.transition(&mut inner, State::Closed);
                    }
                }
            }
            State::Closed => {
                inner.window.push_back(recorded);
                while inner.window.len() > self.config.window {
                    inner.window.pop_front();
                }
                let calls = inner.window.len();
                if calls >= self.config.min_calls {
                    let count = |kind| inner.window.iter().filter(|r| **r == kind).count() as f64;
                    let failures = count(Recorded::Failure) / calls as f64;
                    let slow = count(Recorded::Slow) / calls as f64;
                    if failures >= self.config.failure_rate || slow >= self.config.slow_call_rate {
                        self.transition(&mut inner, State::Open);
                    }
                }
            }
            // A call that started before the breaker opened, or a non-probe: ignored.
            _ => {}
        }
    }
}

impl Permit {
    pub fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.breaker.record(self.probe, outcome, self.started.elapsed());
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            // Give the probe slot back so an abandoned call does not wedge half-open.
            let mut inner = self.breaker.lock();
            if inner.state == State::HalfOpen {
                inner.probes_started = inner.probes_started.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: 10,
            min_calls: 4,
            failure_rate: 0.5,
            slow_call_rate: 0.5,
            slow_call_duration: Duration::from_millis(50),
            open_for: Duration::from_millis(100),
            half_open_calls: 2,
        }
    }

    fn call(breaker: &CircuitBreaker, outcome: Outcome) -> Result<(), Rejected> {
        breaker.try_acquire().map(|p| p.record(outcome))
    }

    /// A breaker opened by as many failures as it needs to judge.
    fn opened(name: &'static str) -> CircuitBreaker {
        let breaker = CircuitBreaker::new(name, config());
        for _ in 0..config().min_calls {
            call(&breaker, Outcome::Failure).unwrap();
        }
        assert_eq!(breaker.state(), State::Open);
        breaker
    }

    /// A breaker opened as [`opened`] does, its wait over: half-open.
    async fn half_opened(name: &'static str) -> CircuitBreaker {
        let breaker = opened(name);
        tokio::time::advance(config().open_for).await;
        assert_eq!(breaker.state(), State::HalfOpen);
        breaker
    }

    #[tokio::test(start_paused = true)]
    async fn it_stays_closed_below_the_minimum_number_of_calls() {
        let breaker = CircuitBreaker::new("t1", config());
        for _ in 0..3 {
            call(&breaker, Outcome::Failure).unwrap();
        }
        assert_eq!(breaker.state(), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_at_the_failure_rate_and_rejects_with_the_remaining_wait() {
        let breaker = CircuitBreaker::new("t2", config());
        call(&breaker, Outcome::Success).unwrap();
        call(&breaker, Outcome::Success).unwrap();
        call(&breaker, Outcome::Failure).unwrap();
        assert_eq!(breaker.state(), State::Closed);
        call(&breaker, Outcome::Failure).unwrap();
        assert_eq!(breaker.state(), State::Open);
        assert_eq!(breaker.try_acquire().unwrap_err().retry_after, Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(60)).await;
        assert_eq!(breaker.try_acquire().unwrap_err().retry_after, Duration::from_millis(40));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_successes_open_it_too() {
        let breaker = CircuitBreaker::new("t3", config());
        for _ in 0..4 {
            assert_eq!(breaker.state(), State::Closed);
            let permit = breaker.try_acquire().unwrap();
            tokio::time::advance(Duration::from_millis(50)).await;
            permit.record(Outcome::Success);
        }
        assert_eq!(breaker.state(), State::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_wait_it_lets_limited_probes_through_and_closes_when_they_succeed() {
        let breaker = opened("t4");
        tokio::time::advance(Duration::from_millis(99)).await;
        assert_eq!(breaker.state(), State::Open, "half-open before the wait is over");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(breaker.state(), State::HalfOpen);
        let first = breaker.try_acquire().unwrap();
        let second = breaker.try_acquire().unwrap();
        assert!(breaker.try_acquire().is_err(), "only two probes while half-open");
        first.record(Outcome::Success);
        second.record(Outcome::Success);
        assert_eq!(breaker.state(), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again() {
        let breaker = half_opened("t5").await;
        call(&breaker, Outcome::Failure).unwrap();
        assert_eq!(breaker.state(), State::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_gives_its_slot_back() {
        let breaker = half_opened("t6").await;
        drop(breaker.try_acquire().unwrap());
        drop(breaker.try_acquire().unwrap());
        assert!(breaker.try_acquire().is_ok());
    }
}
