//! Settlement: what a consumer says about a delivery, and what the broker then does with
//! the message. [`decide`] and [`decide_expired`] are the rules every backend shares.
//!
//! ```
//! use std::time::Duration;
//! use broker_core::{decide, Disposition, RetryPolicy, Settlement};
//!
//! let policy = RetryPolicy::new(3, Duration::from_millis(100)).jitter(0.0);
//! // A nack on the first delivery: retry after the backoff.
//! assert_eq!(
//!     decide(&Settlement::nack(), 1, &policy, 0.0),
//!     Disposition::Retry { delay: Duration::from_millis(100) }
//! );
//! // A nack on the last allowed delivery: dead letter.
//! assert!(matches!(decide(&Settlement::nack(), 3, &policy, 0.0), Disposition::DeadLetter { .. }));
//! ```

use std::time::Duration;

use crate::RetryPolicy;

/// A consumer's verdict on one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settlement {
    /// Processed: remove the message.
    Ack,
    /// Failed, try again: after `delay`, or after the queue's backoff when `None`. On the
    /// last allowed delivery the message is dead-lettered instead.
    Nack {
        /// An explicit delay instead of the retry policy's.
        delay: Option<Duration>,
    },
    /// Will never succeed (a poison message): dead-letter it now with the reason.
    Reject {
        /// Why, recorded on the dead letter.
        reason: String,
    },
    /// Still working: extend the ack deadline by the queue's ack wait.
    InProgress,
}

impl Settlement {
    /// A nack with the queue's backoff.
    #[must_use]
    pub fn nack() -> Self {
        Self::Nack { delay: None }
    }
    /// A nack with an explicit delay.
    #[must_use]
    pub fn nack_after(delay: Duration) -> Self {
        Self::Nack { delay: Some(delay) }
    }
    /// A reject to the dead letters.
    pub fn reject(reason: impl Into<String>) -> Self {
        Self::Reject {
            reason: reason.into(),
        }
    }
}

/// What happens to a message after a settlement or an expired ack deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposition {
    /// The message is gone.
    Removed,
    /// The message is delivered again after `delay`.
    Retry {
        /// How long until it is delivered again.
        delay: Duration,
    },
    /// The message moved to the queue's dead letters.
    DeadLetter {
        /// Why.
        reason: String,
    },
    /// The ack deadline was pushed back; the consumer still holds the message.
    Extended,
}

/// The shared rule: what `settlement` of delivery number `attempt` (1-based) does under
/// `policy`; `unit` in `[0, 1)` picks the jitter.
#[must_use]
pub fn decide(
    settlement: &Settlement,
    attempt: u32,
    policy: &RetryPolicy,
    unit: f64,
) -> Disposition {
    match settlement {
        Settlement::Ack => Disposition::Removed,
        Settlement::InProgress => Disposition::Extended,
        Settlement::Reject { reason } => Disposition::DeadLetter {
            reason: format!("rejected: {reason}"),
        },
        Settlement::Nack { delay } => {
            if attempt >= policy.max_attempts() {
                Disposition::DeadLetter {
                    reason: format!(
                        "nacked on delivery {attempt} of at most {}",
                        policy.max_attempts()
                    ),
                }
            } else {
                Disposition::Retry {
                    delay: delay.unwrap_or_else(|| policy.backoff(attempt, unit)),
                }
            }
        }
    }
}

/// The shared rule when the ack deadline of delivery number `attempt` passed without a
/// settlement: deliver again now, or dead-letter after the last allowed delivery.
#[must_use]
pub fn decide_expired(attempt: u32, policy: &RetryPolicy) -> Disposition {
    if attempt >= policy.max_attempts() {
        Disposition::DeadLetter {
            reason: format!(
                "ack deadline passed on delivery {attempt} of at most {}",
                policy.max_attempts()
            ),
        }
    } else {
        Disposition::Retry {
            delay: Duration::ZERO,
        }
    }
}
