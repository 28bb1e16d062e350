//! Trace propagation through the broker: [`TraceLayer`] and [`TracedBroker`].

use std::future::Future;
use std::time::Duration;

use crate::{
    Broker, Capabilities, DeadLetter, Delivery, Disposition, Envelope, Handler, HandlerResult,
    Layer, QueueConfig, Result, Settlement, TraceContext,
};

/// The semantic conventions' `messaging.system` for a backend name.
fn system_name(backend: &'static str) -> &'static str {
    match backend {
        "amqp" => "rabbitmq",
        other => other,
    }
}

/// Continues each message's trace around the handler.
///
/// Trace propagation through the broker: [`TraceLayer`] continues the W3C trace of each
/// message it handles, [`TracedBroker`] puts the current trace on each message it
/// publishes. With the `tracing` feature both also open a `tracing` span with the
/// OpenTelemetry messaging attributes.
///
/// On the consumer side the layer reads `traceparent`/`tracestate`
/// ([`TraceContext::from_headers`]); a valid one is continued (same trace id, a new span
/// id whose parent is the publisher's span), a missing or invalid one starts a new trace:
/// the message is handled either way. While the handler runs, that context is
/// [`TraceContext::current`], so what the handler publishes through a [`TracedBroker`]
/// (or stamps with [`TraceContext::inject_current`]) carries a child of it.
///
/// The span (feature `tracing`) is named `process` at INFO level, with these fields:
///
/// | field | value |
/// |---|---|
/// | `otel.name`, `otel.kind` | `process <queue>`, `consumer` |
/// | `messaging.system` | the broker (`rabbitmq` for the AMQP backend, else its name) |
/// | `messaging.operation.type`, `messaging.operation.name` | `process` |
/// | `messaging.destination.name` | the queue |
/// | `messaging.message.id`, `messaging.message.conversation_id` | the message id, the correlation id |
/// | `messaging.message.body.size` | payload bytes |
/// | `messaging.message.delivery_attempt` | the delivery number, from 1 (not in the semantic conventions, which have it only for Pub/Sub, as `messaging.gcp_pubsub.message.delivery_attempt`) |
/// | `trace_id`, `span_id`, `parent_id` | this span's W3C ids, and the publisher's span id when the trace was continued |
/// | `trace.parent` | `continued`, `absent` or `invalid` |
/// | `outcome`, `error.type` | the verdict (`ack`, `nack`, `reject`, `in_progress`, `error`), and `retryable` or `terminal` for an error |
///
/// A `tracing` span has no W3C ids of its own; the ids are fields, so a subscriber that
/// exports to OpenTelemetry can use them (or ignore them and link by `traceparent`).
/// [`TracedBroker`]'s `send` span has the same fields for a publish (`otel.kind` producer,
/// `parent_id` the span id of the message being handled, if any).
#[derive(Clone, Copy, Debug)]
pub struct TraceLayer {
    system: &'static str,
}

impl TraceLayer {
    /// For messages from the backend named `backend` ([`Broker::name`]).
    #[must_use]
    pub fn new(backend: &'static str) -> Self {
        Self {
            system: system_name(backend),
        }
    }
}

impl<H> Layer<H> for TraceLayer {
    type Handler = Traced<H>;
    fn layer(&self, inner: H) -> Traced<H> {
        Traced {
            inner,
            system: self.system,
        }
    }
}

/// A handler that runs in its message's trace: see [`TraceLayer`].
#[derive(Clone, Debug)]
pub struct Traced<H> {
    inner: H,
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    system: &'static str,
}

#[cfg(feature = "tracing")]
fn outcome(result: &HandlerResult) -> (&'static str, Option<&'static str>) {
    match result {
        Ok(Settlement::Ack) => ("ack", None),
        Ok(Settlement::Nack { .. }) => ("nack", None),
        Ok(Settlement::Reject { .. }) => ("reject", None),
        Ok(Settlement::InProgress) => ("in_progress", None),
        Err(e) if e.is_retryable() => ("error", Some("retryable")),
        Err(_) => ("error", Some("terminal")),
    }
}

impl<H: Handler> Handler for Traced<H> {
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = HandlerResult> + Send {
        let headers = delivery.envelope.headers();
        let parent = TraceContext::from_headers(headers);
        let context = parent
            .as_ref()
            .map_or_else(TraceContext::new_root, TraceContext::child);
        #[cfg(feature = "tracing")]
        let span = {
            let how = match (&parent, headers.traceparent()) {
                (Some(_), _) => "continued",
                (None, None) => "absent",
                (None, Some(_)) => "invalid",
            };
            let envelope = &delivery.envelope;
            let parent_id = parent.as_ref().map(TraceContext::span_id);
            tracing::info_span!(
                "process",
                otel.name = %format_args!("process {}", delivery.queue),
                otel.kind = "consumer",
                messaging.system = self.system,
                "messaging.operation.type" = "process",
                messaging.operation.name = "process",
                messaging.destination.name = %delivery.queue,
                messaging.message.id = %envelope.id(),
                messaging.message.conversation_id = headers.correlation_id(),
                messaging.message.body.size = envelope.payload().len() as u64,
                messaging.message.delivery_attempt = envelope.attempt(),
                trace_id = %context.trace_id(),
                span_id = %context.span_id(),
                parent_id = parent_id.as_deref(),
                trace.parent = how,
                outcome = tracing::field::Empty,
                "error.type" = tracing::field::Empty,
            )
        };
        let work = context.scope(self.inner.handle(delivery));
        async move {
            #[cfg(feature = "tracing")]
            let result = {
                use tracing::Instrument as _;
                let result = work.instrument(span.clone()).await;
                let (verdict, error) = outcome(&result);
                span.record("outcome", verdict);
                if let Some(error) = error {
                    span.record("error.type", error);
                }
                result
            };
            #[cfg(not(feature = "tracing"))]
            let result = work.await;
            result
        }
    }

    fn settled(&self, delivery: &Delivery, disposition: &Disposition) {
        self.inner.settled(delivery, disposition);
    }
}

/// A [`Broker`] that stamps each message it publishes (`publish`, `publish_topic`,
/// `request`, `reply`) with the current trace ([`TraceContext::inject_current`]): inside a
/// [`TraceLayer`] handler a child of the message being handled, elsewhere a new trace
/// (or the `traceparent` the envelope already has). Everything else passes through.
#[derive(Clone, Debug)]
pub struct TracedBroker<B> {
    inner: B,
}

impl<B: Broker> TracedBroker<B> {
    /// Wraps `broker`.
    pub fn new(broker: B) -> Self {
        Self { inner: broker }
    }

    /// The wrapped broker.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Stamps `envelope` and runs `send` with it inside a `send` span (feature `tracing`).
    async fn send<T, F, Fut>(&self, destination: &str, mut envelope: Envelope, send: F) -> Result<T>
    where
        F: FnOnce(Envelope) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        #[cfg(feature = "tracing")]
        let parent_id = TraceContext::current().map(|c| c.span_id());
        let context = TraceContext::inject_current(&mut envelope)?;
        #[cfg(feature = "tracing")]
        {
            use tracing::Instrument as _;
            let span = tracing::info_span!(
                "send",
                otel.name = %format_args!("send {destination}"),
                otel.kind = "producer",
                messaging.system = system_name(self.inner.name()),
                "messaging.operation.type" = "send",
                messaging.operation.name = "send",
                messaging.destination.name = destination,
                messaging.message.id = %envelope.id(),
                messaging.message.body.size = envelope.payload().len() as u64,
                trace_id = %context.trace_id(),
                span_id = %context.span_id(),
                parent_id = parent_id.as_deref(),
            );
            send(envelope).instrument(span).await
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = (destination, context);
            send(envelope).await
        }
    }
}

