//! URL patterns (the WHATWG URL Pattern syntax), as Mercure 1.0 topic selectors
//! (`match_urlpattern=`), in the subset subscribers use: literal text, named groups `:name`, and
//! wildcards `*`, matched against the whole topic.
//!
//! A named group matches one or more characters up to the next delimiter of the part of the URL
//! it sits in: in the host (after `://`, before the first `/`) it stops at `.`, `:` and `/`; in
//! the path at `/`, `?` and `#`; in the query at `&` and `#`. A wildcard matches anything,
//! nothing included. `\` escapes the next character. Regular-expression groups `(…)`, group
//! modifiers (`?`, `+`, `*` after a group) and `{…}` groups are refused with a clear message
//! rather than misread. The pattern must match the whole topic: there is no implicit wildcard
//! for a query or fragment the pattern does not mention, and hosts are compared as written
//! (publishers should send canonical, lower-case hosts).
//!
//! As with URI templates ([`super::template`]) matching keeps the set of reachable positions,
//! so it is linear in the topic's length per part: no pattern can make it backtrack.

use std::fmt;

/// Most groups and wildcards one pattern may hold.
const MAX_GROUPS: usize = 32;

/// A parsed URL pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    /// One or more characters, none of them these delimiters.
    Group(&'static [u8]),
    Wildcard,
}

/// The part of a URL a position of the pattern is in, which decides where a group stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Scheme,
    Host,
    Path,
    Query,
    Fragment,
}

impl Part {
    fn stops(self) -> &'static [u8] {
        match self {
            Self::Scheme => b":/",
            Self::Host => b".:/",
            Self::Path => b"/?#",
            Self::Query => b"&#",
            Self::Fragment => b"",
        }
    }
}

