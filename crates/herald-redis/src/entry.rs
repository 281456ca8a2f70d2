//! How one event is stored in the stream: a field `event` holding compact JSON, and the
//! bookkeeping fields `n` (sequence) and `c` (running cost total) that [`crate::append`] adds.
//!
//! The event in one JSON field keeps the script simple and makes entries readable with
//! `redis-cli XRANGE`. The accept time travels with the event so the delivery-latency metric on
//! every node measures from the moment the publishing node accepted it.

use std::collections::HashMap;

use herald_core::broker::HubEvent;
use std::borrow::Cow;

use herald_core::{EventId, Labels, Publication, Retain};
use serde::{Deserialize, Serialize};

/// The field holding the event.
pub(crate) const FIELD: &str = "event";
/// The entry's sequence number.
const SEQ: &str = "n";
/// The running total of event costs, this entry included.
const TOTAL: &str = "c";

/// A decoded entry.
pub(crate) struct Entry {
    pub event: HubEvent,
    /// `None` for entries written before Herald numbered them.
    pub seq: Option<u64>,
    pub total: Option<u64>,
}

/// Strings are borrowed from the JSON where they can be and copied where they must (a name or
/// user id with a quote or a backslash is escaped in JSON, so it cannot be borrowed).
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    #[serde(rename = "e", default, borrow, skip_serializing_if = "Option::is_none")]
    event: Option<Cow<'a, str>>,
    #[serde(rename = "d", borrow)]
    data: Cow<'a, str>,
    #[serde(rename = "u", default, borrow, skip_serializing_if = "Vec::is_empty")]
    users: Vec<Cow<'a, str>>,
    #[serde(rename = "t", default, borrow, skip_serializing_if = "Vec::is_empty")]
    topics: Vec<Cow<'a, str>>,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    retry: Option<u64>,
    /// `keep` or `clear` for an event that sets or clears retained values.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    retain: Option<Cow<'a, str>>,
    /// A labelled event's labels (`herald_core::labels`), and whether it is private.
    #[serde(rename = "l", default, borrow, skip_serializing_if = "Vec::is_empty")]
    labels: Vec<Cow<'a, str>>,
    #[serde(rename = "p", default, skip_serializing_if = "std::ops::Not::not")]
    private: bool,
    /// A labelled event's wire id.
    #[serde(rename = "w", default, borrow, skip_serializing_if = "Option::is_none")]
    wire_id: Option<Cow<'a, str>>,
    /// Microseconds since the Unix epoch when a node accepted the event.
    #[serde(rename = "at")]
    accepted_us: u64,
}

const KEEP: &str = "keep";
const CLEAR: &str = "clear";

