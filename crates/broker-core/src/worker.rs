//! A consumer loop with graceful drain: [`Worker`].

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use crate::{Broker, Delivery, Disposition, Handler, Result, Settlement, verdict};

/// A consumer loop with graceful drain: fetch a batch (at most the prefetch), hand each
/// delivery to the handler, settle it with the handler's verdict; when the shutdown signal
/// fires, stop fetching, finish and settle what is in hand, and return. Nothing is left
/// held: what was not fetched stays in the queue for the next worker, at once.
///
/// ```
/// use std::time::Duration;
/// use broker_core::{Broker, EmbeddedBroker, Envelope, QueueConfig, Settlement, Worker};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let broker = EmbeddedBroker::new();
/// broker.declare("mail", &QueueConfig::default().prefetch(4)).await?;
/// for i in 0..10 {
///     broker.publish("mail", Envelope::new(format!("mail {i}"))).await?;
/// }
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let mut stop = Some(stop);
/// let report = Worker::new(&broker, "mail", "sender-1")
///     .run(
///         |_delivery| {
///             // Ask for shutdown after the first message: the batch in hand is finished.
///             if let Some(stop) = stop.take() {
///                 let _ = stop.send(());
///             }
///             async { Settlement::Ack }
///         },
///         async { let _ = stopped.await; },
///     )
///     .await?;
/// assert_eq!(report.processed, 4); // one batch of the prefetch
/// assert_eq!(broker.pending("mail").await?, 6); // the rest wait, none is held
/// # Ok::<(), broker_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Worker<'a, B> {
    broker: &'a B,
    queue: String,
    consumer: String,
    batch: usize,
    poll: Duration,
}

/// What a [`Worker`] did before it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Deliveries handed to the handler (each settled).
    pub processed: usize,
    /// Of those, settled with [`Settlement::Ack`].
    pub acked: usize,
    /// Of those, retried or dead-lettered (nack or reject).
    pub failed: usize,
}

impl<'a, B: Broker> Worker<'a, B> {
    /// A worker for `queue` fetching as `consumer`, 16 deliveries per batch (fewer under
    /// the queue's prefetch bound), waiting up to 100 ms per fetch.
    pub fn new(broker: &'a B, queue: &str, consumer: &str) -> Self {
        Self {
            broker,
            queue: queue.to_owned(),
            consumer: consumer.to_owned(),
            batch: 16,
            poll: Duration::from_millis(100),
        }
    }

    /// The most deliveries fetched at once (at least 1).
    #[must_use]
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How long one fetch waits for messages; the shutdown signal is checked between
    /// fetches, so this bounds how long a drain takes to start.
    #[must_use]
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Runs until `shutdown` completes (or an error), then drains: the deliveries in hand
    /// are handled and settled, nothing more is fetched. A handler that answers
    /// [`Settlement::InProgress`] is asked again.
    ///
    /// # Errors
    /// The first fetch or settle error; the deliveries still in hand then pass their ack
    /// deadline and are redelivered.
    pub async fn run<H, F, S>(&self, mut handler: H, shutdown: S) -> Result<WorkerReport>
    where
        H: FnMut(&Delivery) -> F,
        F: Future<Output = Settlement>,
        S: Future<Output = ()>,
    {
        self.drive(
            async |delivery| handler(delivery).await,
            |_, _| {},
            shutdown,
        )
        .await
    }

    /// [`run`](Self::run) with a [`Handler`] (a stack of layers, see
    /// [`HandlerBuilder`](crate::HandlerBuilder)): a handler error becomes its settlement
    /// ([`HandlerError::into_settlement`](crate::HandlerError::into_settlement): a nack
    /// when retryable, a reject to the dead letters when terminal), and after each
    /// settlement the handler is told the [`Disposition`] ([`Handler::settled`]).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn serve<H, S>(&self, handler: &H, shutdown: S) -> Result<WorkerReport>
    where
        H: Handler + ?Sized,
        S: Future<Output = ()>,
    {
        self.drive(
            async |delivery| verdict(handler, delivery).await,
            |delivery, disposition| handler.settled(delivery, disposition),
            shutdown,
        )
        .await
    }

    /// The loop behind [`run`](Self::run) and [`serve`](Self::serve): fetch, handle each
    /// delivery, settle it (again while it answers [`Settlement::InProgress`]), tell
    /// `settled`, until `shutdown` completes.
    async fn drive<S>(
        &self,
        mut handle: impl AsyncFnMut(&Delivery) -> Settlement,
        mut settled: impl FnMut(&Delivery, &Disposition),
        shutdown: S,
    ) -> Result<WorkerReport>
    where
        S: Future<Output = ()>,
    {
        let mut shutdown = pin!(shutdown);
        let mut stopping = false;
        let mut report = WorkerReport::default();
        loop {
            if !stopping {
                stopping = poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx).is_ready())).await;
            }
            if stopping {
                return Ok(report);
            }
            let batch = self
                .broker
                .fetch(&self.queue, &self.consumer, self.batch, self.poll)
                .await?;
            for delivery in &batch {
                loop {
                    let settlement = handle(delivery).await;
                    let disposition = self.broker.settle(delivery, settlement).await?;
                    settled(delivery, &disposition);
                    match disposition {
                        Disposition::Extended => continue,
                        Disposition::Removed => report.acked += 1,
                        Disposition::Retry { .. } | Disposition::DeadLetter { .. } => {
                            report.failed += 1;
                        }
                    }
                    report.processed += 1;
                    break;
                }
                if !stopping {
                    stopping =
                        poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx).is_ready())).await;
                }
            }
        }
    }
}
