//! Property tests: the encoder round-trips through the parser, and the parser neither depends on
//! chunking nor panics nor over-buffers on arbitrary bytes.
//!
//! Arbitrary bytes are also checked against `reference`, a deliberately naive model of the
//! WHATWG rules (whole-input, string-based, no incremental state), so the incremental parser is
//! compared with a second, independent reading of the spec.

use herald_proto::{
    validate_event_name, validate_id, Event, Item, MessageEvent, ParseError, Parser,
};
use proptest::prelude::*;

const DEFAULT_MAX: usize = 1 << 20;

/// Text biased towards the characters that matter to SSE framing.
fn text() -> impl Strategy<Value = String> {
    let interesting = prop_oneof![
        Just('\r'),
        Just('\n'),
        Just('\0'),
        Just(' '),
        Just(':'),
        Just('\u{FEFF}'),
        Just('é'),
        proptest::char::range('a', 'z'),
        any::<char>(),
    ];
    proptest::collection::vec(interesting, 0..12).prop_map(|chars| chars.into_iter().collect())
}

fn any_event() -> impl Strategy<Value = Event> {
    (
        proptest::option::of(text()),
        text(),
        proptest::option::of(text()),
        proptest::option::of(any::<u64>()),
        proptest::collection::vec(text(), 0..3),
    )
        .prop_map(|(event, data, id, retry, comments)| Event {
            event,
            data,
            id,
            retry,
            comments,
        })
}

/// Removes what the encoder refuses, so the event is valid.
fn sanitize(mut event: Event) -> Event {
    let clean = |s: &str| s.replace(['\r', '\n', '\0'], "");
    event.event = event.event.map(|e| clean(&e)).filter(|e| !e.is_empty());
    event.id = event.id.map(|i| clean(&i));
    event
}

fn valid_event() -> impl Strategy<Value = Event> {
    any_event().prop_map(sanitize)
}

/// How a parser sees text after the encoder split it into lines and the parser joined them.
fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// The items a fresh parser must produce for `events` encoded back to back.
fn expected_items(events: &[Event]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut last_id = String::new();
    for event in events {
        for comment in &event.comments {
            items.extend(
                normalise(comment)
                    .split('\n')
                    .map(|line| Item::Comment(line.to_owned())),
            );
        }
        if let Some(ms) = event.retry {
            items.push(Item::Retry(ms));
        }
        if let Some(id) = &event.id {
            last_id.clone_from(id);
        }
        items.push(Item::Event(MessageEvent {
            event_type: event.event.clone().unwrap_or_else(|| "message".to_owned()),
            data: normalise(&event.data),
            last_event_id: last_id.clone(),
        }));
    }
    items
}

/// Everything observable after feeding a whole input.
#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<Item>,
    error: Option<ParseError>,
    last_event_id: String,
}

/// Feeds `chunks`, checking the buffer bound after every call.
fn feed<'a>(max: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = Parser::with_max_buffer(max);
    let mut items = Vec::new();
    let mut error = None;
    for chunk in chunks {
        let result = parser.feed(chunk);
        assert!(
            parser.buffered_len() <= max,
            "buffered {} > {max}",
            parser.buffered_len()
        );
        if let Some(first) = error {
            assert_eq!(result, Err(first), "a poisoned parser must keep failing");
        } else {
            error = result.err();
        }
        items.extend(parser.drain());
    }
    Outcome {
        items,
        error,
        last_event_id: parser.last_event_id().to_owned(),
    }
}

