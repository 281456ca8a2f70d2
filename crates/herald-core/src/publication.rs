//! What a publisher asks for: one event and where it goes.
//!
//! A `Publication` is validated before it reaches a broker, so everything downstream (ids,
//! history, fan-out, encoding) can assume well-formed names and targets and never fail halfway
//! through a batch.

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
        Ok(())
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
