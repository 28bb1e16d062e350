//! When a failed upstream request may be sent again, how long to wait, and how many retries
//! the whole proxy may spend.
//!
//! Only requests that are safe to repeat are retried: idempotent methods (RFC 9110 section
//! 9.2.2) or a request carrying an `Idempotency-Key`. A [`RetryBudget`] caps retries at a
//! share of recent requests so a struggling upstream is not hit by a retry storm.
//!
//! ```
//! use std::time::Duration;
//! use http::Method;
//! use proxy_core::{Failure, RetryPolicy};
//!
//! let policy = RetryPolicy::default();
//! let headers = http::HeaderMap::new();
//! assert!(policy.should_retry(&Method::GET, &headers, Failure::Connect, 0));
//! assert!(!policy.should_retry(&Method::POST, &headers, Failure::Connect, 0));
//! let wait = policy.backoff(1, 0.5);
//! assert!(wait <= Duration::from_millis(50));
//! ```

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, Method};

/// Parsed once: a lookup by `&str` would parse the name on every request.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be made (nothing was sent).
    Connect,
    /// No response within the request timeout.
    Timeout,
    /// A response with this status.
    Status(u16),
    /// The connection broke after the request was (maybe) sent.
    Reset,
}

/// Whether a request may be repeated without changing the outcome (RFC 9110 section 9.2.2),
/// or the client made it so with an `Idempotency-Key` header.
#[must_use]
pub fn is_replayable(method: &Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) || headers.contains_key(IDEMPOTENCY_KEY)
}

/// Retry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Statuses that trigger a retry.
    pub retry_statuses: Vec<u16>,
    /// Retry timeouts (the request may have reached the upstream; only replayable ones).
    pub retry_timeouts: bool,
    /// The first backoff's ceiling; it doubles per attempt.
    pub base_backoff: Duration,
    /// The largest backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            retry_statuses: vec![502, 503, 504],
            retry_timeouts: true,
            base_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// Whether attempt number `attempt` (0 for the first) that failed with `failure` may be
    /// retried. A connect failure never reached the upstream, but its body may have been
    /// consumed, so the same replayability rule applies to all failures.
    #[must_use]
    pub fn should_retry(
        &self,
        method: &Method,
        headers: &HeaderMap,
        failure: Failure,
        attempt: u32,
    ) -> bool {
        self.should_retry_replayable(is_replayable(method, headers), failure, attempt)
    }

    /// [`RetryPolicy::should_retry`] with [`is_replayable`] already answered, for a caller
    /// that has since rewritten the request's headers for the upstream.
    #[must_use]
    pub fn should_retry_replayable(
        &self,
        replayable: bool,
        failure: Failure,
        attempt: u32,
    ) -> bool {
        if attempt >= self.max_retries || !replayable {
            return false;
        }
        match failure {
            Failure::Connect | Failure::Reset => true,
            Failure::Timeout => self.retry_timeouts,
            Failure::Status(s) => self.retry_statuses.contains(&s),
        }
    }

    /// The wait before retry number `retry` (1 for the first), with "full jitter": a uniform
    /// share `jitter` in `[0, 1)` of `min(max, base * 2^(retry-1))`.
    #[must_use]
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_backoff);
        exp.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// A token bucket that allows retries up to `ratio` of requests plus a floor per second.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    ratio: f64,
    min_per_second: f64,
    max_tokens: f64,
    tokens: f64,
    stamp: Option<Instant>,
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per request (0.2 = 20%) and at least
    /// `min_per_second` retries each second.
    #[must_use]
    pub fn new(ratio: f64, min_per_second: f64) -> Self {
        let max_tokens = (min_per_second * 10.0).max(10.0);
        Self {
            ratio: ratio.max(0.0),
            min_per_second: min_per_second.max(0.0),
            max_tokens,
            tokens: max_tokens.min(min_per_second.max(1.0)),
            stamp: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(stamp) = self.stamp {
            let elapsed = now.saturating_duration_since(stamp).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.min_per_second).min(self.max_tokens);
        }
        self.stamp = Some(now);
    }

    /// Records a first attempt (it earns `ratio` of a retry).
    pub fn deposit(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + self.ratio).min(self.max_tokens);
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&mut self, now: Instant) -> bool {
        self.refill(now);
        // Tolerate the rounding of summed ratios (ten deposits of 0.1 make one retry).
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayability() {
        let mut h = HeaderMap::new();
        assert!(is_replayable(&Method::PUT, &h));
        assert!(!is_replayable(&Method::POST, &h));
        assert!(!is_replayable(&Method::PATCH, &h));
        h.insert("idempotency-key", http::HeaderValue::from_static("k1"));
        assert!(is_replayable(&Method::POST, &h));
    }

    #[test]
    fn policy_decisions() {
        let p = RetryPolicy::default();
        let h = HeaderMap::new();
        assert!(p.should_retry(&Method::GET, &h, Failure::Status(503), 0));
        assert!(!p.should_retry(&Method::GET, &h, Failure::Status(500), 0));
        assert!(p.should_retry(&Method::GET, &h, Failure::Timeout, 1));
        assert!(
            !p.should_retry(&Method::GET, &h, Failure::Connect, 2),
            "max_retries reached"
        );
        assert!(!p.should_retry(&Method::POST, &h, Failure::Reset, 0));
    }

    #[test]
    fn backoff_doubles_with_cap_and_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.999_999).as_millis(), 24);
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(50));
        assert_eq!(p.backoff(30, 0.5), Duration::from_millis(500));
        assert_eq!(p.backoff(2, 0.0), Duration::ZERO);
    }

    #[test]
    fn budget_limits_retry_storms() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(0.1, 1.0);
        // Starts with one token from the floor.
        assert!(b.withdraw(t0));
        assert!(!b.withdraw(t0));
        for _ in 0..10 {
            b.deposit(t0);
        }
        assert!(b.withdraw(t0), "10 requests earn one retry at 10%");
        assert!(!b.withdraw(t0));
        assert!(
            b.withdraw(t0 + Duration::from_secs(1)),
            "the floor refills one per second"
        );
    }
}
