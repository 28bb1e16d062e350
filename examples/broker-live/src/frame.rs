//! The JSON frames the page and the bridge exchange over the WebSocket, one text message
//! each, and the per-user subject permissions. No IO: the session in `lib.rs` parses what
//! arrives with [`ClientFrame::parse`] and sends what [`ServerFrame::to_text`] makes.
//!
//! From the browser:
//!
//! ```text
//! {"type":"subscribe","pattern":"demo.*"}
//! {"type":"unsubscribe","pattern":"demo.*"}
//! {"type":"publish","subject":"demo.greetings","data":{"any":"JSON"}}
//! ```
//!
//! To the browser: `welcome` (the user and their allow-lists), `subscribed`,
//! `unsubscribed`, `published` (the message id), `message` (a delivery: the subscription's
//! pattern, the subject, the id, the publisher, the time, the data) and `error` (a code the
//! page can act on, a sentence for the user, and what was asked for).

use broker_core::{SubjectPermissions, SubjectRefusal};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A frame from the browser.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientFrame {
    /// Deliver the messages whose subject matches `pattern` from now on.
    Subscribe {
        /// A subject pattern (`demo.*`, `demo.>`).
        pattern: String,
    },
    /// Stop delivering `pattern`'s messages.
    Unsubscribe {
        /// A pattern subscribed before.
        pattern: String,
    },
    /// Publish `data` on `subject`.
    Publish {
        /// A subject without wildcards.
        subject: String,
        /// Any JSON value.
        data: Value,
    },
}

impl ClientFrame {
    /// Parses one text message.
    ///
    /// # Errors
    /// A [`ServerFrame::Error`] with code `bad-frame` that says what was wrong (boxed: the
    /// frame is large next to the `Ok` side).
    pub fn parse(text: &str) -> Result<Self, Box<ServerFrame>> {
        serde_json::from_str(text).map_err(|error| {
            Box::new(ServerFrame::error(
                ErrorCode::BadFrame,
                format!(
                    "not a frame this bridge understands ({error}); send \
                     {{\"type\":\"subscribe\",\"pattern\":...}}, \"unsubscribe\" or \
                     {{\"type\":\"publish\",\"subject\":...,\"data\":...}}"
                ),
                None,
            ))
        })
    }
}

/// What went wrong with a frame, for the page to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Not JSON, or not one of the frames.
    BadFrame,
    /// The subject or pattern does not parse.
    InvalidSubject,
    /// The allow-list does not let this connection do it.
    Forbidden,
    /// Too many subscriptions on this connection.
    TooManySubscriptions,
    /// The broker did not take the message.
    Unavailable,
}

/// A frame to the browser.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame {
    /// Sent first: who the connection is and what it may do.
    Welcome {
        /// The logged-in user.
        user: String,
        /// Patterns subscriptions must fall within.
        subscribe: Vec<String>,
        /// Patterns publishes must match.
        publish: Vec<String>,
    },
    /// A subscription is in place.
    Subscribed {
        /// Its pattern.
        pattern: String,
    },
    /// A subscription is gone.
    Unsubscribed {
        /// Its pattern.
        pattern: String,
    },
    /// The broker has the message.
    Published {
        /// Its subject.
        subject: String,
        /// Its message id.
        id: String,
    },
    /// A message for one of the connection's subscriptions.
    Message {
        /// The subscription it matched.
        pattern: String,
        /// Its subject.
        subject: String,
        /// Its message id.
        id: String,
        /// Who published it.
        from: String,
        /// When, in milliseconds since the Unix epoch.
        published_at_ms: u64,
        /// What was published.
        data: Value,
    },
    /// A frame was refused; nothing was done.
    Error {
        /// What kind of refusal.
        code: ErrorCode,
        /// A sentence for the user.
        message: String,
        /// The subject or pattern asked for, when there was one.
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
    },
}

impl ServerFrame {
    /// An `error` frame.
    pub fn error(code: ErrorCode, message: impl Into<String>, subject: Option<&str>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            subject: subject.map(str::to_owned),
        }
    }

    /// The `error` frame for a refusal of the allow-list.
    pub fn refused(refusal: &SubjectRefusal, subject: &str) -> Self {
        match refusal {
            SubjectRefusal::NotAllowed { action, .. } => Self::error(
                ErrorCode::Forbidden,
                format!(
                    "you may not {action} to \u{201c}{subject}\u{201d}: it is outside your allow-list"
                ),
                Some(subject),
            ),
            other => Self::error(ErrorCode::InvalidSubject, other.to_string(), Some(subject)),
        }
    }

    /// The `welcome` frame.
    pub fn welcome(user: &str, permissions: &SubjectPermissions) -> Self {
        let texts = |list: &[broker_core::SubjectPattern]| {
            list.iter().map(|p| p.as_str().to_owned()).collect()
        };
        Self::Welcome {
            user: user.to_owned(),
            subscribe: texts(permissions.subscribe()),
            publish: texts(permissions.publish()),
        }
    }

    /// The frame as one text message.
    pub fn to_text(&self) -> String {
        // Serializing these types cannot fail (string keys, no maps with other keys).
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
    }
}

