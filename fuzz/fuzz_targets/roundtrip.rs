//! Encoder then parser: whatever the encoder accepts comes back as exactly one event with the
//! same name, id and data (line breaks normalised to LF); what it refuses is a typed error.
#![no_main]

use herald_proto::{Event, Item, Parser};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    data: String,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    comments: Vec<String>,
}

fuzz_target!(|input: Input| {
    let event = Event {
        event: input.event.clone(),
        data: input.data.clone(),
        id: input.id.clone(),
        retry: input.retry,
        comments: input.comments,
    };
    let Ok(bytes) = event.encode() else {
        return;
    };
    let mut parser = Parser::with_max_buffer(usize::MAX);
    parser.feed(&bytes).expect("encoded bytes always parse");
    let events: Vec<_> = parser
        .drain()
        .filter_map(|item| match item {
            Item::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 1, "one event per encoded event");
    let got = &events[0];
    let expected_data = input.data.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(got.data, expected_data);
    let expected_type = input.event.filter(|e| !e.is_empty()).unwrap_or_else(|| "message".into());
    assert_eq!(got.event_type, expected_type);
    if let Some(id) = input.id {
        assert_eq!(got.last_event_id, id);
    }
});
