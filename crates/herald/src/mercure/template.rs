//! RFC 6570 URI templates, as Mercure 0.x topic selectors: does a topic look like some
//! expansion of the template?
//!
//! Mercure subscribers write `topic=https://example.com/books/{id}` and expect every book's
//! updates. Matching is the inverse of expansion, which RFC 6570 does not define, so the rule
//! here is: a topic matches when the template's literal parts appear in it verbatim, in order,
//! and what lies between them could be produced by the expressions in between. Each expression
//! (levels 1 to 4: no operator, `+`, `#`, `.`, `/`, `;`, `?`, `&`; several variables; the `*`
//! and `:N` modifiers) stands for either nothing (every variable undefined) or its operator's
//! prefix followed by one or more characters that its expansion may contain: unreserved
//! characters and percent-escapes (plus the reserved ones for `+` and `#`), the operator's
//! separator and `,` between values, `=` after names for `;`, `?` and `&`. Variable names and
//! `:N` lengths are not checked against the topic: a template selects a shape, not values.
//!
//! The matcher walks the topic once per template part, keeping the set of positions the parts
//! so far can end at (no backtracking, so no pathological templates): time is bounded by
//! parts × topic length.

use std::fmt;

/// Most expressions one template may hold.
const MAX_EXPRESSIONS: usize = 32;

/// A parsed URI template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Expression(Operator),
}

/// The operator of an expression: what it starts with and which characters it may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Simple,
    Reserved,
    Fragment,
    Label,
    Path,
    PathParams,
    Query,
    QueryContinuation,
}

impl Operator {
    fn from_char(c: char) -> Option<Self> {
        Some(match c {
            '+' => Self::Reserved,
            '#' => Self::Fragment,
            '.' => Self::Label,
            '/' => Self::Path,
            ';' => Self::PathParams,
            '?' => Self::Query,
            '&' => Self::QueryContinuation,
            _ => return None,
        })
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Simple | Self::Reserved => "",
            Self::Fragment => "#",
            Self::Label => ".",
            Self::Path => "/",
            Self::PathParams => ";",
            Self::Query => "?",
            Self::QueryContinuation => "&",
        }
    }

    /// May `b` appear in this operator's expansion (after its prefix)?
    fn allows(self, b: u8) -> bool {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        // `%` stands for percent-escapes (and any non-ASCII byte for the UTF-8 they encode, as
        // topics are IRIs): their hex digits are alphanumeric anyway.
        let escaped = b == b'%' || b >= 0x80;
        let extra = match self {
            Self::Simple => b == b',',
            Self::Reserved | Self::Fragment => b":/?#[]@!$&'()*+,;=".contains(&b),
            Self::Label => b == b',',
            Self::Path => matches!(b, b'/' | b','),
            Self::PathParams => matches!(b, b';' | b'=' | b','),
            Self::Query | Self::QueryContinuation => matches!(b, b'&' | b'=' | b','),
        };
        unreserved || escaped || extra
    }
}

/// Why a template was refused; the message is for the subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl UriTemplate {
    /// Parses `source`; `Ok(None)` when it has no expression (it is then an exact topic).
    pub fn parse(source: &str) -> Result<Option<Self>, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        let mut expressions = 0;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| {
                TemplateError(format!("URI template {source:?}: '{{' is never closed"))
            })?;
            parts.push(Part::Expression(parse_expression(&after[..close], source)?));
            expressions += 1;
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(TemplateError(format!(
                "URI template {source:?}: '}}' without '{{'"
            )));
        }
        if expressions == 0 {
            return Ok(None);
        }
        if expressions > MAX_EXPRESSIONS {
            return Err(TemplateError(format!(
                "URI template {source:?} has more than {MAX_EXPRESSIONS} expressions"
            )));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Some(Self { parts }))
    }

    /// Could `topic` be an expansion of this template?
    pub fn matches(&self, topic: &str) -> bool {
        let bytes = topic.as_bytes();
        // Cheap refusal of most topics: the first literal is where the template starts.
        if let Some(Part::Literal(first)) = self.parts.first() {
            if !topic.starts_with(first.as_str()) {
                return false;
            }
        }
        let mut reach = vec![false; bytes.len() + 1];
        reach[0] = true;
        let mut next = vec![false; bytes.len() + 1];
        for part in &self.parts {
            next.iter_mut().for_each(|r| *r = false);
            let mut any = false;
            for start in 0..=bytes.len() {
                if !reach[start] {
                    continue;
                }
                match part {
                    Part::Literal(literal) => {
                        if bytes[start..].starts_with(literal.as_bytes()) {
                            next[start + literal.len()] = true;
                            any = true;
                        }
                    }
                    Part::Expression(op) => {
                        // Every variable undefined: the expression expands to nothing.
                        next[start] = true;
                        any = true;
                        let prefix = op.prefix().as_bytes();
                        if !bytes[start..].starts_with(prefix) {
                            continue;
                        }
                        let mut end = start + prefix.len();
                        while end < bytes.len() && op.allows(bytes[end]) {
                            end += 1;
                            next[end] = true;
                        }
                    }
                }
            }
            if !any {
                return false;
            }
            std::mem::swap(&mut reach, &mut next);
        }
        reach[bytes.len()]
    }
}