/// Allow-lists with `{user}` standing for the logged-in user's name (made one subject
/// token: characters other than `A-Z a-z 0-9 - _` become `_`), so that each connection
/// gets its own lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionTemplate {
    /// Subscribe patterns.
    pub subscribe: Vec<String>,
    /// Publish patterns.
    pub publish: Vec<String>,
}

impl Default for PermissionTemplate {
    /// Everyone reads and writes `demo.>`; each user reads only their own `users.NAME.>`,
    /// and may write to anyone's `users.*.inbox`.
    fn default() -> Self {
        Self {
            subscribe: vec!["demo.>".to_owned(), "users.{user}.>".to_owned()],
            publish: vec!["demo.>".to_owned(), "users.*.inbox".to_owned()],
        }
    }
}

impl PermissionTemplate {
    /// The lists for `user`.
    ///
    /// # Errors
    /// [`broker_core::Error::InvalidSubject`] when a pattern does not parse.
    pub fn for_user(&self, user: &str) -> broker_core::Result<SubjectPermissions> {
        let token = user_token(user);
        let fill = |list: &[String]| -> Vec<String> {
            list.iter().map(|p| p.replace("{user}", &token)).collect()
        };
        let subscribe = fill(&self.subscribe);
        let publish = fill(&self.publish);
        SubjectPermissions::new(
            subscribe.iter().map(String::as_str),
            publish.iter().map(String::as_str),
        )
    }
}

/// `user` as one subject token: `A-Z a-z 0-9 - _` kept, anything else `_`; `_` if empty.
pub fn user_token(user: &str) -> String {
    let token: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if token.is_empty() {
        "_".to_owned()
    } else {
        token
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use broker_core::SubjectPattern;
    use serde_json::json;

    #[test]
    fn client_frames_parse_and_bad_ones_say_why() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"subscribe","pattern":"demo.*"}"#).unwrap(),
            ClientFrame::Subscribe {
                pattern: "demo.*".to_owned()
            }
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"publish","subject":"demo.a","data":[1,2]}"#).unwrap(),
            ClientFrame::Publish {
                subject: "demo.a".to_owned(),
                data: json!([1, 2])
            }
        );
        for bad in [
            "nope",
            r#"{"type":"shout"}"#,
            r#"{"type":"subscribe"}"#,
            r#"{"type":"subscribe","pattern":"a","extra":1}"#,
        ] {
            let ServerFrame::Error { code, message, .. } = *ClientFrame::parse(bad).unwrap_err()
            else {
                panic!("not an error frame")
            };
            assert_eq!(code, ErrorCode::BadFrame);
            assert!(message.starts_with("not a frame"), "{message}");
        }
    }

    #[test]
    fn server_frames_are_tagged_json() {
        let text = ServerFrame::error(ErrorCode::TooManySubscriptions, "x", Some("a.b")).to_text();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"type":"error","code":"too-many-subscriptions","message":"x","subject":"a.b"})
        );
        let text = ServerFrame::error(ErrorCode::BadFrame, "x", None).to_text();
        assert!(!text.contains("subject"), "{text}");
    }

    #[test]
    fn each_user_gets_their_own_lists() {
        let template = PermissionTemplate::default();
        let alice = template.for_user("alice").unwrap();
        let pattern = |p: &str| SubjectPattern::parse(p).unwrap();
        assert!(alice.check_subscribe(&pattern("users.alice.inbox")).is_ok());
        assert!(alice.check_subscribe(&pattern("users.bob.inbox")).is_err());
        assert!(alice.check_subscribe(&pattern("users.*.inbox")).is_err());
        assert!(alice.check_publish("users.bob.inbox").is_ok());
        assert!(alice.check_publish("admin.shutdown").is_err());
        // A name with a dot or a wildcard stays one token: it cannot widen the list.
        let tricky = template.for_user("a.>").unwrap();
        assert_eq!(tricky.subscribe()[1].as_str(), "users.a__.>");
        assert!(tricky.check_subscribe(&pattern("users.a.x")).is_err());
        let refused = alice.check_publish("admin.shutdown").unwrap_err();
        let ServerFrame::Error { code, message, .. } =
            ServerFrame::refused(&refused, "admin.shutdown")
        else {
            panic!()
        };
        assert_eq!(code, ErrorCode::Forbidden);
        assert!(message.contains("may not publish"), "{message}");
    }
}
