//! What `XINFO STREAM` says about the stream's ends, and how to tell from it that events a node
//! still needed were trimmed away.
//!
//! Herald only removes entries by trimming the oldest (`MAXLEN ~`), so the stream always holds a
//! contiguous tail of everything ever added. Every event after a position `p` is still there if
//! nothing was ever trimmed (`entries-added == length`, Redis 7.0+), or if `p` is at or after
//! the id just before the first retained entry. Otherwise something after `p` may be gone.
//! (Trimming does not move `max-deleted-entry-id`, so that field cannot be used.) The one
//! imprecision is on the safe side: a `p` that is exactly the last trimmed entry lost nothing but
//! is reported as too old, so the client gets `herald.missed` and refetches; an event is never
//! skipped silently.
//!
//! A position newer than anything the stream ever generated means Redis lost the stream
//! (restarted without persistence): that counts as "not retained" too.
//!
//! That one test decides both "can this resume be served from Redis" and "did this node fall
//! behind further than the stream reaches".

use herald_core::EventId;
use redis::Value;

use crate::entry;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamInfo {
    /// The id of the newest entry ever added (0-0 for a stream that does not exist yet).
    pub last_generated: EventId,
    /// The oldest event still in the stream, the first of its oldest entry (`None` if it is
    /// empty).
    pub first_entry: Option<EventId>,
    /// Entries ever added minus entries still there: how many were trimmed.
    pub trimmed: u64,
    /// The sequence number of the newest event (Herald numbers its events 1, 2, 3…; each entry
    /// carries its last one's): how many events the stream ever had.
    pub newest_seq: u64,
}

impl StreamInfo {
    /// Is every event after `position` still in the stream?
    pub fn retains_everything_after(&self, position: EventId) -> bool {
        if position > self.last_generated {
            // Redis never generated this id: it lost the stream (restart without persistence,
            // FLUSHALL), and whatever followed `position` before that is gone with it.
            return false;
        }
        if self.trimmed == 0 {
            return true;
        }
        // Everything after `position` is retained exactly when it is at or after the id just
        // before the oldest retained entry.
        position >= self.resume_point()
    }

    /// The position from which a node that fell too far behind goes on: just before the oldest
    /// retained entry (so that entry is the next one it reads).
    pub fn resume_point(&self) -> EventId {
        match self.first_entry {
            Some(first) => just_before(first),
            None => self.last_generated,
        }
    }

    /// Reads the reply of `XINFO STREAM key`. A missing key (`ERR no such key`) is an empty
    /// stream, which the caller maps to `Default`.
    pub fn from_reply(reply: &Value) -> Result<Self, String> {
        let pairs: Vec<(&Value, &Value)> = match reply {
            Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
            Value::Array(items) => items
                .chunks_exact(2)
                .map(|pair| (&pair[0], &pair[1]))
                .collect(),
            other => return Err(format!("unexpected XINFO reply: {other:?}")),
        };
        let mut last_generated = None;
        let (mut first_entry, mut newest_seq) = (None, None);
        let (mut length, mut added) = (None, None);
        for (key, value) in pairs {
            let Some(key) = text(key) else { continue };
            match key.as_str() {
                "last-generated-id" => last_generated = Some(stream_id(&key, value)?),
                "first-entry" => {
                    first_entry = match value {
                        Value::Array(entry) => match entry.first() {
                            Some(id) => {
                                let last = stream_id(&key, id)?;
                                let count = fields_of(entry).map_or(1, entry::count_in);
                                Some(EventId::new(last.ms, last.seq.saturating_sub(count - 1)))
                            }
                            None => None,
                        },
                        _ => None,
                    }
                }
                "last-entry" => {
                    if let Value::Array(entry) = value {
                        newest_seq = fields_of(entry).and_then(sequence_number);
                    }
                }
                "length" => length = integer(value),
                "entries-added" => added = integer(value),
                _ => {}
            }
        }
        let (Some(last_generated), Some(length), Some(added)) = (last_generated, length, added)
        else {
            return Err(
                "XINFO reply lacks last-generated-id, length or entries-added (Redis 7.0+ needed)"
                    .into(),
            );
        };
        Ok(StreamInfo {
            last_generated,
            first_entry,
            trimmed: added.saturating_sub(length),
            // Entries from before Herald numbered events were one event each.
            newest_seq: newest_seq.unwrap_or(added),
        })
    }
}

