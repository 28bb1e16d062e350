//! The in-process broker, the default backend: queues on [`QueueCore`] behind a lock,
//! waiting consumers woken by publishes and timers. With
//! [`EmbeddedBroker::deterministic`] it runs on a virtual clock that only moves when the
//! test calls [`EmbeddedBroker::advance`], with seeded jitter, so retry and ack-deadline
//! tests run instantly and the same on every run.
//!
//! [`EmbeddedBroker::open`] makes it durable: every change is also written to an
//! append-only journal in a directory (see [`SyncPolicy`] for when it is flushed), and
//! opening the directory again brings back the queues, their unsettled messages and their
//! dead letters. [`EmbeddedBroker::new`] keeps everything in memory only.
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

use tokio::sync::Notify;

use crate::broker::DeliveryToken;
use crate::journal::{Journal, Restored};
use crate::request_reply::{ReplyWaiters, prepare_reply, prepare_request};
use crate::{
    Broker, Capabilities, DeadLetter, Delivery, Disposition, Envelope, Error, FaultStats, Faults,
    JournalOptions, MessageId, QueueConfig, QueueCore, Result, Settlement, SyncPolicy,
    check_queue_name,
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
    replies: ReplyWaiters<String, Envelope>,
    notify: Notify,
    /// Fetches waiting on `notify` (or about to): a change wakes them only when there are
    /// some, so the hot path takes no extra lock. Incremented before a waiter looks at the
    /// queues under their lock; read by notifiers after they changed the queues under it.
    waiting: AtomicUsize,
    /// The journal on disk of a broker made by [`EmbeddedBroker::open`].
    journal: Option<Journal>,
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
            None,
        )
    }

    /// A durable broker whose journal lives in `dir` (created if missing), with
    /// [`SyncPolicy::Always`]: the queues, messages not yet acked and dead letters recorded
    /// there come back; see [`open_with`](Self::open_with).
    ///
    /// # Errors
    /// As [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::open_with(JournalOptions::new(dir))
    }

    /// A durable broker on the system clock: every change to a queue (declared, bound,
    /// published, delivered, acked, dead-lettered, re-driven) is appended to a journal
    /// file in `options`' directory, flushed as its [`SyncPolicy`] says, and compacted
    /// when most of it is settled. Opening replays the journal: queues are declared again
    /// with their configuration (declaring one with another configuration is an error, as
    /// before), every message not acked is ready again in publication order, a delivery
    /// that was in flight counts as an attempt (its next delivery is attempt 2, or it is
    /// dead-lettered if that was its last allowed one), dead letters stay. A retry delay
    /// does not survive: a message waiting for one is ready at once. A write torn by a
    /// crash at the end of the file is dropped.
    ///
    /// One broker at a time may open a directory (not checked).
    ///
    /// ```
    /// use std::time::Duration;
    /// use broker_core::{Broker, EmbeddedBroker, Envelope, QueueConfig, Settlement};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let dir = std::env::temp_dir().join(format!("bk-open-doc-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let broker = EmbeddedBroker::open(&dir)?;
    /// broker.declare("jobs", &QueueConfig::default()).await?;
    /// broker.publish("jobs", Envelope::new("first")).await?;
    /// broker.publish("jobs", Envelope::new("second")).await?;
    /// let taken = broker.fetch("jobs", "w", 1, Duration::ZERO).await?;
    /// broker.settle(&taken[0], Settlement::Ack).await?;
    /// drop(broker); // or a crash: every publish and ack that returned Ok is on disk
    ///
    /// let broker = EmbeddedBroker::open(&dir)?;
    /// let left = broker.fetch("jobs", "w", 10, Duration::ZERO).await?;
    /// assert_eq!(left.len(), 1);
    /// assert_eq!(&left[0].envelope.payload()[..], b"second");
    /// # drop(broker);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), broker_core::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::JournalIo`] when the directory or file cannot be read or written;
    /// [`Error::JournalCorrupt`] when a record before the end of the file is damaged
    /// (or the file is not a journal).
    pub fn open_with(options: JournalOptions) -> Result<Self> {
        let seed = crate::retry::JitterSource::from_entropy()
            .next_unit()
            .to_bits();
        let wall = SystemTime::now();
        let (journal, restored) = Journal::open(&options, wall)?;
        let broker = Self::build(Clock::System, seed, wall, Some(journal));
        broker.restore(restored)?;
        Ok(broker)
    }

    /// Puts the journal's state into new queue cores.
    fn restore(&self, restored: Restored) -> Result<()> {
        let Some(journal) = &self.inner.journal else {
            return Ok(());
        };
        let now = self.now();
        let wall = self.wall_now();
        let end = {
            let mut queues = lock(&self.inner.queues);
            let mut pending = journal.pending();
            for queue in restored.queues {
                let seed = self.inner.seed ^ fnv(queue.name.as_bytes());
                let mut core = QueueCore::new(&queue.name, queue.config, now, wall, seed);
                // Dead-lettered by this restart: recorded, so a redrive finds them.
                let skip = queue.dead.len().saturating_sub(queue.expired);
                for letter in queue.dead.iter().skip(skip) {
                    pending.dead(letter);
                }
                core.restore(queue.ready, queue.dead);
                queues.insert(queue.name, core);
            }
            pending.end()
        };
        let mut topics = lock(&self.inner.topics);
        for (topic, queue) in restored.bindings {
            topics.entry(topic).or_default().push(queue);
        }
        drop(topics);
        journal.commit(end, true)
    }

    /// Flushes the journal to stable storage (`fsync`) now, whatever the
    /// [`SyncPolicy`]; nothing to do for a broker in memory.
    ///
    /// # Errors
    /// [`Error::JournalIo`].
    pub fn sync(&self) -> Result<()> {
        match &self.inner.journal {
            Some(journal) => journal.sync_all(),
            None => Ok(()),
        }
    }

    /// Rewrites the journal with only what is live (queues, bindings, unsettled messages
    /// with their attempt counts, dead letters) into a new file that replaces the old one
    /// by an atomic rename. A durable broker also does this on its own when the file is
    /// mostly settled (see [`JournalOptions::compact_min_bytes`]); nothing to do for a
    /// broker in memory.
    ///
    /// # Errors
    /// [`Error::JournalIo`]; the old file stays in use then.
    pub fn compact(&self) -> Result<()> {
        let Some(journal) = &self.inner.journal else {
            return Ok(());
        };
        let queues = lock(&self.inner.queues);
        self.compact_locked(journal, &queues)
    }

    fn compact_locked(&self, journal: &Journal, queues: &HashMap<String, QueueCore>) -> Result<()> {
        let topics = lock(&self.inner.topics).clone();
        let mut names: Vec<&String> = queues.keys().collect();
        names.sort();
        journal.replace(|pending| {
            for (name, core) in names.iter().filter_map(|n| Some((*n, queues.get(*n)?))) {
                pending.declare(name, core.config());
            }
            for (topic, bound) in &topics {
                for queue in bound {
                    pending.bind(topic, queue);
                }
            }
            for (name, core) in names.iter().filter_map(|n| Some((*n, queues.get(*n)?))) {
                for envelope in core.live_messages() {
                    pending.publish(name, envelope);
                    if envelope.attempt() > 0 {
                        pending.delivered(name, envelope.id(), envelope.attempt());
                    }
                }
                for letter in core.dead_letters() {
                    pending.publish(name, &letter.clone().into_redriven());
                    pending.dead(letter);
                }
            }
        })
    }

    /// Writes (and with `sync`, flushes) the journal up to `end`; compacts it when it
    /// has grown and is mostly settled.
    fn commit(&self, journal: &Journal, end: u64, sync: bool) -> Result<()> {
        journal.commit(end, sync)?;
        if journal.wants_compaction() {
            let queues = lock(&self.inner.queues);
            let live: usize = queues
                .values()
                .map(|c| c.ready_len() + c.delayed_len() + c.in_flight_len() + c.dead_len())
                .sum();
            if journal.mostly_settled(live as u64) {
                self.compact_locked(journal, &queues)?;
            }
        }
        Ok(())
    }

    /// Records a fetch's deliveries (their attempt counts); written, not synced.
    fn record_deliveries(&self, queue: &str, out: Vec<Delivery>) -> Result<Vec<Delivery>> {
        let Some(journal) = &self.inner.journal else {
            return Ok(out);
        };
        if out.is_empty() {
            return Ok(out);
        }
        let end = {
            let mut pending = journal.pending();
            for delivery in &out {
                pending.delivered(queue, delivery.envelope.id(), delivery.envelope.attempt());
            }
            pending.end()
        };
        self.commit(journal, end, false)?;
        Ok(out)
    }

    /// A broker on a virtual clock that starts at 2026-01-01T00:00:00Z and moves only with
    /// [`advance`](Self::advance); jitter is seeded with `seed`. `fetch` never waits.
    #[must_use]
    pub fn deterministic(seed: u64) -> Self {
        let start = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        Self::build(
            Clock::Virtual(Mutex::new(Instant::now())),
            seed,
            start,
            None,
        )
    }

    fn build(clock: Clock, seed: u64, wall: SystemTime, journal: Option<Journal>) -> Self {
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
                replies: ReplyWaiters::default(),
                notify: Notify::new(),
                waiting: AtomicUsize::new(0),
                journal,
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
            let name = Arc::clone(core.shared_name());
            core.poll_deliveries(consumer, now, max, |tag, envelope| {
                out.push(Delivery {
                    queue: Arc::clone(&name),
                    envelope,
                    token: DeliveryToken::Embedded { broker: id, tag },
                });
            });
            Ok((out, core.poll_timeout()))
        })
    }
}

