//! What the Redis broker needs to know: where Redis is, which keys, and how patient to be.

use std::time::Duration;

/// Settings of the Redis broker. `RedisConfig::new(url)` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://` for TLS.
    pub url: String,
    /// Prefix (hash tag) of every key; nodes with the same prefix form one hub.
    pub key_prefix: String,
    /// Pub/Sub channel of seed-format ingress; `None` disables it.
    pub ingress_channel: Option<String>,
    /// Events a client can resume across (`--history`). The stream keeps at least this many
    /// (`MAXLEN ~`), and never fewer than [`MIN_STREAM_LEN`].
    pub history: usize,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on one command's answer (a blocking read gets its block time on top).
    pub command_timeout: Duration,
    /// First delay before reconnecting; doubles per failure up to `backoff_max`, with jitter.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long two identical ingress messages are told apart by their order only (see
    /// [`crate::ingress`]).
    pub ingress_dedup_window: Duration,
}

/// The stream is also the buffer from which lagging nodes catch up, so it is never trimmed
/// shorter than this, whatever `--history` says.
pub const MIN_STREAM_LEN: usize = 1_000;

/// The seed's channel name.
pub const DEFAULT_INGRESS_CHANNEL: &str = "user:events";

impl RedisConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "herald".into(),
            ingress_channel: Some(DEFAULT_INGRESS_CHANNEL.into()),
            history: 10_000,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            ingress_dedup_window: Duration::from_secs(60),
        }
    }

    /// The `MAXLEN ~` bound of the stream.
    pub fn stream_len(&self) -> usize {
        self.history.max(MIN_STREAM_LEN)
    }
}
