//! The broker and the inbox `BROKER_URL` picks: the embedded broker with a memory inbox
//! when it is unset, Redis Streams with a Redis inbox (`redis://`, feature `redis`), NATS
//! JetStream (`nats://`, feature `nats`) with a Redis inbox when `INBOX_URL` names one and
//! a memory inbox otherwise.
//!
//! [`Broker`] and [`Inbox`] return `impl Future`, so they are not object safe: these enums
//! forward each call to the backend they hold.

use std::time::Duration;

use broker_core::{
    Broker as _, Claim, DeadLetter, Delivery, Disposition, EmbeddedBroker, Envelope, Inbox as _,
    LeaseToken, MemoryInbox, MessageId, QueueConfig, Result, Settlement,
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
    /// Connects to `url` (`None`: the embedded broker); `prefix` names this application's
    /// keys and streams (`A-Z a-z 0-9 - _`).
    pub(crate) async fn connect(url: Option<&str>, prefix: &str) -> Result<Self, String> {
        let Some(url) = url else {
            return Ok(Self::Embedded(EmbeddedBroker::new()));
        };
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            #[cfg(feature = "redis")]
            return broker_core::RedisBroker::connect(url, &format!("{prefix}:"))
                .await
                .map(Self::Redis)
                .map_err(|e| format!("BROKER_URL {url}: {e}"));
            #[cfg(not(feature = "redis"))]
            return Err(format!(
                "BROKER_URL {url}: built without Redis; build with `--features redis`"
            ));
        }
        if url.starts_with("nats://") {
            #[cfg(feature = "nats")]
            return broker_core::NatsBroker::connect(url, &format!("{prefix}_"))
                .await
                .map(Self::Nats)
                .map_err(|e| format!("BROKER_URL {url}: {e}"));
            #[cfg(not(feature = "nats"))]
            return Err(format!(
                "BROKER_URL {url}: built without NATS; build with `--features nats`"
            ));
        }
        let _ = prefix;
        Err(format!(
            "BROKER_URL {url:?}: expected redis://... or nats://... (unset for the embedded broker)"
        ))
    }

    pub(crate) fn name(&self) -> &'static str {
        each!(self, b => b.name())
    }

    /// Deletes what the broker keeps for this application where the backend can (NATS
    /// streams); Redis keys and embedded queues are left as they are.
    pub(crate) async fn delete_queues(&self) -> Result<()> {
        match self {
            #[cfg(feature = "nats")]
            Backend::Nats(b) => b.delete_streams().await,
            _ => Ok(()),
        }
    }

    pub(crate) async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        each!(self, b => b.declare(queue, config).await)
    }

    pub(crate) async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        each!(self, b => b.publish(queue, envelope).await)
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

    pub(crate) async fn settle(
        &self,
        delivery: &Delivery,
        settlement: Settlement,
    ) -> Result<Disposition> {
        each!(self, b => b.settle(delivery, settlement).await)
    }

    pub(crate) async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        each!(self, b => b.dead_letters(queue, max).await)
    }

    pub(crate) async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        each!(self, b => b.redrive(queue, max).await)
    }
}

/// One of the compiled-in inboxes.
#[derive(Debug)]
pub(crate) enum Inbox {
    Memory(MemoryInbox),
    #[cfg(feature = "redis")]
    Redis(broker_core::RedisInbox),
}

/// Runs `$call` on whichever inbox `$inbox` holds, bound as `$i`.
macro_rules! each_inbox {
    ($inbox:expr, $i:ident => $call:expr) => {
        match $inbox {
            Inbox::Memory($i) => $call,
            #[cfg(feature = "redis")]
            Inbox::Redis($i) => $call,
        }
    };
}

impl Inbox {
    /// A Redis inbox at `url` when it is a `redis://` URL, else one in memory.
    pub(crate) async fn connect(url: Option<&str>, prefix: &str) -> Result<Self, String> {
        match url {
            #[cfg(feature = "redis")]
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                broker_core::RedisInbox::connect(url, &format!("{prefix}:"))
                    .await
                    .map(Self::Redis)
                    .map_err(|e| format!("inbox at {url}: {e}"))
            }
            _ => {
                let _ = prefix;
                Ok(Self::Memory(MemoryInbox::new()))
            }
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Inbox::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            Inbox::Redis(_) => "redis",
        }
    }

    pub(crate) async fn claim(&self, id: MessageId, lease: Duration) -> Result<Claim> {
        each_inbox!(self, i => i.claim(id, lease).await)
    }

    pub(crate) async fn complete(
        &self,
        id: MessageId,
        token: &LeaseToken,
        keep: Duration,
    ) -> Result<()> {
        each_inbox!(self, i => i.complete(id, token, keep).await)
    }

    pub(crate) async fn release(&self, id: MessageId, token: &LeaseToken) -> Result<()> {
        each_inbox!(self, i => i.release(id, token).await)
    }
}
