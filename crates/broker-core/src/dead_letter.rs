//! Dead letters: messages that were rejected or ran out of deliveries, kept with the
//! reason and attempt count until they are re-driven to their queue.

use std::time::SystemTime;

use crate::Envelope;

/// A message that will not be delivered again unless it is re-driven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message as last delivered; its headers carry
    /// [`DEAD_LETTER_REASON`](crate::DEAD_LETTER_REASON) and
    /// [`DEAD_LETTER_ATTEMPTS`](crate::DEAD_LETTER_ATTEMPTS) too.
    pub envelope: Envelope,
    /// The queue it came from.
    pub queue: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many deliveries it had.
    pub attempts: u32,
    /// When it was dead-lettered (millisecond precision).
    pub dead_at: SystemTime,
}

impl DeadLetter {
    /// A dead letter of `envelope`, which records the reason and attempts in its headers.
    pub fn new(
        queue: &str,
        mut envelope: Envelope,
        reason: String,
        attempts: u32,
        now: SystemTime,
    ) -> Self {
        let reason: String = reason
            .chars()
            .filter(|c| !c.is_control())
            .take(512)
            .collect();
        // Both values are checked text, so these inserts cannot fail; ignore defensively.
        let headers = envelope.headers_mut();
        let _ = headers.insert_checked(crate::DEAD_LETTER_REASON.into(), reason.clone());
        let _ = headers.insert_checked(crate::DEAD_LETTER_ATTEMPTS.into(), attempts.to_string());
        envelope.set_delivered_at(None);
        Self {
            envelope,
            queue: queue.to_owned(),
            reason,
            attempts,
            dead_at: crate::envelope::to_millis(now),
        }
    }

    /// A dead letter read back from a backend: reason and attempts from its headers.
    #[cfg(any(
        feature = "redis",
        feature = "nats",
        feature = "amqp",
        feature = "mqtt"
    ))]
    pub(crate) fn from_stored(queue: &str, envelope: Envelope, dead_at: SystemTime) -> Self {
        let headers = envelope.headers();
        let reason = headers
            .get(crate::DEAD_LETTER_REASON)
            .unwrap_or_default()
            .to_owned();
        let attempts = headers
            .get(crate::DEAD_LETTER_ATTEMPTS)
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        Self {
            envelope,
            queue: queue.to_owned(),
            reason,
            attempts,
            dead_at,
        }
    }

    /// The envelope to publish again: the dead-letter headers removed, attempt back at 0.
    #[must_use]
    pub fn into_redriven(self) -> Envelope {
        let mut envelope = self.envelope;
        envelope.headers_mut().remove(crate::DEAD_LETTER_REASON);
        envelope.headers_mut().remove(crate::DEAD_LETTER_ATTEMPTS);
        envelope.set_attempt(0);
        envelope
    }
}
