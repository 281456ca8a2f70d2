//! Idempotent publishing: a publisher that retries a publish after a timeout (it cannot know
//! whether the first one was stored) sends the same `Idempotency-Key`, and the hub answers the
//! first attempt's ids again instead of publishing twice.
//!
//! A key counts per credential (two publishers may use the same key) for a window
//! (`--idempotency-window`, default 5 minutes). The broker checks and records it atomically with
//! the publish itself: the embedded broker under its publish lock ([`Remembered`]), the Redis
//! broker in its append script, cluster-wide. Whatever the repeat's body, the first answer is
//! repeated.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::id::EventId;

/// Longest idempotency key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 128;

/// Most keys the embedded broker remembers at once; past it the oldest are forgotten early.
pub const MAX_REMEMBERED: usize = 100_000;

/// An idempotency key, made unique per credential, and how long it is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyKey {
    digest: [u8; 32],
    pub window: Duration,
}

impl IdempotencyKey {
    /// The key `key` of the publisher holding `credential` (only a digest of both is kept).
    pub fn new(credential: &str, key: &str, window: Duration) -> Self {
        let digest = Sha256::new()
            .chain_update(credential.as_bytes())
            .chain_update([0])
            .chain_update(key.as_bytes())
            .finalize()
            .into();
        Self { digest, window }
    }

    /// The digest in hex, for brokers that store it.
    pub fn hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub ids: Vec<EventId>,
    /// The key was seen before: these are the first attempt's ids, and nothing was published.
    pub repeated: bool,
}

/// The keys the embedded broker has seen, with their answers, until their window ends.
#[derive(Default)]
pub(crate) struct Remembered {
    answers: HashMap<[u8; 32], (Vec<EventId>, Instant)>,
    /// Keys in the order they were first seen (windows are equal, so also the order they end).
    order: VecDeque<[u8; 32]>,
}

impl Remembered {
    /// The first answer for `key`, if still remembered at `now`.
    pub fn answer(&mut self, key: &IdempotencyKey, now: Instant) -> Option<Vec<EventId>> {
        self.forget_expired(now);
        self.answers
            .get(&key.digest)
            .filter(|(_, until)| *until > now)
            .map(|(ids, _)| ids.clone())
    }

    pub fn remember(&mut self, key: &IdempotencyKey, ids: Vec<EventId>, now: Instant) {
        while self.answers.len() >= MAX_REMEMBERED {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.answers.remove(&oldest);
        }
        if self
            .answers
            .insert(key.digest, (ids, now + key.window))
            .is_none()
        {
            self.order.push_back(key.digest);
        }
    }

    fn forget_expired(&mut self, now: Instant) {
        while let Some(oldest) = self.order.front() {
            match self.answers.get(oldest) {
                Some((_, until)) if *until > now => break,
                _ => {
                    let oldest = *oldest;
                    self.order.pop_front();
                    self.answers.remove(&oldest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_credential_and_forgotten_after_their_window() {
        let window = Duration::from_secs(10);
        let a = IdempotencyKey::new("key-a", "order-42", window);
        let b = IdempotencyKey::new("key-b", "order-42", window);
        assert_ne!(a, b);
        let mut seen = Remembered::default();
        let t0 = Instant::now();
        assert_eq!(seen.answer(&a, t0), None);
        seen.remember(&a, vec![EventId::new(1, 0)], t0);
        assert_eq!(seen.answer(&a, t0), Some(vec![EventId::new(1, 0)]));
        assert_eq!(seen.answer(&b, t0), None);
        assert_eq!(seen.answer(&a, t0 + Duration::from_secs(11)), None);
        assert!(seen.answers.is_empty() && seen.order.is_empty());
    }
}
