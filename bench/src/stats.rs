//! Latency summaries.

use std::time::Duration;

/// Sorted latencies of one run.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self(samples)
    }

    /// The `q` quantile (0..=1) in milliseconds, nearest rank; 0 when empty.
    pub fn ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1].as_secs_f64() * 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let l = Latencies::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(l.ms(0.5), 50.0);
        assert_eq!(l.ms(0.99), 99.0);
        assert_eq!(l.ms(1.0), 100.0);
        assert_eq!(Latencies::new(Vec::new()).ms(0.5), 0.0);
    }
}
