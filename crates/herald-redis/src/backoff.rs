//! Reconnect delays: the first retry is immediate (a killed connection to a healthy Redis is
//! back at once), then exponential with jitter, so a fleet of nodes that lost Redis at the same
//! moment does not retry in lockstep.

use std::time::Duration;

pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            next: min,
            failures: 0,
        }
    }

    /// The delay before the next attempt: none for the first; then between half and all of the
    /// current step, which then doubles (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        self.failures += 1;
        if self.failures == 1 {
            return Duration::ZERO;
        }
        let step = self.next;
        self.next = (step * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// After a success: the next failure starts from the minimum again.
    pub fn reset(&mut self) {
        self.next = self.min;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], Duration::ZERO);
        assert!(delays[1] <= Duration::from_millis(100));
        assert!(delays[1] >= Duration::from_millis(50));
        assert!(delays[5] >= Duration::from_millis(200) && delays[5] <= Duration::from_millis(400));
        b.reset();
        assert_eq!(b.next_delay(), Duration::ZERO);
    }
}
