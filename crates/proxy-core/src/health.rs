//! Active health checks as a sans-IO scheduler, and passive outlier detection.
//!
//! [`HealthChecker`] says when to probe which target ([`HealthChecker::poll_check`],
//! [`HealthChecker::poll_timeout`]) and turns probe results into healthy/unhealthy
//! transitions after the configured number of consecutive results. The caller does the IO.
//!
//! [`OutlierDetector`] watches real traffic: consecutive errors or 5xx responses eject an
//! upstream for a backoff that grows with each ejection, never ejecting more than a maximum
//! share of the pool at once.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use proxy_core::{HealthCheckConfig, HealthChecker};
//!
//! let start = Instant::now();
//! let mut checker = HealthChecker::new(HealthCheckConfig::default());
//! checker.add(7u64, start);
//! let probe = checker.poll_check(start).unwrap();
//! assert_eq!(probe.target, 7);
//! // Two failures (the default unhealthy threshold) mark it unhealthy.
//! assert_eq!(checker.handle_result(7, false, start), None);
//! let later = start + Duration::from_secs(5);
//! checker.poll_check(later).unwrap();
//! assert_eq!(checker.handle_result(7, false, later), Some(false));
//! ```

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Active health-check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// The path to `GET`.
    pub path: String,
    /// Time between probes of one target.
    pub interval: Duration,
    /// A probe without an answer by then has failed.
    pub timeout: Duration,
    /// Consecutive successes that make an unhealthy target healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy target unhealthy.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            path: "/healthz".to_owned(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }
}

/// A probe the caller should send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe<T> {
    /// The target to probe.
    pub target: T,
    /// The path to request.
    pub path: String,
    /// Report a failure if no answer has come by this instant.
    pub deadline: Instant,
}

#[derive(Debug, Clone)]
struct TargetState {
    next_due: Instant,
    in_flight: Option<Instant>,
    healthy: bool,
    successes: u32,
    failures: u32,
}

/// The active health-check scheduler.
#[derive(Debug, Clone)]
pub struct HealthChecker<T> {
    config: HealthCheckConfig,
    targets: HashMap<T, TargetState>,
}

impl<T: Clone + Eq + Hash> HealthChecker<T> {
    /// A scheduler with no targets.
    #[must_use]
    pub fn new(config: HealthCheckConfig) -> Self {
        Self {
            config,
            targets: HashMap::new(),
        }
    }

    /// Starts checking `target`, first probe due now; it starts healthy.
    pub fn add(&mut self, target: T, now: Instant) {
        self.targets.insert(
            target,
            TargetState {
                next_due: now,
                in_flight: None,
                healthy: true,
                successes: 0,
                failures: 0,
            },
        );
    }

    /// Stops checking `target`.
    pub fn remove(&mut self, target: &T) {
        self.targets.remove(target);
    }

    /// Whether `target` is healthy (unknown targets are not).
    #[must_use]
    pub fn is_healthy(&self, target: &T) -> bool {
        self.targets.get(target).is_some_and(|t| t.healthy)
    }

    /// The next probe due at `now`, if any. Each target has at most one probe in flight.
    pub fn poll_check(&mut self, now: Instant) -> Option<Probe<T>> {
        let timeout = self.config.timeout;
        let (target, state) = self
            .targets
            .iter_mut()
            .filter(|(_, s)| s.in_flight.is_none() && s.next_due <= now)
            .min_by_key(|(_, s)| s.next_due)?;
        state.in_flight = Some(now + timeout);
        Some(Probe {
            target: target.clone(),
            path: self.config.path.clone(),
            deadline: now + timeout,
        })
    }

    /// When the caller should next call [`Self::poll_check`] or [`Self::handle_timeouts`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.targets
            .values()
            .map(|s| s.in_flight.unwrap_or(s.next_due))
            .min()
    }

    /// Fails probes past their deadline; returns the transitions this caused.
    pub fn handle_timeouts(&mut self, now: Instant) -> Vec<(T, bool)> {
        let expired: Vec<T> = self
            .targets
            .iter()
            .filter(|(_, s)| s.in_flight.is_some_and(|d| d <= now))
            .map(|(t, _)| t.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|t| self.handle_result(t.clone(), false, now).map(|h| (t, h)))
            .collect()
    }

    /// Records a probe's result. Returns `Some(healthy)` when the target changed state.
    pub fn handle_result(&mut self, target: T, ok: bool, now: Instant) -> Option<bool> {
        let config = &self.config;
        let state = self.targets.get_mut(&target)?;
        state.in_flight = None;
        state.next_due = now + config.interval;
        if ok {
            state.successes += 1;
            state.failures = 0;
            if !state.healthy && state.successes >= config.healthy_threshold {
                state.healthy = true;
                return Some(true);
            }
        } else {
            state.failures += 1;
            state.successes = 0;
            if state.healthy && state.failures >= config.unhealthy_threshold {
                state.healthy = false;
                return Some(false);
            }
        }
        None
    }
}

/// Passive outlier-detection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierConfig {
    /// Consecutive connect errors or timeouts that eject.
    pub consecutive_errors: u32,
    /// Consecutive 5xx responses that eject.
    pub consecutive_5xx: u32,
    /// The first ejection's length; the n-th lasts n times as long.
    pub base_ejection: Duration,
    /// The longest ejection.
    pub max_ejection: Duration,
    /// Never eject more than this share of the targets at once.
    pub max_ejected_share: f64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_errors: 3,
            consecutive_5xx: 5,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
            max_ejected_share: 0.5,
        }
    }
}

