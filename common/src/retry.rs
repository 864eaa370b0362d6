//! Retrying with a schedule: a doubling wait up to a cap, bounded or not, and a loop that
//! retries until success, an error not worth retrying, or shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Waits between attempts: `first`, doubling up to `max`; `attempts` bounds the
/// attempts in all (`None`: no bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub first: Duration,
    pub max: Duration,
    pub attempts: Option<u32>,
}

impl Schedule {
    /// Retries for as long as it takes.
    pub const fn unbounded(first: Duration, max: Duration) -> Self {
        Self { first, max, attempts: None }
    }

    /// At most `attempts` attempts in all (at least one).
    pub const fn bounded(attempts: u32, first: Duration, max: Duration) -> Self {
        Self { first, max, attempts: Some(if attempts == 0 { 1 } else { attempts }) }
    }

    /// The wait after the `failures`-th failure (counting from 1), or `None` when no
    /// attempt is left.
    pub fn delay(&self, failures: u32) -> Option<Duration> {
        if self.attempts.is_some_and(|attempts| failures >= attempts) {
            return None;
        }
        let doublings = failures.saturating_sub(1).min(31);
        Some(self.first.saturating_mul(1 << doublings).min(self.max))
    }

    /// The time a bounded schedule spends waiting, from the first attempt to the last.
    pub fn total_wait(&self) -> Option<Duration> {
        let attempts = self.attempts?;
        Some((1..attempts).filter_map(|failures| self.delay(failures)).sum())
    }

    /// A run of this schedule, counting failures from zero.
    pub fn start(self) -> Backoff {
        Backoff { schedule: self, failures: 0 }
    }
}

/// A [`Schedule`] in progress.
#[derive(Debug, Clone)]
pub struct Backoff {
    schedule: Schedule,
    failures: u32,
}

impl Backoff {
    /// Counts a failure: the wait before the next attempt, or `None` when the
    /// attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        self.schedule.delay(self.failures)
    }

    /// Failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Runs `attempt` until it succeeds, or until `retry_after` answers `None` for its
/// error (that error is returned). Between attempts it waits what `retry_after`
/// answered; `None` when `shutdown` came first.
pub async fn run_with_retries<T, E, Attempt, Fut>(
    shutdown: &CancellationToken,
    mut attempt: Attempt,
    mut retry_after: impl FnMut(&E) -> Option<Duration>,
) -> Option<Result<T, E>>
where
    Attempt: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        let err = match attempt().await {
            Ok(value) => return Some(Ok(value)),
            Err(err) => err,
        };
        let Some(delay) = retry_after(&err) else { return Some(Err(err)) };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_schedule_doubles_its_wait_up_to_the_cap_and_a_bounded_one_ends_after_its_attempts() {
        let unbounded = Schedule::unbounded(MS * 200, MS * 1000);
        let waits: Vec<_> = (1..=5).map(|n| unbounded.delay(n)).collect();
        assert_eq!(waits, [200, 400, 800, 1000, 1000].map(|ms| Some(MS * ms)));
        assert_eq!(unbounded.delay(u32::MAX), Some(MS * 1000));
        assert_eq!(unbounded.total_wait(), None);

        let bounded = Schedule::bounded(3, MS * 250, MS * 30_000);
        assert_eq!([1, 2, 3].map(|n| bounded.delay(n)), [Some(MS * 250), Some(MS * 500), None]);
        assert_eq!(bounded.total_wait(), Some(MS * 750));
        assert_eq!(Schedule::bounded(0, MS, MS).attempts, Some(1), "at least one attempt");
    }

    #[tokio::test]
    async fn retries_stop_at_success_at_an_error_not_worth_retrying_or_at_shutdown() {
        let shutdown = CancellationToken::new();
        let mut calls = 0;
        let outcome = run_with_retries(
            &shutdown,
            || {
                calls += 1;
                let n = calls;
                async move { if n < 4 { Err(n) } else { Ok(n) } }
            },
            |_| Some(MS),
        )
        .await;
        assert_eq!(outcome, Some(Ok(4)));

        let mut backoff = Schedule::bounded(3, MS, MS).start();
        let outcome: Option<Result<(), &str>> =
            run_with_retries(&shutdown, || async { Err("refused") }, |_| backoff.next_delay()).await;
        assert_eq!((outcome, backoff.failures()), (Some(Err("refused")), 3));

        shutdown.cancel();
        let outcome: Option<Result<(), ()>> = run_with_retries(&shutdown, || async { Err(()) }, |_| Some(MS)).await;
        assert_eq!(outcome, None);
    }
}
