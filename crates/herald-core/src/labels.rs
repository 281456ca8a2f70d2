//! Labelled events and filtered streams: a second routing kind, for protocols spoken beside
//! Herald's own whose subscriptions are not Herald topic patterns.
//!
//! Mercure is the case in point: its topics are arbitrary strings or URIs, its subscriptions are
//! URI templates or URL patterns, and an update may be *private* (only for subscribers whose
//! credentials allow one of its topics). None of that maps onto the topic trie without changing
//! what Herald's own topics mean, so such an event carries [`Labels`] instead of targets, and
//! such a stream carries a [`StreamFilter`] instead of patterns. The hub routes a labelled event
//! to the filtered streams whose filter accepts it, and never to Herald's own streams; Herald's
//! events never reach a filtered stream. Everything else — ids, history, resume, the Redis log,
//! bounded queues, the socket writers — is the same path as every other event's.
//!
//! Cost: a labelled event visits every filtered stream once (a filter is arbitrary code, it
//! cannot be indexed); Herald's own events pay one `Option` check per event, not per stream.
//!
//! A labelled event may also carry a *wire id*: the `id:` its subscribers see instead of the
//! hub's (Mercure publishers choose their ids). A filtered stream resuming from a wire id is
//! replayed from that event, found in the hub's history window.

use std::fmt;

/// Most labels one event may carry.
pub const MAX_LABELS: usize = 64;
/// Longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 2048;
/// Longest wire id, in bytes.
pub const MAX_WIRE_ID_LEN: usize = 512;

/// What a labelled event is about, for the filters of the streams it may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// The event's labels (Mercure: its topics, the canonical one first). At least one.
    pub names: Vec<String>,
    /// Only for streams whose filter grants access to one of the labels.
    pub private: bool,
}

/// Decides, per labelled event, whether a filtered stream receives it. Called under the hub's
/// registry lock for every labelled event and every filtered stream: it must be quick and must
/// not block.
pub trait StreamFilter: Send + Sync + fmt::Debug {
    fn accepts(&self, labels: &Labels) -> bool;
}

/// Why labels or a wire id were refused. Messages are meant for the API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("a labelled event needs 1 to {MAX_LABELS} labels")]
    Count,
    #[error("a label must be 1 to {MAX_LABEL_LEN} bytes without control characters")]
    Label,
    #[error("a labelled event has no users, topics or retained value of its own")]
    WithTargets,
    #[error("a wire id must be at most {MAX_WIRE_ID_LEN} bytes without CR, LF or NUL")]
    WireId,
    #[error("only a labelled event may carry a wire id")]
    WireIdUnlabelled,
}

impl Labels {
    pub fn validate(&self) -> Result<(), LabelError> {
        if self.names.is_empty() || self.names.len() > MAX_LABELS {
            return Err(LabelError::Count);
        }
        let bad =
            |n: &String| n.is_empty() || n.len() > MAX_LABEL_LEN || n.chars().any(char::is_control);
        if self.names.iter().any(bad) {
            return Err(LabelError::Label);
        }
        Ok(())
    }

    /// Bytes the labels add to an event kept in history (see `Publication::history_cost`).
    pub(crate) fn cost(&self) -> usize {
        self.names.iter().map(|n| n.len() + 48).sum::<usize>() + 32
    }
}

/// Checks a wire id: a valid SSE `id:` value of bounded length.
pub fn validate_wire_id(id: &str) -> Result<(), LabelError> {
    if id.len() > MAX_WIRE_ID_LEN || herald_proto::validate_id(id).is_err() {
        return Err(LabelError::WireId);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked() {
        let labels = |names: &[&str]| Labels {
            names: names.iter().map(|n| n.to_string()).collect(),
            private: false,
        };
        assert_eq!(labels(&["https://example.com/books/1"]).validate(), Ok(()));
        assert_eq!(labels(&[]).validate(), Err(LabelError::Count));
        assert_eq!(labels(&[""]).validate(), Err(LabelError::Label));
        assert_eq!(labels(&["a\nb"]).validate(), Err(LabelError::Label));
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(labels(&many).validate(), Err(LabelError::Count));
    }

    #[test]
    fn wire_ids_are_checked() {
        assert_eq!(validate_wire_id("urn:uuid:1234"), Ok(()));
        assert_eq!(validate_wire_id("a\rb"), Err(LabelError::WireId));
        assert_eq!(
            validate_wire_id(&"x".repeat(MAX_WIRE_ID_LEN + 1)),
            Err(LabelError::WireId)
        );
    }
}
