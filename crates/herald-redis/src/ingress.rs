//! Seed-compatible ingress: a plain `PUBLISH user:events '{...}'` becomes one Herald event.
//!
//! Redis Pub/Sub hands every message to every subscribed node, but the event must enter the
//! stream once. Each node therefore appends each message with the append script
//! ([`crate::append`]) guarded by a dedup key:
//!
//! ```text
//! SET {herald}:ingress:<sha256(message)>:<n> 1 NX PX <window>  →  append only if it was set
//! ```
//!
//! The script is atomic, so exactly one node's append happens. `<n>` tells identical messages
//! apart: it is the message's occurrence number among identical payloads this node received in
//! the dedup window. Redis delivers a channel's messages to every subscriber in the same order,
//! so all nodes number the copies alike and the second identical `{"data":"ping"}` is a second
//! event, not a duplicate.
//!
//! What this does not promise (Pub/Sub is fire-and-forget): a message published while no node
//! is subscribed (all down, or every subscription reconnecting) is lost; a node that joins
//! between two identical messages in one window may number them differently and deliver the
//! second one twice. Services that need more publish with `POST /publish`, which answers with
//! the id once the event is stored.
//!
//! Messages are handled one at a time per node, in channel order, so the order the service
//! published in is the order in the stream: before any node handles message k+1 it has finished
//! message k, which by then is in the stream whichever node appended it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::endpoint::Endpoint;
use futures_util::StreamExt;
use herald_core::unix_us;
use sha2::{Digest, Sha256};

use crate::append::{Appended, Appender, Group};
use crate::config::RedisConfig;
use crate::keys::Keys;
use crate::metrics as m;
use crate::seed_message;
use crate::shared_connection::{Request, SharedConnection};

/// Most distinct payloads numbered at once. A flood of distinct messages cannot grow the table
/// past this: when it is full of messages younger than the window, it starts over, and only
/// identical copies of a message that arrived before that moment could be numbered differently
/// from other nodes (one of them delivered twice).
const MAX_NUMBERED: usize = 65_536;

/// Numbers identical payloads seen within the dedup window.
struct Occurrences {
    window: Duration,
    seen: HashMap<[u8; 32], (u64, Instant)>,
    last_pruned: Instant,
}

impl Occurrences {
    fn new(window: Duration) -> Self {
        Self {
            window,
            seen: HashMap::new(),
            last_pruned: Instant::now(),
        }
    }

    /// 1 for the first copy of `digest` in the window, 2 for the second, and so on.
    fn next(&mut self, digest: [u8; 32], now: Instant) -> u64 {
        if now.duration_since(self.last_pruned) > self.window || self.seen.len() >= MAX_NUMBERED {
            let window = self.window;
            self.seen
                .retain(|_, (_, last)| now.duration_since(*last) <= window);
            self.last_pruned = now;
            if self.seen.len() >= MAX_NUMBERED {
                tracing::warn!("more than {MAX_NUMBERED} distinct ingress messages within the dedup window; numbering starts over");
                self.seen.clear();
            }
        }
        let slot = self.seen.entry(digest).or_insert((0, now));
        if now.duration_since(slot.1) > self.window {
            slot.0 = 0;
        }
        slot.0 += 1;
        slot.1 = now;
        slot.0
    }
}

pub(crate) struct Ingress {
    pub(crate) client: Endpoint,
    pub conn: Arc<SharedConnection>,
    pub keys: Keys,
    pub appender: Appender,
    pub channel: String,
    pub config: RedisConfig,
}

impl Ingress {
    /// Subscribes and handles messages forever, resubscribing after any failure.
    pub async fn run(mut self) {
        let mut occurrences = Occurrences::new(self.config.ingress_dedup_window);
        let mut backoff = self.config.retries();
        let mut first = true;
        loop {
            let subscribed = async {
                let mut pubsub = self.client.pubsub(self.config.connect_timeout).await?;
                tokio::time::timeout(self.config.command_timeout, pubsub.subscribe(&self.channel))
                    .await
                    .map_err(|_| (redis::ErrorKind::IoError, "SUBSCRIBE timed out"))??;
                Ok::<_, redis::RedisError>(pubsub)
            }
            .await;
            let mut pubsub = match subscribed {
                Ok(pubsub) => pubsub,
                Err(error) => {
                    tracing::debug!(%error, "cannot subscribe to the ingress channel yet");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            };
            if !first {
                metrics::counter!(m::RECONNECTS).increment(1);
            }
            first = false;
            backoff.reset();
            tracing::info!(channel = %self.channel, "listening for seed-format messages");
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                self.handle(&mut occurrences, message.get_payload_bytes())
                    .await;
            }
            tracing::warn!(channel = %self.channel, "ingress subscription lost; resubscribing (messages published meanwhile are not received)");
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    async fn handle(&mut self, occurrences: &mut Occurrences, payload: &[u8]) {
        let publication = match seed_message::parse(payload, self.config.max_message_bytes) {
            Ok(publication) => publication,
            Err(error) => {
                metrics::counter!(m::INGRESS_MESSAGES, "outcome" => m::INGRESS_MALFORMED)
                    .increment(1);
                // The error says what is wrong without quoting the message (it may be private).
                tracing::warn!(%error, channel = %self.channel, bytes = payload.len(), "dropping a malformed ingress message; it reaches no one");
                return;
            }
        };
        let digest: [u8; 32] = Sha256::digest(payload).into();
        let occurrence = occurrences.next(digest, Instant::now());
        let digest_hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let dedup_key = self.keys.dedup(&digest_hex, occurrence);
        let window_ms = self.config.ingress_dedup_window.as_millis() as u64;
        let group = Group::new(std::slice::from_ref(&publication), unix_us(), None);
        let call = self
            .appender
            .invocation(&[group], Some((&dedup_key, window_ms)));
        let result = self
            .conn
            .call::<Vec<Vec<String>>>(Request::Script(&call), Duration::ZERO)
            .await;
        let outcome = match result.map(|reply| reply.map(|r| Appended::from_reply(r, 1))) {
            Ok(Ok(Ok(answers))) if answers == [Appended::Duplicate] => m::INGRESS_DUPLICATE,
            Ok(Ok(Ok(_))) => m::INGRESS_PUBLISHED,
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "could not append an ingress message");
                m::INGRESS_FAILED
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not append an ingress message");
                m::INGRESS_FAILED
            }
            Err(error) => {
                tracing::warn!(%error, "could not append an ingress message");
                m::INGRESS_FAILED
            }
        };
        metrics::counter!(m::INGRESS_MESSAGES, "outcome" => outcome).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_payloads_are_numbered_within_the_window() {
        let mut o = Occurrences::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(o.next([1; 32], t0), 1);
        assert_eq!(o.next([1; 32], t0 + Duration::from_secs(1)), 2);
        assert_eq!(o.next([2; 32], t0 + Duration::from_secs(1)), 1);
        assert_eq!(o.next([1; 32], t0 + Duration::from_secs(30)), 1);
    }
}
