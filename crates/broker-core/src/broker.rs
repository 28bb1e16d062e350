//! The one trait every backend implements, and the delivery a consumer settles.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    Capabilities, DeadLetter, Disposition, Envelope, Error, QueueConfig, Result, Settlement,
};

/// A message handed to a consumer, to be settled with [`Broker::settle`]. Settling it
/// again after a final settlement fails with [`Error::StaleDelivery`] where the backend
/// can tell.
#[derive(Debug)]
pub struct Delivery {
    /// The queue it came from (shared by the deliveries of one fetch: `&delivery.queue`
    /// reads as a `&str`).
    pub queue: Arc<str>,
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
        /// The key partition of a keyed message (its stream and lease), `None` otherwise.
        partition: Option<u32>,
    },
    #[cfg(feature = "amqp")]
    Amqp {
        token: u64,
        consumer: String,
    },
    #[cfg(feature = "mqtt")]
    Mqtt {
        token: u64,
        consumer: String,
    },
    #[cfg(feature = "nats")]
    Nats {
        reply: String,
        consumer: String,
    },
}

/// A message broker: queues with at-least-once delivery, competing consumers, settlement,
/// retries and dead letters; topics that fan out to the queues bound to them;
/// request/reply. Pull-based, so one consumer loop fits every backend and a
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

    /// Publishes several messages to one queue, in order; returns once the broker has all
    /// of them. Backends send them together (one lock on the embedded broker, one
    /// pipelined round of confirmations on the network ones) instead of one round trip
    /// each. On an error some of them may have been stored already (the embedded broker
    /// stores all or none): publishing them again is at-least-once, and deduplicated
    /// where [`Capabilities::publish_dedup`] is true.
    ///
    /// The default publishes them one after the other.
    fn publish_batch(
        &self,
        queue: &str,
        envelopes: Vec<Envelope>,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            for envelope in envelopes {
                self.publish(queue, envelope).await?;
            }
            Ok(())
        }
    }

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

    /// Settles several deliveries the same way (typically the acks of one fetched batch):
    /// one result per delivery, in order, each as [`settle`](Self::settle) would give it.
    /// Backends settle them together (one lock on the embedded broker, pipelined on the
    /// network ones).
    ///
    /// The default settles them one after the other.
    fn settle_batch(
        &self,
        deliveries: &[Delivery],
        settlement: Settlement,
    ) -> impl Future<Output = Vec<Result<Disposition>>> + Send {
        async move {
            let mut out = Vec::with_capacity(deliveries.len());
            for delivery in deliveries {
                out.push(self.settle(delivery, settlement.clone()).await);
            }
            out
        }
    }

    /// Up to `max` of the queue's dead letters, oldest first, without removing them.
    fn dead_letters(
        &self,
        queue: &str,
        max: usize,
    ) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;

    /// Moves up to `max` dead letters (oldest first) back to the queue with their attempt
    /// count reset; returns how many moved.
    fn redrive(&self, queue: &str, max: usize) -> impl Future<Output = Result<usize>> + Send;

    /// Binds `queue` (declared before) to `topic`: each message published to the topic
    /// with [`publish_topic`](Self::publish_topic) from now on is also put on `queue`.
    /// Every queue bound to a topic gets its own copy (fan-out); the consumers of one
    /// queue compete for that copy. Binding twice is a no-op.
    ///
    /// # Errors
    /// [`Error::Unsupported`] where [`Capabilities::fan_out`] is false.
    fn bind(&self, topic: &str, queue: &str) -> impl Future<Output = Result<()>> + Send {
        let _ = (topic, queue);
        unsupported(self.name(), "fan_out")
    }

    /// Publishes one message to every queue bound to `topic` (to none when none is bound).
    ///
    /// # Errors
    /// [`Error::Unsupported`] where [`Capabilities::fan_out`] is false.
    fn publish_topic(
        &self,
        topic: &str,
        envelope: Envelope,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (topic, envelope);
        unsupported(self.name(), "fan_out")
    }

    /// Publishes a request to `queue` with a `reply-to` address of this backend and a
    /// `correlation-id` (the message id unless one is set), and waits up to `timeout` for
    /// the reply a consumer sends with [`reply`](Self::reply).
    ///
    /// # Errors
    /// [`Error::Timeout`] when no reply came in time; [`Error::Unsupported`] where
    /// [`Capabilities::request_reply`] is false.
    fn request(
        &self,
        queue: &str,
        envelope: Envelope,
        timeout: Duration,
    ) -> impl Future<Output = Result<Envelope>> + Send {
        let _ = (queue, envelope, timeout);
        unsupported(self.name(), "request_reply")
    }

    /// Sends `response` to the `reply-to` address of `request`, with the request's
    /// `correlation-id`. The request still has to be settled. A reply to a requester that
    /// stopped waiting is dropped.
    ///
    /// # Errors
    /// [`Error::InvalidHeader`] when the request has no `reply-to` this backend can use;
    /// [`Error::Unsupported`] where [`Capabilities::request_reply`] is false.
    fn reply(
        &self,
        request: &Delivery,
        response: Envelope,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (request, response);
        unsupported(self.name(), "request_reply")
    }

    /// Messages of `queue` not yet settled for good: ready, waiting for a retry, or held by
    /// a consumer (acked and dead-lettered ones are not counted).
    ///
    /// # Errors
    /// [`Error::Unsupported`] where [`Capabilities::pending_count`] is false.
    fn pending(&self, queue: &str) -> impl Future<Output = Result<usize>> + Send {
        let _ = queue;
        unsupported(self.name(), "pending_count")
    }
}

fn unsupported<T: Send>(
    backend: &'static str,
    capability: &'static str,
) -> impl Future<Output = Result<T>> + Send {
    std::future::ready(Err(Error::Unsupported {
        backend,
        capability,
    }))
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
