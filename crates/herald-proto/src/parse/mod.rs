//! An incremental parser for `text/event-stream`, following the WHATWG HTML rules exactly.
//!
//! Bytes arrive in arbitrary chunks (TCP segments, HTTP/2 frames), so the parser must give the
//! same result however the stream is cut: a BOM, a multi-byte character or a CRLF may straddle
//! two chunks. It therefore keeps only three pieces of framing state between calls: whether the
//! stream start has been checked for a BOM ([`bom`]), the bytes of the current incomplete line,
//! and whether the previous chunk ended in CR (so a following LF is not a second, empty line,
//! which would dispatch spuriously). Complete lines go to the [`interpret`] rules, which queue
//! [`Item`]s for the caller to pop.
//!
//! Memory is bounded because a peer controls what we buffer: the incomplete line plus the
//! pending data buffer may not exceed the limit. The limit is checked on the size a whole line
//! reaches, never on chunk boundaries, so whether a stream fails does not depend on chunking.

mod bom;
mod interpret;
mod item;

pub use item::{Item, MessageEvent};

use crate::error::ParseError;
use bom::BomStripper;
use interpret::Interpreter;

/// The default bound on buffered bytes: 1 MiB.
const DEFAULT_MAX_BUFFER: usize = 1 << 20;

/// Incremental SSE parser: [`feed`](Parser::feed) bytes, then pop [`Item`]s with
/// [`next_item`](Parser::next_item).
///
/// A block not yet ended by a blank line is never dispatched: when the stream ends it is lost, as
/// in `EventSource`. Call [`finish`](Parser::finish) to drop it explicitly and start a new stream.
#[derive(Debug, Clone)]
pub struct Parser {
    max_buffer: usize,
    bom: BomStripper,
    /// Bytes of the current line received so far, without any line break.
    line: Vec<u8>,
    /// The last byte processed was a CR that ended a line; an LF right after it belongs to it.
    after_cr: bool,
    interpreter: Interpreter,
    /// Set by the first buffer-limit error; every later `feed` returns it.
    poisoned: Option<ParseError>,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// A parser that buffers at most 1 MiB (incomplete line plus pending data).
    pub fn new() -> Self {
        Self::with_max_buffer(DEFAULT_MAX_BUFFER)
    }

    /// A parser that buffers at most `bytes` (incomplete line plus pending data).
    pub fn with_max_buffer(bytes: usize) -> Self {
        Self {
            max_buffer: bytes,
            bom: BomStripper::new(),
            line: Vec::new(),
            after_cr: false,
            interpreter: Interpreter::default(),
            poisoned: None,
        }
    }

    /// Processes `chunk`; complete items queue up for [`next_item`](Parser::next_item).
    ///
    /// On error, items from lines before the offending one are still queued, and the parser is
    /// poisoned: it has dropped its buffers and every later call returns the same error.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ParseError> {
        if let Some(error) = self.poisoned {
            return Err(error);
        }
        let (replay, rest) = self.bom.strip(chunk);
        let result = self.feed_lines(replay).and_then(|()| self.feed_lines(rest));
        if let Err(error) = result {
            self.poison(error);
        }
        result
    }

    /// Pops the oldest queued item.
    pub fn next_item(&mut self) -> Option<Item> {
        self.interpreter.pop()
    }

    /// Pops all queued items, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = Item> + '_ {
        self.interpreter.drain()
    }

    /// The "last event ID string": what a reconnecting client sends as `Last-Event-ID`. It is
    /// updated when a block is dispatched, including blocks without data (id-only blocks).
    pub fn last_event_id(&self) -> &str {
        self.interpreter.last_event_id()
    }

    /// The latest accepted `retry:` value in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.interpreter.retry()
    }

    /// Bytes currently buffered: the incomplete line plus the pending data buffer. Never more
    /// than the configured maximum.
    pub fn buffered_len(&self) -> usize {
        self.line.len().saturating_add(self.interpreter.data_len())
    }

    /// Ends the current stream, e.g. because the connection closed.
    ///
    /// The incomplete line and the undispatched block are discarded, as the spec requires at end
    /// of stream, and the parser is ready for the next connection's stream (which may start with
    /// its own BOM). Queued items, [`last_event_id`](Parser::last_event_id) and
    /// [`retry`](Parser::retry) are kept, and the next stream's events inherit the last event ID
    /// until it sends an `id:` of its own, as browsers do. A poisoned parser becomes usable again.
    pub fn finish(&mut self) {
        self.bom = BomStripper::new();
        self.line = Vec::new();
        self.after_cr = false;
        self.interpreter.discard_block();
        self.poisoned = None;
    }

    /// Splits `bytes` into lines, completing the buffered line first.
    fn feed_lines(&mut self, mut bytes: &[u8]) -> Result<(), ParseError> {
        while !bytes.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if let Some(after_lf) = bytes.strip_prefix(b"\n") {
                    bytes = after_lf;
                    continue;
                }
            }
            let Some(end) = find_line_break(bytes) else {
                return self.buffer_partial_line(bytes);
            };
            let (fragment, rest) = bytes.split_at(end);
            let Some((&terminator, rest)) = rest.split_first() else {
                // `find_line_break` returned an index inside `bytes`, so this is unreachable;
                // treating the fragment as incomplete keeps the parser panic-free regardless.
                return self.buffer_partial_line(fragment);
            };
            self.after_cr = terminator == b'\r';
            bytes = rest;
            self.complete_line(fragment)?;
        }
        Ok(())
    }

    /// Holds the start of a line whose end has not arrived yet.
    fn buffer_partial_line(&mut self, fragment: &[u8]) -> Result<(), ParseError> {
        self.check_line_fits(fragment.len())?;
        self.line.extend_from_slice(fragment);
        Ok(())
    }

    /// Interprets the buffered start of a line plus its final `fragment`.
    fn complete_line(&mut self, fragment: &[u8]) -> Result<(), ParseError> {
        self.check_line_fits(fragment.len())?;
        if self.line.is_empty() {
            // Common case: the whole line is in this chunk; no copy needed.
            return self.interpreter.line(fragment, self.max_buffer);
        }
        self.line.extend_from_slice(fragment);
        let result = self.interpreter.line(&self.line, self.max_buffer);
        self.line.clear();
        result
    }

    /// Fails if the current line, grown by `extra` bytes, would not fit beside the data buffer.
    fn check_line_fits(&self, extra: usize) -> Result<(), ParseError> {
        if self.buffered_len().saturating_add(extra) > self.max_buffer {
            Err(ParseError::BufferLimit {
                limit: self.max_buffer,
            })
        } else {
            Ok(())
        }
    }

    fn poison(&mut self, error: ParseError) {
        self.poisoned = Some(error);
        // Release the memory; nothing buffered can be used any more.
        self.line = Vec::new();
        self.interpreter.discard_block();
    }
}

