//! How one event is stored in the stream: a single field `event` holding compact JSON.
//!
//! One field keeps `XADD` and the ingress script simple and makes entries readable with
//! `redis-cli XRANGE`. The accept time travels with the event so the delivery-latency metric on
//! every node measures from the moment the publishing node accepted it.

use std::collections::HashMap;

use herald_core::{EventId, HubEvent, Publication};
use serde::{Deserialize, Serialize};

/// The stream entry's only field.
pub(crate) const FIELD: &str = "event";

#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(rename = "d")]
    data: std::borrow::Cow<'a, str>,
    #[serde(rename = "u", default, skip_serializing_if = "Vec::is_empty")]
    users: Vec<&'a str>,
    #[serde(rename = "t", default, skip_serializing_if = "Vec::is_empty")]
    topics: Vec<&'a str>,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    retry: Option<u64>,
    /// Microseconds since the Unix epoch when a node accepted the event.
    #[serde(rename = "at")]
    accepted_us: u64,
}

/// The value of [`FIELD`] for a validated publication accepted at `accepted_us`.
pub(crate) fn encode(publication: &Publication, accepted_us: u64) -> String {
    let stored = Stored {
        event: publication.event.as_deref(),
        data: publication.data.as_str().into(),
        users: publication.users.iter().map(String::as_str).collect(),
        topics: publication.topics.iter().map(String::as_str).collect(),
        retry: publication.retry,
        accepted_us,
    };
    // Serialising strings, integers and vectors of strings cannot fail.
    serde_json::to_string(&stored).unwrap_or_default()
}

/// Why an entry could not become an event (someone else wrote to the stream, or a newer Herald
/// with a different format did).
#[derive(Debug, thiserror::Error)]
pub(crate) enum EntryError {
    #[error("entry id {0:?} is not a stream id")]
    Id(String),
    #[error("entry has no {FIELD:?} field")]
    MissingField,
    #[error("entry is not a Herald event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("entry is not a valid publication: {0}")]
    Invalid(#[from] herald_core::PublicationError),
}

/// Turns one stream entry into the event the hub routes. The publication is validated again:
/// the stream is shared, and nothing in it is trusted to be well-formed.
pub(crate) fn decode(
    id: &str,
    fields: &HashMap<String, redis::Value>,
) -> Result<HubEvent, EntryError> {
    let event_id: EventId = id.parse().map_err(|_| EntryError::Id(id.to_owned()))?;
    let bytes = match fields.get(FIELD) {
        Some(redis::Value::BulkString(bytes)) => bytes.as_slice(),
        Some(redis::Value::SimpleString(text)) => text.as_bytes(),
        _ => return Err(EntryError::MissingField),
    };
    let stored: Stored<'_> = serde_json::from_slice(bytes)?;
    let publication = Publication {
        event: stored.event.map(str::to_owned),
        data: stored.data.into_owned(),
        users: stored.users.into_iter().map(str::to_owned).collect(),
        topics: stored.topics.into_iter().map(str::to_owned).collect(),
        retry: stored.retry,
    };
    publication.validate()?;
    Ok(HubEvent::new(event_id, &publication, stored.accepted_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(value: &str) -> HashMap<String, redis::Value> {
        HashMap::from([(
            FIELD.to_owned(),
            redis::Value::BulkString(value.as_bytes().to_vec()),
        )])
    }

    #[test]
    fn round_trips_every_field() {
        let publication = Publication {
            event: Some("order_update".into()),
            data: "line 1\nline \"2\"".into(),
            users: vec!["u1".into(), "u2".into()],
            topics: vec!["orders/1".into()],
            retry: Some(500),
        };
        let event = decode("1700000000000-3", &fields(&encode(&publication, 42))).unwrap();
        assert_eq!(event.id, EventId::new(1_700_000_000_000, 3));
        assert_eq!(event.event.as_deref(), Some("order_update"));
        assert_eq!(event.frame.published_us, Some(42));
        assert_eq!(&*event.targets.users[1], "u2");
        let wire = String::from_utf8_lossy(&event.frame.bytes).into_owned();
        assert_eq!(
            wire,
            "event: order_update\nid: 1700000000000-3\nretry: 500\ndata: line 1\ndata: line \"2\"\n\n"
        );
    }

    #[test]
    fn foreign_entries_are_errors_not_panics() {
        assert!(matches!(
            decode("1-0", &HashMap::new()),
            Err(EntryError::MissingField)
        ));
        assert!(matches!(
            decode("1-0", &fields("{")),
            Err(EntryError::Json(_))
        ));
        assert!(matches!(decode("x", &fields("{}")), Err(EntryError::Id(_))));
        let reserved = r#"{"e":"herald.missed","d":"","at":0}"#;
        assert!(matches!(
            decode("1-0", &fields(reserved)),
            Err(EntryError::Invalid(_))
        ));
    }
}
