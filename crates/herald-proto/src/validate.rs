//! Checks that a value can travel as one SSE field value and come back unchanged.
//!
//! An SSE field ends at the first CR or LF, so a value containing one would be cut short and
//! whatever follows would be read as new fields: a publisher could forge `data:` or `id:` lines
//! for other subscribers. We also refuse NUL because the parser ignores an `id:` containing NUL;
//! applying the same rule to event names keeps the contract simple ("no CR, LF or NUL"). These
//! checks are public so callers can reject bad input at their API boundary, before encoding.

use crate::error::{EncodeError, InvalidReason};

/// Accepts a name for the `event:` field: non-empty, without CR, LF or NUL.
///
/// Empty is refused because `event:` with an empty value means "no type" (`message`), so an
/// empty name would silently change meaning on the way through.
pub fn validate_event_name(name: &str) -> Result<(), EncodeError> {
    if name.is_empty() {
        return Err(EncodeError::InvalidEventName {
            reason: InvalidReason::Empty,
        });
    }
    check_single_line(name).map_err(|reason| EncodeError::InvalidEventName { reason })
}

/// Accepts a value for the `id:` field: anything without CR, LF or NUL.
///
/// Empty is allowed: `id:` with an empty value is how a server resets the client's last event ID.
pub fn validate_id(id: &str) -> Result<(), EncodeError> {
    check_single_line(id).map_err(|reason| EncodeError::InvalidId { reason })
}

fn check_single_line(value: &str) -> Result<(), InvalidReason> {
    // Byte scan: the three forbidden characters are ASCII, so they can never be part of a
    // multi-byte UTF-8 sequence and a byte search is exact.
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        Err(InvalidReason::ForbiddenChar)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names() {
        assert_eq!(validate_event_name("order_update"), Ok(()));
        assert_eq!(validate_event_name(" spaced: ok\t"), Ok(()));
        assert_eq!(validate_event_name("ünïcödé"), Ok(()));
        for bad in ["a\rb", "a\nb", "a\0b", "\r\n", "x\n"] {
            assert_eq!(
                validate_event_name(bad),
                Err(EncodeError::InvalidEventName {
                    reason: InvalidReason::ForbiddenChar
                }),
                "{bad:?}"
            );
        }
        assert_eq!(
            validate_event_name(""),
            Err(EncodeError::InvalidEventName {
                reason: InvalidReason::Empty
            })
        );
    }

    #[test]
    fn ids() {
        assert_eq!(validate_id("1732460000000-0"), Ok(()));
        assert_eq!(validate_id(""), Ok(()));
        for bad in ["a\rb", "a\nb", "a\0b"] {
            assert_eq!(
                validate_id(bad),
                Err(EncodeError::InvalidId {
                    reason: InvalidReason::ForbiddenChar
                }),
                "{bad:?}"
            );
        }
    }
}
