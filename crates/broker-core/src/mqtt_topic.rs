//! Subjects and MQTT topics: broker-core writes subjects with dots and NATS-style
//! wildcards (`sensors.*.temp`, `sensors.>`), MQTT writes topics with slashes and its own
//! (`sensors/+/temp`, `sensors/#`). These two functions map one to the other and refuse
//! what has no counterpart, so a pattern never widens or narrows on the way.
//!
//! ```
//! use broker_core::{mqtt_filter_to_subject, subject_to_mqtt_filter};
//!
//! assert_eq!(subject_to_mqtt_filter("sensors.*.temp")?, "sensors/+/temp");
//! assert_eq!(subject_to_mqtt_filter("sensors.>")?, "sensors/#");
//! assert_eq!(mqtt_filter_to_subject("sensors/kitchen/temp")?, "sensors.kitchen.temp");
//! // An MQTT level with a dot has no subject form.
//! assert!(mqtt_filter_to_subject("v1.2/x").is_err());
//! # Ok::<(), broker_core::Error>(())
//! ```

use crate::{Error, Result};

/// The longest subject or topic accepted (MQTT allows 65,535 bytes; names this long are
/// mistakes).
const MAX_LEN: usize = 1024;

fn invalid(subject: &str, reason: &'static str) -> Error {
    Error::InvalidSubject {
        subject: subject.chars().take(200).collect(),
        reason,
    }
}

/// `a.b.*` to `a/b/+`, `a.>` to `a/#`: `*` stands for one token, `>` (last only) for one
/// or more. A subject without wildcards maps to a topic name.
///
/// # Errors
/// [`Error::InvalidSubject`] for an empty subject or token, a token with `/`, `+`, `#`, a
/// NUL or whitespace, `*` or `>` inside a token, `>` before the last token, or more than
/// 1024 bytes.
pub fn subject_to_mqtt_filter(subject: &str) -> Result<String> {
    if subject.is_empty() || subject.len() > MAX_LEN {
        return Err(invalid(subject, "empty or longer than 1024 bytes"));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    let last = tokens.len() - 1;
    let mut levels = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.into_iter().enumerate() {
        let level = match token {
            "" => return Err(invalid(subject, "empty token")),
            "*" => "+",
            ">" if i == last => "#",
            ">" => return Err(invalid(subject, "`>` is allowed as the last token only")),
            _ => {
                if token
                    .chars()
                    .any(|c| matches!(c, '/' | '+' | '#' | '*' | '>' | '\0') || c.is_whitespace())
                {
                    return Err(invalid(
                        subject,
                        "a token has one of / + # * > NUL or whitespace",
                    ));
                }
                token
            }
        };
        levels.push(level);
    }
    Ok(levels.join("/"))
}

/// `a/b/+` to `a.b.*`, `a/#` to `a.>`: the inverse of [`subject_to_mqtt_filter`].
///
/// # Errors
/// [`Error::InvalidSubject`] for an empty topic or level (`a//b`, `/a`), a level with `.`,
/// `*`, `>`, a NUL or whitespace, `+` or `#` inside a level, `#` before the last level, a
/// `$` topic (`$SYS`, `$share`), or more than 1024 bytes.
pub fn mqtt_filter_to_subject(topic: &str) -> Result<String> {
    if topic.is_empty() || topic.len() > MAX_LEN {
        return Err(invalid(topic, "empty or longer than 1024 bytes"));
    }
    if topic.starts_with('$') {
        return Err(invalid(topic, "`$` topics belong to the server"));
    }
    let levels: Vec<&str> = topic.split('/').collect();
    let last = levels.len() - 1;
    let mut tokens = Vec::with_capacity(levels.len());
    for (i, level) in levels.into_iter().enumerate() {
        let token = match level {
            "" => return Err(invalid(topic, "empty level")),
            "+" => "*",
            "#" if i == last => ">",
            "#" => return Err(invalid(topic, "`#` is allowed as the last level only")),
            _ => {
                if level
                    .chars()
                    .any(|c| matches!(c, '.' | '*' | '>' | '+' | '#' | '\0') || c.is_whitespace())
                {
                    return Err(invalid(
                        topic,
                        "a level has one of . * > + # NUL or whitespace",
                    ));
                }
                level
            }
        };
        tokens.push(token);
    }
    Ok(tokens.join("."))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wildcards_map_both_ways() {
        for (subject, topic) in [
            ("a", "a"),
            ("a.b.c", "a/b/c"),
            ("a.*.c", "a/+/c"),
            ("*", "+"),
            (">", "#"),
            ("a.>", "a/#"),
            ("*.*.>", "+/+/#"),
            ("caf\u{e9}.x-1_y", "caf\u{e9}/x-1_y"),
        ] {
            assert_eq!(subject_to_mqtt_filter(subject).unwrap(), topic);
            assert_eq!(mqtt_filter_to_subject(topic).unwrap(), subject);
        }
    }

    #[test]
    fn what_has_no_counterpart_is_refused() {
        for subject in [
            "", "a..b", ".a", "a.", "a.>.b", "a/b", "a+", "a#", "a*", "a>", "a b", "a\0",
        ] {
            assert!(
                matches!(
                    subject_to_mqtt_filter(subject),
                    Err(Error::InvalidSubject { .. })
                ),
                "{subject:?}"
            );
        }
        for topic in [
            "",
            "a//b",
            "/a",
            "a/",
            "a/#/b",
            "a.b",
            "a*",
            "a>",
            "a+",
            "a#",
            "$SYS/x",
            "$share/g/a",
            "a b",
        ] {
            assert!(
                matches!(
                    mqtt_filter_to_subject(topic),
                    Err(Error::InvalidSubject { .. })
                ),
                "{topic:?}"
            );
        }
        assert!(subject_to_mqtt_filter(&"a".repeat(1025)).is_err());
    }
}