/// Cuts `bytes` at the given positions (taken modulo the length, in any order).
fn cut(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

/// A straightforward model of the WHATWG rules over a complete input, plus this crate's buffer
/// limit (raw line length plus raw data buffer length).
fn reference(bytes: &[u8], max: usize) -> Outcome {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let (lines, tail) = raw_lines(bytes);
    let mut model = Model::default();
    for raw in lines {
        if raw.len() + model.raw_data_len > max {
            return model.fail(max);
        }
        model.line(raw);
    }
    // The incremental parser holds back up to two bytes at the very start while deciding whether
    // they begin a BOM; those are not counted as line bytes.
    let undecided_bom = bytes.len() < 3 && b"\xEF\xBB\xBF".starts_with(bytes);
    if !undecided_bom && tail.len() + model.raw_data_len > max {
        return model.fail(max);
    }
    model.finish(None)
}

/// Splits raw bytes on CR, LF and CRLF; returns complete lines and the unterminated rest.
fn raw_lines(bytes: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' || bytes[i] == b'\n' {
            lines.push(&bytes[start..i]);
            if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    (lines, &bytes[start..])
}

#[derive(Default)]
struct Model {
    items: Vec<Item>,
    data: String,
    raw_data_len: usize,
    event_type: String,
    id_buffer: String,
    last_event_id: String,
}

impl Model {
    fn line(&mut self, raw: &[u8]) {
        let line = String::from_utf8_lossy(raw);
        if line.is_empty() {
            return self.dispatch();
        }
        if let Some(comment) = line.strip_prefix(':') {
            let comment = comment.strip_prefix(' ').unwrap_or(comment);
            return self.items.push(Item::Comment(comment.to_owned()));
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => self.event_type = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                let prefix = [&b"data: "[..], b"data:", b"data"]
                    .into_iter()
                    .find(|p| raw.starts_with(p));
                self.raw_data_len += raw.len() - prefix.map_or(0, <[u8]>::len) + 1;
            }
            "id" if !value.contains('\0') => self.id_buffer = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.items.push(Item::Retry(ms));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        self.last_event_id = self.id_buffer.clone();
        let data = std::mem::take(&mut self.data);
        let event_type = std::mem::take(&mut self.event_type);
        self.raw_data_len = 0;
        if data.is_empty() {
            return;
        }
        self.items.push(Item::Event(MessageEvent {
            event_type: if event_type.is_empty() {
                "message".to_owned()
            } else {
                event_type
            },
            data: data.strip_suffix('\n').unwrap_or(&data).to_owned(),
            last_event_id: self.last_event_id.clone(),
        }));
    }

    fn fail(self, max: usize) -> Outcome {
        self.finish(Some(ParseError::BufferLimit { limit: max }))
    }

    fn finish(self, error: Option<ParseError>) -> Outcome {
        Outcome {
            items: self.items,
            error,
            last_event_id: self.last_event_id,
        }
    }
}

/// Bytes biased towards SSE syntax, BOM pieces and broken UTF-8.
fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"data".to_vec()),
        Just(b"event".to_vec()),
        Just(b"id".to_vec()),
        Just(b"retry".to_vec()),
        Just(b":".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xEF".to_vec()),
        Just(b"\xC3\xA9".to_vec()),
        Just(b"\xC3".to_vec()),
        Just(b"\xF0\x9F\x98\x80".to_vec()),
        proptest::collection::vec(b'0'..=b'9', 1..22),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

fn max_buffer() -> impl Strategy<Value = usize> {
    prop_oneof![0..64usize, Just(DEFAULT_MAX)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Invalid names and ids are refused without touching the output; everything else parses
    /// back to what was encoded (data line breaks normalised to LF).
    #[test]
    fn events_round_trip_or_are_refused(event in any_event()) {
        let mut out = b"previous".to_vec();
        let result = event.encode_into(&mut out);
        let name_check = event.event.as_deref().map_or(Ok(()), validate_event_name);
        let id_check = event.id.as_deref().map_or(Ok(()), validate_id);
        match name_check.and(id_check) {
            Err(expected) => {
                prop_assert_eq!(result, Err(expected));
                prop_assert_eq!(&out[..], b"previous");
            }
            Ok(()) => {
                prop_assert_eq!(result, Ok(()));
                prop_assert!(out.starts_with(b"previous"));
                let bytes = &out[b"previous".len()..];
                let mut parser = Parser::new();
                prop_assert_eq!(parser.feed(bytes), Ok(()));
                let items: Vec<Item> = parser.drain().collect();
                prop_assert_eq!(items, expected_items(std::slice::from_ref(&event)));
                prop_assert_eq!(parser.last_event_id(), event.id.as_deref().unwrap_or(""));
                prop_assert_eq!(parser.retry(), event.retry);
                prop_assert_eq!(parser.buffered_len(), 0);
            }
        }
    }

    /// A stream of several events parses the same however it is cut into chunks.
    #[test]
    fn chunking_does_not_change_parsed_events(
        events in proptest::collection::vec(valid_event(), 1..5),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for event in &events {
            prop_assert_eq!(event.encode_into(&mut stream), Ok(()));
        }
        let whole = feed(DEFAULT_MAX, [stream.as_slice()]);
        prop_assert_eq!(&whole.items, &expected_items(&events));
        prop_assert_eq!(whole.error, None);
        let chunks = cut(&stream, &cuts);
        prop_assert_eq!(feed(DEFAULT_MAX, chunks.iter().map(Vec::as_slice)), whole);
    }

    /// Arbitrary bytes in arbitrary chunks: no panic, the bound holds after every feed, and the
    /// result matches both one-byte feeding and the reference model.
    #[test]
    fn arbitrary_bytes_are_handled_like_the_reference(
        bytes in stream_bytes(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        max in max_buffer(),
    ) {
        let chunks = cut(&bytes, &cuts);
        let chunked = feed(max, chunks.iter().map(Vec::as_slice));
        prop_assert_eq!(&chunked, &feed(max, bytes.chunks(1)));
        prop_assert_eq!(&chunked, &reference(&bytes, max));
    }

    /// Fully random bytes (no SSE bias) never panic and never exceed the bound.
    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        max in max_buffer(),
    ) {
        let chunks = cut(&bytes, &cuts);
        let chunked = feed(max, chunks.iter().map(Vec::as_slice));
        prop_assert_eq!(&chunked, &reference(&bytes, max));
    }
}
