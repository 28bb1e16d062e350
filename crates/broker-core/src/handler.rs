//! Message handlers and the layers around them, in the tower spirit: a [`Handler`] turns
//! a [`Delivery`] into a verdict, a [`Layer`] wraps a handler in another one (tracing,
//! metrics, a timeout, retries, the inbox), and [`HandlerBuilder`] stacks layers, the first
//! added outermost. [`Worker::serve`](crate::Worker::serve) runs a stack as a consumer.
//!
//! The crate has its own two traits instead of `tower::Service`: a handler borrows the
//! delivery for the call (the consumer loop settles that same delivery afterwards, by
//! reference), needs no `poll_ready`, and is told the broker's [`Disposition`] after
//! settlement, which the metrics layer counts. `tower::Service<Request>` takes its
//! request by value and has no such hook, and the default build then needs no tower
//! dependency. The `tower` feature adds [`ServiceHandler`](crate::ServiceHandler), which
//! runs a `tower::Service<Envelope>` (with tower's own middleware) as a handler.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use broker_core::{
//!     handler_fn, Broker, Delivery, EmbeddedBroker, Envelope, HandlerBuilder, HandlerError,
//!     InboxLayer, MemoryInbox, Metrics, MetricsLayer, QueueConfig, RetryLayer, Settlement,
//!     TimeoutLayer, Worker,
//! };
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let broker = EmbeddedBroker::new();
//! broker.declare("mail", &QueueConfig::default()).await?;
//! broker.publish("mail", Envelope::new("hello")).await?;
//!
//! let metrics = Arc::new(Metrics::new());
//! let handler = HandlerBuilder::new()
//!     .layer(MetricsLayer::new(metrics.clone()))
//!     .layer(InboxLayer::new(Arc::new(MemoryInbox::new())))
//!     .layer(TimeoutLayer::new(Duration::from_secs(10)))
//!     .layer(RetryLayer::new())
//!     .handler(handler_fn(|delivery: &Delivery| {
//!         let ok = !delivery.envelope.payload().is_empty();
//!         async move {
//!             if ok { Ok(Settlement::Ack) } else { Err(HandlerError::terminal("empty mail")) }
//!         }
//!     }));
//!
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let worker = Worker::new(&broker, "mail", "sender-1").poll(Duration::from_millis(10));
//! let run = worker.serve(&handler, async { let _ = stopped.await; });
//! let check = async {
//!     while metrics.snapshot().acked == 0 { tokio::task::yield_now().await; }
//!     let _ = stop.send(());
//! };
//! let (report, ()) = tokio::join!(run, check);
//! assert_eq!(report?.acked, 1);
//! assert_eq!(metrics.snapshot().received, 1);
//! # Ok::<(), broker_core::Error>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{Delivery, Disposition, Settlement};

/// What a handler says about a delivery: a settlement, or an error that says whether a
/// retry can help.
pub type HandlerResult = Result<Settlement, HandlerError>;

/// A failed handling, classified: a retryable error nacks the message (it is delivered
/// again after the queue's backoff, or `delay`), a terminal one dead-letters it with the
/// reason ([`HandlerError::into_settlement`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandlerError {
    /// A transient failure (a dependency down, a timeout): try again.
    Retryable {
        /// What went wrong.
        reason: String,
        /// An explicit delay instead of the queue's backoff.
        delay: Option<Duration>,
    },
    /// The message can never be handled (it does not decode, it breaks a rule): dead
    /// letter it now.
    Terminal {
        /// What went wrong, recorded on the dead letter.
        reason: String,
    },
}

impl HandlerError {
    /// A transient failure, retried after the queue's backoff.
    pub fn retryable(reason: impl fmt::Display) -> Self {
        Self::Retryable {
            reason: reason.to_string(),
            delay: None,
        }
    }

    /// A transient failure, retried after `delay`.
    pub fn retryable_after(reason: impl fmt::Display, delay: Duration) -> Self {
        Self::Retryable {
            reason: reason.to_string(),
            delay: Some(delay),
        }
    }

    /// A failure no retry can fix.
    pub fn terminal(reason: impl fmt::Display) -> Self {
        Self::Terminal {
            reason: reason.to_string(),
        }
    }

    /// Whether a retry may help.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// What went wrong.
    #[must_use]
    pub fn reason(&self) -> &str {
        match self {
            Self::Retryable { reason, .. } | Self::Terminal { reason } => reason,
        }
    }

    /// The settlement this error asks for: a nack (with its delay) or a reject with the
    /// reason (the dead letter's `bk-dead-letter-reason` is `rejected: <reason>`).
    #[must_use]
    pub fn into_settlement(self) -> Settlement {
        match self {
            Self::Retryable { delay, .. } => Settlement::Nack { delay },
            Self::Terminal { reason } => Settlement::Reject { reason },
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable { reason, .. } => write!(f, "retryable: {reason}"),
            Self::Terminal { reason } => write!(f, "terminal: {reason}"),
        }
    }
}

impl std::error::Error for HandlerError {}

