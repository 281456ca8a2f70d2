//! URL patterns (the WHATWG URL Pattern syntax), as Mercure 1.0 topic selectors
//! (`match_urlpattern=`), matched against the whole topic.
//!
//! The syntax: literal text; named groups `:name`, which match one or more characters up to the
//! next delimiter of the part of the URL they sit in (in the host, after `://`, they stop at
//! `.`, `:` and `/`; in the path at `/`, `?` and `#`; in the query at `&` and `#`); named or
//! unnamed regular-expression groups `:name(\d+)` and `(\d+)`; wildcards `*` (anything,
//! nothing included); `{…}` groups of the above; the modifiers `?`, `+` and `*` after a group,
//! a wildcard or a `{…}`; and `\` escapes. In the path, a modified group right after a `/`
//! takes the `/` with it, as the standard says: `/books/:id?` matches `/books` too, and
//! `/files/:path+` matches `/files/a/b`. There is no implicit wildcard for a query or a
//! fragment the pattern does not mention, and hosts are compared as written (publishers should
//! send canonical, lower-case hosts).
//!
//! A pattern compiles to one anchored expression for the `regex` crate, whose automata match in
//! time linear in the topic's length: no pattern can make matching backtrack (the denial of
//! service Mercure's specification warns about), and compiled sizes are capped.

use std::fmt;

use regex::{Regex, RegexBuilder};

/// Most groups and wildcards one pattern may hold.
const MAX_GROUPS: usize = 32;
/// Bound on a compiled pattern's automata, in bytes (the `regex` crate's size limits).
const MAX_COMPILED_BYTES: usize = 256 * 1024;

/// A compiled URL pattern.
#[derive(Debug, Clone)]
pub struct UrlPattern {
    source: Box<str>,
    regex: Regex,
}

impl PartialEq for UrlPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for UrlPattern {}

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
    /// What a named group without an expression matches here.
    fn segment(self) -> &'static str {
        match self {
            Self::Scheme => "[^:/]+",
            Self::Host => "[^.:/]+",
            Self::Path => "[^/?#]+",
            Self::Query => "[^&#]+",
            Self::Fragment => ".+",
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
        let bad = |why: String| PatternError(format!("URL pattern {source:?}: {why}"));
        if source.is_empty() {
            return Err(bad("it is empty".into()));
        }
        let mut compiler = Compiler {
            chars: source.chars().collect(),
            at: 0,
            part: if source.contains("://") {
                Part::Scheme
            } else {
                Part::Path
            },
            groups: 0,
        };
        let body = compiler.sequence(false).map_err(bad)?;
        let regex = RegexBuilder::new(&format!("^(?s:{body})$"))
            .size_limit(MAX_COMPILED_BYTES)
            .dfa_size_limit(MAX_COMPILED_BYTES)
            .build()
            .map_err(|e| bad(format!("its regular expression does not compile: {e}")))?;
        Ok(Self {
            source: source.into(),
            regex,
        })
    }

    /// Does the whole of `topic` match?
    pub fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }
}

/// Turns pattern syntax into an expression, keeping track of the URL part it is in.
struct Compiler {
    chars: Vec<char>,
    at: usize,
    part: Part,
    groups: usize,
}

impl Compiler {
    /// Everything up to the end, or to the `}` that closes a `{…}` group when `braced`.
    fn sequence(&mut self, braced: bool) -> Result<String, String> {
        let mut out = String::new();
        // Literal text not written out yet: a modified group may take its trailing `/`.
        let mut literal = String::new();
        while let Some(c) = self.next() {
            let body = match c {
                '\\' => {
                    let escaped = self.next().ok_or("it ends with a lone '\\'")?;
                    literal.push(escaped);
                    continue;
                }
                ':' if self.peek().is_some_and(is_name_start) => {
                    while self.peek().is_some_and(is_name_char) {
                        self.at += 1;
                    }
                    if self.peek() == Some('(') {
                        self.at += 1;
                        format!("(?:{})", self.expression()?)
                    } else {
                        self.part.segment().to_owned()
                    }
                }
                '(' => format!("(?:{})", self.expression()?),
                '*' => ".*".to_owned(),
                '{' if !braced => format!("(?:{})", self.sequence(true)?),
                '{' => return Err("{…} groups do not nest".into()),
                '}' if braced => {
                    out.push_str(&regex::escape(&literal));
                    return Ok(out);
                }
                '}' => return Err("a '}' closes no group".into()),
                ')' => return Err("a ')' closes no group".into()),
                _ => {
                    literal.push(c);
                    self.follow(c, &mut literal);
                    continue;
                }
            };
            self.groups += 1;
            if self.groups > MAX_GROUPS {
                return Err(format!("more than {MAX_GROUPS} groups and wildcards"));
            }
            let modifier = self.peek().filter(|m| matches!(m, '?' | '+' | '*'));
            if let Some(modifier) = modifier {
                self.at += 1;
                let prefix = if self.part == Part::Path && !braced && literal.ends_with('/') {
                    literal.pop();
                    "/"
                } else {
                    ""
                };
                out.push_str(&regex::escape(&literal));
                out.push_str(&format!("(?:{prefix}{body}){modifier}"));
            } else {
                out.push_str(&regex::escape(&literal));
                out.push_str(&body);
            }
            literal.clear();
        }
        if braced {
            return Err("a '{' is never closed".into());
        }
        out.push_str(&regex::escape(&literal));
        Ok(out)
    }

