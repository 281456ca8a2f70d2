//! One server-sent event as the server wants to send it, and its encoding.
//!
//! [`Event`] is plain data with public fields plus a small builder, so callers can build it
//! fluently or adjust fields directly. Encoding validates first and only then writes, so a
//! rejected event never leaves half a block in the output buffer (a half block would corrupt
//! every later event on the same stream).
//!
//! Field order on the wire is: comments, `event:`, `id:`, `retry:`, `data:` lines, blank line.
//! Comments go first so a block can carry a note without splitting it; the order of the other
//! fields does not matter to parsers, but a fixed order makes the bytes predictable for tests.

use crate::encode::{write_comment, write_data, write_field, write_retry};
use crate::error::EncodeError;
use crate::lines::split_lines;
use crate::validate::{validate_event_name, validate_id};

/// A server-sent event to encode.
///
/// Encoding always dispatches a message on the client, even with empty `data` (it arrives as
/// the empty string). To move the client's `lastEventId` without dispatching anything, use
/// [`write_id_only`](crate::write_id_only) instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` type; `None` means the client sees the default type `message`.
    pub event: Option<String>,
    /// The payload. Any text: line breaks are split into several `data:` lines, and the client
    /// gets them back joined with LF (CRLF and CR are normalised to LF).
    pub data: String,
    /// The `id:`; `None` leaves the client's last event ID as it was, `Some("")` resets it.
    pub id: Option<String>,
    /// The `retry:` reconnection delay in milliseconds.
    pub retry: Option<u64>,
    /// Comment lines written before the fields; ignored by `EventSource`.
    pub comments: Vec<String>,
}

impl Event {
    /// An event of the default type carrying `data`.
    pub fn new(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// Sets the `event:` type (validated when encoding).
    #[must_use]
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.event = Some(name.into());
        self
    }

    /// Sets the `id:` (validated when encoding).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the `retry:` reconnection delay in milliseconds.
    #[must_use]
    pub fn retry(mut self, ms: u64) -> Self {
        self.retry = Some(ms);
        self
    }

    /// Adds a comment; may be called several times, comments keep their order.
    #[must_use]
    pub fn comment(mut self, text: impl Into<String>) -> Self {
        self.comments.push(text.into());
        self
    }

    /// Checks the fields that cannot hold arbitrary text: the event name and the id.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if let Some(name) = &self.event {
            validate_event_name(name)?;
        }
        if let Some(id) = &self.id {
            validate_id(id)?;
        }
        Ok(())
    }

    /// Encodes the event as one complete block into a new buffer.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the event as one complete block (ending with a blank line) to `out`.
    ///
    /// On error `out` is left exactly as it was: everything is validated before the first byte
    /// is written.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.validate()?;
        out.reserve(self.size_hint());
        for comment in &self.comments {
            write_comment(out, comment);
        }
        self.as_ref().encode_into(out)
    }

    /// The event's fields borrowed (comments are not part of [`EventRef`]).
    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            event: self.event.as_deref(),
            data: &self.data,
            id: self.id.as_deref(),
            retry: self.retry,
        }
    }

    /// A cheap estimate of the encoded size, so that encoding usually allocates once.
    fn size_hint(&self) -> usize {
        let comments: usize = self.comments.iter().map(|c| c.len() + 3).sum();
        comments + self.as_ref().size_hint()
    }
}

/// An event whose fields are borrowed: what the hub uses to encode each published event once,
/// straight from the publication, without copying anything into an [`Event`] first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub event: Option<&'a str>,
    pub data: &'a str,
    pub id: Option<&'a str>,
    pub retry: Option<u64>,
}

