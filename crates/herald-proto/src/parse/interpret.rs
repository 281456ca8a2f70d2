//! The WHATWG rules for one complete line: comments, fields, and dispatch on a blank line.
//!
//! Lines arrive as raw bytes (without their line break) and are interpreted on bytes; only the
//! values that become strings are UTF-8 decoded, with invalid sequences replaced by U+FFFD. This
//! is equivalent to decoding first, as the spec describes: every byte the rules look at (`:`,
//! space, LF, NUL, digits) is ASCII, and ASCII bytes are never swallowed into a replaced invalid
//! sequence, so splitting before or after decoding gives the same pieces. Working on bytes lets
//! the data buffer stay raw and be decoded once per event instead of once per line.

use std::collections::VecDeque;
use std::mem;

use super::item::{Item, MessageEvent};
use crate::error::ParseError;

/// The per-stream buffers of the spec plus the queue of items produced so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Interpreter {
    /// The "data buffer": raw bytes of each `data` value followed by LF.
    data: Vec<u8>,
    /// The "event type buffer".
    event_type: String,
    /// The "last event ID buffer": set by `id:`, survives dispatch.
    id_buffer: String,
    /// The "last event ID string": copied from the buffer at each dispatch.
    last_event_id: String,
    /// The latest accepted `retry:` value.
    retry: Option<u64>,
    /// Items waiting to be popped, oldest first.
    items: VecDeque<Item>,
}

impl Interpreter {
    pub(crate) fn data_len(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    pub(crate) fn retry(&self) -> Option<u64> {
        self.retry
    }

    pub(crate) fn pop(&mut self) -> Option<Item> {
        self.items.pop_front()
    }

    pub(crate) fn drain(&mut self) -> std::collections::vec_deque::Drain<'_, Item> {
        self.items.drain(..)
    }

    /// Forgets the block being built, as at the end of a stream. Keeps the last event ID (the
    /// buffer restarts from it, as browsers do on reconnect) and the retry value.
    pub(crate) fn discard_block(&mut self) {
        self.data = Vec::new();
        self.event_type.clear();
        self.id_buffer.clone_from(&self.last_event_id);
    }

    /// Applies one complete line. Fails only if a `data` value would push the data buffer past
    /// `limit` bytes; the buffer is then left as it was.
    pub(crate) fn line(&mut self, line: &[u8], limit: usize) -> Result<(), ParseError> {
        if line.is_empty() {
            self.dispatch();
            return Ok(());
        }
        if let Some(text) = line.strip_prefix(b":") {
            let text = decode(strip_one_space(text)).into_owned();
            self.items.push_back(Item::Comment(text));
            return Ok(());
        }
        let (name, value) = split_field(line);
        self.field(name, value, limit)
    }

