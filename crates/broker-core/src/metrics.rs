//! Consumer metrics: [`MetricsLayer`] counts into a [`Metrics`], whose
//! [`snapshot`](Metrics::snapshot) a program exports however it likes (a Prometheus
//! text page, OpenTelemetry gauges, a log line). Plain atomics, no dependency and no
//! global registry: one [`Metrics`] per queue (or per worker), named by the caller.
//!
//! ```
//! use broker_core::Metrics;
//!
//! let metrics = Metrics::new();
//! let s = metrics.snapshot();
//! assert_eq!((s.received, s.acked, s.nacked, s.dead_lettered, s.failed), (0, 0, 0, 0, 0));
//! // Cumulative counts per upper bound, as a Prometheus histogram.
//! assert_eq!(s.duration_buckets.len(), broker_core::DURATION_BUCKETS.len());
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Delivery, Disposition, Handler, HandlerResult, Layer, Settlement};

/// Upper bounds of the handler-duration histogram buckets (the last bucket, "+Inf", is
/// [`MetricsSnapshot::duration_count`]).
pub const DURATION_BUCKETS: [Duration; 12] = [
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2500),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// Counters of one consumer (or several sharing it), updated by [`MetricsLayer`].
#[derive(Debug, Default)]
pub struct Metrics {
    received: AtomicU64,
    acked: AtomicU64,
    nacked: AtomicU64,
    dead_lettered: AtomicU64,
    failed: AtomicU64,
    duration_micros: AtomicU64,
    duration_count: AtomicU64,
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
}

/// The counters at one moment. Counts only grow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Deliveries handed to the handler stack (a redelivery counts again, and so does
    /// each call after an in-progress answer).
    pub received: u64,
    /// Settled and removed from the queue (acknowledged).
    pub acked: u64,
    /// Settled and to be delivered again (nacked, or timed out).
    pub nacked: u64,
    /// Settled into the dead letters (rejected, or nacked on the last allowed delivery).
    pub dead_lettered: u64,
    /// Handlings that ended in an error or a verdict other than ack or in-progress
    /// (whatever the broker then did with the message).
    pub failed: u64,
    /// Total time spent in the handler stack below this layer.
    pub duration_sum: Duration,
    /// How many handlings were timed.
    pub duration_count: u64,
    /// Cumulative counts: handlings that took at most [`DURATION_BUCKETS`]`[i]`.
    pub duration_buckets: Vec<u64>,
}

impl Metrics {
    /// All counters at zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters now (each read on its own; under load they may be a few events apart).
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut cumulative = 0;
        let duration_buckets = self
            .buckets
            .iter()
            .map(|b| {
                cumulative += load(b);
                cumulative
            })
            .collect();
        MetricsSnapshot {
            received: load(&self.received),
            acked: load(&self.acked),
            nacked: load(&self.nacked),
            dead_lettered: load(&self.dead_lettered),
            failed: load(&self.failed),
            duration_sum: Duration::from_micros(load(&self.duration_micros)),
            duration_count: load(&self.duration_count),
            duration_buckets,
        }
    }

    fn observe(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| took <= *b)
            && let Some(bucket) = self.buckets.get(i)
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts deliveries, verdicts, dispositions and handler time into a [`Metrics`].
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    /// Counts into `metrics`.
    #[must_use]
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<H> Layer<H> for MetricsLayer {
    type Handler = Measured<H>;
    fn layer(&self, inner: H) -> Measured<H> {
        Measured {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// A handler whose work is counted: see [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct Measured<H> {
    inner: H,
    metrics: Arc<Metrics>,
}

impl<H: Handler> Handler for Measured<H> {
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = HandlerResult> + Send {
        self.metrics.received.fetch_add(1, Ordering::Relaxed);
        let metrics = self.metrics.clone();
        let work = self.inner.handle(delivery);
        async move {
            let start = Instant::now();
            let result = work.await;
            metrics.observe(start.elapsed());
            if !matches!(result, Ok(Settlement::Ack | Settlement::InProgress)) {
                metrics.failed.fetch_add(1, Ordering::Relaxed);
            }
            result
        }
    }

    fn settled(&self, delivery: &Delivery, disposition: &Disposition) {
        let counter = match disposition {
            Disposition::Removed => Some(&self.metrics.acked),
            Disposition::Retry { .. } => Some(&self.metrics.nacked),
            Disposition::DeadLetter { .. } => Some(&self.metrics.dead_lettered),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.settled(delivery, disposition);
    }
}