impl EventRef<'_> {
    /// Appends the event as one complete block (ending with a blank line) to `out`; validates
    /// the name and id first and writes nothing on error.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if let Some(name) = self.event {
            validate_event_name(name)?;
        }
        if let Some(id) = self.id {
            validate_id(id)?;
        }
        out.reserve(self.size_hint());
        if let Some(name) = self.event {
            write_field(out, "event", name);
        }
        if let Some(id) = self.id {
            write_field(out, "id", id);
        }
        if let Some(ms) = self.retry {
            write_retry(out, ms);
        }
        write_data(out, self.data);
        out.push(b'\n');
        Ok(())
    }

    /// A cheap estimate of the encoded size, so that encoding usually allocates once.
    pub fn size_hint(&self) -> usize {
        let text = |s: Option<&str>| s.map_or(0, |s| s.len() + 8);
        text(self.event) + text(self.id) + 28 + self.data.len() + 8
    }

    /// The exact number of bytes [`EventRef::encode_into`] appends for a valid event. Data with
    /// many line breaks encodes larger than it is (each line gets a `data:` prefix), which is
    /// what bounds on queued and retained bytes must count.
    pub fn encoded_len(&self) -> usize {
        let field = |name: &str, value: &str| {
            name.len() + 2 + if value.is_empty() { 0 } else { value.len() + 1 }
        };
        let mut len = 1; // the blank line
        if let Some(name) = self.event {
            len += field("event", name);
        }
        if let Some(id) = self.id {
            len += field("id", id);
        }
        if let Some(ms) = self.retry {
            len += "retry: \n".len() + ms.checked_ilog10().map_or(1, |digits| digits as usize + 1);
        }
        len + split_lines(self.data)
            .map(|line| field("data", line))
            .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InvalidReason;

    fn text(event: &Event) -> String {
        String::from_utf8(event.encode().expect("valid event")).expect("encoder writes UTF-8")
    }

    #[test]
    fn minimal_event() {
        assert_eq!(text(&Event::new("hello")), "data: hello\n\n");
    }

    #[test]
    fn empty_event_still_dispatches() {
        assert_eq!(text(&Event::new("")), "data:\n\n");
        assert_eq!(text(&Event::default()), "data:\n\n");
    }

    #[test]
    fn fields_in_documented_order() {
        let event = Event::new("a\r\nb")
            .retry(3000)
            .id("7")
            .event("update")
            .comment("first")
            .comment("second");
        assert_eq!(
            text(&event),
            ": first\n: second\nevent: update\nid: 7\nretry: 3000\ndata: a\ndata: b\n\n"
        );
    }

    #[test]
    fn empty_id_resets() {
        assert_eq!(text(&Event::new("x").id("")), "id:\ndata: x\n\n");
    }

    #[test]
    fn invalid_name_leaves_out_unchanged() {
        for name in ["", "a\nb", "a\rb", "a\0b"] {
            let mut out = b"kept".to_vec();
            let err = Event::new("x").event(name).encode_into(&mut out);
            assert!(
                matches!(err, Err(EncodeError::InvalidEventName { .. })),
                "{name:?}"
            );
            assert_eq!(out, b"kept");
        }
    }

    #[test]
    fn invalid_id_leaves_out_unchanged() {
        for id in ["a\nb", "a\rb", "a\r\nb", "a\0b"] {
            let mut out = b"kept".to_vec();
            let err = Event::new("x").comment("c").id(id).encode_into(&mut out);
            assert_eq!(
                err,
                Err(EncodeError::InvalidId {
                    reason: InvalidReason::ForbiddenChar
                }),
                "{id:?}"
            );
            assert_eq!(out, b"kept");
        }
    }

    #[test]
    fn encoded_len_is_exact() {
        for (name, data, id, retry) in [
            (None, "", None, None),
            (Some("update"), "a\r\nb\n\n", Some("1-0"), Some(0)),
            (None, "\n\r\r\n", Some(""), Some(9)),
            (Some("x"), "line", None, Some(1000)),
            (None, " lead", Some("42-7"), Some(u64::MAX)),
        ] {
            let event = EventRef {
                event: name,
                data,
                id,
                retry,
            };
            let mut out = Vec::new();
            event.encode_into(&mut out).expect("valid");
            assert_eq!(event.encoded_len(), out.len(), "{event:?}");
        }
    }

    #[test]
    fn encode_into_appends() {
        let mut out = Vec::new();
        Event::new("1").encode_into(&mut out).expect("valid");
        Event::new("2").encode_into(&mut out).expect("valid");
        assert_eq!(out, b"data: 1\n\ndata: 2\n\n");
    }
}
