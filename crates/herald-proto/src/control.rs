//! The hub's own blocks on the wire: the opening of a stream, heartbeats, reconnect hints and the
//! reserved `herald.missed` event. Everything a stream carries besides published events is
//! written here, so the whole wire format stays in this crate.
//!
//! Comment and `retry:` lines are written *without* a blank line after them. The SSE rules act on
//! both as they are read, so nothing is lost, and a blank line would end a block that dispatches
//! nothing in a browser but does in parsers that fire on every blank line (such as
//! `@microsoft/fetch-event-source`, whose `onmessage` would see an empty message for every
//! heartbeat). The lines simply join the next block, which a parser reads the same way.

use crate::encode::{write_comment, write_retry};

/// The reserved event a stream receives when the hub cannot replay what its client missed: the
/// client must refetch its state. Its data is `{"reason": ..., "lastEventId": ...}`.
pub const MISSED_EVENT: &str = "herald.missed";

/// A heartbeat: one empty comment line, keeping an idle stream and every proxy on its way alive.
pub const HEARTBEAT: &[u8] = b":\n";

/// Longest echo of a client's `Last-Event-ID` in [`write_missed`] (it is client input).
pub const MISSED_ECHO_CHARS: usize = 128;

/// The first bytes of every stream: a comment (flushed at once, so clients and proxies see the
/// stream open before any event exists) and the reconnection delay to use.
pub fn write_opening(out: &mut Vec<u8>, retry_ms: u64) {
    write_comment(out, "herald");
    write_retry(out, retry_ms);
}

/// Why the stream is about to end, as a comment, and the delay after which to come back.
pub fn write_reconnect_hint(out: &mut Vec<u8>, why: &str, retry_ms: u64) {
    write_comment(out, why);
    write_retry(out, retry_ms);
}

/// The `herald.missed` event: `reason` (a fixed word such as `history_expired`) and the
/// client's last event id, cut to [`MISSED_ECHO_CHARS`] characters.
pub fn write_missed(out: &mut Vec<u8>, reason: &str, last_event_id: Option<&str>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(MISSED_EVENT.as_bytes());
    out.extend_from_slice(b"\ndata: {\"reason\":");
    write_json_string(out, reason);
    out.extend_from_slice(b",\"lastEventId\":");
    match last_event_id {
        Some(id) => {
            let end = id
                .char_indices()
                .nth(MISSED_ECHO_CHARS)
                .map_or(id.len(), |(at, _)| at);
            write_json_string(out, &id[..end]);
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n\n");
}

/// `text` as a JSON string. Control characters are escaped, so the result is one line.
fn write_json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Item, Parser};

    fn items(bytes: &[u8]) -> Vec<Item> {
        let mut parser = Parser::new();
        parser.feed(bytes).unwrap();
        parser.drain().collect()
    }

    #[test]
    fn opening_and_hints_dispatch_nothing_and_end_no_block() {
        let mut out = Vec::new();
        write_opening(&mut out, 3000);
        assert_eq!(out, b": herald\nretry: 3000\n");
        out.extend_from_slice(HEARTBEAT);
        write_reconnect_hint(&mut out, "shutting down", 4500);
        assert!(!out.windows(2).any(|w| w == b"\n\n"), "no blank line");
        assert_eq!(
            items(&out),
            [
                Item::Comment("herald".into()),
                Item::Retry(3000),
                Item::Comment(String::new()),
                Item::Comment("shutting down".into()),
                Item::Retry(4500),
            ]
        );
    }

    #[test]
    fn missed_is_one_event_with_json_data_and_a_bounded_echo() {
        let mut out = Vec::new();
        write_missed(&mut out, "unknown_id", Some("a\"b\\c\nd"));
        let [Item::Event(event)] = &items(&out)[..] else {
            panic!("{out:?}")
        };
        assert_eq!(event.event_type, MISSED_EVENT);
        assert_eq!(
            event.data,
            r#"{"reason":"unknown_id","lastEventId":"a\"b\\c\u000ad"}"#
        );
        let mut out = Vec::new();
        write_missed(&mut out, "history_expired", Some(&"é".repeat(500)));
        let [Item::Event(event)] = &items(&out)[..] else {
            panic!()
        };
        assert_eq!(event.data.matches('é').count(), MISSED_ECHO_CHARS);
        let mut out = Vec::new();
        write_missed(&mut out, "history_expired", None);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("\"lastEventId\":null"));
    }
}