    fn field(&mut self, name: &[u8], value: &[u8], limit: usize) -> Result<(), ParseError> {
        match name {
            b"event" => {
                self.event_type.clear();
                self.event_type.push_str(&decode(value));
            }
            b"data" => self.append_data(value, limit)?,
            // An id containing NUL is ignored entirely (it could not be sent back in a header).
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.push_str(&decode(value));
            }
            b"retry" => {
                if let Some(ms) = parse_retry(value) {
                    self.retry = Some(ms);
                    self.items.push_back(Item::Retry(ms));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn append_data(&mut self, value: &[u8], limit: usize) -> Result<(), ParseError> {
        let needed = self
            .data
            .len()
            .saturating_add(value.len())
            .saturating_add(1);
        if needed > limit {
            return Err(ParseError::BufferLimit { limit });
        }
        self.data.extend_from_slice(value);
        self.data.push(b'\n');
        Ok(())
    }

    /// The spec's "dispatch the event" on a blank line.
    fn dispatch(&mut self) {
        // Even a block without data moves the last event ID: that is what an id-only block is for.
        self.last_event_id.clone_from(&self.id_buffer);
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = mem::take(&mut self.data);
        // Every data field appended an LF; the last one is a separator for nothing.
        if data.last() == Some(&b'\n') {
            data.pop();
        }
        let event_type = if self.event_type.is_empty() {
            String::from("message")
        } else {
            mem::take(&mut self.event_type)
        };
        self.items.push_back(Item::Event(MessageEvent {
            event_type,
            data: decode_owned(data),
            last_event_id: self.last_event_id.clone(),
        }));
    }
}

/// Splits `name:value` at the first colon; a line without a colon is a name with empty value.
fn split_field(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b':') {
        Some(colon) => {
            let (name, rest) = line.split_at(colon);
            (name, strip_one_space(rest.get(1..).unwrap_or(&[])))
        }
        None => (line, &[]),
    }
}

/// Removes exactly one leading U+0020 SPACE, if there is one.
fn strip_one_space(value: &[u8]) -> &[u8] {
    value.strip_prefix(b" ").unwrap_or(value)
}

/// `retry:` is honoured only for a non-empty run of ASCII digits that fits in a `u64`.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &byte| {
        let digit = char::from(byte).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn decode(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Decodes without copying when the bytes are already valid UTF-8 (the common case).
fn decode_owned(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(invalid) => String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    fn run(lines: &[&str]) -> (Vec<Item>, Interpreter) {
        let mut interpreter = Interpreter::default();
        for line in lines {
            interpreter
                .line(line.as_bytes(), LIMIT)
                .expect("within limit");
        }
        let items = interpreter.drain().collect();
        (items, interpreter)
    }

    fn event(event_type: &str, data: &str, id: &str) -> Item {
        Item::Event(MessageEvent {
            event_type: event_type.into(),
            data: data.into(),
            last_event_id: id.into(),
        })
    }

    #[test]
    fn field_splitting() {
        assert_eq!(split_field(b"data: x"), (&b"data"[..], &b"x"[..]));
        assert_eq!(split_field(b"data:x"), (&b"data"[..], &b"x"[..]));
        assert_eq!(split_field(b"data:  x"), (&b"data"[..], &b" x"[..]));
        assert_eq!(split_field(b"data:"), (&b"data"[..], &b""[..]));
        assert_eq!(split_field(b"data"), (&b"data"[..], &b""[..]));
        assert_eq!(split_field(b"a:b:c"), (&b"a"[..], &b"b:c"[..]));
    }

    #[test]
    fn retry_values() {
        assert_eq!(parse_retry(b"0"), Some(0));
        assert_eq!(parse_retry(b"0050"), Some(50));
        assert_eq!(parse_retry(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_retry(b"18446744073709551616"), None);
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"-1",
            b"1.5",
            b"1x",
            b"+1",
            "١".as_bytes(),
        ] {
            assert_eq!(parse_retry(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dispatch_rules() {
        let (items, _) = run(&["event: a", "data: 1", "data: 2", "", "data: 3", ""]);
        assert_eq!(items, [event("a", "1\n2", ""), event("message", "3", "")]);
    }

    #[test]
    fn block_without_data_dispatches_nothing_but_moves_the_id() {
        let (items, interpreter) = run(&["event: a", "id: 5", ""]);
        assert!(items.is_empty());
        assert_eq!(interpreter.last_event_id(), "5");
        // The event type was reset by that dispatch.
        let (items, _) = run(&["event: a", "", "data: x", ""]);
        assert_eq!(items, [event("message", "x", "")]);
    }

    #[test]
    fn id_rules() {
        let (items, _) = run(&[
            "id: 1", "data: a", "", "data: b", "", "id: 2\0", "data: c", "", "id", "data: d", "",
        ]);
        assert_eq!(
            items,
            [
                event("message", "a", "1"),
                event("message", "b", "1"),
                event("message", "c", "1"),
                event("message", "d", "")
            ]
        );
    }

    #[test]
    fn comments_and_retry_are_reported_in_order() {
        let (items, interpreter) = run(&[":  two", ":x", ":", "retry: 10", "retry: x"]);
        assert_eq!(
            items,
            [
                Item::Comment(" two".into()),
                Item::Comment("x".into()),
                Item::Comment(String::new()),
                Item::Retry(10)
            ]
        );
        assert_eq!(interpreter.retry(), Some(10));
    }

    #[test]
    fn data_limit_is_checked_before_growing() {
        let mut interpreter = Interpreter::default();
        assert_eq!(interpreter.line(b"data: 1234", 5), Ok(()));
        assert_eq!(interpreter.data_len(), 5);
        assert_eq!(
            interpreter.line(b"data:", 5),
            Err(ParseError::BufferLimit { limit: 5 })
        );
        assert_eq!(interpreter.data_len(), 5);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut interpreter = Interpreter::default();
        for line in [&b"event: \xC0"[..], b"data: a\xFFb", b""] {
            interpreter.line(line, LIMIT).expect("within limit");
        }
        assert_eq!(interpreter.pop(), Some(event("\u{FFFD}", "a\u{FFFD}b", "")));
    }
}
