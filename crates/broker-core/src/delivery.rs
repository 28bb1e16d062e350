//! The sans-IO delivery state machine of one queue: ready messages in publication order,
//! delayed retries, in-flight deliveries with ack deadlines, dead letters. It performs no
//! IO and reads no clock: every call takes `now`, [`QueueCore::poll_timeout`] says when
//! to call [`QueueCore::handle_timeout`] next. The embedded broker is this plus a lock.
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use broker_core::{Envelope, QueueConfig, QueueCore, RetryPolicy, Settlement};
//!
//! let t0 = Instant::now();
//! let config = QueueConfig::default()
//!     .ack_wait(Duration::from_secs(30))
//!     .retry(RetryPolicy::new(3, Duration::from_secs(1)).jitter(0.0));
//! let mut queue = QueueCore::new("jobs", config, t0, SystemTime::now(), 1);
//! queue.handle_publish(Envelope::new("work"), t0)?;
//! let (tag, delivery) = queue.poll_delivery("worker-1", t0).expect("a ready message");
//! assert_eq!(delivery.attempt(), 1);
//! queue.handle_settlement(tag, Settlement::nack(), t0)?;
//! // Not before the backoff...
//! assert!(queue.poll_delivery("worker-1", t0).is_none());
//! assert_eq!(queue.poll_timeout(), Some(t0 + Duration::from_secs(1)));
//! // ...but after it.
//! let t1 = t0 + Duration::from_secs(1);
//! queue.handle_timeout(t1);
//! assert_eq!(queue.poll_delivery("worker-1", t1).map(|(_, e)| e.attempt()), Some(2));
//! # Ok::<(), broker_core::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::faults::FaultState;
use crate::ordering::ordering_key;
use crate::retry::JitterSource;
use crate::settlement::{decide, decide_expired};
use crate::{
    DeadLetter, Disposition, Envelope, Error, FaultStats, Faults, Result, RetryPolicy, Settlement,
};

/// How a queue treats its messages.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    ack_wait: Duration,
    retry: RetryPolicy,
    max_ready: usize,
    max_dead: usize,
    prefetch: Option<usize>,
}

impl Default for QueueConfig {
    /// Ack wait 30 s, the default [`RetryPolicy`], at most 1,000,000 ready messages and
    /// 100,000 dead letters, no prefetch bound.
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_ready: 1_000_000,
            max_dead: 100_000,
            prefetch: None,
        }
    }
}

impl QueueConfig {
    /// How long a consumer may hold a delivery before it is delivered again.
    #[must_use]
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }
    /// The retry policy (backoff, jitter, delivery limit).
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// The most messages waiting for delivery; publishing more fails with
    /// [`Error::QueueFull`] (embedded broker).
    #[must_use]
    pub fn max_ready(mut self, max_ready: usize) -> Self {
        self.max_ready = max_ready;
        self
    }
    /// The most dead letters kept; the oldest are dropped beyond it (embedded broker).
    #[must_use]
    pub fn max_dead(mut self, max_dead: usize) -> Self {
        self.max_dead = max_dead;
        self
    }
    /// The most deliveries one consumer (by name) may hold unsettled; at the bound its
    /// `fetch` hands out nothing more until it settles one (or one passes its ack
    /// deadline). Backpressure: the backlog stays in the broker. Must be at least 1.
    #[must_use]
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = Some(prefetch);
        self
    }
    /// The prefetch bound, if any.
    #[must_use]
    pub fn get_prefetch(&self) -> Option<usize> {
        self.prefetch
    }
    /// Checks the retry policy and the prefetch bound.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        self.retry.validate()?;
        if self.prefetch == Some(0) {
            return Err(Error::InvalidConfig("prefetch must be at least 1"));
        }
        Ok(())
    }
    /// The ack wait.
    #[must_use]
    pub fn get_ack_wait(&self) -> Duration {
        self.ack_wait
    }
    /// The retry policy.
    #[must_use]
    pub fn get_retry(&self) -> &RetryPolicy {
        &self.retry
    }
    /// The ready bound and the dead-letter bound (the embedded broker's journal keeps them).
    pub(crate) fn bounds(&self) -> (usize, usize) {
        (self.max_ready, self.max_dead)
    }
}

