//! Prefetch bookkeeping for the network backends: which deliveries each consumer of this
//! process holds unsettled, until it settles them or their ack deadline passes. The
//! embedded broker counts in [`QueueCore`](crate::QueueCore) instead.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

type Key = (String, String);

#[derive(Debug, Default)]
pub(crate) struct Held {
    /// (queue, consumer) -> delivery token -> ack deadline.
    held: Mutex<HashMap<Key, HashMap<String, Instant>>>,
    settled: Notify,
}

fn key(queue: &str, consumer: &str) -> Key {
    (queue.to_owned(), consumer.to_owned())
}

impl Held {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, HashMap<String, Instant>>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many more deliveries `consumer` may take under `limit`, waiting until `end` for a
    /// settlement or an expired deadline while it has no room; 0 when none came.
    pub(crate) async fn room(
        &self,
        queue: &str,
        consumer: &str,
        limit: usize,
        end: Instant,
    ) -> usize {
        loop {
            let mut settled = pin!(self.settled.notified());
            settled.as_mut().enable();
            let now = Instant::now();
            let (room, next_expiry) = {
                let mut held = self.lock();
                let Some(tokens) = held.get_mut(&key(queue, consumer)) else {
                    return limit;
                };
                tokens.retain(|_, deadline| *deadline > now);
                (
                    limit.saturating_sub(tokens.len()),
                    tokens.values().min().copied(),
                )
            };
            if room > 0 || now >= end {
                return room;
            }
            let wake = next_expiry.map_or(end, |t| t.min(end));
            let _ = tokio::time::timeout_at(wake, settled).await;
        }
    }

    /// `consumer` holds `token` until `ack_wait` from now.
    pub(crate) fn hold(&self, queue: &str, consumer: &str, token: &str, ack_wait: Duration) {
        self.lock()
            .entry(key(queue, consumer))
            .or_default()
            .insert(token.to_owned(), Instant::now() + ack_wait);
    }

    /// `token` was settled for good.
    pub(crate) fn release(&self, queue: &str, consumer: &str, token: &str) {
        let mut held = self.lock();
        if held.is_empty() {
            // Nothing is counted (no prefetch bound): nobody waits for room.
            return;
        }
        let k = key(queue, consumer);
        if let Some(tokens) = held.get_mut(&k) {
            tokens.remove(token);
            if tokens.is_empty() {
                held.remove(&k);
            }
        }
        drop(held);
        self.settled.notify_waiters();
    }
}