/// The greatest id smaller than `id`: a position from which `id` is the next entry.
pub(crate) fn just_before(id: EventId) -> EventId {
    if id.seq > 0 {
        EventId::new(id.ms, id.seq - 1)
    } else {
        EventId::new(id.ms.saturating_sub(1), u64::MAX)
    }
}

/// The field list of an entry as `XINFO STREAM` shows it: `[id, [field, value, ...]]`.
fn fields_of(entry: &[Value]) -> Option<&[Value]> {
    match entry.get(1) {
        Some(Value::Array(fields)) => Some(fields),
        _ => None,
    }
}

/// The `n` field of an entry's field list.
fn sequence_number(fields: &[Value]) -> Option<u64> {
    fields
        .chunks_exact(2)
        .find(|pair| text(&pair[0]).as_deref() == Some("n"))
        .and_then(|pair| integer(&pair[1]))
}

/// `XINFO STREAM key`.
pub(crate) fn xinfo(key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("XINFO");
    cmd.arg("STREAM").arg(key);
    cmd
}

fn stream_id(key: &str, value: &Value) -> Result<EventId, String> {
    text(value)
        .and_then(|t| t.parse::<EventId>().ok())
        .ok_or_else(|| format!("XINFO {key} is not a stream id: {value:?}"))
}

fn integer(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other).and_then(|t| t.parse().ok()),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// Is this error Redis saying the stream key does not exist yet?
pub(crate) fn is_no_such_key(error: &redis::RedisError) -> bool {
    error.to_string().contains("no such key")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn reply(length: i64, added: i64, first: Option<&str>) -> Value {
        Value::Array(vec![
            bulk("length"),
            Value::Int(length),
            bulk("last-generated-id"),
            bulk("10-2"),
            bulk("entries-added"),
            Value::Int(added),
            bulk("first-entry"),
            match first {
                Some(id) => Value::Array(vec![bulk(id), Value::Array(vec![])]),
                None => Value::Nil,
            },
        ])
    }

    #[test]
    fn untrimmed_stream_retains_everything() {
        let info = StreamInfo::from_reply(&reply(3, 3, Some("8-0"))).unwrap();
        assert_eq!(info.last_generated, EventId::new(10, 2));
        assert_eq!(info.trimmed, 0);
        assert!(info.retains_everything_after(EventId::new(1, 0)));
    }

    #[test]
    fn trimmed_stream_retains_only_from_its_first_entry() {
        let info = StreamInfo::from_reply(&reply(3, 9, Some("8-0"))).unwrap();
        assert_eq!(info.first_entry, Some(EventId::new(8, 0)));
        assert!(info.retains_everything_after(EventId::new(8, 0)));
        assert!(info.retains_everything_after(EventId::new(9, 0)));
        assert!(!info.retains_everything_after(EventId::new(7, 5)));
        assert_eq!(info.resume_point(), EventId::new(7, u64::MAX));
        // After a gap the reader goes on from the resume point: that must not be a gap again.
        assert!(info.retains_everything_after(info.resume_point()));
    }

    #[test]
    fn an_oldest_entry_of_several_events_retains_its_first() {
        let mut listed = reply(3, 9, None);
        let Value::Array(items) = &mut listed else {
            unreachable!()
        };
        items[7] = Value::Array(vec![
            bulk("8-4"),
            Value::Array(vec![
                bulk("events"),
                bulk("{}\n{}\n{}"),
                bulk("n"),
                bulk("30"),
            ]),
        ]);
        items.push(bulk("last-entry"));
        items.push(Value::Array(vec![
            bulk("10-2"),
            Value::Array(vec![bulk("event"), bulk("{}"), bulk("n"), bulk("41")]),
        ]));
        let info = StreamInfo::from_reply(&listed).unwrap();
        assert_eq!(info.first_entry, Some(EventId::new(8, 2)));
        assert_eq!(info.newest_seq, 41);
        // Inside the oldest entry is still retained; just before it too; before that not.
        assert!(info.retains_everything_after(EventId::new(8, 3)));
        assert_eq!(info.resume_point(), EventId::new(8, 1));
        assert!(!info.retains_everything_after(EventId::new(8, 0)));
    }

    #[test]
    fn a_position_redis_never_generated_means_it_lost_the_stream() {
        let info = StreamInfo::default();
        assert!(info.retains_everything_after(EventId::default()));
        assert!(!info.retains_everything_after(EventId::new(5, 0)));
        assert_eq!(info.resume_point(), EventId::default());
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(StreamInfo::from_reply(&Value::Int(1)).is_err());
        assert!(StreamInfo::from_reply(&Value::Array(vec![])).is_err());
    }
}
