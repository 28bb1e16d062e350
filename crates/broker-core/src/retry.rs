//! Retry timing: exponential backoff with jitter and a maximum number of deliveries.
//!
//! ```
//! use std::time::Duration;
//! use broker_core::RetryPolicy;
//!
//! let policy = RetryPolicy::new(5, Duration::from_millis(100))
//!     .max_delay(Duration::from_secs(10))
//!     .jitter(0.0);
//! // The delay after the n-th failed delivery doubles each time.
//! assert_eq!(policy.backoff(1, 0.5), Duration::from_millis(100));
//! assert_eq!(policy.backoff(3, 0.5), Duration::from_millis(400));
//! ```

use std::time::Duration;

use crate::{Error, Result};

/// How often and how soon a message is delivered again after a failure.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial: Duration,
    multiplier: f64,
    max_delay: Duration,
    jitter: f64,
}

impl Default for RetryPolicy {
    /// 5 deliveries, 1 s doubling to at most 5 minutes, 20% jitter.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// At most `max_attempts` deliveries (at least 1), the first retry after `initial`.
    #[must_use]
    pub fn new(max_attempts: u32, initial: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            initial,
            ..Self::default()
        }
    }

    /// The factor between consecutive delays (default 2; clamped to 1..=16).
    #[must_use]
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.clamp(1.0, 16.0)
        } else {
            2.0
        };
        self
    }

    /// The longest delay (default 5 minutes).
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// The multiplier, longest delay and jitter (the embedded broker's journal keeps them).
    pub(crate) fn shape(&self) -> (f64, Duration, f64) {
        (self.multiplier, self.max_delay, self.jitter)
    }

    /// The fraction of each delay that is random (0 = none, 1 = "full jitter"; default 0.2).
    #[must_use]
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// How many deliveries a message gets before it is dead-lettered.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before the first retry.
    #[must_use]
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The delay after the `attempt`-th delivery failed (1-based), with `unit` a random
    /// number in `[0, 1)` that picks the jitter: `d * (1 - jitter * unit)` where
    /// `d = min(max_delay, initial * multiplier^(attempt-1))`.
    #[must_use]
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1).min(1000)).unwrap_or(1000);
        let base = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = base.min(self.max_delay.as_secs_f64());
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let delay = capped * (1.0 - self.jitter * unit);
        Duration::try_from_secs_f64(delay).unwrap_or(self.max_delay)
    }

    /// Checks the values make sense together.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `initial` is longer than `max_delay`.
    pub fn validate(&self) -> Result<()> {
        if self.initial > self.max_delay {
            return Err(Error::InvalidConfig(
                "retry: initial delay is longer than max_delay",
            ));
        }
        Ok(())
    }
}

/// A small deterministic random source for jitter (SplitMix64): seeded, so a virtual-clock
/// test sees the same delays on every run.
#[derive(Clone, Debug)]
pub struct JitterSource(u64);

impl JitterSource {
    /// A source that yields the same sequence for the same seed.
    #[must_use]
    pub fn seeded(seed: u64) -> Self {
        Self(seed)
    }

    /// A source seeded from a fresh UUIDv7's random bits.
    #[must_use]
    pub fn from_entropy() -> Self {
        let bits = uuid::Uuid::now_v7().as_u128();
        // The low 64 bits of a v7 UUID are random apart from the variant; truncation
        // keeps exactly those.
        let low = bits as u64;
        Self(low)
    }

    /// The next number in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // 53 random bits as a fraction: exact in an f64.
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters_down() {
        let p = RetryPolicy::new(10, Duration::from_millis(100))
            .multiplier(3.0)
            .max_delay(Duration::from_secs(2))
            .jitter(0.5);
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0.0), Duration::from_millis(300));
        assert_eq!(p.backoff(4, 0.0), Duration::from_secs(2));
        assert_eq!(p.backoff(u32::MAX, 0.0), Duration::from_secs(2));
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(50));
        assert_eq!(p.backoff(1, f64::NAN), Duration::from_millis(100));
        let mut j = JitterSource::seeded(7);
        let units: Vec<f64> = (0..100).map(|_| j.next_unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        let mut again = JitterSource::seeded(7);
        assert_eq!(again.next_unit(), units.first().copied().unwrap_or(-1.0));
        assert!(p.validate().is_ok());
        assert!(
            RetryPolicy::new(1, Duration::from_secs(9))
                .max_delay(Duration::from_secs(1))
                .validate()
                .is_err()
        );
    }
}
