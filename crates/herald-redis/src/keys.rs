//! Names of the Redis keys a Herald cluster uses.
//!
//! Every key carries the same hash tag (`{prefix}`), so on Redis Cluster they all live in one
//! slot: the ingress script touches the stream and a dedup key atomically, which Cluster only
//! allows within a slot. A single stream is one shard's work anyway (see docs/SCALING.md).

/// The keys of one Herald cluster, derived from its prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    /// The Redis Stream holding every event, in order.
    pub stream: String,
    /// A hash beside it: `seq`, the number of events ever appended (each entry carries its last
    /// event's as `n`), `bytes`, their total cost (each entry carries the running total as
    /// `c`), and `last`, the newest entry's id.
    pub meta: String,
    /// Each entry's id scored with its running cost total (`c`), so the script finds where the
    /// byte bound falls without reading entries ([`crate::append`]).
    pub costs: String,
    /// Retained values: slot → `id\ncost\nentry` (see [`crate::append`]).
    pub retained: String,
    /// Retained slots by the sequence number of their event, for eviction.
    pub retained_order: String,
    /// The live nodes, each scored with when it last said so (see [`crate::presence`]).
    pub nodes: String,
    /// Online/offline announcements' book (see [`crate::online`]): users with a pending
    /// offline by when it is due, and when their last stream ended.
    pub offline_due: String,
    pub offline_at: String,
    /// Nodes taken for dead whose users were made to leave (each told so on its next tick).
    pub reaped: String,
    online_prefix: String,
    node_users_prefix: String,
    /// Prefix of the presence channels.
    presence_prefix: String,
    /// Prefix of the keys remembering idempotency keys' answers (they expire with the window).
    once_prefix: String,
    /// Prefix of the short-lived keys that make seed ingress exactly-once.
    dedup_prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            stream: format!("{{{prefix}}}:events"),
            meta: format!("{{{prefix}}}:meta"),
            costs: format!("{{{prefix}}}:costs"),
            retained: format!("{{{prefix}}}:retained"),
            retained_order: format!("{{{prefix}}}:retained:order"),
            once_prefix: format!("{{{prefix}}}:once:"),
            nodes: format!("{{{prefix}}}:nodes"),
            presence_prefix: format!("{{{prefix}}}:presence"),
            offline_due: format!("{{{prefix}}}:offline:due"),
            offline_at: format!("{{{prefix}}}:offline:at"),
            reaped: format!("{{{prefix}}}:reaped"),
            online_prefix: format!("{{{prefix}}}:online:"),
            node_users_prefix: format!("{{{prefix}}}:node-users:"),
            dedup_prefix: format!("{{{prefix}}}:ingress:"),
        }
    }

    /// The channel presence questions go out on.
    pub fn presence_questions(&self) -> String {
        self.presence_prefix.clone()
    }

    /// The channel on which `node` receives answers to its questions.
    pub fn presence_replies(&self, node: &str) -> String {
        format!("{}:{node}", self.presence_prefix)
    }

    /// The nodes that have streams of `user`.
    pub fn online(&self, user: &str) -> String {
        format!("{}{user}", self.online_prefix)
    }

    /// The users `node` has streams of.
    pub fn node_users(&self, node: &str) -> String {
        format!("{}{node}", self.node_users_prefix)
    }

    /// Where the answer to an idempotency key (its digest in hex) is remembered.
    pub fn once(&self, digest_hex: &str) -> String {
        format!("{}{digest_hex}", self.once_prefix)
    }

    /// The dedup key for the `occurrence`-th copy of a message with this digest.
    pub fn dedup(&self, digest_hex: &str, occurrence: u64) -> String {
        format!("{}{digest_hex}:{occurrence}", self.dedup_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("herald");
        assert_eq!(keys.stream, "{herald}:events");
        assert_eq!(keys.dedup("ab", 2), "{herald}:ingress:ab:2");
    }
}
