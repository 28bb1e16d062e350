//! GCRA rate limiting: the arithmetic, a keyed in-memory store, and the response headers.
//!
//! The generic cell rate algorithm keeps one number per key, the theoretical arrival time
//! (TAT). A request at `now` is allowed when `TAT - now <= tolerance`, and moves the TAT
//! forward by one emission interval. The same arithmetic runs in the in-memory store here
//! and in the Redis script of the example, so both agree to the nanosecond.
//!
//! ```
//! use std::time::Duration;
//! use proxy_core::{Gcra, MemoryLimiter};
//!
//! // 2 requests per second, bursts of 2.
//! let limiter = MemoryLimiter::new(Gcra::new(2, Duration::from_secs(1), 2));
//! assert!(limiter.check("client", 0).allowed);
//! assert!(limiter.check("client", 0).allowed);
//! let third = limiter.check("client", 0);
//! assert!(!third.allowed);
//! assert_eq!(third.retry_after, Duration::from_millis(500));
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// A GCRA quota: `rate` requests per `period`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Nanoseconds between requests at the sustained rate.
    pub emission_ns: u64,
    /// How far ahead of `now` the TAT may run: `emission * (burst - 1)`.
    pub tolerance_ns: u64,
    /// The burst size.
    pub burst: u32,
}

impl Gcra {
    /// `rate` requests per `period`, bursts of `burst` (both at least 1).
    #[must_use]
    pub fn new(rate: u32, period: Duration, burst: u32) -> Self {
        let emission_ns = u64::try_from(period.as_nanos() / u128::from(rate.max(1)))
            .unwrap_or(u64::MAX)
            .max(1);
        let burst = burst.max(1);
        Self {
            emission_ns,
            tolerance_ns: emission_ns.saturating_mul(u64::from(burst - 1)),
            burst,
        }
    }

    /// Decides a request at `now_ns` given the stored TAT; returns the decision and the TAT
    /// to store (unchanged when refused).
    #[must_use]
    pub fn decide(&self, tat_ns: Option<u64>, now_ns: u64) -> (Decision, u64) {
        let tat = tat_ns.unwrap_or(now_ns).max(now_ns);
        let new_tat = tat.saturating_add(self.emission_ns);
        let allow_at = new_tat.saturating_sub(self.emission_ns.saturating_add(self.tolerance_ns));
        if allow_at > now_ns {
            let retry_after = Duration::from_nanos(allow_at - now_ns);
            let reset = Duration::from_nanos(tat - now_ns);
            return (
                Decision {
                    allowed: false,
                    limit: self.burst,
                    remaining: 0,
                    retry_after,
                    reset,
                },
                tat,
            );
        }
        // Remaining: how many more emissions fit under the tolerance.
        let slack = (now_ns.saturating_add(self.tolerance_ns))
            .saturating_sub(new_tat.saturating_sub(self.emission_ns));
        let remaining = u32::try_from(slack / self.emission_ns)
            .unwrap_or(u32::MAX)
            .min(self.burst.saturating_sub(1));
        let reset = Duration::from_nanos(new_tat - now_ns);
        (
            Decision {
                allowed: true,
                limit: self.burst,
                remaining,
                retry_after: Duration::ZERO,
                reset,
            },
            new_tat,
        )
    }
}

/// The outcome of one rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The burst size (the `RateLimit` limit).
    pub limit: u32,
    /// Requests left in the current burst.
    pub remaining: u32,
    /// For a refusal, how long until one request would be allowed.
    pub retry_after: Duration,
    /// How long until the quota is fully restored.
    pub reset: Duration,
}

impl Decision {
    /// Response headers: `Retry-After` (seconds, rounded up) on refusal, and the IETF draft
    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`.
    #[must_use]
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let ceil = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        let mut out = vec![
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            ("ratelimit-reset", ceil(self.reset).to_string()),
        ];
        if !self.allowed {
            out.push(("retry-after", ceil(self.retry_after).max(1).to_string()));
        }
        out
    }
}

/// A keyed GCRA limiter in memory. Time is nanoseconds from any fixed origin the caller
/// chooses (the example uses process start).
#[derive(Debug)]
pub struct MemoryLimiter {
    gcra: Gcra,
    tats: Mutex<HashMap<String, u64>>,
}

impl MemoryLimiter {
    /// A limiter with no keys.
    #[must_use]
    pub fn new(gcra: Gcra) -> Self {
        Self {
            gcra,
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// Checks and records one request for `key` at `now_ns`.
    pub fn check(&self, key: &str, now_ns: u64) -> Decision {
        let mut tats = self
            .tats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (decision, tat) = self.gcra.decide(tats.get(key).copied(), now_ns);
        if decision.allowed {
            tats.insert(key.to_owned(), tat);
        }
        decision
    }

    /// Forgets keys whose TAT has passed (they are back to a full burst anyway).
    pub fn sweep(&self, now_ns: u64) {
        let mut tats = self
            .tats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tats.retain(|_, tat| *tat > now_ns);
    }

    /// Keys held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tats.lock().map_or(0, |t| t.len())
    }

    /// Whether no keys are held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key a per-client limit should count a client under: an IPv4 address as it is (an
/// IPv4-mapped IPv6 address as its IPv4 address), an IPv6 address as its /64 network.
/// One IPv6 subscriber usually holds a whole /64 (RFC 6177), so keying on the full address
/// would hand every client 2^64 buckets.
///
/// ```
/// use proxy_core::client_network;
/// let a = client_network("2001:db8:1:2::1".parse().unwrap());
/// let b = client_network("2001:db8:1:2:ffff::9".parse().unwrap());
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "2001:db8:1:2::");
/// assert_eq!(client_network("::ffff:192.0.2.1".parse().unwrap()).to_string(), "192.0.2.1");
/// ```
#[must_use]
pub fn client_network(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V4(_) => ip,
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_steady_rate() {
        let l = MemoryLimiter::new(Gcra::new(10, Duration::from_secs(1), 5));
        let remaining: Vec<u32> = (0..5).map(|_| l.check("k", 0).remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
        let refused = l.check("k", 0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        assert!(l.check("k", S / 10).allowed);
        assert!(!l.check("k", S / 10).allowed);
        // Other keys are independent.
        assert!(l.check("other", 0).allowed);
        // After a second the burst is whole again.
        assert_eq!(l.check("k", 2 * S).remaining, 4);
        l.sweep(10 * S);
        assert!(l.is_empty());
    }

    #[test]
    fn headers() {
        let g = Gcra::new(1, Duration::from_secs(2), 1);
        let (d, tat) = g.decide(None, 0);
        assert!(d.allowed);
        let (refused, same) = g.decide(Some(tat), S / 2);
        assert_eq!(same, tat);
        let h = refused.headers();
        assert!(h.contains(&("retry-after", "2".to_owned())), "{h:?}");
        assert!(h.contains(&("ratelimit-remaining", "0".to_owned())));
    }
}