#[derive(Debug)]
struct InFlight {
    seq: u64,
    envelope: Envelope,
    deadline: Instant,
    /// The holder's index in [`Consumers`].
    consumer: u32,
}

/// The consumers of one queue by a small index, with how many deliveries each holds. An
/// in-flight entry keeps the index, so a delivery touches no shared name or reference
/// count. A consumer holding nothing keeps its index until the unused ones outnumber the
/// used ones (then they are swept), so one fetching and settling one message at a time
/// does not register again each time.
#[derive(Debug, Default)]
struct Consumers {
    /// Name and deliveries held, by index; a swept index is in `free`.
    slots: Vec<(Box<str>, usize)>,
    by_name: HashMap<Box<str>, u32>,
    free: Vec<u32>,
    /// How many consumers hold at least one delivery.
    holding: usize,
    /// The index looked up last (consumers usually fetch many times in a row).
    last: Option<u32>,
}

impl Consumers {
    /// The consumer's index, registered if it has none.
    fn index(&mut self, name: &str) -> u32 {
        if let Some(last) = self.last
            && self
                .slots
                .get(last as usize)
                .is_some_and(|(n, _)| **n == *name)
        {
            return last;
        }
        let index = match self.by_name.get(name) {
            Some(index) => *index,
            None => self.register(name),
        };
        self.last = Some(index);
        index
    }

    fn register(&mut self, name: &str) -> u32 {
        if self.by_name.len() >= 2 * self.holding + 16 {
            self.sweep();
        }
        let slot = (Box::from(name), 0);
        let index = match self.free.pop() {
            Some(index) => {
                if let Some(free) = self.slots.get_mut(index as usize) {
                    *free = slot;
                }
                index
            }
            None => {
                // More than u32::MAX consumers holding deliveries at once cannot happen:
                // each holds at least one of the queue's messages.
                let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(slot);
                index
            }
        };
        self.by_name.insert(Box::from(name), index);
        index
    }

    /// Unregisters the consumers that hold nothing.
    fn sweep(&mut self) {
        let slots = &self.slots;
        let free = &mut self.free;
        self.by_name.retain(|_, index| {
            let keep = slots
                .get(*index as usize)
                .is_some_and(|(_, held)| *held > 0);
            if !keep {
                free.push(*index);
            }
            keep
        });
        self.last = None;
    }

    fn held(&self, index: u32) -> usize {
        self.slots.get(index as usize).map_or(0, |(_, held)| *held)
    }

    fn held_by(&self, name: &str) -> usize {
        self.by_name.get(name).map_or(0, |index| self.held(*index))
    }

    fn hold(&mut self, index: u32) {
        if let Some((_, held)) = self.slots.get_mut(index as usize) {
            if *held == 0 {
                self.holding += 1;
            }
            *held += 1;
        }
    }

    fn release(&mut self, index: u32) {
        if let Some((_, held)) = self.slots.get_mut(index as usize)
            && *held > 0
        {
            *held -= 1;
            if *held == 0 {
                self.holding -= 1;
            }
        }
    }
}

/// Hashes the sequential `u64` delivery tags by one multiplication (Fibonacci hashing):
/// the tags are ours, not an attacker's, so `SipHash` buys nothing here.
#[derive(Clone, Copy, Debug, Default)]
struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type TagMap<V> = HashMap<u64, V, BuildHasherDefault<TagHasher>>;

/// The deliveries in flight by tag. Tags are handed out in sequence and most deliveries
/// are settled in about the order they were handed out, so they live in a ring of slots
/// indexed by `tag - base` (no hashing); the ring's front moves on as the oldest ones are
/// settled. A delivery held much longer than those after it (the ring would keep one slot
/// per later tag behind it) is moved to a map, so memory stays proportional to what is in
/// flight.
#[derive(Debug, Default)]
struct InFlightTable {
    /// The tag of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<InFlight>>,
    /// Deliveries older than `base`.
    stragglers: TagMap<InFlight>,
    len: usize,
}

impl InFlightTable {
    fn slot(&self, tag: u64) -> Option<usize> {
        let index = usize::try_from(tag.checked_sub(self.base)?).ok()?;
        (index < self.slots.len()).then_some(index)
    }

    fn get(&self, tag: &u64) -> Option<&InFlight> {
        match self.slot(*tag) {
            Some(index) => self.slots.get(index).and_then(Option::as_ref),
            None => self.stragglers.get(tag),
        }
    }

