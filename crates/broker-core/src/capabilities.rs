//! What a backend can do. A backend that cannot do something answers
//! [`Error::Unsupported`](crate::Error::Unsupported) and says so here, never silently.

/// The features of a backend, for callers and the conformance suite to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Messages are first delivered in publication order within a queue (to one consumer,
    /// before any retry).
    pub fifo_per_queue: bool,
    /// A nack can ask for a delay before the next delivery.
    pub delayed_retry: bool,
    /// Messages over their delivery limit, or rejected, are kept as dead letters.
    pub dead_letters: bool,
    /// Dead letters can be listed and moved back to their queue.
    pub redrive: bool,
    /// [`Settlement::InProgress`](crate::Settlement::InProgress) extends the ack deadline.
    pub extend_deadline: bool,
    /// Several consumers of one queue receive disjoint messages.
    pub competing_consumers: bool,
    /// `publish` returns after the broker confirmed it stored the message.
    pub publish_confirm: bool,
    /// Publishing the same message id twice within the broker's window stores it once.
    pub publish_dedup: bool,
    /// Topics fan out: every queue bound to a topic ([`Broker::bind`](crate::Broker::bind))
    /// gets its own copy of each message published to it
    /// ([`Broker::publish_topic`](crate::Broker::publish_topic)).
    pub fan_out: bool,
    /// [`Broker::request`](crate::Broker::request) and
    /// [`Broker::reply`](crate::Broker::reply) work, with a timeout.
    pub request_reply: bool,
    /// [`QueueConfig::prefetch`](crate::QueueConfig::prefetch) bounds the deliveries one
    /// consumer holds unsettled.
    pub prefetch: bool,
    /// [`Broker::pending`](crate::Broker::pending) counts the messages not yet settled for
    /// good.
    pub pending_count: bool,
    /// Messages with the same [`ORDERING_KEY`](crate::ORDERING_KEY) are handed out one at
    /// a time in publication order, different keys in parallel.
    pub ordered_keys: bool,
    /// Attempt counts, retry delays and dead-lettering decisions survive a crash of the
    /// consuming process because the broker keeps them. False where the adapter keeps them
    /// in that process (MQTT): after a crash the server resends what it held at once, and
    /// the adapter counts it as one more attempt.
    pub retry_state_in_broker: bool,
}

impl Capabilities {
    /// Everything on; backends switch off what they lack.
    #[must_use]
    pub const fn all() -> Self {
        Self {
            fifo_per_queue: true,
            delayed_retry: true,
            dead_letters: true,
            redrive: true,
            extend_deadline: true,
            competing_consumers: true,
            publish_confirm: true,
            publish_dedup: true,
            fan_out: true,
            request_reply: true,
            prefetch: true,
            pending_count: true,
            ordered_keys: true,
            retry_state_in_broker: true,
        }
    }
}
