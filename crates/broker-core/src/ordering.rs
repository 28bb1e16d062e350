//! Per-key ordering: messages of one queue that carry the same [`ORDERING_KEY`] header are
//! handed out one at a time, in publication order (the next waits until the one before is
//! acked, dead-lettered, or back in the queue after a failure); messages with different
//! keys, or none, go out in parallel. Backends without it
//! ([`Capabilities::ordered_keys`](crate::Capabilities::ordered_keys) false) refuse to
//! publish a message with the header ([`Error::Unsupported`]) rather than ignore it.
//!
//! ```
//! use std::time::Duration;
//! use broker_core::{Broker, EmbeddedBroker, Envelope, ORDERING_KEY, QueueConfig, Settlement};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let broker = EmbeddedBroker::deterministic(1);
//! broker.declare("orders", &QueueConfig::default()).await?;
//! for (key, step) in [("cart-1", "created"), ("cart-2", "created"), ("cart-1", "paid")] {
//!     broker.publish("orders", Envelope::new(step).with_header(ORDERING_KEY, key)?).await?;
//! }
//! // cart-1 "paid" waits behind cart-1 "created"; cart-2 goes in parallel.
//! let batch = broker.fetch("orders", "w", 10, Duration::ZERO).await?;
//! assert_eq!(batch.len(), 2);
//! broker.settle(&batch[0], Settlement::Ack).await?;
//! let next = broker.fetch("orders", "w", 10, Duration::ZERO).await?;
//! assert_eq!(next[0].envelope.payload().as_ref(), b"paid");
//! # Ok::<(), broker_core::Error>(())
//! # }).unwrap();
//! ```

use crate::Envelope;
#[cfg(any(
    feature = "redis",
    feature = "nats",
    feature = "amqp",
    feature = "mqtt"
))]
use crate::{Error, Result};

/// The header that names a message's ordering key.
pub const ORDERING_KEY: &str = "ordering-key";

pub(crate) fn ordering_key(envelope: &Envelope) -> Option<&str> {
    envelope.headers().get(ORDERING_KEY)
}

/// For backends without per-key ordering: a message that asks for it is refused.
#[cfg(any(
    feature = "redis",
    feature = "nats",
    feature = "amqp",
    feature = "mqtt"
))]
pub(crate) fn refuse_ordering_key(backend: &'static str, envelope: &Envelope) -> Result<()> {
    if ordering_key(envelope).is_some() {
        return Err(Error::Unsupported {
            backend,
            capability: "ordered_keys",
        });
    }
    Ok(())
}

/// The most partitions a queue's keyed messages can be spread over (each is a consumer or
/// a stream on the server).
#[cfg(any(feature = "redis", feature = "nats"))]
pub(crate) const MAX_KEY_PARTITIONS: u32 = 256;

/// `partitions` if it is a partition count a queue can have (1 to [`MAX_KEY_PARTITIONS`]).
///
/// # Errors
/// [`Error::InvalidConfig`] outside that range.
#[cfg(any(feature = "redis", feature = "nats"))]
pub(crate) fn check_key_partitions(partitions: u32) -> Result<u32> {
    if (1..=MAX_KEY_PARTITIONS).contains(&partitions) {
        Ok(partitions)
    } else {
        Err(Error::InvalidConfig("key partitions must be 1 to 256"))
    }
}

/// The partition of an ordering key: CRC-32 (IEEE) of its bytes modulo `partitions`.
#[cfg(any(feature = "redis", feature = "nats"))]
pub(crate) fn key_partition(key: &str, partitions: u32) -> u32 {
    crc32fast::hash(key.as_bytes()) % partitions.max(1)
}

/// How often a keyless fetch asks the server whether a queue's key partitions hold
/// messages (and so whether they need reading).
#[cfg(any(feature = "redis", feature = "nats"))]
pub(crate) const KEYED_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a queue's key partitions need reading, as one broker handle knows it: asked of
/// the server at most once per [`KEYED_CHECK`] (keyed messages other processes publish
/// are noticed within that), set at once when this handle publishes a keyed message.
/// Lock-free: every fetch reads it.
#[cfg(any(feature = "redis", feature = "nats"))]
#[derive(Debug)]
pub(crate) struct KeyedWatch {
    /// The partitions held messages when last asked, or this handle published one since.
    active: std::sync::atomic::AtomicBool,
    /// When the server is next asked, in milliseconds since `epoch` (0: at once).
    next_check: std::sync::atomic::AtomicU64,
    epoch: tokio::time::Instant,
}

#[cfg(any(feature = "redis", feature = "nats"))]
impl KeyedWatch {
    pub(crate) fn new() -> Self {
        Self {
            active: std::sync::atomic::AtomicBool::new(false),
            next_check: std::sync::atomic::AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
        }
    }

    /// This handle published a keyed message: the partitions need reading.
    pub(crate) fn published(&self) {
        self.active
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the partitions need reading: the last answer of `ask` (whether they hold
    /// messages), called again when [`KEYED_CHECK`] passed since the last call, by one
    /// caller at a time. A failed `ask` is retried after the next [`KEYED_CHECK`].
    pub(crate) async fn waiting<F>(&self, ask: impl FnOnce() -> F) -> Result<bool>
    where
        F: std::future::Future<Output = Result<bool>>,
    {
        use std::sync::atomic::Ordering;
        let now = self.millis(tokio::time::Instant::now());
        let next = self.next_check.load(Ordering::Relaxed);
        let check = u64::try_from(KEYED_CHECK.as_millis()).unwrap_or(u64::MAX);
        if now >= next
            && self
                .next_check
                .compare_exchange(
                    next,
                    now.saturating_add(check),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let holds = ask().await?;
            self.active.store(holds, Ordering::Release);
            return Ok(holds);
        }
        Ok(self.active.load(Ordering::Acquire))
    }

    fn millis(&self, at: tokio::time::Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(all(test, any(feature = "redis", feature = "nats")))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn the_server_is_asked_at_most_once_per_keyed_check() {
        let watch = KeyedWatch::new();
        let asked = AtomicUsize::new(0);
        let ask = |holds: bool| {
            let asked = &asked;
            move || async move {
                asked.fetch_add(1, Ordering::Relaxed);
                Ok::<bool, Error>(holds)
            }
        };
        // The first fetch asks; the answer holds until KEYED_CHECK passed.
        assert!(!watch.waiting(ask(false)).await.unwrap());
        assert!(!watch.waiting(ask(true)).await.unwrap());
        assert_eq!(asked.load(Ordering::Relaxed), 1);
        // A keyed message of this handle is seen at once.
        watch.published();
        assert!(watch.waiting(ask(false)).await.unwrap());
        assert_eq!(asked.load(Ordering::Relaxed), 1);
        // One published elsewhere is seen after KEYED_CHECK; a failed ask keeps the answer.
        tokio::time::advance(KEYED_CHECK).await;
        assert!(
            watch
                .waiting(|| async { Err::<bool, Error>(Error::Timeout(KEYED_CHECK)) })
                .await
                .is_err()
        );
        assert!(watch.waiting(ask(false)).await.unwrap());
        tokio::time::advance(KEYED_CHECK).await;
        assert!(!watch.waiting(ask(false)).await.unwrap());
        tokio::time::advance(KEYED_CHECK / 2).await;
        assert!(!watch.waiting(ask(true)).await.unwrap());
        tokio::time::advance(KEYED_CHECK / 2).await;
        assert!(watch.waiting(ask(true)).await.unwrap());
        assert_eq!(asked.load(Ordering::Relaxed), 3);
    }
}