/// Why a pattern was refused; the message is for the subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl UrlPattern {
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        let bad = |why: &str| PatternError(format!("URL pattern {source:?}: {why}"));
        let mut tokens: Vec<Token> = Vec::new();
        let mut literal = String::new();
        let mut part = if source.contains("://") {
            Part::Scheme
        } else {
            Part::Path
        };
        let mut groups = 0;
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped)) => literal.push(escaped),
                    None => return Err(bad("it ends with a lone '\\'")),
                },
                ':' if source[at + 1..].starts_with(is_name_start) => {
                    let mut end = at + 1;
                    while let Some(&(i, n)) = chars.peek() {
                        if !(n.is_alphanumeric() || n == '_' || n == '$') {
                            break;
                        }
                        end = i + n.len_utf8();
                        chars.next();
                    }
                    let _name = &source[at + 1..end];
                    if let Some(&(_, modifier)) = chars.peek() {
                        if matches!(modifier, '?' | '+' | '*' | '(') {
                            return Err(bad(
                                "group modifiers and regular expressions are not supported",
                            ));
                        }
                    }
                    flush(&mut literal, &mut tokens);
                    tokens.push(Token::Group(part.stops()));
                    groups += 1;
                }
                '*' => {
                    flush(&mut literal, &mut tokens);
                    if tokens.last() != Some(&Token::Wildcard) {
                        tokens.push(Token::Wildcard);
                    }
                    groups += 1;
                }
                '(' | ')' | '{' | '}' => {
                    return Err(bad("regular expressions and {…} groups are not supported \
                         (use :name, * and literal text)"))
                }
                _ => {
                    literal.push(c);
                    part = match (part, c) {
                        (Part::Scheme, ':') if source[at..].starts_with("://") => {
                            // The `//` after the scheme opens the host, it does not end it.
                            literal.push_str("//");
                            chars.next();
                            chars.next();
                            Part::Host
                        }
                        (Part::Host, '/') => Part::Path,
                        (Part::Host | Part::Path, '?') => Part::Query,
                        (Part::Host | Part::Path | Part::Query, '#') => Part::Fragment,
                        (part, _) => part,
                    };
                }
            }
            if groups > MAX_GROUPS {
                return Err(bad(&format!("more than {MAX_GROUPS} groups and wildcards")));
            }
        }
        flush(&mut literal, &mut tokens);
        if tokens.is_empty() {
            return Err(bad("it is empty"));
        }
        Ok(Self { tokens })
    }

    /// Does the whole of `topic` match?
    pub fn matches(&self, topic: &str) -> bool {
        let bytes = topic.as_bytes();
        if let Some(Token::Literal(first)) = self.tokens.first() {
            if !topic.starts_with(first.as_str()) {
                return false;
            }
        }
        let mut reach = vec![false; bytes.len() + 1];
        reach[0] = true;
        let mut next = vec![false; bytes.len() + 1];
        for token in &self.tokens {
            next.iter_mut().for_each(|r| *r = false);
            let mut any = false;
            let mut start = 0;
            while start <= bytes.len() {
                if !reach[start] {
                    start += 1;
                    continue;
                }
                match token {
                    Token::Literal(literal) => {
                        if bytes[start..].starts_with(literal.as_bytes()) {
                            next[start + literal.len()] = true;
                            any = true;
                        }
                    }
                    Token::Group(stops) => {
                        let mut end = start;
                        while end < bytes.len() && !stops.contains(&bytes[end]) {
                            end += 1;
                            next[end] = true;
                            any = true;
                        }
                    }
                    Token::Wildcard => {
                        // Everything from here on is reachable: no need to look further.
                        next[start..].iter_mut().for_each(|r| *r = true);
                        any = true;
                        break;
                    }
                }
                start += 1;
            }
            if !any {
                return false;
            }
            std::mem::swap(&mut reach, &mut next);
        }
        reach[bytes.len()]
    }
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn flush(literal: &mut String, tokens: &mut Vec<Token>) {
    if !literal.is_empty() {
        tokens.push(Token::Literal(std::mem::take(literal)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(source: &str) -> UrlPattern {
        UrlPattern::parse(source).unwrap()
    }

    #[test]
    fn named_groups_stop_at_their_parts_delimiters() {
        let books = p("https://example.com/books/:id");
        assert!(books.matches("https://example.com/books/1"));
        assert!(books.matches("https://example.com/books/abc"));
        assert!(!books.matches("https://example.com/books/"));
        assert!(!books.matches("https://example.com/books/1/reviews"));
        assert!(!books.matches("https://example.com/books/1?x=y"));
        assert!(!books.matches("https://example.com/authors/1"));
        let host = p("https://:tenant.example.com/feed");
        assert!(host.matches("https://acme.example.com/feed"));
        assert!(!host.matches("https://a.b.example.com/feed"));
        let two = p("https://example.com/:kind/:id");
        assert!(two.matches("https://example.com/books/1"));
        assert!(!two.matches("https://example.com/books"));
    }

    #[test]
    fn wildcards_match_anything_even_nothing() {
        let all = p("https://example.com/books/*");
        assert!(all.matches("https://example.com/books/"));
        assert!(all.matches("https://example.com/books/1/reviews?x=1"));
        assert!(!all.matches("https://example.com/authors/1"));
        assert!(p("*").matches("anything at all"));
        let middle = p("https://*.example.com/feed");
        assert!(middle.matches("https://a.b.example.com/feed"));
        assert!(!middle.matches("https://example.org/feed"));
    }

    #[test]
    fn literal_and_relative_patterns_match_whole_topics() {
        assert!(p("https://example.com/a").matches("https://example.com/a"));
        assert!(!p("https://example.com/a").matches("https://example.com/ab"));
        assert!(p("/books/:id").matches("/books/7"));
        assert!(!p("/books/:id").matches("https://example.com/books/7"));
        // Escapes make a special character literal.
        assert!(p("https://example.com/a\\*").matches("https://example.com/a*"));
        assert!(!p("https://example.com/a\\*").matches("https://example.com/ab"));
        // A port is literal text, not a group.
        assert!(p("http://localhost:8080/:x").matches("http://localhost:8080/y"));
    }

    #[test]
    fn unsupported_syntax_is_refused() {
        for bad in [
            "https://example.com/:id(\\d+)",
            "https://example.com/:id?",
            "https://example.com/{a}",
            "https://example.com/(.*)",
            "",
            "x\\",
        ] {
            assert!(UrlPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