/// One expression's body: an optional operator, then variables with optional `*` or `:N`.
fn parse_expression(body: &str, source: &str) -> Result<Operator, TemplateError> {
    let bad = |why: &str| TemplateError(format!("URI template {source:?}: {why}"));
    let (op, vars) = match body.chars().next().and_then(Operator::from_char) {
        Some(op) => (op, &body[1..]),
        None => (Operator::Simple, body),
    };
    if vars.is_empty() {
        return Err(bad("an expression names no variable"));
    }
    for var in vars.split(',') {
        let name = match var.split_once(':') {
            Some((name, length)) => {
                let valid = !length.is_empty()
                    && length.len() <= 4
                    && length.bytes().all(|b| b.is_ascii_digit())
                    && !length.starts_with('0');
                if !valid {
                    return Err(bad("a prefix modifier is ':' and 1 to 9999"));
                }
                name
            }
            None => var.strip_suffix('*').unwrap_or(var),
        };
        let valid = !name.is_empty()
            && name
                .split('.')
                .all(|piece| !piece.is_empty() && piece.bytes().all(is_varchar));
        if !valid {
            return Err(bad("a variable name is letters, digits, '_' and '.'"));
        }
    }
    Ok(op)
}

/// `varchar` of RFC 6570 (a percent-escape's `%` and hex digits included).
fn is_varchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'%'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(source: &str) -> UriTemplate {
        UriTemplate::parse(source).unwrap().unwrap()
    }

    #[test]
    fn a_template_without_expressions_is_an_exact_topic() {
        assert_eq!(UriTemplate::parse("https://example.com/a"), Ok(None));
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in [
            "a/{id", "a/id}", "a/{}", "a/{+}", "a/{x:0}", "a/{x:a}", "a/{x y}",
        ] {
            assert!(UriTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn level_1_simple_expressions() {
        let books = t("https://example.com/books/{id}");
        assert!(books.matches("https://example.com/books/1"));
        assert!(books.matches("https://example.com/books/abc-DEF_~.%20"));
        assert!(books.matches("https://example.com/books/"));
        assert!(!books.matches("https://example.com/books/1/reviews"));
        assert!(!books.matches("https://example.com/authors/1"));
        assert!(!books.matches("https://example.com/books"));
        let two = t("https://example.com/{kind}/{id}.json");
        assert!(two.matches("https://example.com/books/1.json"));
        assert!(!two.matches("https://example.com/books/1.xml"));
    }

    #[test]
    fn level_2_reserved_and_fragment() {
        let any = t("https://example.com/{+path}");
        assert!(any.matches("https://example.com/a/b/c?x=1"));
        assert!(!any.matches("https://other.example/a"));
        let fragment = t("https://example.com/page{#section}");
        assert!(fragment.matches("https://example.com/page#intro"));
        assert!(fragment.matches("https://example.com/page"));
        assert!(!fragment.matches("https://example.com/page/intro"));
    }

    #[test]
    fn level_3_and_4_operators() {
        let path = t("https://example.com{/segments*}");
        assert!(path.matches("https://example.com/a/b/c"));
        assert!(path.matches("https://example.com"));
        let query = t("https://example.com/search{?q,page}");
        assert!(query.matches("https://example.com/search?q=rust&page=2"));
        assert!(query.matches("https://example.com/search"));
        assert!(!query.matches("https://example.com/search/x"));
        let label = t("https://example.com/file{.ext}");
        assert!(label.matches("https://example.com/file.tar"));
        let params = t("https://example.com/map{;x,y}");
        assert!(params.matches("https://example.com/map;x=1;y=2"));
        let cont = t("https://example.com/s?fixed=1{&extra:3}");
        assert!(cont.matches("https://example.com/s?fixed=1&extra=abc"));
        assert!(cont.matches("https://example.com/s?fixed=1"));
    }

    #[test]
    fn matching_is_linear_however_the_template_is_written() {
        let many = format!("x{}y", "{a}".repeat(MAX_EXPRESSIONS));
        let many = t(&many);
        let topic = format!("x{}z", "a".repeat(2000));
        assert!(!many.matches(&topic));
    }
}