    fn insert(&mut self, tag: u64, flight: InFlight) {
        // The usual case: the next tag in sequence goes to the back.
        if usize::try_from(tag.wrapping_sub(self.base)).ok() == Some(self.slots.len()) {
            self.slots.push_back(Some(flight));
            self.len += 1;
            if self.slots.len() > 2 * self.len + 256 {
                self.compact();
            }
            return;
        }
        let replaced = if tag < self.base {
            self.stragglers.insert(tag, flight)
        } else {
            let mut index = usize::try_from(tag - self.base).unwrap_or(usize::MAX);
            if index > self.slots.len().saturating_add(256) {
                // Far ahead of the ring (it was emptied, then one old delivery was put
                // back): what the ring holds moves to the map and the ring starts here.
                let base = self.base;
                for (tag, slot) in (base..).zip(self.slots.drain(..)) {
                    if let Some(held) = slot {
                        self.stragglers.insert(tag, held);
                    }
                }
                self.base = tag;
                index = 0;
            }
            if index >= self.slots.len() {
                // New tags come in sequence; a gap (never expected) is filled with empties.
                self.slots.resize_with(index, || None);
                self.slots.push_back(Some(flight));
                None
            } else {
                self.slots.get_mut(index).and_then(|s| s.replace(flight))
            }
        };
        if replaced.is_none() {
            self.len += 1;
        }
        self.compact();
    }

    fn remove(&mut self, tag: &u64) -> Option<InFlight> {
        let flight = match self.slot(*tag) {
            Some(index) => self.slots.get_mut(index).and_then(Option::take),
            None => self.stragglers.remove(tag),
        }?;
        self.len -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(flight)
    }

    /// Drops the delivery `tag` in place; its holder, if it was there.
    fn discard(&mut self, tag: u64) -> Option<u32> {
        let found = match self.slot(tag).and_then(|index| self.slots.get_mut(index)) {
            Some(slot) => {
                let consumer = slot.as_ref().map(|flight| flight.consumer);
                if consumer.is_some() {
                    *slot = None;
                }
                consumer
            }
            None => self.stragglers.remove(&tag).map(|flight| flight.consumer),
        };
        if found.is_some() {
            self.len -= 1;
            while let Some(None) = self.slots.front() {
                self.slots.pop_front();
                self.base += 1;
            }
        }
        found
    }

    /// Moves long-held deliveries at the front to `stragglers` while the ring holds many
    /// more slots than deliveries (amortized O(1) per delivery).
    fn compact(&mut self) {
        if self.slots.len() <= 2 * self.len + 256 {
            return;
        }
        while self.slots.len() > self.len + 128 {
            let Some(front) = self.slots.pop_front() else {
                break;
            };
            if let Some(flight) = front {
                self.stragglers.insert(self.base, flight);
            }
            self.base += 1;
        }
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &InFlight)> {
        let base = self.base;
        (base..)
            .zip(self.slots.iter())
            .filter_map(|(tag, slot)| slot.as_ref().map(|f| (tag, f)))
            .chain(self.stragglers.iter().map(|(tag, f)| (*tag, f)))
    }
}

/// One queue's delivery bookkeeping, driven by `handle_*(…, now)` and `poll_*`.
#[derive(Debug)]
pub struct QueueCore {
    name: Arc<str>,
    config: QueueConfig,
    origin: (Instant, SystemTime),
    next_seq: u64,
    next_tag: u64,
    /// Ready messages sorted by publication sequence, so a redelivery keeps its place. New
    /// messages go to the back; a redelivery (older) goes in by binary search, usually near
    /// the front.
    ready: VecDeque<(u64, Envelope)>,
    delayed: BTreeMap<(Instant, u64), Envelope>,
    in_flight: InFlightTable,
    /// `(deadline, tag)` sorted, as deliveries were handed out (the ack wait is the same
    /// for all, so a new one goes to the back). Entries of settled or extended deliveries
    /// stay until they reach the front or outnumber the live ones (then they are swept);
    /// the front entry is always live.
    deadlines: VecDeque<(Instant, u64)>,
    dead: VecDeque<DeadLetter>,
    jitter: JitterSource,
    /// The consumers holding deliveries, and how many each holds.
    consumers: Consumers,
    /// The last `now` a delivery was stamped at: its wall-clock time (Unix nanoseconds)
    /// and its ack deadline.
    last_stamp: Option<(Instant, NonZeroU64, Instant)>,
    /// Ordering keys with a message in flight or waiting for a retry.
    busy_keys: HashSet<String>,
    /// Injected delivery faults (the simulator), if any.
    faults: Option<Box<FaultState>>,
}

