//! Subject patterns and subject permissions: which subjects a client (a browser behind a
//! WebSocket bridge, a tenant) may subscribe to and publish on, checked without IO.
//!
//! Subjects are dot-separated tokens (`orders.eu.created`); a pattern may use `*` for one
//! token and `>` (last only) for one or more, as NATS does. [`SubjectPermissions`] holds
//! two lists of patterns: a subscription is allowed when one `subscribe` pattern covers
//! every subject the requested pattern could match, a publish when one `publish` pattern
//! matches the subject (which may not contain wildcards).
//!
//! ```
//! use broker_core::{SubjectPattern, SubjectPermissions};
//!
//! let permissions = SubjectPermissions::new(["demo.>", "users.alice.>"], ["demo.>"])?;
//! assert!(permissions.check_subscribe(&SubjectPattern::parse("demo.*.created")?).is_ok());
//! assert!(permissions.check_subscribe(&SubjectPattern::parse(">")?).is_err());
//! assert!(permissions.check_publish("demo.orders").is_ok());
//! assert!(permissions.check_publish("users.alice.inbox").is_err());
//! # Ok::<(), broker_core::Error>(())
//! ```

use std::fmt;

use crate::{Error, Result};

/// The longest subject or pattern accepted, in bytes.
pub const MAX_SUBJECT_LEN: usize = 256;

fn invalid(subject: &str, reason: &'static str) -> Error {
    Error::InvalidSubject {
        subject: subject.chars().take(200).collect(),
        reason,
    }
}

/// One token of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Token {
    Literal(String),
    /// `*`: exactly one token.
    One,
    /// `>`: one or more tokens (last only).
    Rest,
}

/// A subject or a subject pattern, parsed and checked: `orders.eu`, `orders.*`,
/// `orders.>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubjectPattern {
    text: String,
    tokens: Vec<Token>,
}

impl SubjectPattern {
    /// Parses a pattern.
    ///
    /// # Errors
    /// [`Error::InvalidSubject`] for an empty subject or token, more than
    /// [`MAX_SUBJECT_LEN`] bytes, `*` or `>` inside a token, `>` before the last token, or
    /// a token with whitespace or a control character.
    pub fn parse(text: &str) -> Result<Self> {
        if text.is_empty() || text.len() > MAX_SUBJECT_LEN {
            return Err(invalid(text, "empty or longer than 256 bytes"));
        }
        let count = text.split('.').count();
        let mut tokens = Vec::with_capacity(count);
        for (i, token) in text.split('.').enumerate() {
            tokens.push(match token {
                "" => return Err(invalid(text, "empty token (two dots, or a dot at an end)")),
                "*" => Token::One,
                ">" if i + 1 == count => Token::Rest,
                ">" => return Err(invalid(text, "`>` is allowed as the last token only")),
                _ if token.contains(['*', '>']) => {
                    return Err(invalid(text, "`*` and `>` must be whole tokens"));
                }
                _ if token.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                    return Err(invalid(
                        text,
                        "a token has whitespace or a control character",
                    ));
                }
                _ => Token::Literal(token.to_owned()),
            });
        }
        Ok(Self {
            text: text.to_owned(),
            tokens,
        })
    }

    /// Parses a subject to publish on: a pattern without wildcards.
    ///
    /// # Errors
    /// As [`SubjectPattern::parse`], and [`Error::InvalidSubject`] for `*` or `>`.
    pub fn parse_subject(text: &str) -> Result<Self> {
        let subject = Self::parse(text)?;
        if !subject.is_literal() {
            return Err(invalid(text, "a subject to publish on has no wildcards"));
        }
        Ok(subject)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it has no wildcards (it is a subject).
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Literal(_)))
    }

    /// Whether `subject` (a subject without wildcards) matches this pattern. A subject
    /// that does not parse matches nothing.
    pub fn matches(&self, subject: &str) -> bool {
        let mut parts = subject.split('.');
        for token in &self.tokens {
            match (token, parts.next()) {
                (Token::Rest, Some(part)) => return !part.is_empty(),
                (Token::One, Some(part)) if !part.is_empty() => {}
                (Token::Literal(literal), Some(part)) if literal == part => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }

    /// Whether every subject `other` matches is matched by this pattern too (`a.>` covers
    /// `a.*.c` and `a.b`; `a.*` does not cover `a.>`).
    pub fn covers(&self, other: &SubjectPattern) -> bool {
        let mut theirs = other.tokens.iter();
        for mine in &self.tokens {
            match (mine, theirs.next()) {
                // `>` takes one or more tokens; theirs has at least one here.
                (Token::Rest, Some(_)) => return true,
                (Token::One, Some(Token::One | Token::Literal(_))) => {}
                (Token::Literal(a), Some(Token::Literal(b))) if a == b => {}
                _ => return false,
            }
        }
        theirs.next().is_none()
    }
}

impl fmt::Display for SubjectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why [`SubjectPermissions`] refused a subscription or a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectRefusal {
    /// The subject or pattern does not parse; the reason says why.
    Invalid(String),
    /// No pattern of the list allows it.
    NotAllowed {
        /// `"subscribe"` or `"publish"`.
        action: &'static str,
        /// The subject or pattern asked for.
        subject: String,
    },
}

impl fmt::Display for SubjectRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(reason) => f.write_str(reason),
            Self::NotAllowed { action, subject } => {
                write!(f, "not allowed to {action} to {subject:?}")
            }
        }
    }
}

impl std::error::Error for SubjectRefusal {}

/// What one client may subscribe to and publish on: two lists of [`SubjectPattern`]s
/// (empty lists allow nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectPermissions {
    subscribe: Vec<SubjectPattern>,
    publish: Vec<SubjectPattern>,
}

