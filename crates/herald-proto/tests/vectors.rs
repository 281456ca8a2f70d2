//! Runs the language-neutral parser vectors in `spec/sse-vectors.json`.
//!
//! The same file drives the TypeScript client's tests, so both parsers are held to one
//! definition. Each vector runs with its chunks exactly as written, and then re-cut in other ways
//! (whole, one byte at a time, every two-piece split), because the result must not depend on
//! chunking.

use std::collections::HashSet;
use std::path::Path;

use herald_proto::{Item, MessageEvent, ParseError, Parser};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    description: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Vector {
    name: String,
    rule: String,
    chunks: Vec<Chunk>,
    expect: Vec<Expected>,
    max_buffer: Option<usize>,
    expect_error: Option<String>,
    final_last_event_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Chunk {
    Text(String),
    Hex { hex: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum Expected {
    Event(ExpectedEvent),
    Retry(u64),
    Comment(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExpectedEvent {
    #[serde(rename = "type")]
    event_type: String,
    data: String,
    last_event_id: String,
}

/// Everything observable after feeding a whole input.
#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<Item>,
    error: Option<ParseError>,
    last_event_id: String,
}

fn load() -> VectorFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/sse-vectors.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn decode_hex(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).ok().filter(|d| d.len() == 2);
            digits
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .unwrap_or_else(|| panic!("bad hex chunk {hex:?}"))
        })
        .collect()
}

fn chunk_bytes(chunk: &Chunk) -> Vec<u8> {
    match chunk {
        Chunk::Text(text) => text.as_bytes().to_vec(),
        Chunk::Hex { hex } => decode_hex(hex),
    }
}

fn expected_item(expected: &Expected) -> Item {
    match expected {
        Expected::Event(event) => Item::Event(MessageEvent {
            event_type: event.event_type.clone(),
            data: event.data.clone(),
            last_event_id: event.last_event_id.clone(),
        }),
        Expected::Retry(ms) => Item::Retry(*ms),
        Expected::Comment(text) => Item::Comment(text.clone()),
    }
}

/// Feeds `chunks` to a fresh parser. After an error, every later chunk must fail the same way.
fn run<'a>(max_buffer: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = Parser::with_max_buffer(max_buffer);
    let mut items = Vec::new();
    let mut error = None;
    for chunk in chunks {
        let result = parser.feed(chunk);
        if let Some(first) = error {
            assert_eq!(result, Err(first), "a poisoned parser must keep failing");
        } else {
            error = result.err();
        }
        items.extend(parser.drain());
        assert!(
            parser.buffered_len() <= max_buffer,
            "buffer limit not respected"
        );
    }
    Outcome {
        items,
        error,
        last_event_id: parser.last_event_id().to_owned(),
    }
}

fn check(vector: &Vector) {
    let max_buffer = vector.max_buffer.unwrap_or(1 << 20);
    let chunks: Vec<Vec<u8>> = vector.chunks.iter().map(chunk_bytes).collect();
    let outcome = run(max_buffer, chunks.iter().map(Vec::as_slice));
    let name = &vector.name;

    let expected: Vec<Item> = vector.expect.iter().map(expected_item).collect();
    assert_eq!(outcome.items, expected, "vector {name:?}: items");
    match vector.expect_error.as_deref() {
        None => assert_eq!(outcome.error, None, "vector {name:?}: unexpected error"),
        Some("buffer_limit") => assert_eq!(
            outcome.error,
            Some(ParseError::BufferLimit { limit: max_buffer }),
            "vector {name:?}: error"
        ),
        Some(other) => panic!("vector {name:?}: unknown expectError {other:?}"),
    }
    if let Some(id) = &vector.final_last_event_id {
        assert_eq!(
            &outcome.last_event_id, id,
            "vector {name:?}: final last event id"
        );
    }

    let whole = chunks.concat();
    assert_eq!(
        run(max_buffer, [whole.as_slice()]),
        outcome,
        "vector {name:?}: as one chunk"
    );
    assert_eq!(
        run(max_buffer, whole.chunks(1)),
        outcome,
        "vector {name:?}: one byte at a time"
    );
    for split in 0..=whole.len() {
        let (head, tail) = whole.split_at(split);
        assert_eq!(
            run(max_buffer, [head, tail]),
            outcome,
            "vector {name:?}: split at {split}"
        );
    }
}

#[test]
fn all_vectors_pass_under_every_chunking() {
    let file = load();
    for vector in &file.vectors {
        check(vector);
    }
}

#[test]
fn vector_file_is_well_formed() {
    let file = load();
    assert!(
        file.description.contains("hex"),
        "the description must document the format"
    );
    assert!(
        file.vectors.len() >= 40,
        "only {} vectors",
        file.vectors.len()
    );
    let mut names = HashSet::new();
    for vector in &file.vectors {
        assert!(
            names.insert(vector.name.as_str()),
            "duplicate vector name {:?}",
            vector.name
        );
        assert!(
            !vector.rule.trim().is_empty(),
            "vector {:?} has no rule",
            vector.name
        );
    }
}
