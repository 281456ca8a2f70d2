//! Topics and topic patterns.
//!
//! A topic is a `/`-separated path such as `orders/42/status`. A pattern may use `*` for exactly
//! one segment and, as its last segment only, `**` for one or more remaining segments (like
//! `dir/**` in `.gitignore`: `orders/**` matches `orders/1` and `orders/1/items`, not `orders`).
//! Patterns appear in two places: subscriptions (`?topic=orders/*`) and token claims
//! (`"topics": ["orders/**"]`); a subscription is allowed when a claim pattern *covers* it, i.e.
//! every topic the subscription can match is also matched by the claim.

use std::fmt;

/// Longest topic or pattern accepted, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;

/// Why a topic or pattern was rejected. The message is meant for the API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic must not be empty")]
    Empty,
    #[error("topic is longer than {MAX_TOPIC_LEN} bytes")]
    TooLong,
    #[error("topic {0:?} has an empty segment (leading, trailing or double '/')")]
    EmptySegment(String),
    #[error("topic {0:?} contains whitespace or a control character")]
    BadCharacter(String),
    #[error("topic {0:?} must not start with '@' (reserved)")]
    Reserved(String),
    #[error("topic {0:?} contains a wildcard; publish to concrete topics only")]
    Wildcard(String),
    #[error("pattern {0:?}: '*' and '**' must be whole segments, and '**' only the last one")]
    BadWildcard(String),
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    if s.starts_with('@') {
        return Err(TopicError::Reserved(s.to_owned()));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TopicError::BadCharacter(s.to_owned()));
    }
    if s.split('/').any(str::is_empty) {
        return Err(TopicError::EmptySegment(s.to_owned()));
    }
    Ok(())
}

/// Checks a concrete topic (no wildcards), as used when publishing.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    if topic.contains('*') {
        return Err(TopicError::Wildcard(topic.to_owned()));
    }
    Ok(())
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(Box<str>),
    /// `*`: exactly one segment.
    Star,
    /// `**`: one or more remaining segments (always last).
    Globstar,
}

/// A parsed topic pattern. A pattern without wildcards is an exact topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    source: Box<str>,
    segments: Box<[Segment]>,
}