    /// A regular expression up to its closing `)` (the `(` is read), checked when the whole
    /// pattern compiles.
    fn expression(&mut self) -> Result<String, String> {
        let mut depth = 1;
        let mut class = false;
        let mut expression = String::new();
        while let Some(c) = self.next() {
            match c {
                '\\' => {
                    expression.push(c);
                    expression.push(self.next().ok_or("it ends inside a '(…)' group")?);
                    continue;
                }
                '[' => class = true,
                ']' => class = false,
                '(' if !class => depth += 1,
                ')' if !class => {
                    depth -= 1;
                    if depth == 0 {
                        if expression.is_empty() {
                            return Err("an empty '()' group".into());
                        }
                        return Ok(expression);
                    }
                }
                _ => {}
            }
            expression.push(c);
        }
        Err("a '(' is never closed".into())
    }

    /// The URL part after the literal character `c` (just added to `literal`).
    fn follow(&mut self, c: char, literal: &mut String) {
        let opens_host = self.chars[self.at..].starts_with(&['/', '/']);
        self.part = match (self.part, c) {
            (Part::Scheme, ':') if opens_host => {
                // The `//` after the scheme opens the host, it does not end it.
                literal.push_str("//");
                self.at += 2;
                Part::Host
            }
            (Part::Host, '/') => Part::Path,
            (Part::Host | Part::Path, '?') => Part::Query,
            (Part::Host | Part::Path | Part::Query, '#') => Part::Fragment,
            (part, _) => part,
        };
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.at).copied();
        self.at += usize::from(c.is_some());
        c
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
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
    fn regular_expression_groups_and_modifiers_follow_the_standard() {
        let digits = p("https://example.com/books/:id(\\d+)");
        assert!(digits.matches("https://example.com/books/42"));
        assert!(!digits.matches("https://example.com/books/forty-two"));
        let unnamed = p("https://example.com/(books|authors)/:id");
        assert!(unnamed.matches("https://example.com/authors/1"));
        assert!(!unnamed.matches("https://example.com/films/1"));
        // A modified group after a `/` takes the `/` with it.
        let optional = p("https://example.com/books/:id?");
        assert!(optional.matches("https://example.com/books"));
        assert!(optional.matches("https://example.com/books/1"));
        assert!(!optional.matches("https://example.com/books/"));
        let many = p("/files/:path+");
        assert!(many.matches("/files/a/b/c"));
        assert!(!many.matches("/files"));
        let any = p("/files/:path*");
        assert!(any.matches("/files") && any.matches("/files/a/b"));
        let braces = p("https://example.com/books{/reviews}?");
        assert!(braces.matches("https://example.com/books"));
        assert!(braces.matches("https://example.com/books/reviews"));
        assert!(!braces.matches("https://example.com/books/other"));
        // Literal text stays literal, even what means something to a regular expression.
        assert!(p("https://example.com/a.b+c").matches("https://example.com/a.b+c"));
        assert!(!p("https://example.com/a.b+c").matches("https://example.com/aXbbc"));
    }

    #[test]
    fn patterns_that_backtrack_elsewhere_match_in_linear_time() {
        // Catastrophic for a backtracking engine; the automata answer at once.
        let nested = p("/(a+)+b");
        let topic = format!("/{}", "a".repeat(10_000));
        assert!(!nested.matches(&topic));
        assert!(nested.matches("/aaab"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "https://example.com/:id(\\d+",
            "https://example.com/(",
            "https://example.com/)",
            "https://example.com/{a",
            "https://example.com/a}",
            "https://example.com/{a{b}}",
            "https://example.com/()",
            "https://example.com/:id((?=x))",
            "",
            "x\\",
        ] {
            assert!(UrlPattern::parse(bad).is_err(), "{bad:?}");
        }
        let huge = format!("/({})", "a{1000}".repeat(50));
        assert!(
            UrlPattern::parse(&huge).is_err(),
            "a pattern too large to compile"
        );
    }
}
