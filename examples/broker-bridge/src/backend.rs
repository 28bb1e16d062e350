//! The broker a route's URL names, as one type: [`Broker`] returns `impl Future`, so it
//! is not object safe, and a route's two ends are chosen at run time. [`AnyBroker`]
//! forwards each call to the backend it holds.

use std::time::Duration;

use broker_core::{
    AmqpBroker, Broker, Capabilities, DeadLetter, Delivery, Disposition, EmbeddedBroker, Envelope,
    MqttBroker, NatsBroker, QueueConfig, RedisBroker, Result, Settlement,
};

/// One of the backends, by URL scheme.
// One value per connection: boxing the larger clients would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum AnyBroker {
    Embedded(EmbeddedBroker),
    Nats(NatsBroker),
    Redis(RedisBroker),
    Amqp(AmqpBroker),
    Mqtt(MqttBroker),
}

/// Runs `$call` on whichever broker `$any` holds, bound as `$b`.
macro_rules! each {
    ($any:expr, $b:ident => $call:expr) => {
        match $any {
            AnyBroker::Embedded($b) => $call,
            AnyBroker::Nats($b) => $call,
            AnyBroker::Redis($b) => $call,
            AnyBroker::Amqp($b) => $call,
            AnyBroker::Mqtt($b) => $call,
        }
    };
}

impl AnyBroker {
    /// Connects to `url` (`nats://`, `redis://`, `amqp://`, `mqtt://`, or `embedded`, an
    /// in-process broker) with `prefix` before every name it creates.
    pub(crate) async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
        let connected = match scheme {
            "embedded" => return Ok(Self::Embedded(EmbeddedBroker::new())),
            "nats" => NatsBroker::connect(url, prefix).await.map(Self::Nats),
            "redis" | "rediss" => RedisBroker::connect(url, prefix).await.map(Self::Redis),
            "amqp" => AmqpBroker::connect(url, prefix).await.map(Self::Amqp),
            "mqtt" | "tcp" => MqttBroker::connect(url, prefix).await.map(Self::Mqtt),
            _ => {
                return Err(format!(
                    "{url:?}: expected nats://, redis://, amqp://, mqtt:// or embedded"
                ));
            }
        };
        connected.map_err(|e| format!("{}: {e}", redacted(url)))
    }
}

/// The URL without its password, for messages.
pub(crate) fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://...@{host}"),
        _ => url.to_owned(),
    }
}

impl Broker for AnyBroker {
    fn name(&self) -> &'static str {
        each!(self, b => b.name())
    }
    fn capabilities(&self) -> Capabilities {
        each!(self, b => b.capabilities())
    }
    async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        each!(self, b => b.declare(queue, config).await)
    }
    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        each!(self, b => b.publish(queue, envelope).await)
    }
    async fn publish_batch(&self, queue: &str, envelopes: Vec<Envelope>) -> Result<()> {
        each!(self, b => b.publish_batch(queue, envelopes).await)
    }
    async fn fetch(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        each!(self, b => b.fetch(queue, consumer, max, wait).await)
    }
    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<Disposition> {
        each!(self, b => b.settle(delivery, settlement).await)
    }
    async fn settle_batch(
        &self,
        deliveries: &[Delivery],
        settlement: Settlement,
    ) -> Vec<Result<Disposition>> {
        each!(self, b => b.settle_batch(deliveries, settlement).await)
    }
    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        each!(self, b => b.dead_letters(queue, max).await)
    }
    async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        each!(self, b => b.redrive(queue, max).await)
    }
    async fn bind(&self, topic: &str, queue: &str) -> Result<()> {
        each!(self, b => b.bind(topic, queue).await)
    }
    async fn publish_topic(&self, topic: &str, envelope: Envelope) -> Result<()> {
        each!(self, b => b.publish_topic(topic, envelope).await)
    }
    async fn pending(&self, queue: &str) -> Result<usize> {
        each!(self, b => b.pending(queue).await)
    }
}
