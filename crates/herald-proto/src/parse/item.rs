//! What the parser hands out, in stream order.
//!
//! Besides dispatched events, the parser reports `retry:` values and comments as they are read:
//! a client needs the retry to schedule reconnects, and comments (heartbeats) are how tests and
//! watchdogs see that a quiet stream is still alive.

/// One thing read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A dispatched event (a block with at least one `data` field, ended by a blank line).
    Event(MessageEvent),
    /// An accepted `retry:` field: the new reconnection delay in milliseconds.
    Retry(u64),
    /// A comment line: the text after `:` with at most one leading space removed.
    Comment(String),
}

/// A dispatched event, as `EventSource` would deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    /// The `event:` type, or `"message"` when the block set none (or set it empty).
    pub event_type: String,
    /// The `data` lines joined with LF.
    pub data: String,
    /// The stream's last event ID at dispatch time (it persists across events without `id:`).
    pub last_event_id: String,
}