/// What happened to one request sent to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status.
    Status(u16),
    /// Connect error, reset, or timeout.
    Error,
}

#[derive(Debug, Clone, Default)]
struct OutlierState {
    errors: u32,
    fives: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

/// Passive outlier detection over real traffic.
#[derive(Debug, Clone)]
pub struct OutlierDetector<T> {
    config: OutlierConfig,
    targets: HashMap<T, OutlierState>,
}

impl<T: Clone + Eq + Hash> OutlierDetector<T> {
    /// A detector with no targets.
    #[must_use]
    pub fn new(config: OutlierConfig) -> Self {
        Self {
            config,
            targets: HashMap::new(),
        }
    }

    /// Starts watching `target`.
    pub fn add(&mut self, target: T) {
        self.targets.entry(target).or_default();
    }

    /// Stops watching `target`.
    pub fn remove(&mut self, target: &T) {
        self.targets.remove(target);
    }

    /// Whether `target` is ejected at `now`.
    #[must_use]
    pub fn is_ejected(&self, target: &T, now: Instant) -> bool {
        self.targets
            .get(target)
            .and_then(|s| s.ejected_until)
            .is_some_and(|u| now < u)
    }

    /// Records an outcome; returns the ejection's end when this one ejects the target.
    pub fn record(&mut self, target: &T, outcome: Outcome, now: Instant) -> Option<Instant> {
        let total = self.targets.len();
        let ejected = self
            .targets
            .values()
            .filter(|s| s.ejected_until.is_some_and(|u| now < u))
            .count();
        let config = &self.config;
        let state = self.targets.get_mut(target)?;
        match outcome {
            Outcome::Error => {
                state.errors += 1;
                state.fives = 0;
            }
            Outcome::Status(s) if (500..600).contains(&s) => {
                state.fives += 1;
                state.errors = 0;
            }
            Outcome::Status(_) => {
                state.errors = 0;
                state.fives = 0;
            }
        }
        let trip =
            state.errors >= config.consecutive_errors || state.fives >= config.consecutive_5xx;
        if !trip || state.ejected_until.is_some_and(|u| now < u) {
            return None;
        }
        if (ejected + 1) as f64 > config.max_ejected_share * total as f64 {
            return None;
        }
        state.ejections += 1;
        state.errors = 0;
        state.fives = 0;
        let length = config
            .base_ejection
            .saturating_mul(state.ejections)
            .min(config.max_ejection);
        let until = now + length;
        state.ejected_until = Some(until);
        Some(until)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_and_schedule() {
        let t0 = Instant::now();
        let config = HealthCheckConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let mut hc = HealthChecker::new(config);
        hc.add("a", t0);
        hc.add("b", t0 + Duration::from_millis(500));
        let p = hc.poll_check(t0).unwrap();
        assert_eq!(p.target, "a");
        assert_eq!(p.deadline, t0 + Duration::from_millis(300));
        assert!(
            hc.poll_check(t0).is_none(),
            "one probe in flight per target, b not due"
        );
        assert_eq!(hc.poll_timeout(), Some(t0 + Duration::from_millis(300)));
        // a times out twice -> unhealthy.
        assert!(
            hc.handle_timeouts(t0 + Duration::from_millis(300))
                .is_empty()
        );
        let t1 = t0 + Duration::from_millis(1300);
        assert_eq!(hc.poll_check(t1).unwrap().target, "b");
        hc.handle_result("b", true, t1);
        assert_eq!(hc.poll_check(t1).unwrap().target, "a");
        assert_eq!(
            hc.handle_timeouts(t1 + Duration::from_millis(300)),
            vec![("a", false)]
        );
        assert!(!hc.is_healthy(&"a"));
        // Two successes bring it back.
        let t2 = t1 + Duration::from_secs(2);
        hc.poll_check(t2);
        assert_eq!(hc.handle_result("a", true, t2), None);
        assert_eq!(hc.handle_result("a", true, t2), Some(true));
        assert!(hc.is_healthy(&"a"));
    }

    #[test]
    fn outliers_eject_with_backoff_and_cap() {
        let t0 = Instant::now();
        let mut od = OutlierDetector::new(OutlierConfig {
            consecutive_errors: 2,
            consecutive_5xx: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(15),
            max_ejected_share: 0.5,
        });
        for t in ["a", "b", "c", "d"] {
            od.add(t);
        }
        assert_eq!(od.record(&"a", Outcome::Error, t0), None);
        assert_eq!(
            od.record(&"a", Outcome::Error, t0),
            Some(t0 + Duration::from_secs(10))
        );
        assert!(od.is_ejected(&"a", t0));
        // A success between failures resets the count.
        od.record(&"b", Outcome::Status(502), t0);
        od.record(&"b", Outcome::Status(502), t0);
        od.record(&"b", Outcome::Status(200), t0);
        assert_eq!(od.record(&"b", Outcome::Status(503), t0), None);
        od.record(&"b", Outcome::Status(503), t0);
        assert!(od.record(&"b", Outcome::Status(503), t0).is_some());
        // Half the pool is out: c cannot be ejected.
        od.record(&"c", Outcome::Error, t0);
        assert_eq!(od.record(&"c", Outcome::Error, t0), None);
        // a's second ejection is longer, capped at 15 s.
        let t1 = t0 + Duration::from_secs(11);
        assert!(!od.is_ejected(&"a", t1));
        od.record(&"a", Outcome::Error, t1);
        assert_eq!(
            od.record(&"a", Outcome::Error, t1),
            Some(t1 + Duration::from_secs(15))
        );
    }
}