/// The value of [`FIELD`] for a validated publication accepted at `accepted_us`.
pub(crate) fn encode(publication: &Publication, accepted_us: u64) -> String {
    let stored = Stored {
        event: publication.event.as_deref().map(Cow::Borrowed),
        data: publication.data.as_str().into(),
        users: publication
            .users
            .iter()
            .map(|u| u.as_str().into())
            .collect(),
        topics: publication
            .topics
            .iter()
            .map(|t| t.as_str().into())
            .collect(),
        retry: publication.retry,
        retain: match publication.retain {
            Retain::No => None,
            Retain::Keep => Some(KEEP.into()),
            Retain::Clear => Some(CLEAR.into()),
        },
        labels: publication
            .labels
            .iter()
            .flat_map(|l| l.names.iter().map(|n| n.as_str().into()))
            .collect(),
        private: publication.labels.as_ref().is_some_and(|l| l.private),
        wire_id: publication.wire_id.as_deref().map(Cow::Borrowed),
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
    #[error("entry has an unknown retain mode")]
    Retain,
    #[error("entry is not a valid publication: {0}")]
    Invalid(#[from] herald_core::PublicationError),
}

/// Turns one stream entry into the event the hub routes. The publication is validated again:
/// the stream is shared, and nothing in it is trusted to be well-formed.
pub(crate) fn decode(
    id: &str,
    fields: &HashMap<String, redis::Value>,
) -> Result<Entry, EntryError> {
    let event_id: EventId = id.parse().map_err(|_| EntryError::Id(id.to_owned()))?;
    let bytes = field(fields, FIELD).ok_or(EntryError::MissingField)?;
    let stored: Stored<'_> = serde_json::from_slice(bytes)?;
    let publication = Publication {
        event: stored.event.map(Cow::into_owned),
        data: stored.data.into_owned(),
        users: stored.users.into_iter().map(Cow::into_owned).collect(),
        topics: stored.topics.into_iter().map(Cow::into_owned).collect(),
        retry: stored.retry,
        retain: match stored.retain.as_deref() {
            None => Retain::No,
            Some(KEEP) => Retain::Keep,
            Some(CLEAR) => Retain::Clear,
            Some(_) => return Err(EntryError::Retain),
        },
        labels: (!stored.labels.is_empty()).then(|| Labels {
            names: stored.labels.into_iter().map(Cow::into_owned).collect(),
            private: stored.private,
        }),
        wire_id: stored.wire_id.map(Cow::into_owned),
    };
    publication.validate()?;
    let number = |name| {
        field(fields, name)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| t.parse::<u64>().ok())
    };
    Ok(Entry {
        event: HubEvent::new(event_id, &publication, stored.accepted_us),
        seq: number(SEQ),
        total: number(TOTAL),
    })
}

/// Does the entry hold a labelled event whose wire id is `wire_id`? Entries without the id's
/// text in them are not decoded, so scanning the history for one costs a substring search per
/// entry.
pub(crate) fn has_wire_id(id: &str, fields: &HashMap<String, redis::Value>, wire_id: &str) -> bool {
    // `encode` writes the wire id as compact JSON, the same escaping as here.
    let needle = format!("\"w\":{}", serde_json::Value::from(wire_id));
    let holds_text = field(fields, FIELD)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .is_some_and(|json| json.contains(&needle));
    holds_text
        && decode(id, fields).is_ok_and(|entry| entry.event.wire_id.as_deref() == Some(wire_id))
}

/// A retained value as the append script stores it: `id\ncost\nentry`.
pub(crate) fn decode_retained(value: &[u8]) -> Result<HubEvent, EntryError> {
    let text = std::str::from_utf8(value).map_err(|_| EntryError::MissingField)?;
    let mut parts = text.splitn(3, '\n');
    let (Some(id), Some(_cost), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(EntryError::MissingField);
    };
    let fields = HashMap::from([(
        FIELD.to_owned(),
        redis::Value::BulkString(json.as_bytes().to_vec()),
    )]);
    decode(id, &fields).map(|entry| entry.event)
}

fn field<'a>(fields: &'a HashMap<String, redis::Value>, name: &str) -> Option<&'a [u8]> {
    match fields.get(name) {
        Some(redis::Value::BulkString(bytes)) => Some(bytes.as_slice()),
        Some(redis::Value::SimpleString(text)) => Some(text.as_bytes()),
        _ => None,
    }
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
            retain: Retain::Keep,
            ..Publication::default()
        };
        let mut stored = fields(&encode(&publication, 42));
        stored.insert("n".into(), redis::Value::BulkString(b"7".to_vec()));
        let entry = decode("1700000000000-3", &stored).unwrap();
        assert_eq!((entry.seq, entry.total), (Some(7), None));
        let event = entry.event;
        assert_eq!(event.id, EventId::new(1_700_000_000_000, 3));
        assert_eq!(event.event.as_deref(), Some("order_update"));
        assert_eq!(event.frame.published_us, Some(42));
        assert_eq!(event.retain, Retain::Keep);
        assert_eq!(&*event.targets.users[1], "u2");
        let wire = String::from_utf8_lossy(&event.frame.bytes).into_owned();
        assert_eq!(
            wire,
            "event: order_update\nid: 1700000000000-3\nretry: 500\ndata: line 1\ndata: line \"2\"\n\n"
        );
    }

    #[test]
    fn labelled_events_round_trip() {
        let publication = Publication {
            labels: Some(Labels {
                names: vec!["https://example.com/books/1".into(), "alt".into()],
                private: true,
            }),
            wire_id: Some("urn:uuid:abc".into()),
            ..Publication::default()
        };
        publication.validate().unwrap();
        let event = decode("1-0", &fields(&encode(&publication, 1)))
            .unwrap()
            .event;
        assert_eq!(event.labels.as_deref(), publication.labels.as_ref());
        assert_eq!(event.wire_id.as_deref(), Some("urn:uuid:abc"));
        let wire = String::from_utf8_lossy(&event.frame.bytes).into_owned();
        assert_eq!(wire, "id: urn:uuid:abc\ndata:\n\n");
    }

    #[test]
    fn names_and_users_that_json_escapes_survive() {
        let publication = Publication {
            event: Some("say \"hi\"".into()),
            users: vec!["back\\slash".into(), "ünï".into()],
            ..Publication::broadcast("e", "d")
        };
        let event = decode("1-0", &fields(&encode(&publication, 1)))
            .unwrap()
            .event;
        assert_eq!(event.event.as_deref(), Some("say \"hi\""));
        assert_eq!(&*event.targets.users[0], "back\\slash");
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