impl SubjectPermissions {
    /// Parses both lists.
    ///
    /// # Errors
    /// [`Error::InvalidSubject`] for the first pattern that does not parse.
    pub fn new<'a>(
        subscribe: impl IntoIterator<Item = &'a str>,
        publish: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self> {
        Ok(Self {
            subscribe: subscribe
                .into_iter()
                .map(SubjectPattern::parse)
                .collect::<Result<_>>()?,
            publish: publish
                .into_iter()
                .map(SubjectPattern::parse)
                .collect::<Result<_>>()?,
        })
    }

    /// The patterns subscriptions must fall within.
    pub fn subscribe(&self) -> &[SubjectPattern] {
        &self.subscribe
    }

    /// The patterns publishes must match.
    pub fn publish(&self) -> &[SubjectPattern] {
        &self.publish
    }

    /// Allows a subscription to `pattern` when one `subscribe` pattern covers it.
    ///
    /// # Errors
    /// [`SubjectRefusal::NotAllowed`].
    pub fn check_subscribe(&self, pattern: &SubjectPattern) -> Result<(), SubjectRefusal> {
        if self.subscribe.iter().any(|allowed| allowed.covers(pattern)) {
            Ok(())
        } else {
            Err(SubjectRefusal::NotAllowed {
                action: "subscribe",
                subject: pattern.as_str().to_owned(),
            })
        }
    }

    /// Parses `subject` (no wildcards) and allows publishing on it when one `publish`
    /// pattern matches it.
    ///
    /// # Errors
    /// [`SubjectRefusal::Invalid`] for a subject that does not parse or has wildcards;
    /// [`SubjectRefusal::NotAllowed`].
    pub fn check_publish(&self, subject: &str) -> Result<SubjectPattern, SubjectRefusal> {
        let parsed = SubjectPattern::parse_subject(subject)
            .map_err(|error| SubjectRefusal::Invalid(error.to_string()))?;
        if self.publish.iter().any(|allowed| allowed.matches(subject)) {
            Ok(parsed)
        } else {
            Err(SubjectRefusal::NotAllowed {
                action: "publish",
                subject: subject.to_owned(),
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(text: &str) -> SubjectPattern {
        SubjectPattern::parse(text).unwrap()
    }

    #[test]
    fn patterns_parse_and_refuse_with_a_reason() {
        assert!(p("a.b.c").is_literal());
        assert!(!p("a.*.c").is_literal());
        assert!(!p("a.>").is_literal());
        for bad in [
            "", "a..b", ".a", "a.", "a.>.b", "a*.b", "a.b>", "a b", "a.\u{7}",
        ] {
            let error = SubjectPattern::parse(bad).unwrap_err();
            assert!(
                matches!(error, Error::InvalidSubject { .. }),
                "{bad}: {error}"
            );
        }
        assert!(SubjectPattern::parse(&"a".repeat(257)).is_err());
        assert!(SubjectPattern::parse_subject("a.*").is_err());
        assert_eq!(p("x.>").to_string(), "x.>");
    }

    #[test]
    fn matching_follows_nats_wildcards() {
        assert!(p("a.b").matches("a.b"));
        assert!(!p("a.b").matches("a.b.c"));
        assert!(!p("a.b.c").matches("a.b"));
        assert!(p("a.*.c").matches("a.x.c"));
        assert!(!p("a.*.c").matches("a.x.y.c"));
        assert!(p("a.>").matches("a.b"));
        assert!(p("a.>").matches("a.b.c.d"));
        assert!(!p("a.>").matches("a"));
        assert!(p(">").matches("anything.at.all"));
        assert!(!p("a.*").matches("a."));
        assert!(!p("a.>").matches("a."));
        assert!(!p("a.*").matches(""));
    }

    #[test]
    fn coverage_never_widens() {
        assert!(p("a.>").covers(&p("a.*.c")));
        assert!(p("a.>").covers(&p("a.>")));
        assert!(p("a.>").covers(&p("a.b")));
        assert!(!p("a.>").covers(&p("a")));
        assert!(!p("a.>").covers(&p(">")));
        assert!(p("a.*").covers(&p("a.b")));
        assert!(p("a.*").covers(&p("a.*")));
        assert!(!p("a.*").covers(&p("a.>")));
        assert!(!p("a.*").covers(&p("a.b.c")));
        assert!(!p("a.b").covers(&p("a.*")));
        assert!(p(">").covers(&p("x.>")));
    }

    #[test]
    fn permissions_check_each_action_with_its_own_list() {
        let permissions = SubjectPermissions::new(["demo.>", "users.alice.>"], ["demo.>"]).unwrap();
        assert!(permissions.check_subscribe(&p("users.alice.inbox")).is_ok());
        assert_eq!(
            permissions
                .check_subscribe(&p("users.*.inbox"))
                .unwrap_err(),
            SubjectRefusal::NotAllowed {
                action: "subscribe",
                subject: "users.*.inbox".to_owned()
            }
        );
        assert_eq!(
            permissions.check_publish("demo.x").unwrap().as_str(),
            "demo.x"
        );
        assert!(matches!(
            permissions.check_publish("demo.*"),
            Err(SubjectRefusal::Invalid(_))
        ));
        let refused = permissions.check_publish("users.alice.inbox").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "not allowed to publish to \"users.alice.inbox\""
        );
        assert!(SubjectPermissions::new(["a..b"], []).is_err());
        let nothing = SubjectPermissions::default();
        assert!(nothing.check_subscribe(&p("a")).is_err());
        assert!(nothing.check_publish("a").is_err());
    }
}
