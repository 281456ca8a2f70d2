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
    /// Prefix of the short-lived keys that make seed ingress exactly-once.
    dedup_prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            stream: format!("{{{prefix}}}:events"),
            dedup_prefix: format!("{{{prefix}}}:ingress:"),
        }
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
