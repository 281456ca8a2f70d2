//! How events are stored in the stream: one entry per append call, holding its events as
//! compact JSON, and the bookkeeping fields `n` (sequence) and `c` (running cost total) that
//! [`crate::append`] adds.
//!
//! An entry of one event holds it in the field `event`; an entry of several holds them in
//! `events`, one per line (compact JSON has no raw newline). The entry's id is its last event's;
//! the events before it have the ids just below, in the same millisecond, so an entry of `k`
//! events numbered up to `ms-s` holds `ms-(s-k+1)` to `ms-s`, and `n` and `c` count up to its
//! last event too. One entry per call is what makes publishing through Redis cheap: Redis adds
//! one entry however many events a call carries, and a reader parses one.
//!
//! JSON keeps the script simple and makes entries readable with `redis-cli XRANGE`. The accept
//! time travels with the event so the delivery-latency metric on every node measures from the
//! moment the publishing node accepted it.

use std::collections::HashMap;

use herald_core::broker::HubEvent;
use std::borrow::Cow;

use herald_core::{EventId, Labels, Publication, Retain};
use serde::{Deserialize, Serialize};

/// The field holding an entry's one event.
pub(crate) const FIELD: &str = "event";
/// The field holding an entry's events, one per line, when it has several.
pub(crate) const LINES: &str = "events";
/// The sequence number of the entry's last event.
const SEQ: &str = "n";
/// The running total of event costs, up to the entry's last event.
const TOTAL: &str = "c";

/// One event of a decoded entry, with its place in the numbering.
pub(crate) struct Entry {
    pub event: HubEvent,
    /// `None` for entries written before Herald numbered them.
    pub seq: Option<u64>,
    /// The running cost total up to this event.
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

/// Appends the stored form of a validated publication accepted at `accepted_us` to `out`.
pub(crate) fn encode_into(out: &mut Vec<u8>, publication: &Publication, accepted_us: u64) {
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
    // Serialising strings, integers and vectors of strings into memory cannot fail.
    let _ = serde_json::to_writer(out, &stored);
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

/// Turns one stream entry into the events the hub routes, oldest first. Each publication is
/// validated again: the stream is shared, and nothing in it is trusted to be well-formed.
pub(crate) fn decode(
    id: &str,
    fields: &HashMap<String, redis::Value>,
) -> Result<Vec<Entry>, EntryError> {
    let last: EventId = id.parse().map_err(|_| EntryError::Id(id.to_owned()))?;
    let number = |name| {
        field(fields, name)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| t.parse::<u64>().ok())
    };
    let (seq, total) = (number(SEQ), number(TOTAL));
    if let Some(json) = field(fields, FIELD) {
        let event = decode_event(last, json)?;
        return Ok(vec![Entry { event, seq, total }]);
    }
    let lines = field(fields, LINES).ok_or(EntryError::MissingField)?;
    let count = lines.split(|b| *b == b'\n').count() as u64;
    let first = last
        .seq
        .checked_sub(count - 1)
        .ok_or_else(|| EntryError::Id(id.to_owned()))?;
    let mut events = lines
        .split(|b| *b == b'\n')
        .zip(first..)
        .map(|(json, seq)| decode_event(EventId::new(last.ms, seq), json))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|event| Entry {
            event,
            seq: None,
            total: None,
        })
        .collect::<Vec<_>>();
    // Number them back from the last, whose place the entry carries.
    let (mut seq, mut total) = (seq, total);
    for entry in events.iter_mut().rev() {
        entry.seq = seq;
        entry.total = total;
        seq = seq.and_then(|s| s.checked_sub(1));
        total = total.map(|t| t.saturating_sub(entry.event.cost as u64));
    }
    Ok(events)
}

/// How many events an entry holds, from its fields as `XINFO STREAM` lists them.
pub(crate) fn count_in(fields: &[redis::Value]) -> u64 {
    let value = fields
        .chunks_exact(2)
        .find_map(|pair| match (&pair[0], &pair[1]) {
            (redis::Value::BulkString(name), redis::Value::BulkString(value))
                if name == LINES.as_bytes() =>
            {
                Some(value)
            }
            _ => None,
        });
    value.map_or(1, |lines| {
        lines.iter().filter(|b| **b == b'\n').count() as u64 + 1
    })
}

