//! Retries by error class: [`RetryLayer`]. A terminal [`HandlerError`] dead-letters the
//! message at once with its reason; a retryable one is tried again in process (up to
//! [`RetryLayer::in_process`] times, for blips such as a dropped connection), and then
//! handed back to the broker as a nack, which retries with the queue's
//! [`RetryPolicy`](crate::RetryPolicy) (backoff, jitter, delivery limit, dead letter).

use std::future::Future;
use std::time::Duration;

use crate::{Delivery, Disposition, Handler, HandlerError, HandlerResult, Layer};

/// Turns handler errors into settlements, optionally retrying in process first.
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryLayer {
    tries: u32,
    pause: Duration,
}

impl RetryLayer {
    /// No in-process retries: a retryable error is a nack, a terminal one a reject.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Up to `tries` more calls of the handler after a retryable error, `pause` apart
    /// (tokio's timer), before the message goes back to the broker. Keep
    /// `tries * (pause + handler time)` well under the ack wait.
    #[must_use]
    pub fn in_process(mut self, tries: u32, pause: Duration) -> Self {
        self.tries = tries;
        self.pause = pause;
        self
    }
}

impl<H> Layer<H> for RetryLayer {
    type Handler = Retry<H>;
    fn layer(&self, inner: H) -> Retry<H> {
        Retry {
            inner,
            layer: *self,
        }
    }
}

/// A handler whose errors become settlements: see [`RetryLayer`].
#[derive(Clone, Debug)]
pub struct Retry<H> {
    inner: H,
    layer: RetryLayer,
}

impl<H: Handler> Retry<H> {
    async fn run(&self, delivery: &Delivery) -> HandlerResult {
        let mut tries = 0;
        loop {
            match self.inner.handle(delivery).await {
                Ok(settlement) => return Ok(settlement),
                Err(HandlerError::Retryable { .. }) if tries < self.layer.tries => {
                    tries += 1;
                    if !self.layer.pause.is_zero() {
                        tokio::time::sleep(self.layer.pause).await;
                    }
                }
                Err(error) => return Ok(error.into_settlement()),
            }
        }
    }
}

impl<H: Handler> Handler for Retry<H> {
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = HandlerResult> + Send {
        self.run(delivery)
    }

    fn settled(&self, delivery: &Delivery, disposition: &Disposition) {
        self.inner.settled(delivery, disposition);
    }
}
