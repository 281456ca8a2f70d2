//! The hub's documented defaults, in one place: [`crate::HubConfig::default`], the Redis broker
//! and `herald serve`'s flags all take them from here.

/// Events kept for resume (`--history`).
pub const HISTORY: usize = 10_000;
/// Bytes of events kept for resume (`--history-bytes`): 64 MiB.
pub const HISTORY_BYTES: u64 = 64 << 20;
/// Retained values kept (`--retained-values`).
pub const RETAINED_VALUES: usize = 10_000;
/// Bytes of retained values kept (`--retained-bytes`): 16 MiB.
pub const RETAINED_BYTES: u64 = 16 << 20;
/// Seconds between heartbeat comments on idle streams (`--heartbeat`).
pub const HEARTBEAT_SECS: u64 = 15;
/// Reconnection delay suggested to clients, in milliseconds (`--retry-ms`).
pub const RETRY_MS: u64 = 3_000;
/// Frames one stream may have queued before it is cut off as a slow consumer.
pub const QUEUE_FRAMES: usize = 1_024;
/// Bytes one stream may have queued before it is cut off as a slow consumer: 4 MiB.
pub const QUEUE_BYTES: usize = 4 << 20;
/// Largest `POST /publish` body (and seed-format ingress message): 1 MiB.
pub const MAX_BODY_BYTES: usize = 1 << 20;
