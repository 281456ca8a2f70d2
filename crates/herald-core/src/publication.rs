//! What a publisher asks for: one event and where it goes.
//!
//! A [`Publication`] is validated once, into a [`Batch`], the only form [`crate::Herald::publish`]
//! and brokers accept: an invalid event cannot reach them, and everything downstream (ids,
//! history, fan-out, encoding) can assume well-formed names and targets and never fail halfway
//! through a batch.

use crate::labels::{validate_wire_id, LabelError, Labels};
use crate::topic::{validate_topic, TopicError};

/// Longest user id accepted, in bytes.
pub const MAX_USER_LEN: usize = 256;
/// Event names starting with this prefix are reserved for the hub's own events.
pub const RESERVED_EVENT_PREFIX: &str = "herald.";

/// One event to publish. With no users and no topics it is a broadcast to every stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publication {
    /// SSE event name; `None` means the default `message` event.
    pub event: Option<String>,
    /// The payload, exactly as it goes on the wire (line breaks become separate `data:` lines).
    pub data: String,
    /// Users whose streams receive the event.
    pub users: Vec<String>,
    /// Topics whose subscribers receive the event.
    pub topics: Vec<String>,
    /// Reconnection-time hint for clients, in milliseconds.
    pub retry: Option<u64>,
    /// Whether the event becomes (or clears) the retained value of its targets.
    pub retain: Retain,
    /// A labelled event ([`crate::labels`]): for filtered streams only; no users or topics.
    pub labels: Option<Labels>,
    /// The `id:` subscribers see instead of the hub's (labelled events only).
    pub wire_id: Option<String>,
}

/// What a publication does to the retained values of its targets ([`crate::retained`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Retain {
    /// Nothing: an ordinary event.
    #[default]
    No,
    /// The event becomes the retained value of each target and its event name.
    Keep,
    /// The retained values of each target and this event name are forgotten; the event itself
    /// reaches no stream.
    Clear,
}

/// Why a publication was refused. Messages are meant for the API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicationError {
    #[error("invalid event name: {0}")]
    EventName(herald_proto::EncodeError),
    #[error("event name {0:?} is reserved (names starting with \"herald.\" belong to the hub)")]
    ReservedEventName(String),
    #[error("event name is longer than 256 bytes")]
    EventNameTooLong,
    #[error("user id must be 1 to {MAX_USER_LEN} bytes without control characters")]
    BadUser,
    #[error("invalid topic: {0}")]
    Topic(#[from] TopicError),
    #[error("{0}")]
    Labels(#[from] LabelError),
}

impl Publication {
    /// An event for every stream of `user`.
    pub fn to_user(
        user: impl Into<String>,
        event: impl Into<String>,
        data: impl Into<String>,
    ) -> Self {
        Self {
            event: Some(event.into()),
            data: data.into(),
            users: vec![user.into()],
            ..Self::default()
        }
    }

    /// An event for every subscriber of `topic`.
    pub fn to_topic(
        topic: impl Into<String>,
        event: impl Into<String>,
        data: impl Into<String>,
    ) -> Self {
        Self {
            event: Some(event.into()),
            data: data.into(),
            topics: vec![topic.into()],
            ..Self::default()
        }
    }

    /// An event for every stream.
    pub fn broadcast(event: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            event: Some(event.into()),
            data: data.into(),
            ..Self::default()
        }
    }

    pub fn is_broadcast(&self) -> bool {
        self.users.is_empty() && self.topics.is_empty()
    }

    /// Bytes this event costs while it is kept for resume: its encoded frame, its targets, and
    /// the bookkeeping of each (structs, reference counts, allocator rounding), estimated from
    /// measurements (docs/SCALING.md). Every bound on history counts this one figure, on a node
    /// and in the Redis stream alike, so all nodes agree on what `--history-bytes` holds.
    pub fn history_cost(&self) -> usize {
        let frame = herald_proto::EventRef {
            event: self.event.as_deref(),
            data: &self.data,
            id: Some(self.wire_id.as_deref().unwrap_or(COST_ID)),
            retry: self.retry,
        }
        .encoded_len();
        self.history_cost_with(frame)
    }

    /// [`Publication::history_cost`] given the frame's length, for a caller that just encoded
    /// it with its real id (`id_len` bytes; a Herald id, not a wire id): saves encoding twice.
    pub(crate) fn history_cost_of_frame(&self, frame_len: usize, id_len: usize) -> usize {
        match self.wire_id {
            Some(_) => self.history_cost_with(frame_len),
            None => self.history_cost_with(frame_len - id_len + COST_ID.len()),
        }
    }

    fn history_cost_with(&self, frame: usize) -> usize {
        /// The event's structs, its frame's, their reference counts and its history slot.
        const PER_EVENT: usize = 256;
        /// One user or topic: its slot in the target list, its allocation and rounding.
        const PER_TARGET: usize = 48;
        let targets: usize = self
            .users
            .iter()
            .chain(&self.topics)
            .map(|t| t.len() + PER_TARGET)
            .sum();
        let labels = self.labels.as_ref().map_or(0, Labels::cost);
        frame + PER_EVENT + targets + labels
    }

    /// Checks every field; a publication that passes can be encoded and routed without error.
    pub fn validate(&self) -> Result<(), PublicationError> {
        if let Some(name) = &self.event {
            herald_proto::validate_event_name(name).map_err(PublicationError::EventName)?;
            if name.len() > 256 {
                return Err(PublicationError::EventNameTooLong);
            }
            if name.starts_with(RESERVED_EVENT_PREFIX) {
                return Err(PublicationError::ReservedEventName(name.clone()));
            }
        }
        for user in &self.users {
            validate_user(user)?;
        }
        for topic in &self.topics {
            validate_topic(topic)?;
        }
        match &self.labels {
            Some(labels) => {
                labels.validate()?;
                if !self.is_broadcast() || self.retain != Retain::No {
                    return Err(LabelError::WithTargets.into());
                }
            }
            None if self.wire_id.is_some() => return Err(LabelError::WireIdUnlabelled.into()),
            None => {}
        }
        if let Some(id) = &self.wire_id {
            validate_wire_id(id)?;
        }
        Ok(())
    }
}