impl QueueCore {
    /// An empty queue. `origin` pairs an instant with the wall-clock time it stands for
    /// (timestamps are computed from it, so a virtual clock gives reproducible ones);
    /// `seed` seeds the jitter.
    #[must_use]
    pub fn new(
        name: &str,
        config: QueueConfig,
        origin: Instant,
        origin_wall: SystemTime,
        seed: u64,
    ) -> Self {
        Self {
            name: Arc::from(name),
            config,
            origin: (origin, origin_wall),
            next_seq: 0,
            next_tag: 0,
            ready: VecDeque::new(),
            delayed: BTreeMap::new(),
            in_flight: InFlightTable::default(),
            deadlines: VecDeque::new(),
            dead: VecDeque::new(),
            jitter: JitterSource::seeded(seed),
            consumers: Consumers::default(),
            last_stamp: None,
            busy_keys: HashSet::new(),
            faults: None,
        }
    }

    /// The queue's name, shared (cloning it copies no bytes).
    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// Injects seeded delivery faults (duplicates, reordering) from now on; [`Faults`]
    /// with zero rates turns them off. The counts start again from zero.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = (!faults.is_none()).then(|| Box::new(FaultState::new(faults)));
    }

    /// How many faults were injected since [`set_faults`](Self::set_faults).
    #[must_use]
    pub fn fault_stats(&self) -> FaultStats {
        self.faults.as_ref().map(|f| f.stats).unwrap_or_default()
    }

    /// The position in `ready` of the next message to deliver under injected faults: the
    /// oldest ready message of each key not busy (and every unkeyed one) is eligible; a
    /// reorder picks a later one.
    fn pick_with_faults(&mut self) -> Option<usize> {
        let faults = self.faults.as_mut()?;
        let window = faults.window();
        let mut seen_keys: HashSet<&str> = HashSet::new();
        let mut eligible = Vec::with_capacity(window);
        for (index, (_, envelope)) in self.ready.iter().enumerate() {
            if eligible.len() >= window {
                break;
            }
            match ordering_key(envelope) {
                Some(key) if self.busy_keys.contains(key) => {}
                Some(key) => {
                    if seen_keys.insert(key) {
                        eligible.push(index);
                    }
                }
                None => eligible.push(index),
            }
        }
        if eligible.is_empty() {
            return None;
        }
        let index = faults.pick(eligible.len());
        eligible.get(index).or(eligible.first()).copied()
    }

    /// The queue's configuration.
    #[must_use]
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    fn wall(&self, now: Instant) -> SystemTime {
        let offset = now.saturating_duration_since(self.origin.0);
        self.origin.1.checked_add(offset).unwrap_or(self.origin.1)
    }

    /// A message is published.
    ///
    /// # Errors
    /// [`Error::QueueFull`] when `max_ready` messages are waiting (ready or delayed).
    pub fn handle_publish(&mut self, mut envelope: Envelope, now: Instant) -> Result<()> {
        self.check_room()?;
        envelope.set_attempt(0);
        envelope.set_published_at(self.wall(now));
        self.enqueue(envelope);
        Ok(())
    }

    /// Messages are published together: all of them, or none when they do not all fit
    /// under `max_ready`.
    ///
    /// # Errors
    /// [`Error::QueueFull`] when fewer than `envelopes.len()` places are left.
    pub fn handle_publish_all(&mut self, envelopes: Vec<Envelope>, now: Instant) -> Result<()> {
        let waiting = self.ready.len() + self.delayed.len();
        if waiting.saturating_add(envelopes.len()) > self.config.max_ready {
            return Err(self.full());
        }
        let wall = crate::envelope::unix_millis(self.wall(now));
        self.ready.reserve(envelopes.len());
        for mut envelope in envelopes {
            envelope.set_attempt(0);
            envelope.set_published_at_millis(wall);
            self.enqueue(envelope);
        }
        Ok(())
    }

    fn full(&self) -> Error {
        Error::QueueFull {
            queue: self.name.to_string(),
            limit: self.config.max_ready,
        }
    }

    pub(crate) fn check_room(&self) -> Result<()> {
        if self.ready.len() + self.delayed.len() >= self.config.max_ready {
            return Err(self.full());
        }
        Ok(())
    }

    fn enqueue(&mut self, mut envelope: Envelope) {
        envelope.set_delivered_at(None);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.ready.push_back((seq, envelope));
    }

    /// Puts a message back among the ready ones at its publication place.
    fn make_ready(&mut self, seq: u64, envelope: Envelope) {
        if self.ready.back().is_none_or(|(last, _)| *last < seq) {
            self.ready.push_back((seq, envelope));
        } else {
            let at = self.ready.partition_point(|(s, _)| *s < seq);
            self.ready.insert(at, (seq, envelope));
        }
    }

    /// The next ready message for `consumer`, with its delivery tag; `None` when nothing is
    /// ready at `now`. The caller should have called [`handle_timeout`](Self::handle_timeout).
    /// With a prefetch bound, `None` also when `consumer` holds that many deliveries.
    /// A message whose [`ORDERING_KEY`](crate::ORDERING_KEY) has another message in
    /// flight or waiting for a retry is passed over.
    pub fn poll_delivery(&mut self, consumer: &str, now: Instant) -> Option<(u64, Envelope)> {
        let consumer = self.consumers.index(consumer);
        self.deliver(consumer, now)
    }

    /// [`poll_delivery`](Self::poll_delivery) up to `max` times, each delivery passed to
    /// `each`; the consumer is looked up once.
    pub(crate) fn poll_deliveries(
        &mut self,
        consumer: &str,
        now: Instant,
        max: usize,
        mut each: impl FnMut(u64, Envelope),
    ) {
        let consumer = self.consumers.index(consumer);
        for _ in 0..max {
            let Some((tag, envelope)) = self.deliver(consumer, now) else {
                break;
            };
            each(tag, envelope);
        }
    }

    fn deliver(&mut self, consumer: u32, now: Instant) -> Option<(u64, Envelope)> {
        // At the prefetch bound nothing is picked, so no fault is drawn or counted.
        if self
            .config
            .prefetch
            .is_some_and(|limit| self.consumers.held(consumer) >= limit)
        {
            return None;
        }
        let index = if self.faults.is_some() {
            self.pick_with_faults()?
        } else if self.busy_keys.is_empty() {
            if self.ready.is_empty() {
                return None;
            }
            0
        } else {
            self.ready
                .iter()
                .position(|(_, e)| ordering_key(e).is_none_or(|k| !self.busy_keys.contains(k)))?
        };
        let (seq, mut envelope) = if index == 0 {
            self.ready.pop_front()?
        } else {
            self.ready.remove(index)?
        };
        if let Some(faults) = self.faults.as_mut()
            && faults.duplicate()
        {
            // The copy keeps this delivery's attempt number: it is the same delivery, twice.
            self.enqueue(envelope.clone());
        }
        if let Some(key) = ordering_key(&envelope) {
            self.busy_keys.insert(key.to_owned());
        }
        let (wall, deadline) = self.stamp(now);
        envelope.set_attempt(envelope.attempt().saturating_add(1));
        envelope.set_delivered_at_nanos(Some(wall));
        let tag = self.next_tag;
        self.next_tag += 1;
        self.push_deadline(deadline, tag);
        self.consumers.hold(consumer);
        self.in_flight.insert(
            tag,
            InFlight {
                seq,
                envelope: envelope.clone(),
                deadline,
                consumer,
            },
        );
        Some((tag, envelope))
    }

    /// The wall-clock time (Unix nanoseconds) and the ack deadline of a delivery at `now`,
    /// computed once for the deliveries of one fetch (same `now`).
    fn stamp(&mut self, now: Instant) -> (NonZeroU64, Instant) {
        match self.last_stamp {
            Some((at, wall, deadline)) if at == now => (wall, deadline),
            _ => {
                let wall = crate::envelope::unix_nanos(self.wall(now));
                let deadline = now + self.config.ack_wait;
                self.last_stamp = Some((now, wall, deadline));
                (wall, deadline)
            }
        }
    }

    /// Records an ack deadline, keeping `deadlines` sorted.
    fn push_deadline(&mut self, deadline: Instant, tag: u64) {
        let entry = (deadline, tag);
        if self.deadlines.back().is_none_or(|last| *last < entry) {
            self.deadlines.push_back(entry);
        } else {
            // Only when the caller's clock went back (or two extensions crossed).
            let at = self.deadlines.partition_point(|e| *e < entry);
            self.deadlines.insert(at, entry);
        }
    }

    /// Whether a `deadlines` entry still stands for a delivery in flight.
    fn is_live(&self, (deadline, tag): (Instant, u64)) -> bool {
        self.in_flight
            .get(&tag)
            .is_some_and(|f| f.deadline == deadline)
    }

    /// Drops the entries of settled deliveries from the front of `deadlines`, and sweeps
    /// the rest when they outnumber the live ones (amortized O(1) per delivery).
    fn trim_deadlines(&mut self) {
        while let Some(&front) = self.deadlines.front() {
            if self.is_live(front) {
                break;
            }
            self.deadlines.pop_front();
        }
        if self.deadlines.len() > 2 * self.in_flight.len() + 64 {
            let in_flight = &self.in_flight;
            self.deadlines.retain(|(deadline, tag)| {
                in_flight.get(tag).is_some_and(|f| f.deadline == *deadline)
            });
        }
    }

    /// A consumer settles delivery `tag`.
    ///
    /// # Errors
    /// [`Error::StaleDelivery`] when the tag is not in flight (settled before, or its
    /// deadline passed and it was handed out again).
    pub fn handle_settlement(
        &mut self,
        tag: u64,
        settlement: Settlement,
        now: Instant,
    ) -> Result<Disposition> {
        let disposition = self.settle_one(tag, &settlement, now);
        self.trim_deadlines();
        disposition
    }

    /// Settles one delivery; the caller trims `deadlines` afterwards.
    pub(crate) fn settle_one(
        &mut self,
        tag: u64,
        settlement: &Settlement,
        now: Instant,
    ) -> Result<Disposition> {
        if *settlement == Settlement::Ack
            && let Some(faults) = self.faults.as_mut()
            && self.in_flight.get(&tag).is_some()
            && faults.lose_ack()
        {
            // Injected: the consumer hears "removed", the delivery stays held until its
            // deadline passes.
            return Ok(Disposition::Removed);
        }
        if *settlement == Settlement::Ack && self.busy_keys.is_empty() {
            // The common case: no ordering key to free, so the entry is dropped where it
            // lies instead of being moved out. The jitter is drawn as on every path.
            let Some(consumer) = self.in_flight.discard(tag) else {
                return Err(Error::StaleDelivery);
            };
            self.consumers.release(consumer);
            let _ = self.jitter.next_unit();
            return Ok(Disposition::Removed);
        }
        let Some(flight) = self.in_flight.remove(&tag) else {
            return Err(Error::StaleDelivery);
        };
        if *settlement != Settlement::InProgress {
            self.consumers.release(flight.consumer);
        }
        let unit = self.jitter.next_unit();
        let disposition = decide(
            settlement,
            flight.envelope.attempt(),
            &self.config.retry,
            unit,
        );
        if matches!(
            disposition,
            Disposition::Removed | Disposition::DeadLetter { .. }
        ) {
            self.free_key(&flight.envelope);
        }
        match &disposition {
            Disposition::Removed => {}
            Disposition::Extended => {
                let deadline = now + self.config.ack_wait;
                self.push_deadline(deadline, tag);
                self.in_flight.insert(tag, InFlight { deadline, ..flight });
            }
            Disposition::Retry { delay } => self.retry_later(flight, now + *delay),
            Disposition::DeadLetter { reason } => self.dead_letter(flight, reason.clone(), now),
        }
        Ok(disposition)
    }

    /// Removes the deadlines' settled entries (after [`settle_one`](Self::settle_one)).
    pub(crate) fn settled(&mut self) {
        self.trim_deadlines();
    }

    /// The message's ordering key (if any) may go to the next message.
    fn free_key(&mut self, envelope: &Envelope) {
        if !self.busy_keys.is_empty()
            && let Some(key) = ordering_key(envelope)
        {
            self.busy_keys.remove(key);
        }
    }

    /// How many deliveries `consumer` holds unsettled.
    #[must_use]
    pub fn held_by(&self, consumer: &str) -> usize {
        self.consumers.held_by(consumer)
    }

    fn retry_later(&mut self, flight: InFlight, due: Instant) {
        let mut envelope = flight.envelope;
        envelope.set_delivered_at(None);
        self.delayed.insert((due, flight.seq), envelope);
    }

    fn dead_letter(&mut self, flight: InFlight, reason: String, now: Instant) {
        let attempts = flight.envelope.attempt();
        let letter = DeadLetter::new(
            &self.name,
            flight.envelope,
            reason,
            attempts,
            self.wall(now),
        );
        if self.dead.len() >= self.config.max_dead {
            self.dead.pop_front();
        }
        self.dead.push_back(letter);
    }

    /// Time passed: expired ack deadlines are delivered again (or dead-lettered after the
    /// last allowed delivery) and due retries become ready.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, tag)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if self
                .in_flight
                .get(&tag)
                .is_some_and(|f| f.deadline == deadline)
                && let Some(flight) = self.in_flight.remove(&tag)
            {
                self.expire(flight, now);
            }
        }
        self.trim_deadlines();
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, seq), envelope) = entry.remove_entry();
            self.free_key(&envelope);
            self.make_ready(seq, envelope);
        }
    }

    fn expire(&mut self, flight: InFlight, now: Instant) {
        self.consumers.release(flight.consumer);
        self.free_key(&flight.envelope);
        match decide_expired(flight.envelope.attempt(), &self.config.retry) {
            Disposition::DeadLetter { reason } => self.dead_letter(flight, reason, now),
            _ => {
                let mut envelope = flight.envelope;
                envelope.set_delivered_at(None);
                self.make_ready(flight.seq, envelope);
            }
        }
    }

    /// A consumer is gone (crashed, disconnected): its deliveries are treated as if their
    /// ack deadlines passed now, in the order they were handed out. Returns how many it
    /// held.
    pub fn handle_consumer_lost(&mut self, consumer: &str, now: Instant) -> usize {
        if self.consumers.held_by(consumer) == 0 {
            return 0;
        }
        let consumer = self.consumers.index(consumer);
        let mut tags: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.consumer == consumer)
            .map(|(tag, _)| tag)
            .collect();
        tags.sort_unstable();
        for tag in &tags {
            if let Some(flight) = self.in_flight.remove(tag) {
                self.expire(flight, now);
            }
        }
        self.trim_deadlines();
        tags.len()
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work next: the earliest ack
    /// deadline or retry due time.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.deadlines.front().map(|(t, _)| *t);
        let due = self.delayed.first_key_value().map(|((t, _), _)| *t);
        match (deadline, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> impl Iterator<Item = &DeadLetter> {
        self.dead.iter()
    }

    /// Moves up to `max` dead letters (oldest first) back to the queue with their attempt
    /// count reset and their original publication time; returns how many.
    ///
    /// # Errors
    /// [`Error::QueueFull`] when not even one fits; the dead letters stay.
    pub fn redrive(&mut self, max: usize) -> Result<usize> {
        let mut moved = 0;
        while moved < max && !self.dead.is_empty() {
            if let Err(e) = self.check_room() {
                return if moved == 0 { Err(e) } else { Ok(moved) };
            }
            let Some(letter) = self.dead.pop_front() else {
                break;
            };
            self.enqueue(letter.into_redriven());
            moved += 1;
        }
        Ok(moved)
    }

    /// Puts messages read back from the embedded broker's journal in place: `ready` in
    /// publication order (each keeps its attempt count, so the next delivery is counted
    /// after the ones before the restart), `dead` oldest first. No bound is checked for
    /// `ready`: what was accepted before stays.
    pub(crate) fn restore(&mut self, ready: Vec<Envelope>, dead: Vec<DeadLetter>) {
        for envelope in ready {
            self.enqueue(envelope);
        }
        for letter in dead {
            if self.dead.len() >= self.config.max_dead {
                self.dead.pop_front();
            }
            self.dead.push_back(letter);
        }
    }

    /// The `n` newest ready messages (just published), oldest first.
    pub(crate) fn newest_ready(&self, n: usize) -> impl Iterator<Item = &Envelope> {
        self.ready
            .iter()
            .skip(self.ready.len().saturating_sub(n))
            .map(|(_, e)| e)
    }

    /// Every message not settled (ready, waiting for a retry, in flight), in publication
    /// order, with its attempt count so far (for the journal's compaction).
    pub(crate) fn live_messages(&self) -> Vec<&Envelope> {
        let mut all: Vec<(u64, &Envelope)> = self
            .ready
            .iter()
            .map(|(seq, e)| (*seq, e))
            .chain(self.delayed.iter().map(|((_, seq), e)| (*seq, e)))
            .chain(self.in_flight.iter().map(|(_, f)| (f.seq, &f.envelope)))
            .collect();
        all.sort_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, e)| e).collect()
    }

    /// Messages waiting for delivery now.
    #[must_use]
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }
    /// Messages waiting for a retry delay.
    #[must_use]
    pub fn delayed_len(&self) -> usize {
        self.delayed.len()
    }
    /// Deliveries held by consumers.
    #[must_use]
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }
    /// Dead letters kept.
    #[must_use]
    pub fn dead_len(&self) -> usize {
        self.dead.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn flight(seq: u64) -> InFlight {
        InFlight {
            seq,
            envelope: Envelope::new("x"),
            deadline: Instant::now(),
            consumer: 0,
        }
    }

    #[test]
    fn a_long_held_delivery_moves_out_of_the_ring() {
        let mut table = InFlightTable::default();
        table.insert(0, flight(0));
        for tag in 1..10_000 {
            table.insert(tag, flight(tag));
            assert_eq!(table.discard(tag), Some(0));
        }
        assert_eq!(table.len(), 1);
        // No slot is kept for each of the 9,999 tags settled after the held one.
        assert!(table.slots.len() <= 300, "{} slots", table.slots.len());
        assert_eq!(table.get(&0).map(|f| f.seq), Some(0));
        assert_eq!(table.iter().map(|(t, _)| t).collect::<Vec<_>>(), vec![0]);
        assert_eq!(table.remove(&0).map(|f| f.seq), Some(0));
        assert_eq!(table.len(), 0);
        assert!(table.remove(&0).is_none());
        assert_eq!(table.discard(5), None);
    }

    #[test]
    fn consumers_holding_nothing_are_swept_and_holders_kept() {
        let mut consumers = Consumers::default();
        let holder = consumers.index("holder");
        consumers.hold(holder);
        consumers.hold(holder);
        // Many consumers come and go (each holds one delivery, then settles it).
        for i in 0..1000 {
            let index = consumers.index(&format!("c{i}"));
            consumers.hold(index);
            consumers.release(index);
        }
        assert!(consumers.by_name.len() <= 20, "{}", consumers.by_name.len());
        assert!(consumers.slots.len() <= 20, "{}", consumers.slots.len());
        assert_eq!(consumers.held_by("holder"), 2);
        assert_eq!(consumers.index("holder"), holder);
        assert_eq!(consumers.held_by("c999"), 0);
        consumers.release(holder);
        consumers.release(holder);
        consumers.release(holder);
        assert_eq!(consumers.held_by("holder"), 0);
        assert_eq!(consumers.holding, 0);
    }

    #[test]
    fn tags_behind_or_far_ahead_of_the_ring_are_kept() {
        let mut table = InFlightTable::default();
        for tag in 0..1000 {
            table.insert(tag, flight(tag));
        }
        for tag in 0..1000 {
            assert_eq!(table.remove(&tag).map(|f| f.seq), Some(tag));
        }
        // An extension puts an old tag back; new tags go on after it.
        table.insert(3, flight(3));
        table.insert(1000, flight(1000));
        table.insert(1001, flight(1001));
        // A jump far ahead starts the ring again there.
        table.insert(1_000_000, flight(1_000_000));
        assert_eq!(table.len(), 4);
        assert!(table.slots.len() < 300, "{} slots", table.slots.len());
        let mut tags: Vec<u64> = table.iter().map(|(t, _)| t).collect();
        tags.sort_unstable();
        assert_eq!(tags, vec![3, 1000, 1001, 1_000_000]);
        for tag in [1000, 3, 1_000_000, 1001] {
            assert_eq!(table.get(&tag).map(|f| f.seq), Some(tag));
            assert_eq!(table.discard(tag), Some(0));
        }
        assert_eq!(table.len(), 0);
        assert!(table.get(&1001).is_none());
    }
}