impl From<crate::Error> for HandlerError {
    /// A payload that does not decode, a header that cannot be carried, a queue name that
    /// is not allowed will not get better: terminal. Everything else (a backend error, a
    /// timeout, a full queue) is retryable.
    fn from(error: crate::Error) -> Self {
        use crate::Error as E;
        match error {
            E::Codec { .. }
            | E::WireHeader { .. }
            | E::InvalidHeader { .. }
            | E::InvalidSubject { .. }
            | E::InvalidQueueName(_)
            | E::InvalidConfig(_) => Self::terminal(error),
            _ => Self::retryable(error),
        }
    }
}

/// Handles one delivery: the consumer's code, or a layer around it.
///
/// The future borrows the delivery; it must be `Send`, so stacks run on multi-threaded
/// runtimes.
pub trait Handler: Send + Sync {
    /// Handles `delivery` and says how to settle it.
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = HandlerResult> + Send;

    /// Called by the consumer loop after it settled `delivery`, with what the broker did
    /// (removed, retried, dead-lettered). Layers pass it on to the handler they wrap.
    fn settled(&self, delivery: &Delivery, disposition: &Disposition) {
        let _ = (delivery, disposition);
    }
}

impl<H: Handler + ?Sized> Handler for &H {
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = HandlerResult> + Send {
        (**self).handle(delivery)
    }
    fn settled(&self, delivery: &Delivery, disposition: &Disposition) {
        (**self).settled(delivery, disposition);
    }
}

impl<H: Handler + ?Sized> Handler for Arc<H> {
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = HandlerResult> + Send {
        (**self).handle(delivery)
    }
    fn settled(&self, delivery: &Delivery, disposition: &Disposition) {
        (**self).settled(delivery, disposition);
    }
}

/// A handler from a function: [`handler_fn`].
#[derive(Clone, Copy)]
pub struct HandlerFn<F>(F);

impl<F> fmt::Debug for HandlerFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandlerFn")
    }
}

/// A handler from a function of the delivery. The future it returns cannot borrow the
/// delivery: take what it needs first (`let body = delivery.envelope.payload().clone();
/// async move { … }`), or implement [`Handler`] on a type, whose future may borrow it.
pub fn handler_fn<F, Fut>(f: F) -> HandlerFn<F>
where
    F: Fn(&Delivery) -> Fut + Send + Sync,
    Fut: Future<Output = HandlerResult> + Send,
{
    HandlerFn(f)
}

impl<F, Fut> Handler for HandlerFn<F>
where
    F: Fn(&Delivery) -> Fut + Send + Sync,
    Fut: Future<Output = HandlerResult> + Send,
{
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = HandlerResult> + Send {
        (self.0)(delivery)
    }
}

/// Wraps a handler in another one; the shape of `tower::Layer`.
pub trait Layer<H> {
    /// The wrapped handler.
    type Handler;
    /// Wraps `inner`.
    fn layer(&self, inner: H) -> Self::Handler;
}

/// The layer that wraps nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl<H> Layer<H> for Identity {
    type Handler = H;
    fn layer(&self, inner: H) -> H {
        inner
    }
}

/// Two layers, `outer` around `inner`.
#[derive(Clone, Copy, Debug)]
pub struct Stack<Inner, Outer> {
    inner: Inner,
    outer: Outer,
}

impl<H, Inner: Layer<H>, Outer: Layer<Inner::Handler>> Layer<H> for Stack<Inner, Outer> {
    type Handler = Outer::Handler;
    fn layer(&self, handler: H) -> Self::Handler {
        self.outer.layer(self.inner.layer(handler))
    }
}

/// Stacks layers around a handler; the first layer added is the outermost (it sees the
/// delivery first and the verdict last), as with `tower::ServiceBuilder`.
///
/// A sensible order: tracing, metrics, inbox, timeout, retry, then your handler; so the
/// span covers everything, the metrics see what the inbox skipped, the inbox releases its
/// lease when the timeout cancels the handler, and in-process retries stay within the
/// timeout.
#[derive(Clone, Copy, Debug, Default)]
pub struct HandlerBuilder<L> {
    layers: L,
}

impl HandlerBuilder<Identity> {
    /// No layers yet.
    #[must_use]
    pub fn new() -> Self {
        Self { layers: Identity }
    }
}

impl<L> HandlerBuilder<L> {
    /// Adds `layer` inside the ones added before.
    #[must_use]
    pub fn layer<T>(self, layer: T) -> HandlerBuilder<Stack<T, L>> {
        HandlerBuilder {
            layers: Stack {
                inner: layer,
                outer: self.layers,
            },
        }
    }

    /// Wraps `handler` in the layers.
    pub fn handler<H>(&self, handler: H) -> L::Handler
    where
        L: Layer<H>,
    {
        self.layers.layer(handler)
    }
}

/// Runs `handler` on `delivery` and turns an error into its settlement
/// ([`HandlerError::into_settlement`]).
pub async fn verdict<H: Handler + ?Sized>(handler: &H, delivery: &Delivery) -> Settlement {
    match handler.handle(delivery).await {
        Ok(settlement) => settlement,
        Err(error) => error.into_settlement(),
    }
}