/// Publications that passed [`Publication::validate`], all of them: what gets published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch(Vec<Publication>);

/// Item `index` of a batch is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item {index}: {error}")]
pub struct InvalidItem {
    pub index: usize,
    pub error: PublicationError,
}

impl Batch {
    /// Validates every publication; the batch exists only if all pass.
    pub fn new(publications: Vec<Publication>) -> Result<Self, InvalidItem> {
        for (index, publication) in publications.iter().enumerate() {
            publication
                .validate()
                .map_err(|error| InvalidItem { index, error })?;
        }
        Ok(Self(publications))
    }

    /// A batch of one.
    pub fn one(publication: Publication) -> Result<Self, PublicationError> {
        publication.validate()?;
        Ok(Self(vec![publication]))
    }

    pub fn into_inner(self) -> Vec<Publication> {
        self.0
    }
}

impl std::ops::Deref for Batch {
    type Target = [Publication];

    fn deref(&self) -> &[Publication] {
        &self.0
    }
}

/// Checks a user id (from a publication or a token's `sub`).
pub fn validate_user(user: &str) -> Result<(), PublicationError> {
    if user.is_empty() || user.len() > MAX_USER_LEN || user.chars().any(char::is_control) {
        return Err(PublicationError::BadUser);
    }
    Ok(())
}

/// The wire payload for a JSON `data` value: a JSON string is sent verbatim (its decoded text);
/// any other value as compact JSON, byte for byte as given minus the whitespace between tokens
/// (key order and number spelling kept). This is `POST /publish`'s rule; the Redis seed ingress
/// uses [`compact_json`] for every value instead, as the seed's server did.
pub fn json_payload(data: &serde_json::value::RawValue) -> Result<String, serde_json::Error> {
    match data.get() {
        raw if raw.starts_with('"') => serde_json::from_str::<String>(raw),
        raw => Ok(compact_json(raw)),
    }
}

/// The id a history cost counts, whatever the real one: as long as a Redis stream id of today
/// (`1732460000123-0`) plus some, so that every node, on every broker, counts the same.
const COST_ID: &str = "0000000000000-000000";

/// Deepest JSON nesting accepted from a publisher (arrays and objects, a batch's array
/// included), on `POST /publish` and the seed ingress alike.
pub const MAX_JSON_DEPTH: usize = 32;

