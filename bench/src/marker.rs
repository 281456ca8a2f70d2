//! The probe inside every benchmark event: `bm<sent µs>.<sequence>;`.
//!
//! Each server frames events its own way (Herald sends the data verbatim, the Express seed wraps
//! it in JSON, HTTP chunked encoding adds its own lines), so the reader does not parse SSE at
//! all: it scans the raw bytes for markers. That keeps the load generator cheap, which matters
//! when it shares two cores with the server it measures.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A marker for event `seq` sent now, padded with `x` to at least `size` bytes.
pub fn encode(seq: u64, size: usize) -> String {
    let mut text = format!("bm{}.{seq};", now_us());
    if text.len() < size {
        text.extend(std::iter::repeat_n('x', size - text.len()));
    }
    text
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub sent_us: u64,
    pub seq: u64,
}

/// Finds markers across reads: keeps the few bytes of a marker cut by a read boundary.
#[derive(Default)]
pub struct Scanner {
    carry: Vec<u8>,
}

impl Scanner {
    pub fn feed(&mut self, bytes: &[u8], mut found: impl FnMut(Marker)) {
        if self.carry.is_empty() {
            let rest = scan(bytes, &mut found);
            self.carry.extend_from_slice(rest);
        } else {
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(bytes);
            let rest = scan(&joined, &mut found).to_vec();
            self.carry = rest;
        }
    }
}

/// Reports every complete marker and returns the unfinished tail worth keeping.
fn scan<'a>(bytes: &'a [u8], found: &mut impl FnMut(Marker)) -> &'a [u8] {
    let mut at = 0;
    while let Some(offset) = memchr(b'b', &bytes[at..]) {
        let start = at + offset;
        let tail = &bytes[start..];
        match parse(tail) {
            Parse::Marker(marker, len) => {
                found(marker);
                at = start + len;
            }
            Parse::Incomplete => return tail,
            Parse::NotAMarker => at = start + 1,
        }
    }
    &[]
}

enum Parse {
    Marker(Marker, usize),
    Incomplete,
    NotAMarker,
}

fn parse(tail: &[u8]) -> Parse {
    // Long enough for any marker: "bm" + 20 digits + "." + 20 digits + ";".
    const MAX: usize = 44;
    if tail.len() < 2 {
        return Parse::Incomplete;
    }
    if tail[1] != b'm' {
        return Parse::NotAMarker;
    }
    let mut numbers = [0u64; 2];
    let mut which = 0;
    let mut digits = 0;
    for (i, &b) in tail.iter().enumerate().skip(2).take(MAX) {
        match b {
            b'0'..=b'9' => {
                numbers[which] = numbers[which]
                    .wrapping_mul(10)
                    .wrapping_add(u64::from(b - b'0'));
                digits += 1;
            }
            b'.' if which == 0 && digits > 0 => {
                which = 1;
                digits = 0;
            }
            b';' if which == 1 && digits > 0 => {
                return Parse::Marker(
                    Marker {
                        sent_us: numbers[0],
                        seq: numbers[1],
                    },
                    i + 1,
                );
            }
            _ => return Parse::NotAMarker,
        }
    }
    if tail.len() < MAX {
        Parse::Incomplete
    } else {
        Parse::NotAMarker
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<(u64, u64)> {
        let mut scanner = Scanner::default();
        let mut out = Vec::new();
        for chunk in chunks {
            scanner.feed(chunk, |m| out.push((m.sent_us, m.seq)));
        }
        out
    }

    #[test]
    fn finds_markers_in_any_framing_and_across_reads() {
        let text = b"event: b\ndata: {\"msg\":\"bm17.3;xx\"}\n\n1f\r\ndata: bm18.4;\n\nb\nbm";
        assert_eq!(all(&[text]), [(17, 3), (18, 4)]);
        for cut in 0..text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(
                all(&[a, b, b"19.5;"]),
                [(17, 3), (18, 4), (19, 5)],
                "cut at {cut}"
            );
        }
        assert_eq!(encode(7, 64).len(), 64);
        assert_eq!(all(&[encode(7, 100).as_bytes()])[0].1, 7);
    }
}
