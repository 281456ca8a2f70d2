//! The `POST /publish` body decoder on arbitrary bytes: never panics; what it accepts is a
//! non-empty list of publications that pass validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(decoded) = herald::publish_body::decode(body, None) {
        assert!(!decoded.batch.is_empty());
        for publication in decoded.batch.iter() {
            assert!(publication.validate().is_ok(), "{publication:?}");
        }
    }
});
