//! The Server-Sent Events wire format for Herald: a validating encoder and an incremental parser.
//!
//! Why a crate of its own: the hub encodes events once and sends the same bytes to thousands of
//! streams, while the Rust client and every test read those bytes back. Both sides must agree on
//! one precise definition of the format, the WHATWG HTML "server-sent events" rules, and that
//! definition is easiest to trust when it lives in one small place with no I/O, no async runtime
//! and no dependencies to reason about. Everything here works on byte slices and `Vec<u8>`.
//!
//! - Encoding ([`Event`], [`write_data`], [`write_comment`], [`write_id_only`]) never produces
//!   bytes that a parser could read differently from what was meant: event names and ids that
//!   would break a line are rejected with an [`EncodeError`], and multi-line data or comments are
//!   split into one field per line, so no input can inject fields.
//! - Parsing ([`Parser`]) is incremental and chunking-independent, handles BOMs, all three line
//!   break styles and invalid UTF-8 as the spec says, and bounds its memory.
//!
//! The round trip is exact up to one documented normalisation: CRLF and lone CR inside `data`
//! come back as LF, because SSE has no way to carry them.
//!
//! Cross-language test vectors for the parser live in `spec/sse-vectors.json` at the repository
//! root; `tests/vectors.rs` runs them here.

mod control;
mod encode;
mod error;
mod event;
mod lines;
mod parse;
mod validate;

pub use control::{
    write_missed, write_opening, write_reconnect_hint, HEARTBEAT, MISSED_ECHO_CHARS, MISSED_EVENT,
};
pub use encode::{write_comment, write_data, write_id_only, write_retry};
pub use error::{EncodeError, InvalidReason, ParseError};
pub use event::{Event, EventRef};
pub use parse::{Item, MessageEvent, Parser};
pub use validate::{validate_event_name, validate_id};
