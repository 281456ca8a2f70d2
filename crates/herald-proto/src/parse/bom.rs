//! Removing the one optional byte order mark at the very start of a stream.
//!
//! The SSE spec decodes the stream with "UTF-8 decode", which drops a leading BOM (EF BB BF) and
//! nothing else: a second BOM, or one later in the stream, is content. The three bytes may
//! arrive in separate chunks, so the stripper remembers how many it has matched. If the match
//! fails part-way, the bytes it held back were content after all and are handed back for
//! replay, in order, before the rest of the chunk.

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Tracks whether the stream start has been checked for a BOM yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BomStripper {
    /// Still at the stream start; this many BOM bytes have been matched and held back.
    Matching(usize),
    /// The decision is made; everything passes through.
    Done,
}

impl BomStripper {
    pub(crate) const fn new() -> Self {
        Self::Matching(0)
    }

    /// Splits `chunk` into `(replay, rest)`: bytes held back earlier that turned out to be
    /// content, and the part of `chunk` to process after them. A BOM itself appears in neither.
    pub(crate) fn strip<'a>(&mut self, chunk: &'a [u8]) -> (&'static [u8], &'a [u8]) {
        let Self::Matching(mut matched) = *self else {
            return (&[], chunk);
        };
        let mut rest = chunk;
        loop {
            match (BOM.get(matched), rest.split_first()) {
                // All three bytes matched: drop them.
                (None, _) => {
                    *self = Self::Done;
                    return (&[], rest);
                }
                // Chunk exhausted mid-match: keep holding what matched so far.
                (Some(_), None) => {
                    *self = Self::Matching(matched);
                    return (&[], rest);
                }
                (Some(&expected), Some((&byte, tail))) if byte == expected => {
                    matched += 1;
                    rest = tail;
                }
                // Mismatch: the held bytes are content.
                (Some(_), Some(_)) => {
                    *self = Self::Done;
                    return (BOM.get(..matched).unwrap_or(&[]), rest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs chunks through a stripper and concatenates what comes out.
    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut stripper = BomStripper::new();
        let mut out = Vec::new();
        for chunk in chunks {
            let (replay, rest) = stripper.strip(chunk);
            out.extend_from_slice(replay);
            out.extend_from_slice(rest);
        }
        out
    }

    #[test]
    fn strips_one_leading_bom() {
        assert_eq!(run(&[b"\xEF\xBB\xBFdata"]), b"data");
        assert_eq!(run(&[b"\xEF\xBB\xBF\xEF\xBB\xBF"]), b"\xEF\xBB\xBF");
    }

    #[test]
    fn strips_a_bom_split_across_chunks() {
        assert_eq!(run(&[b"\xEF", b"", b"\xBB", b"\xBFx"]), b"x");
        assert_eq!(
            run(&[b"\xEF\xBB", b"\xBF", b"\xEF\xBB\xBF"]),
            b"\xEF\xBB\xBF"
        );
    }

    #[test]
    fn keeps_partial_matches_as_content() {
        assert_eq!(run(&[b"\xEF", b"\xBBx"]), b"\xEF\xBBx");
        assert_eq!(run(&[b"\xEFx"]), b"\xEFx");
        assert_eq!(run(&[b"x\xEF\xBB\xBF"]), b"x\xEF\xBB\xBF");
    }

    #[test]
    fn holds_bytes_until_decided() {
        let mut stripper = BomStripper::new();
        assert_eq!(stripper.strip(b"\xEF\xBB"), (&b""[..], &b""[..]));
        assert_eq!(stripper, BomStripper::Matching(2));
    }
}
