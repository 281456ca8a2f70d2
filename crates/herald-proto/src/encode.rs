//! Writing SSE fields as bytes.
//!
//! Every writer here produces only spec-valid lines that a WHATWG parser reads back to the value
//! that went in, so callers never have to think about escaping:
//!
//! - values are written as `name: value` with exactly one space, because the parser strips
//!   exactly one leading space and a value that itself starts with a space then survives;
//! - an empty value is written as `name:` with no trailing space: both forms parse to the empty
//!   string, and this one has no trailing whitespace for a proxy or editor to "tidy up";
//! - multi-line text becomes one field per line, split on CR, LF and CRLF exactly like the parser
//!   splits (see [`crate::lines`]). The parser joins `data` lines with LF, so data is
//!   normalised: CRLF and lone CR come back as LF.
//!
//! The infallible writers take text that can contain anything; the fallible ones validate first
//! and write nothing on error.

use crate::error::EncodeError;
use crate::lines::split_lines;
use crate::validate::validate_id;

/// Appends `data` as `data:` lines: one line per line of `data`.
///
/// CR, LF and CRLF each end one line. Empty `data` yields a single `data:` line, which the client
/// dispatches as a message whose data is the empty string. A trailing line break yields a final
/// empty `data:` line, so `"a\n"` round-trips as `"a\n"`.
pub fn write_data(out: &mut Vec<u8>, data: &str) {
    for line in split_lines(data) {
        write_field(out, "data", line);
    }
}

/// Appends `text` as comment lines (`: text`), one per line of `text`.
///
/// Comments are ignored by `EventSource`; they keep connections alive through proxies. Because
/// every line of `text` gets its own `:` prefix, no text can end the comment and inject a field
/// (a comment containing `"\n\ndata: x"` stays three comment lines).
pub fn write_comment(out: &mut Vec<u8>, text: &str) {
    for line in split_lines(text) {
        write_field(out, "", line);
    }
}

/// Appends a block holding only `id: <id>` and the blank line that ends it.
///
/// Per the SSE processing model such a block dispatches no event but sets the client's
/// `lastEventId`, so a client that reconnects later sends it as `Last-Event-ID` and resumes from
/// there. An empty `id` resets the client's last event ID. On error `out` is unchanged.
pub fn write_id_only(out: &mut Vec<u8>, id: &str) -> Result<(), EncodeError> {
    validate_id(id)?;
    write_field(out, "id", id);
    out.push(b'\n');
    Ok(())
}

/// Appends one field line. The caller guarantees `value` holds no CR or LF.
pub(crate) fn write_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.reserve(name.len() + value.len() + 3);
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    if !value.is_empty() {
        out.push(b' ');
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'\n');
}

/// Appends `retry: <ms>` without going through a heap-allocated string.
pub fn write_retry(out: &mut Vec<u8>, ms: u64) {
    // u64::MAX has 20 decimal digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = ms;
    loop {
        start -= 1;
        // `rest % 10` is below 10, so the cast cannot truncate.
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(b"retry: ");
    out.extend_from_slice(&digits[start..]);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InvalidReason;

    fn data(text: &str) -> String {
        let mut out = Vec::new();
        write_data(&mut out, text);
        String::from_utf8(out).expect("encoder writes UTF-8")
    }

    fn comment(text: &str) -> String {
        let mut out = Vec::new();
        write_comment(&mut out, text);
        String::from_utf8(out).expect("encoder writes UTF-8")
    }

    #[test]
    fn data_splits_on_every_break_style() {
        assert_eq!(data("one"), "data: one\n");
        assert_eq!(data("a\nb"), "data: a\ndata: b\n");
        assert_eq!(data("a\rb"), "data: a\ndata: b\n");
        assert_eq!(data("a\r\nb"), "data: a\ndata: b\n");
        assert_eq!(
            data("a\r\n\rb\n\nc"),
            "data: a\ndata:\ndata: b\ndata:\ndata: c\n"
        );
    }

    #[test]
    fn empty_data_is_one_empty_data_line() {
        assert_eq!(data(""), "data:\n");
    }

    #[test]
    fn trailing_and_leading_breaks_become_empty_lines() {
        assert_eq!(data("a\n"), "data: a\ndata:\n");
        assert_eq!(data("a\r\n"), "data: a\ndata:\n");
        assert_eq!(data("\na"), "data:\ndata: a\n");
        assert_eq!(data("\n"), "data:\ndata:\n");
    }

    #[test]
    fn leading_space_survives_because_one_is_added() {
        assert_eq!(data(" x"), "data:  x\n");
    }

    #[test]
    fn comments_cannot_inject_fields() {
        assert_eq!(comment("hi"), ": hi\n");
        assert_eq!(comment(""), ":\n");
        assert_eq!(comment("\n\ndata: x"), ":\n:\n: data: x\n");
        assert_eq!(comment("a\r\rid: 1\r\n"), ": a\n:\n: id: 1\n:\n");
    }

    #[test]
    fn id_only_block() {
        let mut out = b"prefix".to_vec();
        write_id_only(&mut out, "42").expect("valid id");
        assert_eq!(out, b"prefixid: 42\n\n");
        let mut out = Vec::new();
        write_id_only(&mut out, "").expect("empty id is a reset");
        assert_eq!(out, b"id:\n\n");
    }

    #[test]
    fn id_only_block_rejects_line_breaks_and_leaves_out_alone() {
        for bad in ["1\n", "1\r2", "\0"] {
            let mut out = b"prefix".to_vec();
            assert_eq!(
                write_id_only(&mut out, bad),
                Err(EncodeError::InvalidId {
                    reason: InvalidReason::ForbiddenChar
                })
            );
            assert_eq!(out, b"prefix");
        }
    }

    #[test]
    fn retry_digits() {
        for (ms, text) in [
            (0, "retry: 0\n"),
            (3000, "retry: 3000\n"),
            (u64::MAX, "retry: 18446744073709551615\n"),
        ] {
            let mut out = Vec::new();
            write_retry(&mut out, ms);
            assert_eq!(out, text.as_bytes());
        }
    }
}