impl<B: Broker> Broker for TracedBroker<B> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        self.inner.declare(queue, config).await
    }

    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        self.send(queue, envelope, |e| self.inner.publish(queue, e))
            .await
    }

    async fn fetch(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        self.inner.fetch(queue, consumer, max, wait).await
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<Disposition> {
        self.inner.settle(delivery, settlement).await
    }

    async fn settle_batch(
        &self,
        deliveries: &[Delivery],
        settlement: Settlement,
    ) -> Vec<Result<Disposition>> {
        self.inner.settle_batch(deliveries, settlement).await
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        self.inner.dead_letters(queue, max).await
    }

    async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        self.inner.redrive(queue, max).await
    }

    async fn bind(&self, topic: &str, queue: &str) -> Result<()> {
        self.inner.bind(topic, queue).await
    }

    async fn publish_topic(&self, topic: &str, envelope: Envelope) -> Result<()> {
        self.send(topic, envelope, |e| self.inner.publish_topic(topic, e))
            .await
    }

    async fn request(
        &self,
        queue: &str,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<Envelope> {
        self.send(queue, envelope, |e| self.inner.request(queue, e, timeout))
            .await
    }

    async fn reply(&self, request: &Delivery, response: Envelope) -> Result<()> {
        self.send(&request.queue, response, |e| self.inner.reply(request, e))
            .await
    }

    async fn pending(&self, queue: &str) -> Result<usize> {
        self.inner.pending(queue).await
    }
}