/// One stored event as the hub routes it, with id `id`.
fn decode_event(id: EventId, json: &[u8]) -> Result<HubEvent, EntryError> {
    let stored: Stored<'_> = serde_json::from_slice(json)?;
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
    Ok(HubEvent::new(id, &publication, stored.accepted_us))
}

/// The id of the newest labelled event in the entry whose wire id is `wire_id`, if any. Entries
/// without the id's text in them are not decoded, so scanning the history for one costs a
/// substring search per entry.
pub(crate) fn find_wire_id(
    id: &str,
    fields: &HashMap<String, redis::Value>,
    wire_id: &str,
) -> Option<EventId> {
    // `encode_into` writes the wire id as compact JSON, the same escaping as here.
    let needle = format!("\"w\":{}", serde_json::Value::from(wire_id));
    let holds_text = [FIELD, LINES]
        .into_iter()
        .filter_map(|name| field(fields, name))
        .filter_map(|bytes| std::str::from_utf8(bytes).ok())
        .any(|json| json.contains(&needle));
    if !holds_text {
        return None;
    }
    decode(id, fields)
        .ok()?
        .into_iter()
        .rev()
        .find_map(|entry| {
            (entry.event.wire_id.as_deref() == Some(wire_id)).then_some(entry.event.id)
        })
}

/// A retained value as the append script stores it: `id\ncost\nentry`.
pub(crate) fn decode_retained(value: &[u8]) -> Result<HubEvent, EntryError> {
    let text = std::str::from_utf8(value).map_err(|_| EntryError::MissingField)?;
    let mut parts = text.splitn(3, '\n');
    let (Some(id), Some(_cost), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(EntryError::MissingField);
    };
    let id: EventId = id.parse().map_err(|_| EntryError::Id(id.to_owned()))?;
    decode_event(id, json.as_bytes())
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

    fn encode(publication: &Publication, accepted_us: u64) -> String {
        let mut out = Vec::new();
        encode_into(&mut out, publication, accepted_us);
        String::from_utf8(out).unwrap()
    }

    fn fields(value: &str) -> HashMap<String, redis::Value> {
        HashMap::from([(
            FIELD.to_owned(),
            redis::Value::BulkString(value.as_bytes().to_vec()),
        )])
    }

    /// The one event of a one-event entry.
    fn one(id: &str, fields: &HashMap<String, redis::Value>) -> Entry {
        let mut events = decode(id, fields).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn an_entry_of_several_events_numbers_them_up_to_its_own_id() {
        let events: Vec<Publication> = (0..3)
            .map(|i| Publication::broadcast("e", format!("d{i}")))
            .collect();
        let lines: Vec<String> = events.iter().map(|p| encode(p, 9)).collect();
        let total = 1000 + events.iter().map(|p| p.history_cost() as u64).sum::<u64>();
        let stored = HashMap::from([
            (
                LINES.to_owned(),
                redis::Value::BulkString(lines.join("\n").into_bytes()),
            ),
            ("n".to_owned(), redis::Value::BulkString(b"12".to_vec())),
            (
                "c".to_owned(),
                redis::Value::BulkString(total.to_string().into_bytes()),
            ),
        ]);
        let decoded = decode("77-5", &stored).unwrap();
        let ids: Vec<EventId> = decoded.iter().map(|e| e.event.id).collect();
        assert_eq!(
            ids,
            [
                EventId::new(77, 3),
                EventId::new(77, 4),
                EventId::new(77, 5)
            ]
        );
        let seqs: Vec<Option<u64>> = decoded.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [Some(10), Some(11), Some(12)]);
        let first = &decoded[0];
        assert_eq!(
            first.total,
            Some(1000 + events[0].history_cost() as u64),
            "each event's running total is the entry's less what followed it"
        );
        assert_eq!(
            String::from_utf8_lossy(&decoded[1].event.frame.bytes),
            "event: e\nid: 77-4\ndata: d1\n\n"
        );
        // Three events cannot end at sequence 1 of a millisecond.
        assert!(matches!(decode("77-1", &stored), Err(EntryError::Id(_))));
        let listed = vec![
            redis::Value::BulkString(LINES.as_bytes().to_vec()),
            redis::Value::BulkString(lines.join("\n").into_bytes()),
        ];
        assert_eq!(count_in(&listed), 3);
        assert_eq!(count_in(&[]), 1);
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
        let entry = one("1700000000000-3", &stored);
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
        let event = one("1-0", &fields(&encode(&publication, 1))).event;
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
        let event = one("1-0", &fields(&encode(&publication, 1))).event;
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
