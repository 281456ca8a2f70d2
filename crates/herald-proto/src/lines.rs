//! Splitting text into lines exactly the way an SSE parser will.
//!
//! The encoder must write one field per line of a multi-line value. If it split differently from
//! the parser (say, only on LF), a lone CR inside the value would reach the wire unescaped and the
//! parser would end the field there. So this splitter treats CR, LF and CRLF each as ONE break,
//! just like the WHATWG parsing rules. A break at the very end yields a final empty line, so that
//! `"a\n"` becomes the lines `"a"` and `""` and survives the trip through the wire.

/// Iterates over the lines of a text; always yields at least one (possibly empty) line.
#[derive(Debug, Clone)]
pub(crate) struct Lines<'a> {
    /// What is left to split; `None` once the last line has been yielded.
    rest: Option<&'a str>,
}

/// Splits `text` on CR, LF and CRLF.
pub(crate) fn split_lines(text: &str) -> Lines<'_> {
    Lines { rest: Some(text) }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let Some(at) = rest.find(['\r', '\n']) else {
            self.rest = None;
            return Some(rest);
        };
        let (line, tail) = rest.split_at(at);
        let break_len = if tail.starts_with("\r\n") { 2 } else { 1 };
        // CR and LF are single-byte ASCII, so `break_len` always lands on a char boundary; the
        // fallback only exists so that no input can make this panic.
        self.rest = Some(tail.get(break_len..).unwrap_or(""));
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<&str> {
        split_lines(text).collect()
    }

    #[test]
    fn each_break_style_is_one_break() {
        assert_eq!(lines("a\nb"), ["a", "b"]);
        assert_eq!(lines("a\rb"), ["a", "b"]);
        assert_eq!(lines("a\r\nb"), ["a", "b"]);
        assert_eq!(lines("a\n\rb"), ["a", "", "b"]);
        assert_eq!(lines("a\r\rb"), ["a", "", "b"]);
        assert_eq!(lines("a\r\n\nb"), ["a", "", "b"]);
    }

    #[test]
    fn edges_yield_empty_lines() {
        assert_eq!(lines(""), [""]);
        assert_eq!(lines("a"), ["a"]);
        assert_eq!(lines("a\n"), ["a", ""]);
        assert_eq!(lines("\na"), ["", "a"]);
        assert_eq!(lines("\r\n"), ["", ""]);
        assert_eq!(lines("\r"), ["", ""]);
    }

    #[test]
    fn multibyte_text_is_kept_whole() {
        assert_eq!(lines("é\r😀\r\nü"), ["é", "😀", "ü"]);
    }
}
