//! A per-message time limit: [`TimeoutLayer`]. A handler that runs past it is cancelled
//! (its future dropped, so no more of its code runs) and the message is nacked: the queue
//! delivers it again after its retry policy's backoff, or dead-letters it after the last
//! allowed delivery.
//!
//! Keep the limit below the queue's ack wait, so the nack comes before the broker hands
//! the message to someone else. The timer is tokio's (`tokio::time`), so the layer needs a
//! tokio runtime with time enabled; a test can pause that clock (`tokio::time::pause`).

use std::future::Future;
use std::time::Duration;

use crate::{Delivery, Disposition, Handler, HandlerError, HandlerResult, Layer};

/// Cancels a handler that runs longer than a limit: [`Timeout`] around each handler.
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    limit: Duration,
}

impl TimeoutLayer {
    /// At most `limit` per delivery.
    #[must_use]
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<H> Layer<H> for TimeoutLayer {
    type Handler = Timeout<H>;
    fn layer(&self, inner: H) -> Timeout<H> {
        Timeout {
            inner,
            limit: self.limit,
        }
    }
}

/// A handler with a time limit; past it, a retryable [`HandlerError`] (a nack).
#[derive(Clone, Debug)]
pub struct Timeout<H> {
    inner: H,
    limit: Duration,
}

impl<H: Handler> Handler for Timeout<H> {
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = HandlerResult> + Send {
        let limit = self.limit;
        let work = self.inner.handle(delivery);
        async move {
            match tokio::time::timeout(limit, work).await {
                Ok(result) => result,
                Err(_) => Err(HandlerError::retryable(format_args!(
                    "handler timed out after {limit:?}"
                ))),
            }
        }
    }

    fn settled(&self, delivery: &Delivery, disposition: &Disposition) {
        self.inner.settled(delivery, disposition);
    }
}