/// Does `text` nest brackets deeper than [`MAX_JSON_DEPTH`] (brackets inside strings aside)?
/// Runs before parsing so a hostile body cannot make any later step work hard.
///
/// Strings, most of a body's bytes, are skipped with `memchr` to their next quote or
/// backslash; only the bytes between them are looked at one by one.
pub fn too_deep_json(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Few brackets in all cannot nest deep: most single events end here, after one
    // vectorised search for the first MAX_JSON_DEPTH + 1 brackets instead of a walk.
    if memchr::memchr2_iter(b'[', b'{', bytes)
        .nth(MAX_JSON_DEPTH)
        .is_none()
    {
        return false;
    }
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'"' => {
                i += 1;
                loop {
                    // An unterminated string is not too deep: the parser refuses it.
                    let Some(rest) = bytes.get(i..) else {
                        return false;
                    };
                    let Some(at) = memchr::memchr2(b'"', b'\\', rest) else {
                        return false;
                    };
                    i += at;
                    if bytes[i] == b'"' {
                        break;
                    }
                    i += 2; // the backslash and the byte it escapes
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// Removes whitespace outside strings from already-valid JSON.
///
/// Works on bytes: every byte it looks at (quotes, backslashes, whitespace) is ASCII, and UTF-8
/// never uses ASCII bytes inside a multi-byte character, so keeping all other bytes keeps the
/// text valid UTF-8.
pub fn compact_json(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            out.push(b);
        } else if b == b'"' {
            in_string = true;
            out.push(b);
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(!too_deep_json(&nested(MAX_JSON_DEPTH)));
        assert!(too_deep_json(&nested(MAX_JSON_DEPTH + 1)));
        let in_string = format!(r#"{{"a":"{}"}}"#, "[".repeat(100));
        assert!(!too_deep_json(&in_string));
        // An escaped quote does not end the string; an escaped backslash does not escape it.
        let escaped = format!(r#"["\"{}", "\\", {}]"#, "[".repeat(40), nested(31));
        assert!(!too_deep_json(&escaped), "{escaped}");
        let after_backslashes = format!(r#"["\\", {}]"#, nested(32));
        assert!(too_deep_json(&after_backslashes));
        // Many shallow items are fine, however many brackets in all.
        let wide = format!("[{}]", vec!["{\"a\":[1]}"; 500].join(","));
        assert!(!too_deep_json(&wide));
        assert!(!too_deep_json("\"unterminated \\"));
    }

    /// A routed event's cost, taken from the frame it encoded, is the cost every broker counts
    /// for its publication, whatever its id's length.
    #[test]
    fn an_events_cost_matches_its_publications() {
        let mut with_retry = Publication::to_user("u1", "order", "a\nb\r\nc");
        with_retry.retry = Some(2500);
        let mut with_wire_id = Publication::to_topic("t/1", "x", "");
        with_wire_id.wire_id = Some("urn:uuid:1234".into());
        for publication in [Publication::broadcast("e", "d"), with_retry, with_wire_id] {
            for id in [
                crate::EventId::new(1, 0),
                crate::EventId::new(1_732_460_000_123, 123_456),
            ] {
                let event = crate::event::HubEvent::new(id, &publication, 0);
                assert_eq!(
                    event.cost,
                    publication.history_cost(),
                    "{publication:?} {id}"
                );
            }
        }
    }

    #[test]
    fn valid_publications_pass() {
        assert!(Publication::to_user("u1", "order_update", "{}")
            .validate()
            .is_ok());
        assert!(Publication::to_topic("orders/1", "x", "line1\nline2")
            .validate()
            .is_ok());
        assert!(Publication::broadcast("x", "").validate().is_ok());
    }

    #[test]
    fn bad_fields_are_rejected() {
        assert!(matches!(
            Publication::broadcast("a\nb", "").validate(),
            Err(PublicationError::EventName(_))
        ));
        assert!(matches!(
            Publication::broadcast("herald.missed", "").validate(),
            Err(PublicationError::ReservedEventName(_))
        ));
        assert_eq!(
            Publication::to_user("", "e", "").validate(),
            Err(PublicationError::BadUser)
        );
        assert_eq!(
            Publication::to_user("a\0", "e", "").validate(),
            Err(PublicationError::BadUser)
        );
        assert!(matches!(
            Publication::to_topic("a/*", "e", "").validate(),
            Err(PublicationError::Topic(_))
        ));
    }
}
