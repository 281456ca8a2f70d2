//! Reconnect delays: exponential with jitter, so a fleet of nodes that lost Redis at the same
//! moment does not reconnect in lockstep.

use std::time::Duration;

pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before the next attempt: between half and all of the current step, which then
    /// doubles (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// After a success: the next failure starts from the minimum again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100));
        assert!(delays[0] >= Duration::from_millis(50));
        assert!(delays[4] >= Duration::from_millis(200) && delays[4] <= Duration::from_millis(400));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