/// Position of the first CR or LF.
fn find_line_break(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n' || b == b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(parser: &mut Parser) -> Vec<Item> {
        parser.drain().collect()
    }

    fn message(data: &str) -> Item {
        Item::Event(MessageEvent {
            event_type: "message".into(),
            data: data.into(),
            last_event_id: String::new(),
        })
    }

    #[test]
    fn crlf_split_across_chunks_is_one_break() {
        let mut parser = Parser::new();
        parser.feed(b"data: a\r").expect("fits");
        parser.feed(b"\ndata: b\r").expect("fits");
        parser.feed(b"\n\r").expect("fits");
        parser.feed(b"\n").expect("fits");
        assert_eq!(items(&mut parser), [message("a\nb")]);
    }

    #[test]
    fn bom_split_across_chunks() {
        let mut parser = Parser::new();
        for chunk in [&b"\xEF"[..], b"\xBB", b"\xBF", b"data: x\n\n"] {
            parser.feed(chunk).expect("fits");
        }
        assert_eq!(items(&mut parser), [message("x")]);
    }

    #[test]
    fn multibyte_char_split_across_chunks() {
        let mut parser = Parser::new();
        for chunk in [
            &b"data: caf\xC3"[..],
            b"\xA9 \xF0\x9F",
            b"\x98",
            b"\x80\n\n",
        ] {
            parser.feed(chunk).expect("fits");
        }
        assert_eq!(items(&mut parser), [message("café 😀")]);
    }

    #[test]
    fn unterminated_block_is_never_dispatched() {
        let mut parser = Parser::new();
        parser.feed(b"id: 1\ndata: x\n").expect("fits");
        assert_eq!(parser.next_item(), None);
        assert_eq!(parser.last_event_id(), "");
        parser.finish();
        parser.feed(b"\n").expect("fits");
        assert_eq!(parser.next_item(), None);
    }

    #[test]
    fn finish_starts_a_new_stream() {
        let mut parser = Parser::new();
        parser.feed(b"id: 1\n\ndata: half").expect("fits");
        parser.finish();
        parser.feed(b"\xEF\xBB\xBFdata: next\n\n").expect("fits");
        let expected = Item::Event(MessageEvent {
            event_type: "message".into(),
            data: "next".into(),
            last_event_id: "1".into(),
        });
        assert_eq!(items(&mut parser), [expected]);
    }

    #[test]
    fn limit_counts_line_and_data() {
        let mut parser = Parser::with_max_buffer(16);
        parser.feed(b"data: 0123456789").expect("16 bytes fit");
        assert_eq!(parser.buffered_len(), 16);
        parser.feed(b"\n").expect("fits");
        assert_eq!(parser.buffered_len(), 11);
        assert_eq!(
            parser.feed(b"data: 1234"),
            Err(ParseError::BufferLimit { limit: 16 })
        );
    }

    #[test]
    fn poisoned_parser_keeps_failing_but_keeps_earlier_items() {
        let mut parser = Parser::with_max_buffer(8);
        let error = parser.feed(b"data: a\n\ndata: 0123456789\n\n");
        assert_eq!(error, Err(ParseError::BufferLimit { limit: 8 }));
        assert_eq!(parser.buffered_len(), 0);
        assert_eq!(parser.feed(b"\n"), error);
        assert_eq!(parser.feed(b""), error);
        assert_eq!(items(&mut parser), [message("a")]);
    }

    #[test]
    fn zero_limit_accepts_only_blank_lines() {
        let mut parser = Parser::with_max_buffer(0);
        parser
            .feed(b"\n\r\n\r")
            .expect("blank lines buffer nothing");
        assert!(parser.feed(b"x").is_err());
    }
}
