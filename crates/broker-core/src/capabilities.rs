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
        }
    }
}
