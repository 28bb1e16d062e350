//! The in-process broker, the default backend: queues on [`QueueCore`] behind a lock,
//! waiting consumers woken by publishes and timers. With
//! [`EmbeddedBroker::deterministic`] it runs on a virtual clock that only moves when the
//! test calls [`EmbeddedBroker::advance`], with seeded jitter, so retry and ack-deadline
//! tests run instantly and the same on every run.
//!
//! ```
//! use std::time::Duration;
//! use broker_core::{Broker, EmbeddedBroker, Envelope, QueueConfig, RetryPolicy, Settlement};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let broker = EmbeddedBroker::deterministic(42);
//! let config = QueueConfig::default()
//!     .ack_wait(Duration::from_secs(30))
//!     .retry(RetryPolicy::new(2, Duration::from_secs(10)));
//! broker.declare("jobs", &config).await?;
//! broker.publish("jobs", Envelope::new("resize image 7")).await?;
//!
//! // A worker takes the message and crashes: nothing is settled.
//! let taken = broker.fetch("jobs", "worker-a", 10, Duration::ZERO).await?;
//! assert_eq!(taken.len(), 1);
//! drop(taken);
//!
//! // 30 virtual seconds later another worker gets it again, as its 2nd delivery.
//! broker.advance(Duration::from_secs(30))?;
//! let mut again = broker.fetch("jobs", "worker-b", 10, Duration::ZERO).await?;
//! let delivery = again.pop().expect("redelivered");
//! assert_eq!(delivery.envelope.attempt(), 2);
//! // The last allowed delivery fails too: it becomes a dead letter with the reason.
//! broker.settle(&delivery, Settlement::nack()).await?;
//! let dead = broker.dead_letters("jobs", 10).await?;
//! assert_eq!(dead[0].attempts, 2);
//! assert_eq!(broker.redrive("jobs", 10).await?, 1);
//! # Ok::<(), broker_core::Error>(())
//! # }).unwrap();
//! ```

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, oneshot};

use crate::broker::DeliveryToken;
use crate::request_reply::{prepare_reply, prepare_request};
use crate::{
    Broker, Capabilities, DeadLetter, Delivery, Disposition, Envelope, Error, FaultStats, Faults,
    MessageId, QueueConfig, QueueCore, Result, Settlement, check_queue_name,
};

static NEXT_BROKER: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
enum Clock {
    System,
    Virtual(Mutex<Instant>),
}

#[derive(Debug)]
struct Inner {
    id: usize,
    seed: u64,
    clock: Clock,
    origin: (Instant, SystemTime),
    queues: Mutex<HashMap<String, QueueCore>>,
    /// Topic -> the queues bound to it, in binding order.
    topics: Mutex<HashMap<String, Vec<String>>>,
    /// Reply address -> the waiting requester.
    replies: Mutex<HashMap<String, oneshot::Sender<Envelope>>>,
    notify: Notify,
    /// Fetches waiting on `notify` (or about to): a change wakes them only when there are
    /// some, so the hot path takes no extra lock. Incremented before a waiter looks at the
    /// queues under their lock; read by notifiers after they changed the queues under it.
    waiting: AtomicUsize,
}

/// Counts a waiting fetch for as long as it lives (also when its future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The in-process broker. Cheap to clone (clones share the queues).
#[derive(Clone, Debug)]
pub struct EmbeddedBroker {
    inner: Arc<Inner>,
}

/// Counts of one queue's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Waiting for delivery now.
    pub ready: usize,
    /// Waiting for a retry delay.
    pub delayed: usize,
    /// Held by consumers.
    pub in_flight: usize,
    /// Dead letters.
    pub dead: usize,
}

