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
