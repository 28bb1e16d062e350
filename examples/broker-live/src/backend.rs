//! The broker `Settings::broker_url` picks: the embedded one when it is unset, Redis
//! Streams (`redis://`, feature `redis`) or NATS JetStream (`nats://`, feature `nats`).
//!
//! [`broker_core::Broker`] returns `impl Future`, so it is not object safe: this enum
//! forwards the few calls the bridge makes to the backend it holds.

use std::time::Duration;

use broker_core::{
    Broker as _, Delivery, Disposition, EmbeddedBroker, Envelope, QueueConfig, Result, Settlement,
};

/// One of the compiled-in brokers.
// One value per application: boxing the larger clients would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Backend {
    Embedded(EmbeddedBroker),
    #[cfg(feature = "redis")]
    Redis(broker_core::RedisBroker),
    #[cfg(feature = "nats")]
    Nats(broker_core::NatsBroker),
}

/// Runs `$call` on whichever broker `$backend` holds, bound as `$b`.
macro_rules! each {
    ($backend:expr, $b:ident => $call:expr) => {
        match $backend {
            Backend::Embedded($b) => $call,
            #[cfg(feature = "redis")]
            Backend::Redis($b) => $call,
            #[cfg(feature = "nats")]
            Backend::Nats($b) => $call,
        }
    };
}

impl Backend {
    /// Connects to `url` (`None`: the embedded broker); `prefix` names the keys and
    /// streams (`A-Z a-z 0-9 - _`).
    pub(crate) async fn connect(url: Option<&str>, prefix: &str) -> Result<Self, String> {
        let Some(url) = url else {
            return Ok(Self::Embedded(EmbeddedBroker::new()));
        };
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            #[cfg(feature = "redis")]
            return broker_core::RedisBroker::connect(url, &format!("{prefix}:"))
                .await
                .map(Self::Redis)
                .map_err(|e| format!("broker at {url}: {e}"));
            #[cfg(not(feature = "redis"))]
            return Err(format!(
                "broker at {url}: built without Redis; build with `--features redis`"
            ));
        }
        if url.starts_with("nats://") {
            #[cfg(feature = "nats")]
            return broker_core::NatsBroker::connect(url, &format!("{prefix}_"))
                .await
                .map(Self::Nats)
                .map_err(|e| format!("broker at {url}: {e}"));
            #[cfg(not(feature = "nats"))]
            return Err(format!(
                "broker at {url}: built without NATS; build with `--features nats`"
            ));
        }
        let _ = prefix;
        Err(format!(
            "broker URL {url:?}: expected redis://... or nats://... (unset for the embedded broker)"
        ))
    }

    pub(crate) fn name(&self) -> &'static str {
        each!(self, b => b.name())
    }

    pub(crate) async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        each!(self, b => b.declare(queue, config).await)
    }

    pub(crate) async fn bind(&self, topic: &str, queue: &str) -> Result<()> {
        each!(self, b => b.bind(topic, queue).await)
    }

    pub(crate) async fn publish_topic(&self, topic: &str, envelope: Envelope) -> Result<()> {
        each!(self, b => b.publish_topic(topic, envelope).await)
    }

    pub(crate) async fn fetch(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        each!(self, b => b.fetch(queue, consumer, max, wait).await)
    }

    pub(crate) async fn settle_batch(
        &self,
        deliveries: &[Delivery],
        settlement: Settlement,
    ) -> Vec<Result<Disposition>> {
        each!(self, b => b.settle_batch(deliveries, settlement).await)
    }
}