impl Default for EmbeddedBroker {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves consistent data behind (every
    // mutation completes before it can fail), so poisoning is ignored.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl EmbeddedBroker {
    /// A broker on the system clock. Waiting in `fetch` uses tokio's timer, so it needs a
    /// tokio runtime with time enabled; outside a runtime `fetch` returns without waiting.
    #[must_use]
    pub fn new() -> Self {
        Self::build(
            Clock::System,
            crate::retry::JitterSource::from_entropy()
                .next_unit()
                .to_bits(),
            SystemTime::now(),
        )
    }

    /// A broker on a virtual clock that starts at 2026-01-01T00:00:00Z and moves only with
    /// [`advance`](Self::advance); jitter is seeded with `seed`. `fetch` never waits.
    #[must_use]
    pub fn deterministic(seed: u64) -> Self {
        let start = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        Self::build(Clock::Virtual(Mutex::new(Instant::now())), seed, start)
    }

    fn build(clock: Clock, seed: u64, wall: SystemTime) -> Self {
        let origin = match &clock {
            Clock::System => Instant::now(),
            Clock::Virtual(now) => *lock(now),
        };
        Self {
            inner: Arc::new(Inner {
                id: NEXT_BROKER.fetch_add(1, Ordering::Relaxed),
                seed,
                clock,
                origin: (origin, wall),
                queues: Mutex::new(HashMap::new()),
                topics: Mutex::new(HashMap::new()),
                replies: Mutex::new(HashMap::new()),
                notify: Notify::new(),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// The broker's current time.
    #[must_use]
    pub fn now(&self) -> Instant {
        match &self.inner.clock {
            Clock::System => Instant::now(),
            Clock::Virtual(now) => *lock(now),
        }
    }

    /// Wakes the fetches waiting for a change, if there are any.
    fn wake(&self) {
        if self.inner.waiting.load(Ordering::SeqCst) > 0 {
            self.inner.notify.notify_waiters();
        }
    }

    /// The wall-clock time the broker stamps on messages now.
    #[must_use]
    pub fn wall_now(&self) -> SystemTime {
        let offset = self.now().saturating_duration_since(self.inner.origin.0);
        self.inner
            .origin
            .1
            .checked_add(offset)
            .unwrap_or(self.inner.origin.1)
    }

    /// Moves the virtual clock forward and runs what became due (expired ack deadlines,
    /// due retries).
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a broker made with [`new`](Self::new).
    pub fn advance(&self, by: Duration) -> Result<()> {
        let Clock::Virtual(clock) = &self.inner.clock else {
            return Err(Error::Unsupported {
                backend: "embedded",
                capability: "advance on the system clock",
            });
        };
        let now = {
            let mut now = lock(clock);
            *now = now.checked_add(by).unwrap_or(*now);
            *now
        };
        for core in lock(&self.inner.queues).values_mut() {
            core.handle_timeout(now);
        }
        self.wake();
        Ok(())
    }

    /// Fault injection: `consumer` crashed. Its deliveries are handed out again at once (or
    /// dead-lettered on their last allowed delivery), as if their ack deadlines passed.
    /// Returns how many it held.
    ///
    /// # Errors
    /// [`Error::UnknownQueue`].
    pub fn crash_consumer(&self, queue: &str, consumer: &str) -> Result<usize> {
        let now = self.now();
        let count = self.with_queue(queue, |core| Ok(core.handle_consumer_lost(consumer, now)))?;
        self.wake();
        Ok(count)
    }

    /// Fault injection: seeded duplicates and reordering of `queue`'s deliveries from now
    /// on (see [`Faults`]); zero rates turn them off.
    ///
    /// # Errors
    /// [`Error::UnknownQueue`].
    pub fn inject_faults(&self, queue: &str, faults: Faults) -> Result<()> {
        self.with_queue(queue, |core| {
            core.set_faults(faults);
            Ok(())
        })
    }

    /// How many faults `queue`'s deliveries met since [`inject_faults`](Self::inject_faults).
    ///
    /// # Errors
    /// [`Error::UnknownQueue`].
    pub fn fault_stats(&self, queue: &str) -> Result<FaultStats> {
        self.with_queue(queue, |core| Ok(core.fault_stats()))
    }

    /// The queue's message counts.
    ///
    /// # Errors
    /// [`Error::UnknownQueue`].
    pub fn stats(&self, queue: &str) -> Result<QueueStats> {
        let now = self.now();
        self.with_queue(queue, |core| {
            core.handle_timeout(now);
            Ok(QueueStats {
                ready: core.ready_len(),
                delayed: core.delayed_len(),
                in_flight: core.in_flight_len(),
                dead: core.dead_len(),
            })
        })
    }

    fn with_queue<T>(&self, queue: &str, f: impl FnOnce(&mut QueueCore) -> Result<T>) -> Result<T> {
        let mut queues = lock(&self.inner.queues);
        let core = queues
            .get_mut(queue)
            .ok_or_else(|| Error::UnknownQueue(queue.to_owned()))?;
        f(core)
    }

    fn take(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
    ) -> Result<(Vec<Delivery>, Option<Instant>)> {
        let now = self.now();
        let id = self.inner.id;
        self.with_queue(queue, |core| {
            core.handle_timeout(now);
            let mut out = Vec::with_capacity(max.min(core.ready_len()));
            while out.len() < max {
                let Some((tag, envelope)) = core.poll_delivery(consumer, now) else {
                    break;
                };
                out.push(Delivery {
                    queue: Arc::clone(core.shared_name()),
                    envelope,
                    token: DeliveryToken::Embedded { broker: id, tag },
                });
            }
            Ok((out, core.poll_timeout()))
        })
    }
}

/// A retry is ready for someone; with a prefetch bound, any final settlement makes room
/// for a waiting fetch of the same consumer.
fn needs_wake(disposition: &Disposition, has_prefetch: bool) -> bool {
    matches!(disposition, Disposition::Retry { .. })
        || (has_prefetch && *disposition != Disposition::Extended)
}

impl EmbeddedBroker {
    /// The delivery's tag, if it is one of this broker's.
    fn tag_of(&self, delivery: &Delivery) -> Result<u64> {
        // The only variant without the `redis` and `nats` features.
        #[allow(irrefutable_let_patterns)]
        let DeliveryToken::Embedded { broker, tag } = delivery.token else {
            return Err(Error::StaleDelivery);
        };
        if broker != self.inner.id {
            return Err(Error::StaleDelivery);
        }
        Ok(tag)
    }
}

impl Broker for EmbeddedBroker {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            publish_dedup: false,
            ..Capabilities::all()
        }
    }

    async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        check_queue_name(queue)?;
        config.validate()?;
        let now = self.now();
        let mut queues = lock(&self.inner.queues);
        if let Some(core) = queues.get_mut(queue) {
            if core.config() != config {
                return Err(Error::InvalidConfig(
                    "queue already declared with another configuration",
                ));
            }
            return Ok(());
        }
        let seed = self.inner.seed ^ fnv(queue.as_bytes());
        let wall = self.wall_now();
        queues.insert(
            queue.to_owned(),
            QueueCore::new(queue, config.clone(), now, wall, seed),
        );
        Ok(())
    }

    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        let now = self.now();
        self.with_queue(queue, |core| core.handle_publish(envelope, now))?;
        self.wake();
        Ok(())
    }

    /// All or nothing: one clock read and one lock for the batch.
    async fn publish_batch(&self, queue: &str, envelopes: Vec<Envelope>) -> Result<()> {
        let now = self.now();
        self.with_queue(queue, |core| core.handle_publish_all(envelopes, now))?;
        self.wake();
        Ok(())
    }

    async fn fetch(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        // Ready messages are taken without registering as a waiter.
        let (out, _) = self.take(queue, consumer, max)?;
        if !out.is_empty() || max == 0 || wait.is_zero() {
            return Ok(out);
        }
        let can_wait = matches!(self.inner.clock, Clock::System)
            && tokio::runtime::Handle::try_current().is_ok();
        if !can_wait {
            return Ok(out);
        }
        let start = Instant::now();
        let deadline = start.checked_add(wait).unwrap_or(start);
        let _waiting = Waiting::new(&self.inner.waiting);
        loop {
            let mut notified = pin!(self.inner.notify.notified());
            notified.as_mut().enable();
            let (out, timer) = self.take(queue, consumer, max)?;
            let now = Instant::now();
            if !out.is_empty() || now >= deadline {
                return Ok(out);
            }
            let wake = timer.map_or(deadline, |t| t.min(deadline));
            let _ = tokio::time::timeout_at(wake.into(), notified).await;
        }
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<Disposition> {
        let tag = self.tag_of(delivery)?;
        // An ack needs no time: skip the clock read on the hot path.
        let now = if settlement == Settlement::Ack {
            self.inner.origin.0
        } else {
            self.now()
        };
        let (disposition, has_prefetch) = self.with_queue(&delivery.queue, |core| {
            let has_prefetch = core.config().get_prefetch().is_some();
            let disposition = core.settle_one(tag, &settlement, now);
            core.settled();
            Ok((disposition?, has_prefetch))
        })?;
        if needs_wake(&disposition, has_prefetch) {
            self.wake();
        }
        Ok(disposition)
    }

    /// One lock for the batch (per run of deliveries from the same queue).
    async fn settle_batch(
        &self,
        deliveries: &[Delivery],
        settlement: Settlement,
    ) -> Vec<Result<Disposition>> {
        let now = if settlement == Settlement::Ack {
            self.inner.origin.0
        } else {
            self.now()
        };
        let mut out = Vec::with_capacity(deliveries.len());
        let mut wake = false;
        {
            let mut queues = lock(&self.inner.queues);
            let mut rest = deliveries;
            while let Some(first) = rest.first() {
                let run = rest
                    .iter()
                    .position(|d| d.queue != first.queue)
                    .unwrap_or(rest.len());
                let (same, after) = rest.split_at(run);
                rest = after;
                let Some(core) = queues.get_mut(&*first.queue) else {
                    out.extend(
                        same.iter()
                            .map(|d| Err(Error::UnknownQueue(d.queue.to_string()))),
                    );
                    continue;
                };
                let has_prefetch = core.config().get_prefetch().is_some();
                for delivery in same {
                    let result = self
                        .tag_of(delivery)
                        .and_then(|tag| core.settle_one(tag, &settlement, now));
                    if let Ok(disposition) = &result {
                        wake |= needs_wake(disposition, has_prefetch);
                    }
                    out.push(result);
                }
                core.settled();
            }
        }
        if wake {
            self.wake();
        }
        out
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        let now = self.now();
        self.with_queue(queue, |core| {
            core.handle_timeout(now);
            Ok(core.dead_letters().take(max).cloned().collect())
        })
    }

    async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        let moved = self.with_queue(queue, |core| core.redrive(max))?;
        if moved > 0 {
            self.wake();
        }
        Ok(moved)
    }

    async fn bind(&self, topic: &str, queue: &str) -> Result<()> {
        check_queue_name(topic)?;
        if !lock(&self.inner.queues).contains_key(queue) {
            return Err(Error::UnknownQueue(queue.to_owned()));
        }
        let mut topics = lock(&self.inner.topics);
        let bound = topics.entry(topic.to_owned()).or_default();
        if !bound.iter().any(|q| q == queue) {
            bound.push(queue.to_owned());
        }
        Ok(())
    }

    async fn publish_topic(&self, topic: &str, envelope: Envelope) -> Result<()> {
        check_queue_name(topic)?;
        let bound = lock(&self.inner.topics)
            .get(topic)
            .cloned()
            .unwrap_or_default();
        if bound.is_empty() {
            return Ok(());
        }
        let now = self.now();
        {
            let mut queues = lock(&self.inner.queues);
            // All or nothing: a full queue fails the publish before any copy is made.
            for name in &bound {
                let core = queues
                    .get(name)
                    .ok_or_else(|| Error::UnknownQueue(name.clone()))?;
                core.check_room()?;
            }
            for name in &bound {
                if let Some(core) = queues.get_mut(name) {
                    core.handle_publish(envelope.clone(), now)?;
                }
            }
        }
        self.wake();
        Ok(())
    }

    async fn request(
        &self,
        queue: &str,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<Envelope> {
        let address = format!("_reply.{}", MessageId::new());
        let envelope = prepare_request(envelope, &address)?;
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.replies).insert(address.clone(), tx);
        let outcome = match self.publish(queue, envelope).await {
            Ok(()) => tokio::time::timeout(timeout, rx).await,
            Err(e) => {
                lock(&self.inner.replies).remove(&address);
                return Err(e);
            }
        };
        lock(&self.inner.replies).remove(&address);
        match outcome {
            Ok(Ok(response)) => Ok(response),
            // The sender went away without replying, or time ran out.
            Ok(Err(_)) | Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    async fn reply(&self, request: &Delivery, response: Envelope) -> Result<()> {
        let (address, mut response) = prepare_reply(request, response)?;
        response.set_published_at(self.wall_now());
        let waiting = lock(&self.inner.replies).remove(&address);
        if let Some(tx) = waiting {
            // The requester may have given up just now: the reply is dropped then.
            let _ = tx.send(response);
        }
        Ok(())
    }

    async fn pending(&self, queue: &str) -> Result<usize> {
        let stats = self.stats(queue)?;
        Ok(stats.ready + stats.delayed + stats.in_flight)
    }
}
