//! Prometheus text-format counters, kept in atomics.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The per-request counters are kept in this many shards, one per worker thread (modulo).
const SHARDS: usize = 8;

/// The counters every request adds to, for the worker threads whose index is this shard's
/// modulo [`SHARDS`]. Aligned to its own cache lines: with one set shared by all workers,
/// every request's atomic adds moved the lines between cores.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    /// Responses by class: 1xx..5xx.
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    shards: [Shard; SHARDS],
    pub(crate) retries: AtomicU64,
    pub(crate) rejected_heads: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) upstream_errors: AtomicU64,
}

impl Metrics {
    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        let Some(shard) = self.shards.get(crate::state::worker() % SHARDS) else {
            return;
        };
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(c) = shard.by_class.get(class) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        // One counter per bucket (not cumulative): one atomic add per request; the
        // cumulative Prometheus form is summed at render time.
        let secs = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .and_then(|i| shard.buckets.get(i))
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        shard.latency_count.fetch_add(1, Ordering::Relaxed);
        shard.latency_sum_us.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The total of one counter over the shards.
    fn sum(&self, counter: impl Fn(&Shard) -> Option<&AtomicU64>) -> u64 {
        self.shards
            .iter()
            .filter_map(counter)
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The exposition text; `upstreams` lists (pool, address, healthy, in_flight).
    pub(crate) fn render(&self, upstreams: &[(String, String, bool, u32)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP proxy_requests_total Responses sent, by status class."
        );
        let _ = writeln!(out, "# TYPE proxy_requests_total counter");
        for i in 0..5 {
            let _ = writeln!(
                out,
                "proxy_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                self.sum(|s| s.by_class.get(i))
            );
        }
        let _ = writeln!(
            out,
            "# HELP proxy_request_duration_seconds Time to response head."
        );
        let _ = writeln!(out, "# TYPE proxy_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.sum(|s| s.buckets.get(i));
            let _ = writeln!(
                out,
                "proxy_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.sum(|s| Some(&s.latency_count));
        let _ = writeln!(
            out,
            "proxy_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "proxy_request_duration_seconds_sum {}",
            self.sum(|s| Some(&s.latency_sum_us)) as f64 / 1e6
        );
        let _ = writeln!(out, "proxy_request_duration_seconds_count {count}");
        for (name, help, v) in [
            (
                "proxy_retries_total",
                "Upstream attempts after the first.",
                &self.retries,
            ),
            (
                "proxy_rejected_heads_total",
                "Request heads refused by the smuggling checks.",
                &self.rejected_heads,
            ),
            (
                "proxy_rate_limited_total",
                "Requests answered 429.",
                &self.rate_limited,
            ),
            (
                "proxy_upstream_errors_total",
                "Upstream connect errors, resets and timeouts.",
                &self.upstream_errors,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP proxy_upstream_healthy 1 when the upstream takes traffic."
        );
        let _ = writeln!(out, "# TYPE proxy_upstream_healthy gauge");
        for (pool, addr, healthy, _) in upstreams {
            let _ = writeln!(
                out,
                "proxy_upstream_healthy{{pool=\"{pool}\",upstream=\"{addr}\"}} {}",
                u8::from(*healthy)
            );
        }
        let _ = writeln!(
            out,
            "# HELP proxy_upstream_in_flight Requests in flight per upstream."
        );
        let _ = writeln!(out, "# TYPE proxy_upstream_in_flight gauge");
        for (pool, addr, _, n) in upstreams {
            let _ = writeln!(
                out,
                "proxy_upstream_in_flight{{pool=\"{pool}\",upstream=\"{addr}\"}} {n}"
            );
        }
        out
    }
}
