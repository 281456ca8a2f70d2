//! Delays between reconnect attempts, for everything in Herald that reconnects: the Rust client
//! to its hub, a node to Redis.
//!
//! Exponential with full jitter: each delay is uniformly random between zero and a bound that
//! doubles per attempt up to a cap. Full jitter spreads a crowd that lost the same server at the
//! same moment (every browser of a node that restarted, every node of a Redis that failed over),
//! so they do not all come back in the same millisecond.

use std::time::Duration;

use rand::Rng;

/// The schedule: the first bound and the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Bound of the first delay (a hub's `retry:` hint replaces it in the client).
    pub base: Duration,
    /// No delay is longer than this.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before reconnect attempt `attempt` (0 = first after a drop).
    pub fn delay(&self, attempt: u32) -> Duration {
        let bound = self.bound(attempt);
        let millis = bound.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    /// The largest delay attempt `attempt` can get.
    pub fn bound(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

/// A [`Backoff`] that counts failures, for a loop that reconnects: the first retry is immediate
/// (a connection killed on a healthy server is back at once), later ones follow the schedule.
#[derive(Debug, Clone)]
pub struct Retries {
    backoff: Backoff,
    failures: u32,
}

impl Retries {
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            failures: 0,
        }
    }

    /// The delay before the next attempt, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        match self.failures {
            1 => Duration::ZERO,
            n => self.backoff.delay(n - 2),
        }
    }

    /// After a success: the next failure is retried at once again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_double_up_to_the_cap_and_delays_stay_inside() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        assert_eq!(b.bound(0), Duration::from_millis(100));
        assert_eq!(b.bound(3), Duration::from_millis(800));
        assert_eq!(b.bound(4), Duration::from_secs(1));
        assert_eq!(b.bound(u32::MAX), Duration::from_secs(1));
        for attempt in 0..10 {
            assert!(b.delay(attempt) <= b.bound(attempt));
        }
    }

    #[test]
    fn retries_start_at_once_grow_and_reset() {
        let mut r = Retries::new(Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(400),
        });
        assert_eq!(r.next_delay(), Duration::ZERO);
        assert!(r.next_delay() <= Duration::from_millis(100));
        for _ in 0..5 {
            assert!(r.next_delay() <= Duration::from_millis(400));
        }
        r.reset();
        assert_eq!(r.next_delay(), Duration::ZERO);
    }
}