impl EmbeddedBroker {
    /// Publishes and records the messages under the queue's lock (records keep the
    /// order of the changes), then writes them; consumers are woken once they are.
    fn publish_durable(
        &self,
        journal: &Journal,
        queue: &str,
        envelopes: Vec<Envelope>,
        now: Instant,
        sync: bool,
    ) -> Result<()> {
        let count = envelopes.len();
        let end = self.with_queue(queue, |core| {
            core.handle_publish_all(envelopes, now)?;
            let mut pending = journal.pending();
            for stored in core.newest_ready(count) {
                pending.publish(queue, stored);
            }
            Ok(pending.end())
        })?;
        let committed = self.commit(journal, end, sync);
        self.wake();
        committed
    }

    fn settle_durable(
        &self,
        journal: &Journal,
        delivery: &Delivery,
        tag: u64,
        settlement: &Settlement,
    ) -> Result<Disposition> {
        let now = self.now();
        let wall = self.wall_now();
        let (disposition, has_prefetch, end) = self.with_queue(&delivery.queue, |core| {
            let has_prefetch = core.config().get_prefetch().is_some();
            let disposition = core.settle_one(tag, settlement, now);
            core.settled();
            let disposition = disposition?;
            let mut pending = journal.pending();
            pending.settled(&delivery.queue, &delivery.envelope, &disposition, wall);
            Ok((disposition, has_prefetch, pending.end()))
        })?;
        let sync = journal.policy == SyncPolicy::Always && disposition != Disposition::Extended;
        let committed = self.commit(journal, end, sync);
        if needs_wake(&disposition, has_prefetch) {
            self.wake();
        }
        committed.map(|()| disposition)
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
        if let Some(journal) = &self.inner.journal {
            let end = {
                let mut pending = journal.pending();
                pending.declare(queue, config);
                pending.end()
            };
            drop(queues);
            return self.commit(journal, end, journal.policy != SyncPolicy::Never);
        }
        Ok(())
    }

    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        let now = self.now();
        if let Some(journal) = &self.inner.journal {
            let sync = journal.policy == SyncPolicy::Always;
            return self.publish_durable(journal, queue, vec![envelope], now, sync);
        }
        self.with_queue(queue, |core| core.handle_publish(envelope, now))?;
        self.wake();
        Ok(())
    }

    /// All or nothing: one clock read and one lock for the batch.
    async fn publish_batch(&self, queue: &str, envelopes: Vec<Envelope>) -> Result<()> {
        let now = self.now();
        if let Some(journal) = &self.inner.journal {
            let sync = journal.policy != SyncPolicy::Never;
            return self.publish_durable(journal, queue, envelopes, now, sync);
        }
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
            return self.record_deliveries(queue, out);
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
                return self.record_deliveries(queue, out);
            }
            let wake = timer.map_or(deadline, |t| t.min(deadline));
            let _ = tokio::time::timeout_at(wake.into(), notified).await;
        }
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<Disposition> {
        let tag = self.tag_of(delivery)?;
        if let Some(journal) = &self.inner.journal {
            return self.settle_durable(journal, delivery, tag, &settlement);
        }
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
        if let Some(journal) = &self.inner.journal {
            // Outside the queues' lock: a settlement's record commutes with the records
            // that can come between (other messages, or a compaction that left it out).
            let wall = self.wall_now();
            let end = {
                let mut pending = journal.pending();
                for (delivery, result) in deliveries.iter().zip(&out) {
                    if let Ok(disposition) = result {
                        pending.settled(&delivery.queue, &delivery.envelope, disposition, wall);
                    }
                }
                pending.end()
            };
            if let Err(e) = self.commit(journal, end, journal.policy != SyncPolicy::Never) {
                let shared = e.to_string();
                out = out
                    .into_iter()
                    .map(|r| {
                        r.and_then(|_| {
                            Err(Error::JournalIo {
                                context: "settle_batch",
                                source: std::io::Error::other(shared.clone()),
                            })
                        })
                    })
                    .collect();
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
        let Some(journal) = &self.inner.journal else {
            let moved = self.with_queue(queue, |core| core.redrive(max))?;
            if moved > 0 {
                self.wake();
            }
            return Ok(moved);
        };
        let (moved, end) = self.with_queue(queue, |core| {
            let ids: Vec<MessageId> = core
                .dead_letters()
                .take(max)
                .map(|d| d.envelope.id())
                .collect();
            let moved = core.redrive(max)?;
            let mut pending = journal.pending();
            for id in ids.into_iter().take(moved) {
                pending.redriven(queue, id);
            }
            Ok((moved, pending.end()))
        })?;
        let committed = self.commit(journal, end, journal.policy != SyncPolicy::Never);
        if moved > 0 {
            self.wake();
        }
        committed.map(|()| moved)
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
            if let Some(journal) = &self.inner.journal {
                let end = {
                    let mut pending = journal.pending();
                    pending.bind(topic, queue);
                    pending.end()
                };
                drop(topics);
                return self.commit(journal, end, journal.policy != SyncPolicy::Never);
            }
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
                    if let Some(journal) = &self.inner.journal {
                        let mut pending = journal.pending();
                        for stored in core.newest_ready(1) {
                            pending.publish(name, stored);
                        }
                    }
                }
            }
        }
        if let Some(journal) = &self.inner.journal {
            let end = journal.pending().end();
            let committed = self.commit(journal, end, journal.policy == SyncPolicy::Always);
            self.wake();
            return committed;
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
        // Registered before the publish, so a consumer cannot reply before it; the entry
        // goes when this future returns or is dropped.
        let waiter = self.inner.replies.register(address);
        self.publish(queue, envelope).await?;
        waiter.wait(timeout).await
    }

    async fn reply(&self, request: &Delivery, response: Envelope) -> Result<()> {
        let (address, mut response) = prepare_reply(request, response)?;
        response.set_published_at(self.wall_now());
        // The requester may have given up just now: the reply is dropped then.
        self.inner.replies.deliver(&address, response);
        Ok(())
    }

    async fn pending(&self, queue: &str) -> Result<usize> {
        let stats = self.stats(queue)?;
        Ok(stats.ready + stats.delayed + stats.in_flight)
    }
}
