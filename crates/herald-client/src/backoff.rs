//! Reconnection delays: exponential backoff with full jitter.
//!
//! Full jitter (a uniformly random delay between zero and the exponential bound) spreads a
//! crowd of clients that lost the same hub at the same moment, so they do not all come back in
//! the same millisecond.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Bound of the first delay; the hub's `retry:` hint replaces it.
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
}
