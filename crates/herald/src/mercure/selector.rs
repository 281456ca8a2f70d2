//! Topic selectors: what a Mercure subscription (`topic=`, `match=`, `match_urlpattern=`) or a
//! token claim (`mercure.subscribe`, `mercure.publish`, `authorization_details`) names.
//!
//! Four kinds, one type: `*` (every topic), an exact string compared byte for byte, an RFC 6570
//! URI template ([`super::template`], the 0.x `topic=` and claim syntax: a string with `{…}` is a
//! template, any other an exact topic), and a URL pattern ([`super::urlpattern`], 1.0's
//! `match_urlpattern=` and `matchType: URLPattern`). Selectors are checked when parsed, so
//! matching cannot fail.

use super::template::UriTemplate;
use super::urlpattern::UrlPattern;

/// Longest selector accepted, in bytes.
pub const MAX_SELECTOR_LEN: usize = 2048;

/// One topic selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Any,
    Exact(String),
    Template(UriTemplate),
    UrlPattern(UrlPattern),
}

impl Selector {
    /// A 0.x selector (`topic=`, the `mercure` claim): `*`, a URI template or an exact topic.
    pub fn topic(source: &str) -> Result<Self, String> {
        check(source)?;
        if source == "*" {
            return Ok(Self::Any);
        }
        Ok(
            match UriTemplate::parse(source).map_err(|e| e.to_string())? {
                Some(template) => Self::Template(template),
                None => Self::Exact(source.to_owned()),
            },
        )
    }

    /// A 1.0 exact matcher (`match=`): `*` or the topic itself, braces included.
    pub fn exact(source: &str) -> Result<Self, String> {
        check(source)?;
        Ok(if source == "*" {
            Self::Any
        } else {
            Self::Exact(source.to_owned())
        })
    }

    /// A 1.0 URL pattern matcher (`match_urlpattern=`).
    pub fn url_pattern(source: &str) -> Result<Self, String> {
        check(source)?;
        if source == "*" {
            return Ok(Self::Any);
        }
        UrlPattern::parse(source)
            .map(Self::UrlPattern)
            .map_err(|e| e.to_string())
    }

    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => exact == topic,
            Self::Template(template) => template.matches(topic),
            Self::UrlPattern(pattern) => pattern.matches(topic),
        }
    }
}

/// Does any selector match any of the topics?
pub fn any_matches(selectors: &[Selector], topics: &[String]) -> bool {
    topics
        .iter()
        .any(|topic| selectors.iter().any(|s| s.matches(topic)))
}

fn check(source: &str) -> Result<(), String> {
    if source.is_empty() {
        return Err("a topic selector must not be empty".into());
    }
    if source.len() > MAX_SELECTOR_LEN {
        return Err(format!(
            "a topic selector is at most {MAX_SELECTOR_LEN} bytes"
        ));
    }
    if source.chars().any(char::is_control) {
        return Err("a topic selector must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_selects_its_topics() {
        let topics = ["https://example.com/books/1".to_owned()];
        assert!(Selector::topic("*").unwrap().matches("anything"));
        assert!(Selector::topic("https://example.com/books/{id}")
            .unwrap()
            .matches(&topics[0]));
        assert!(Selector::topic("https://example.com/books/1")
            .unwrap()
            .matches(&topics[0]));
        assert!(Selector::url_pattern("https://example.com/books/:id")
            .unwrap()
            .matches(&topics[0]));
        // `match=` is exact even with braces.
        let braces = Selector::exact("https://example.com/books/{id}").unwrap();
        assert!(!braces.matches(&topics[0]));
        assert!(braces.matches("https://example.com/books/{id}"));
        assert!(!any_matches(
            &[Selector::exact("https://example.com/books/2").unwrap()],
            &topics
        ));
    }

    #[test]
    fn bad_selectors_are_refused() {
        assert!(Selector::topic("").is_err());
        assert!(Selector::topic("a\nb").is_err());
        assert!(Selector::topic("https://example.com/{id").is_err());
        assert!(Selector::url_pattern("https://example.com/(\\d+").is_err());
        assert!(Selector::exact(&"x".repeat(MAX_SELECTOR_LEN + 1)).is_err());
    }
}
