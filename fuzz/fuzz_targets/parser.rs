//! The SSE parser on arbitrary bytes: never panics, never buffers past its bound, and gives
//! the same items however the input is split into chunks.
#![no_main]

use herald_proto::{Item, Parser};
use libfuzzer_sys::fuzz_target;

const MAX_BUFFER: usize = 4096;

fn parse(chunks: &[&[u8]]) -> (Vec<Item>, Option<herald_proto::ParseError>, String) {
    let mut parser = Parser::with_max_buffer(MAX_BUFFER);
    let mut items = Vec::new();
    let mut error = None;
    for chunk in chunks {
        let result = parser.feed(chunk);
        assert!(parser.buffered_len() <= MAX_BUFFER);
        items.extend(parser.drain());
        if let Err(e) = result {
            error = Some(e);
            break;
        }
    }
    (items, error, parser.last_event_id().to_owned())
}

fuzz_target!(|input: &[u8]| {
    // The first byte picks a chunk size; the rest is the stream.
    let Some((&size, stream)) = input.split_first() else {
        return;
    };
    let whole = parse(&[stream]);
    let split: Vec<&[u8]> = stream.chunks(usize::from(size % 16) + 1).collect();
    let chunked = parse(&split);
    if whole.1.is_none() && chunked.1.is_none() {
        assert_eq!(whole, chunked, "chunking changed the result");
    }
});
