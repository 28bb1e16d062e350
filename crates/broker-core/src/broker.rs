//! The one trait every backend implements, and the delivery a consumer settles.

use std::future::Future;
use std::time::Duration;

use crate::{
    Capabilities, DeadLetter, Disposition, Envelope, Error, QueueConfig, Result, Settlement,
};

/// A message handed to a consumer, to be settled with [`Broker::settle`]. Settling it
/// again after a final settlement fails with [`Error::StaleDelivery`] where the backend
/// can tell.
#[derive(Debug)]
pub struct Delivery {
    /// The queue it came from.
    pub queue: String,
    /// The message; [`Envelope::attempt`] says which delivery this is.
    pub envelope: Envelope,
    pub(crate) token: DeliveryToken,
}

/// Backend bookkeeping that identifies one delivery.
#[derive(Debug, Clone)]
pub(crate) enum DeliveryToken {
    Embedded {
        broker: usize,
        tag: u64,
    },
    #[cfg(feature = "redis")]
    Redis {
        entry: String,
        consumer: String,
    },
    #[cfg(feature = "nats")]
    Nats {
        reply: String,
    },
}

/// A message broker: queues with at-least-once delivery, competing consumers, settlement,
/// retries and dead letters. Pull-based, so one consumer loop fits every backend and a
/// consumer never holds more than it fetched (backpressure by construction).
///
/// Methods return `Send` futures, so consumers can run on a multi-threaded runtime.
pub trait Broker: Send + Sync {
    /// A short name for errors and reports ("embedded", "redis", "nats").
    fn name(&self) -> &'static str;

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Creates the queue (or checks it exists) with its ack wait and retry policy. Declaring
    /// again with the same name updates the configuration where the backend allows it.
    fn declare(&self, queue: &str, config: &QueueConfig)
    -> impl Future<Output = Result<()>> + Send;

    /// Publishes a message; returns once the broker has it (confirmed where the broker
    /// confirms).
    fn publish(&self, queue: &str, envelope: Envelope) -> impl Future<Output = Result<()>> + Send;

    /// Up to `max` deliveries for `consumer`, waiting up to `wait` while there are none.
    /// Consumers with different names compete for the queue's messages.
    fn fetch(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>>> + Send;

    /// Settles a delivery, returning what happened to the message.
    /// [`Settlement::InProgress`] keeps it held, so it takes the delivery by reference.
    fn settle(
        &self,
        delivery: &Delivery,
        settlement: Settlement,
    ) -> impl Future<Output = Result<Disposition>> + Send;

    /// Up to `max` of the queue's dead letters, oldest first, without removing them.
    fn dead_letters(
        &self,
        queue: &str,
        max: usize,
    ) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;

    /// Moves up to `max` dead letters (oldest first) back to the queue with their attempt
    /// count reset; returns how many moved.
    fn redrive(&self, queue: &str, max: usize) -> impl Future<Output = Result<usize>> + Send;
}

/// Queue names every backend can carry: 1 to 200 of `A-Z a-z 0-9 - _`.
///
/// # Errors
/// [`Error::InvalidQueueName`].
pub fn check_queue_name(queue: &str) -> Result<()> {
    if queue.is_empty()
        || queue.len() > 200
        || !queue
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::InvalidQueueName(queue.chars().take(200).collect()));
    }
    Ok(())
}
