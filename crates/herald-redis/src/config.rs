//! What the Redis broker needs to know: where Redis is, which keys, and how patient to be.

use std::time::Duration;

/// Settings of the Redis broker. `RedisConfig::new(url)` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://` for TLS (unused with sentinels
    /// or a cluster).
    pub url: String,
    /// Sentinels to ask where the primary named `sentinel_master` is (`--redis-sentinel`).
    pub sentinels: Vec<String>,
    /// The primary's name in Sentinel (`--redis-master`); `None`: `url` is the primary.
    pub sentinel_master: Option<String>,
    /// Seed nodes of a Redis Cluster (`--redis-cluster`); when given, `url` is unused.
    pub cluster: Vec<String>,
    /// Prefix (hash tag) of every key; nodes with the same prefix form one hub.
    pub key_prefix: String,
    /// Pub/Sub channel of seed-format ingress; `None` disables it.
    pub ingress_channel: Option<String>,
    /// Events a client can resume across (`--history`). The stream keeps at least this many
    /// entries (`MAXLEN ~`), each of one event or more, and never fewer than
    /// [`MIN_STREAM_LEN`]; the byte bound is what usually trims it.
    pub history: usize,
    /// Bytes of events a client can resume across (`--history-bytes`, counted with
    /// `Publication::history_cost`); the stream holds no more than this.
    pub history_bytes: u64,
    /// Age beyond which events leave the stream and resume (`--history-ttl`).
    pub history_ttl: Option<Duration>,
    /// Largest seed-format ingress message, in bytes (`--max-body-bytes`, as for publishing).
    pub max_message_bytes: usize,
    /// Bounds of the retained values, cluster-wide (`--retained-values`, `--retained-bytes`).
    pub retained: herald_core::retained::RetainedLimits,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on one command's answer (a blocking read gets its block time on top).
    pub command_timeout: Duration,
    /// Replicas that must hold a publish before it is acknowledged (Redis `WAIT`); 0: none.
    pub min_replicas: u32,
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
/// Key prefix of a cluster that did not choose one.
pub const DEFAULT_KEY_PREFIX: &str = "herald";
/// Bound on connecting to Redis, in milliseconds.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Bound on one Redis command, in milliseconds.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 2_000;
/// Longest delay between reconnect attempts, in milliseconds.
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 5_000;

impl RedisConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            sentinels: Vec::new(),
            sentinel_master: None,
            cluster: Vec::new(),
            key_prefix: DEFAULT_KEY_PREFIX.into(),
            ingress_channel: Some(DEFAULT_INGRESS_CHANNEL.into()),
            history: herald_core::defaults::HISTORY,
            history_bytes: herald_core::defaults::HISTORY_BYTES,
            history_ttl: None,
            max_message_bytes: herald_core::defaults::MAX_BODY_BYTES,
            retained: herald_core::HubConfig::default().retained,
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            command_timeout: Duration::from_millis(DEFAULT_COMMAND_TIMEOUT_MS),
            min_replicas: 0,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(DEFAULT_BACKOFF_MAX_MS),
            ingress_dedup_window: Duration::from_secs(60),
        }
    }

    /// Reconnect delays: the first retry at once, then from `backoff_min` doubling up to
    /// `backoff_max`, with jitter.
    pub fn retries(&self) -> herald_core::backoff::Retries {
        herald_core::backoff::Retries::new(herald_core::backoff::Backoff {
            base: self.backoff_min.max(Duration::from_millis(1)),
            cap: self.backoff_max.max(self.backoff_min),
        })
    }

    /// The `MAXLEN ~` bound of the stream, in entries.
    pub fn stream_len(&self) -> usize {
        self.history.max(MIN_STREAM_LEN)
    }
}
