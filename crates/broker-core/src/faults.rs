//! Seeded delivery faults for the simulator: [`Faults`], set per queue with
//! [`EmbeddedBroker::inject_faults`](crate::EmbeddedBroker::inject_faults) (or
//! [`QueueCore::set_faults`](crate::QueueCore::set_faults)), so consumer tests meet the
//! duplicates and reordering real brokers produce, the same on every run of a seed.
//!
//! - Duplicates: with probability `duplicate`, a delivery also puts a copy of the message
//!   (same id, headers, payload and attempt number) at the back of the queue, as a broker
//!   does when an ack is lost or a publisher retries. The copy is a message of its own:
//!   settling one never settles the other, and `pending` counts both.
//! - Reordering: with probability `reorder`, a delivery hands out a message picked at
//!   random from the next `window` eligible ones instead of the first. Messages that share
//!   an [`ORDERING_KEY`](crate::ORDERING_KEY) are never reordered among themselves (only
//!   the oldest ready message of a key is eligible), since per-key order is the broker's
//!   promise; across keys and for unkeyed messages the order is scrambled.
//!
//! - Lost acks: with probability `lost_acks`, an [`Settlement::Ack`](crate::Settlement::Ack)
//!   answers [`Disposition::Removed`](crate::Disposition::Removed) to the consumer, which
//!   thinks it acked, but the broker never got it: the message stays held until its ack
//!   deadline passes and is then delivered again (attempt + 1), or dead-lettered when that
//!   was its last allowed delivery. An [`Inbox`](crate::Inbox) turns the redelivery into
//!   a no-op.
//!
//! A duplicate of a keyed message can still arrive after later messages of its key (it
//! was queued behind them): a consumer sees a key's messages out of order exactly when
//! it sees a duplicate. An [`Inbox`](crate::Inbox) turns that into a no-op, so the
//! effects keep per-key order.
//!
//! Crashes before the ack are [`EmbeddedBroker::crash_consumer`](crate::EmbeddedBroker::crash_consumer).

use crate::retry::JitterSource;

/// Delivery faults for one queue: rates in `[0, 1]` and the seed that decides which
/// deliveries they hit.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    seed: u64,
    duplicate: f64,
    reorder: f64,
    window: usize,
    lost_ack: f64,
}

fn rate(r: f64) -> f64 {
    if r.is_finite() {
        r.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

impl Faults {
    /// No faults yet, drawn from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            duplicate: 0.0,
            reorder: 0.0,
            window: 8,
            lost_ack: 0.0,
        }
    }

    /// The share of deliveries that queue a duplicate (clamped to `[0, 1]`).
    #[must_use]
    pub fn duplicates(mut self, rate_: f64) -> Self {
        self.duplicate = rate(rate_);
        self
    }

    /// The share of deliveries that take a later message than the first eligible one
    /// (clamped to `[0, 1]`).
    #[must_use]
    pub fn reorder(mut self, rate_: f64) -> Self {
        self.reorder = rate(rate_);
        self
    }

    /// How far ahead a reordered delivery may reach: among the next `window` eligible
    /// messages (default 8, at least 2).
    #[must_use]
    pub fn reorder_window(mut self, window: usize) -> Self {
        self.window = window.max(2);
        self
    }

    /// The share of acks the broker loses (clamped to `[0, 1]`): the consumer is told the
    /// message was removed, the broker redelivers it after the ack deadline.
    #[must_use]
    pub fn lost_acks(mut self, rate_: f64) -> Self {
        self.lost_ack = rate(rate_);
        self
    }

    pub(crate) fn is_none(&self) -> bool {
        self.duplicate == 0.0 && self.reorder == 0.0 && self.lost_ack == 0.0
    }
}

/// How many faults a queue's deliveries met so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Duplicates queued.
    pub duplicated: u64,
    /// Deliveries that skipped ahead of an older eligible message.
    pub reordered: u64,
    /// Acks lost: answered as removed, the message left held until its deadline.
    pub lost_acks: u64,
}

/// The faults of one queue and their random source.
#[derive(Debug)]
pub(crate) struct FaultState {
    faults: Faults,
    random: JitterSource,
    pub(crate) stats: FaultStats,
}

impl FaultState {
    pub(crate) fn new(faults: Faults) -> Self {
        Self {
            random: JitterSource::seeded(faults.seed),
            faults,
            stats: FaultStats::default(),
        }
    }

    pub(crate) fn window(&self) -> usize {
        self.faults.window
    }

    /// Which of `eligible` candidates (oldest first) to deliver: 0 unless a reorder hits.
    pub(crate) fn pick(&mut self, eligible: usize) -> usize {
        if self.faults.reorder == 0.0 || eligible < 2 {
            return 0;
        }
        if self.random.next_unit() >= self.faults.reorder {
            return 0;
        }
        // One of the later ones, so every reorder really changes the order.
        let later = eligible - 1;
        let offset = (self.random.next_unit() * later as f64) as usize;
        self.stats.reordered += 1;
        1 + offset.min(later - 1)
    }

    /// Whether this ack is lost.
    pub(crate) fn lose_ack(&mut self) -> bool {
        if self.faults.lost_ack == 0.0 || self.random.next_unit() >= self.faults.lost_ack {
            return false;
        }
        self.stats.lost_acks += 1;
        true
    }

    /// Whether this delivery queues a duplicate.
    pub(crate) fn duplicate(&mut self) -> bool {
        if self.faults.duplicate == 0.0 || self.random.next_unit() >= self.faults.duplicate {
            return false;
        }
        self.stats.duplicated += 1;
        true
    }
}
