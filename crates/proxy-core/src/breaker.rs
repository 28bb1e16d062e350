//! A circuit breaker per upstream.
//!
//! Closed: requests flow; `failure_threshold` consecutive failures open it. Open: requests
//! are refused until `open_for` has passed. Half-open: up to `half_open_probes` trial
//! requests; a success closes it, a failure opens it again.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use proxy_core::CircuitBreaker;
//!
//! let t0 = Instant::now();
//! let mut breaker = CircuitBreaker::new(2, Duration::from_secs(5), 1);
//! breaker.record_failure(t0);
//! breaker.record_failure(t0);
//! assert!(!breaker.allow(t0));
//! assert!(breaker.allow(t0 + Duration::from_secs(5)));
//! breaker.record_success();
//! assert!(breaker.allow(t0 + Duration::from_secs(5)));
//! ```

use std::time::{Duration, Instant};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; the count of consecutive failures.
    Closed(u32),
    /// Requests are refused until the instant.
    Open(Instant),
    /// Trial requests in flight.
    HalfOpen(u32),
}

/// A consecutive-failure circuit breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    open_for: Duration,
    half_open_probes: u32,
    state: BreakerState,
}

impl CircuitBreaker {
    /// A closed breaker.
    #[must_use]
    pub fn new(failure_threshold: u32, open_for: Duration, half_open_probes: u32) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            open_for,
            half_open_probes: half_open_probes.max(1),
            state: BreakerState::Closed(0),
        }
    }

    /// The state.
    #[must_use]
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a request may go now; in half-open state this takes a probe slot.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed(_) => true,
            BreakerState::Open(until) if now < until => false,
            BreakerState::Open(_) => {
                self.state = BreakerState::HalfOpen(1);
                true
            }
            BreakerState::HalfOpen(n) if n < self.half_open_probes => {
                self.state = BreakerState::HalfOpen(n + 1);
                true
            }
            BreakerState::HalfOpen(_) => false,
        }
    }

    /// Records a success: closes the breaker.
    pub fn record_success(&mut self) {
        self.state = BreakerState::Closed(0);
    }

    /// Records a failure.
    pub fn record_failure(&mut self, now: Instant) {
        self.state = match self.state {
            BreakerState::Closed(n) if n + 1 < self.failure_threshold => {
                BreakerState::Closed(n + 1)
            }
            BreakerState::Open(until) => BreakerState::Open(until),
            _ => BreakerState::Open(now + self.open_for),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(3, Duration::from_secs(10), 2);
        b.record_failure(t0);
        b.record_failure(t0);
        b.record_success();
        b.record_failure(t0);
        b.record_failure(t0);
        assert!(b.allow(t0), "success reset the count");
        b.record_failure(t0);
        assert_eq!(b.state(), BreakerState::Open(t0 + Duration::from_secs(10)));
        assert!(!b.allow(t0 + Duration::from_secs(9)));
        let t1 = t0 + Duration::from_secs(10);
        assert!(b.allow(t1));
        assert!(b.allow(t1));
        assert!(!b.allow(t1), "two probes at most");
        b.record_failure(t1);
        assert!(!b.allow(t1 + Duration::from_secs(1)));
        assert!(b.allow(t1 + Duration::from_secs(10)));
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed(0));
    }
}