impl Pattern {
    pub fn parse(source: &str) -> Result<Self, TopicError> {
        check_common(source)?;
        let parts: Vec<&str> = source.split('/').collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.into_iter().enumerate() {
            let segment = match part {
                "*" => Segment::Star,
                "**" if i == last => Segment::Globstar,
                _ if part.contains('*') => return Err(TopicError::BadWildcard(source.to_owned())),
                _ => Segment::Literal(part.into()),
            };
            segments.push(segment);
        }
        Ok(Self {
            source: source.into(),
            segments: segments.into(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True when the pattern has no wildcard, so it names exactly one topic.
    pub fn is_exact(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// Does this pattern match the concrete `topic`?
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('/');
        for segment in self.segments.iter() {
            match segment {
                Segment::Globstar => return parts.next().is_some(),
                Segment::Star => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(lit) => {
                    if parts.next() != Some(lit) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    /// Does every topic matched by `other` also match `self`?
    pub fn covers(&self, other: &Pattern) -> bool {
        let mut theirs = other.segments.iter();
        for mine in self.segments.iter() {
            match mine {
                // `**` covers one or more of anything, so `other` needs at least one segment left.
                Segment::Globstar => return theirs.next().is_some(),
                Segment::Star => match theirs.next() {
                    Some(Segment::Literal(_) | Segment::Star) => {}
                    _ => return false,
                },
                Segment::Literal(lit) => match theirs.next() {
                    Some(Segment::Literal(t)) if t == lit => {}
                    _ => return false,
                },
            }
        }
        theirs.next().is_none()
    }
}

/// Drops patterns that another pattern in the list already covers (and exact repeats), so a
/// stream subscribed to `orders/*` and `orders/**` is registered, and matched, once.
pub fn without_redundant(patterns: Vec<Pattern>) -> Vec<Pattern> {
    let mut kept: Vec<Pattern> = Vec::with_capacity(patterns.len());
    for (i, pattern) in patterns.iter().enumerate() {
        let redundant = patterns.iter().enumerate().any(|(j, other)| {
            // Of two equal patterns the first is kept; otherwise a strictly wider one wins.
            j != i && other.covers(pattern) && (j < i || !pattern.covers(other))
        });
        if !redundant {
            kept.push(pattern.clone());
        }
    }
    kept
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn redundant_patterns_are_dropped() {
        let kept = |list: &[&str]| -> Vec<String> {
            without_redundant(list.iter().map(|s| p(s)).collect())
                .iter()
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(
            kept(&["orders/*", "orders/**", "news"]),
            ["orders/**", "news"]
        );
        assert_eq!(kept(&["a/b", "a/b", "a/*"]), ["a/*"]);
        assert_eq!(kept(&["x/*", "x/*"]), ["x/*"]);
        assert_eq!(kept(&["a/*", "b/*"]), ["a/*", "b/*"]);
    }

    #[test]
    fn topic_validation() {
        assert!(validate_topic("orders/42").is_ok());
        assert!(validate_topic("café/ünïcode").is_ok());
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
        assert!(matches!(
            validate_topic("a//b"),
            Err(TopicError::EmptySegment(_))
        ));
        assert!(matches!(
            validate_topic("/a"),
            Err(TopicError::EmptySegment(_))
        ));
        assert!(matches!(
            validate_topic("a/"),
            Err(TopicError::EmptySegment(_))
        ));
        assert!(matches!(
            validate_topic("a b"),
            Err(TopicError::BadCharacter(_))
        ));
        assert!(matches!(
            validate_topic("a\nb"),
            Err(TopicError::BadCharacter(_))
        ));
        assert!(matches!(
            validate_topic("a/*"),
            Err(TopicError::Wildcard(_))
        ));
        assert!(matches!(
            validate_topic("@users"),
            Err(TopicError::Reserved(_))
        ));
        assert_eq!(validate_topic(&"x".repeat(257)), Err(TopicError::TooLong));
    }

    #[test]
    fn pattern_syntax() {
        assert!(Pattern::parse("a/*/c").is_ok());
        assert!(Pattern::parse("a/**").is_ok());
        assert!(Pattern::parse("**").is_ok());
        assert!(matches!(
            Pattern::parse("a/**/c"),
            Err(TopicError::BadWildcard(_))
        ));
        assert!(matches!(
            Pattern::parse("a/b*"),
            Err(TopicError::BadWildcard(_))
        ));
        assert!(matches!(
            Pattern::parse("***"),
            Err(TopicError::BadWildcard(_))
        ));
        assert!(p("a/b").is_exact());
        assert!(!p("a/*").is_exact());
    }

    #[test]
    fn matching() {
        assert!(p("a/b").matches("a/b"));
        assert!(!p("a/b").matches("a/b/c"));
        assert!(!p("a/b").matches("a"));
        assert!(p("a/*").matches("a/x"));
        assert!(!p("a/*").matches("a"));
        assert!(!p("a/*").matches("a/x/y"));
        assert!(p("a/*/c").matches("a/x/c"));
        assert!(!p("a/*/c").matches("a/x/d"));
        assert!(p("a/**").matches("a/x"));
        assert!(p("a/**").matches("a/x/y/z"));
        assert!(!p("a/**").matches("a"));
        assert!(!p("a/**").matches("b/x"));
        assert!(p("**").matches("anything/at/all"));
        assert!(p("*").matches("one"));
        assert!(!p("*").matches("one/two"));
    }

    #[test]
    fn coverage() {
        assert!(p("a/**").covers(&p("a/b")));
        assert!(p("a/**").covers(&p("a/*")));
        assert!(p("a/**").covers(&p("a/**")));
        assert!(p("a/**").covers(&p("a/b/**")));
        assert!(!p("a/**").covers(&p("a")));
        assert!(!p("a/**").covers(&p("**")));
        assert!(p("a/*").covers(&p("a/b")));
        assert!(p("a/*").covers(&p("a/*")));
        assert!(!p("a/*").covers(&p("a/**")));
        assert!(!p("a/*").covers(&p("a/b/c")));
        assert!(!p("a/b").covers(&p("a/*")));
        assert!(p("a/b").covers(&p("a/b")));
        assert!(!p("a/b").covers(&p("a/c")));
        assert!(p("**").covers(&p("x/**")));
    }

    proptest::proptest! {
        /// `covers` must agree with `matches`: whenever A covers B, any topic B matches, A matches.
        #[test]
        fn covers_is_sound(a in "[ab*]{1}(/[ab*]{1}){0,3}(/\\*\\*)?",
                           b in "[ab*]{1}(/[ab*]{1}){0,3}(/\\*\\*)?",
                           t in "[abc]{1}(/[abc]{1}){0,5}") {
            let (a, b) = (p(&a), p(&b));
            if a.covers(&b) && b.matches(&t) {
                proptest::prop_assert!(a.matches(&t), "{a} covers {b} but not {t}");
            }
        }
    }
}
