//! The two ways this crate can refuse work, as typed values.
//!
//! Encoding fails only when a caller-supplied value cannot be written as a single SSE field value
//! (a line break would end the field early and let the rest of the value inject new fields).
//! Parsing fails only when a peer makes us buffer more than we agreed to hold. Both are ordinary
//! values, never panics, so servers can turn them into 4xx responses or closed connections.

use std::fmt;

/// Why a field value was rejected by the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// The value is empty where the format gives empty a different meaning (an empty `event:`
    /// value means "use the default type", so it cannot name an event).
    Empty,
    /// The value contains CR or LF (which would end the field and start another) or NUL (which
    /// the SSE parsing rules treat specially in ids, so we refuse it everywhere for one rule).
    ForbiddenChar,
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "must not be empty",
            Self::ForbiddenChar => "must not contain CR, LF or NUL",
        })
    }
}

/// An [`Event`](crate::Event) (or id-only block) that cannot be encoded faithfully.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The `event:` name is empty or contains CR, LF or NUL.
    #[error("event name {reason}")]
    InvalidEventName { reason: InvalidReason },
    /// The `id:` value contains CR, LF or NUL.
    #[error("event id {reason}")]
    InvalidId { reason: InvalidReason },
}

/// The incremental parser refused to buffer more input.
///
/// After this error the [`Parser`](crate::Parser) is poisoned: every further `feed` returns the
/// same error, because the stream position is lost and anything parsed later could be garbage.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The incomplete line plus the pending data buffer would exceed `limit` bytes.
    #[error("SSE parser buffer limit of {limit} bytes exceeded")]
    BufferLimit { limit: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_human_readable() {
        let name = EncodeError::InvalidEventName {
            reason: InvalidReason::ForbiddenChar,
        };
        assert_eq!(
            name.to_string(),
            "event name must not contain CR, LF or NUL"
        );
        let empty = EncodeError::InvalidEventName {
            reason: InvalidReason::Empty,
        };
        assert_eq!(empty.to_string(), "event name must not be empty");
        let id = EncodeError::InvalidId {
            reason: InvalidReason::ForbiddenChar,
        };
        assert_eq!(id.to_string(), "event id must not contain CR, LF or NUL");
        let limit = ParseError::BufferLimit { limit: 10 };
        assert_eq!(
            limit.to_string(),
            "SSE parser buffer limit of 10 bytes exceeded"
        );
    }
}
