//! Limits that protect a node from one noisy client: new connections per source IP, open
//! connections per source IP, and published events per credential. All are per node (a cluster
//! of N nodes admits up to N times as much) and off unless configured.
//!
//! Token buckets from `governor`, keyed; a bucket that has been idle long enough to be full
//! again is forgotten by [`Limits::forget_idle`], which the server calls periodically, so the
//! tables stay as small as the set of recently active clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

pub struct Limits {
    connections_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    open_per_ip: Option<Arc<OpenPerIp>>,
    resumes: Option<DefaultKeyedRateLimiter<[u8; 32]>>,
    publish_per_credential: Option<DefaultKeyedRateLimiter<[u8; 32]>>,
    clock: DefaultClock,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over `--max-connect-rate-per-ip`.
    Rate(RetryAfter),
    /// Over `--max-connections-per-ip`.
    Open,
}

impl Refused {
    /// The answer a cleartext client gets: a 429 body and the seconds for `Retry-After`.
    pub fn answer(self) -> (&'static str, u32) {
        match self {
            Self::Rate(retry) => (
                "too many new connections from this address (--max-connect-rate-per-ip)",
                retry.seconds(),
            ),
            Self::Open => (
                "too many open connections from this address (--max-connections-per-ip)",
                5,
            ),
        }
    }
}

/// Connections open per source IP. Only addresses with an open connection have an entry.
struct OpenPerIp {
    max: usize,
    open: parking_lot::Mutex<HashMap<IpAddr, usize>>,
}

impl OpenPerIp {
    fn take(&self, ip: IpAddr) -> Result<IpAddr, Refused> {
        let mut open = self.open.lock();
        let count = open.entry(ip).or_default();
        if *count >= self.max {
            if *count == 0 {
                open.remove(&ip);
            }
            return Err(Refused::Open);
        }
        *count += 1;
        Ok(ip)
    }

    fn give_back(&self, ip: IpAddr) {
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// One open connection (or HTTP/2 event stream) counted against its IP; released on drop.
pub struct IpSlot(Option<(Arc<OpenPerIp>, IpAddr)>);

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some((open, ip)) = self.0.take() {
            open.give_back(ip);
        }
    }
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
    /// `open_per_ip`: connections (and HTTP/2 event streams) open at once from one IP.
    pub fn new(
        connections_per_ip: Option<u32>,
        open_per_ip: Option<usize>,
        publish_per_second: Option<u32>,
    ) -> Self {
        let quota = |rate: Option<u32>| rate.and_then(NonZeroU32::new).map(Quota::per_second);
        Self {
            connections_per_ip: quota(connections_per_ip).map(RateLimiter::keyed),
            resumes: None,
            open_per_ip: open_per_ip.map(|max| {
                Arc::new(OpenPerIp {
                    max,
                    open: parking_lot::Mutex::new(HashMap::new()),
                })
            }),
            publish_per_credential: quota(publish_per_second).map(RateLimiter::keyed),
            clock: DefaultClock::default(),
        }
    }

    #[cfg(test)]
    pub fn unlimited() -> Self {
        Self::new(None, None, None)
    }

    /// Limits resumes (subscribes with a `Last-Event-ID`) to `per_second` per user, or per IP
    /// for anonymous streams, in bursts of that size; `None` or 0: unlimited.
    pub fn with_resume_rate(mut self, per_second: Option<u32>) -> Self {
        self.resumes = per_second
            .and_then(NonZeroU32::new)
            .map(|rate| RateLimiter::keyed(Quota::per_second(rate)));
        self
    }

    /// A resume by `user` (or, anonymous, from `ip`).
    pub fn resume(&self, user: Option<&str>, ip: Option<IpAddr>) -> Result<(), RetryAfter> {
        let Some(limiter) = &self.resumes else {
            return Ok(());
        };
        let key: [u8; 32] = match (user, ip) {
            (Some(user), _) => Sha256::new().chain_update(b"user\0").chain_update(user),
            (None, Some(ip)) => Sha256::new()
                .chain_update(b"ip\0")
                .chain_update(ip.to_string()),
            (None, None) => Sha256::new().chain_update(b"unknown"),
        }
        .finalize()
        .into();
        limiter
            .check_key(&key)
            .map_err(|not_until| RetryAfter(not_until.wait_time_from(self.clock.now())))
    }

    /// A new connection (or HTTP/2 event stream) from `ip`: allowed if `ip` is within its rate
    /// and its number of open ones. The slot counts as open until dropped.
    pub fn connection(&self, ip: IpAddr) -> Result<IpSlot, Refused> {
        if let Some(limiter) = &self.connections_per_ip {
            limiter.check_key(&ip).map_err(|not_until| {
                Refused::Rate(RetryAfter(not_until.wait_time_from(self.clock.now())))
            })?;
        }
        match &self.open_per_ip {
            None => Ok(IpSlot(None)),
            Some(open) => open.take(ip).map(|ip| IpSlot(Some((open.clone(), ip)))),
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
        for limiter in [&self.publish_per_credential, &self.resumes]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_are_limited_per_user_or_per_ip_for_anonymous_streams() {
        let limits = Limits::unlimited().with_resume_rate(Some(2));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..2 {
            assert!(limits.resume(Some("alice"), Some(a)).is_ok());
        }
        assert!(
            limits.resume(Some("alice"), Some(b)).is_err(),
            "per user, any IP"
        );
        assert!(limits.resume(Some("bob"), Some(a)).is_ok());
        assert!(limits.resume(None, Some(a)).is_ok());
        assert!(limits.resume(None, Some(a)).is_ok());
        assert!(limits.resume(None, Some(a)).is_err());
        assert!(limits.resume(None, Some(b)).is_ok(), "anonymous: per IP");
        let open = Limits::unlimited();
        for _ in 0..100 {
            assert!(open.resume(Some("alice"), None).is_ok());
        }
    }

    #[test]
    fn open_connections_are_counted_per_ip_until_dropped() {
        let limits = Limits::new(None, Some(2), None);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = limits.connection(a).unwrap();
        let _second = limits.connection(a).unwrap();
        assert!(matches!(limits.connection(a), Err(Refused::Open)));
        let _other = limits.connection(b).unwrap();
        drop(first);
        let _third = limits.connection(a).unwrap();
        let open = limits.open_per_ip.as_ref().unwrap();
        assert_eq!(open.open.lock().len(), 2);
        drop((_second, _third, _other));
        assert!(
            open.open.lock().is_empty(),
            "no entry for an IP with nothing open"
        );
    }

    #[test]
    fn limits_apply_per_key_and_only_when_configured() {
        let limits = Limits::new(Some(2), None, Some(10));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(limits.connection(a).is_ok());
        assert!(limits.connection(a).is_ok());
        let Err(Refused::Rate(refused)) = limits.connection(a) else {
            panic!("third connection within the second");
        };
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
