//! The seed-format ingress decoder (`PUBLISH user:events '{...}'`) on arbitrary bytes: never
//! panics; what it accepts passes validation and always names its recipients: a user, a topic,
//! or everyone only when the message said `"broadcast": true`.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The one field a broadcast must carry, read with the decoder's own leniency: other fields are
/// skipped unread, as the decoder skips them (a strict `serde_json::Value` refuses what they may
/// hold, such as a lone UTF-16 surrogate escape, which JSON's grammar allows).
#[derive(serde::Deserialize)]
struct AskedFor {
    broadcast: Option<bool>,
}

fuzz_target!(|payload: &[u8]| {
    if let Ok(publication) = herald_redis::seed_message::parse(payload, 1 << 20) {
        assert!(publication.validate().is_ok(), "{publication:?}");
        if publication.is_broadcast() {
            let asked: AskedFor = serde_json::from_slice(payload).expect("parsed once");
            assert_eq!(asked.broadcast, Some(true), "a broadcast nobody asked for");
        }
    }
});
