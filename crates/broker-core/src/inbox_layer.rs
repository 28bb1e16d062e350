//! The idempotent consumer as a layer: [`InboxLayer`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{
    Claim, Delivery, Disposition, Handler, HandlerError, HandlerResult, Inbox, Layer, Settlement,
};

/// Skips messages an [`Inbox`] has seen done.
///
/// The idempotent consumer as a layer. Before the handler runs, the
/// message id is claimed in an [`Inbox`]: an id already done is acknowledged without
/// running the handler (a duplicate, a redelivery after a lost ack); an id another
/// consumer is working on now is nacked, to be looked at again later; otherwise the
/// handler runs, and the id is completed when it answers [`Settlement::Ack`] or released
/// (so a retry can claim it) when it does not.
#[derive(Debug)]
pub struct InboxLayer<I> {
    inbox: Arc<I>,
    lease: Duration,
    keep: Duration,
    busy: Option<Duration>,
    skipped: Arc<AtomicU64>,
}

impl<I> Clone for InboxLayer<I> {
    fn clone(&self) -> Self {
        Self {
            inbox: self.inbox.clone(),
            lease: self.lease,
            keep: self.keep,
            busy: self.busy,
            skipped: self.skipped.clone(),
        }
    }
}

impl<I: Inbox> InboxLayer<I> {
    /// Leases of 30 s (set them to the queue's ack wait with [`lease`](Self::lease)), done
    /// ids kept for 24 hours, a busy id nacked with the queue's backoff.
    pub fn new(inbox: Arc<I>) -> Self {
        Self {
            inbox,
            lease: Duration::from_secs(30),
            keep: Duration::from_secs(24 * 3600),
            busy: None,
            skipped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How long a claim holds the id: the queue's ack wait, so a consumer that dies
    /// holding it lets the redelivery claim it.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a done id is remembered; a duplicate later than that runs again. Make it
    /// longer than the longest a duplicate can arrive late (retries, redrive).
    #[must_use]
    pub fn keep(mut self, keep: Duration) -> Self {
        self.keep = keep;
        self
    }

    /// The nack delay for a message whose id another consumer holds (default: the
    /// queue's backoff). That nack counts as a delivery, like any other.
    #[must_use]
    pub fn busy_delay(mut self, delay: Duration) -> Self {
        self.busy = Some(delay);
        self
    }

    /// How many deliveries were acknowledged without running the handler (their id was
    /// done), across every handler this layer (and its clones) made.
    #[must_use]
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

impl<H, I: Inbox> Layer<H> for InboxLayer<I> {
    type Handler = InboxHandler<H, I>;
    fn layer(&self, inner: H) -> InboxHandler<H, I> {
        InboxHandler {
            inner,
            layer: self.clone(),
        }
    }
}

/// A handler behind an inbox: see [`InboxLayer`].
#[derive(Debug)]
pub struct InboxHandler<H, I> {
    inner: H,
    layer: InboxLayer<I>,
}

impl<H: Handler, I: Inbox> InboxHandler<H, I> {
    async fn run(&self, delivery: &Delivery) -> HandlerResult {
        let id = delivery.envelope.id();
        let inbox = &*self.layer.inbox;
        let token = match inbox.claim(id, self.layer.lease).await {
            Ok(Claim::Acquired(token)) => token,
            Ok(Claim::Done) => {
                self.layer.skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(Settlement::Ack);
            }
            Ok(Claim::Busy) => {
                return Ok(Settlement::Nack {
                    delay: self.layer.busy,
                });
            }
            Err(e) => {
                return Err(HandlerError::retryable(format_args!("inbox claim: {e}")));
            }
        };
        // If this future is dropped here (a timeout outside the inbox), the lease stays
        // until it expires: put the timeout inside the inbox layer.
        let result = self.inner.handle(delivery).await;
        if matches!(result, Ok(Settlement::Ack)) {
            // The effect happened; a failure to record it only risks a second effect
            // for a later duplicate, so the message is acknowledged all the same.
            let _ = inbox.complete(id, &token, self.layer.keep).await;
        } else {
            // Failed, rejected or still in progress: the next delivery (or the next call
            // for an in-progress answer) must be able to claim the id again.
            let _ = inbox.release(id, &token).await;
        }
        result
    }
}

impl<H: Handler, I: Inbox> Handler for InboxHandler<H, I> {
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = HandlerResult> + Send {
        self.run(delivery)
    }

    fn settled(&self, delivery: &Delivery, disposition: &Disposition) {
        self.inner.settled(delivery, disposition);
    }
}
