//! Rate limits that protect a node from one noisy client: new connections per source IP, and
//! published events per credential. Both are per node (a cluster of N nodes admits up to N
//! times as much) and off unless configured.
//!
//! Token buckets from `governor`, keyed; a bucket that has been idle long enough to be full
//! again is forgotten by [`Limits::forget_idle`], which the server calls periodically, so the
//! tables stay as small as the set of recently active clients.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

/// How long a stream's write may make no progress before the stream is closed.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Limits {
    /// A stream whose client takes no bytes for this long is closed (`--write-timeout`).
    pub write_timeout: Duration,
    connections_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    publish_per_credential: Option<DefaultKeyedRateLimiter<[u8; 32]>>,
    clock: DefaultClock,
}

/// Refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for a `Retry-After` header (at least 1).
    pub fn seconds(self) -> u32 {
        self.0.as_secs_f64().ceil().clamp(1.0, 3600.0) as u32
    }
}

impl Limits {
    /// `connections_per_ip`: new connections per second from one IP (bursts of that size);
    /// `publish_per_second`: events per second per publish key or publisher token.
    pub fn new(connections_per_ip: Option<u32>, publish_per_second: Option<u32>) -> Self {
        let quota = |rate: Option<u32>| rate.and_then(NonZeroU32::new).map(Quota::per_second);
        Self {
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            connections_per_ip: quota(connections_per_ip).map(RateLimiter::keyed),
            publish_per_credential: quota(publish_per_second).map(RateLimiter::keyed),
            clock: DefaultClock::default(),
        }
    }

    pub fn unlimited() -> Self {
        Self::new(None, None)
    }

    /// A new connection from `ip`.
    pub fn connection(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        match &self.connections_per_ip {
            None => Ok(()),
            Some(limiter) => limiter
                .check_key(&ip)
                .map_err(|not_until| RetryAfter(not_until.wait_time_from(self.clock.now()))),
        }
    }

    /// `events` events published with `credential` (a publish key or publisher token; only
    /// its SHA-256 digest is kept, and only when the limit is configured).
    pub fn publish(&self, credential: &str, events: usize) -> Result<(), RetryAfter> {
        let Some(limiter) = &self.publish_per_credential else {
            return Ok(());
        };
        let credential: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        let n = NonZeroU32::new(u32::try_from(events).unwrap_or(u32::MAX).max(1))
            .unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(&credential, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(RetryAfter(not_until.wait_time_from(self.clock.now()))),
            // The batch is larger than one second's allowance: it can never pass at once.
            Err(_) => Err(RetryAfter(Duration::from_secs(1))),
        }
    }

    /// Drops buckets that are full again (their clients have been quiet).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.connections_per_ip {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.publish_per_credential {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_per_key_and_only_when_configured() {
        let limits = Limits::new(Some(2), Some(10));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(limits.connection(a).is_ok());
        assert!(limits.connection(a).is_ok());
        let refused = limits.connection(a).unwrap_err();
        assert!(refused.seconds() >= 1);
        assert!(
            limits.connection(b).is_ok(),
            "another IP has its own bucket"
        );

        assert!(limits.publish("key-1", 10).is_ok());
        assert!(limits.publish("key-1", 1).is_err());
        assert!(limits.publish("key-2", 5).is_ok());
        assert!(
            limits.publish("key-3", 11).is_err(),
            "a batch over the burst never passes"
        );

        let open = Limits::unlimited();
        for _ in 0..1000 {
            assert!(open.connection(a).is_ok());
            assert!(open.publish("key-1", 100).is_ok());
        }
    }
}
