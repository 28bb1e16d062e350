#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Lost acks on the real brokers (`REDIS_URL`, `NATS_URL`): a test wrapper around the
//! adapter drops every fourth ack on the floor while telling the consumer it went through
//! (as when the ack is lost on the way, or the connection drops after the handler's
//! verdict). The broker redelivers those messages after the ack deadline, and with the
//! inbox each of the 60 messages has its effect exactly once; the number of deliveries is
//! exactly 60 plus the acks lost. The embedded broker injects the same fault itself
//! (`Faults::lost_acks`, tests/faults.rs).
#![cfg(any(feature = "redis", feature = "nats"))]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_core::{
    Broker, Capabilities, DeadLetter, Delivery, Disposition, Envelope, Handler, HandlerBuilder,
    HandlerResult, InboxLayer, MemoryInbox, MessageId, QueueConfig, Result, RetryPolicy,
    Settlement,
};
use tokio::time::Instant;

/// Passes everything to `inner`, except that every `every`-th ack is lost: it is answered
/// as [`Disposition::Removed`] without reaching the broker.
struct LosingAcks<'a, B> {
    inner: &'a B,
    every: usize,
    acks: AtomicUsize,
    lost: AtomicUsize,
}

impl<B: Broker> Broker for LosingAcks<'_, B> {
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
        self.inner.publish(queue, envelope).await
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
        if settlement == Settlement::Ack
            && (self.acks.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(self.every)
        {
            self.lost.fetch_add(1, Ordering::SeqCst);
            return Ok(Disposition::Removed);
        }
        self.inner.settle(delivery, settlement).await
    }
    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        self.inner.dead_letters(queue, max).await
    }
    async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        self.inner.redrive(queue, max).await
    }
    async fn pending(&self, queue: &str) -> Result<usize> {
        self.inner.pending(queue).await
    }
}

/// The effect: a count per message id.
#[derive(Default)]
struct Effects(Mutex<HashMap<MessageId, usize>>);

impl Handler for Effects {
    async fn handle(&self, delivery: &Delivery) -> HandlerResult {
        *self
            .0
            .lock()
            .unwrap()
            .entry(delivery.envelope.id())
            .or_default() += 1;
        Ok(Settlement::Ack)
    }
}

const N: usize = 60;

async fn lost_acks_give_one_effect<B: Broker>(inner: &B) {
    let broker = LosingAcks {
        inner,
        every: 4,
        acks: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
    };
    let ack_wait = Duration::from_secs(1);
    let config = QueueConfig::default()
        .ack_wait(ack_wait)
        .retry(RetryPolicy::new(50, Duration::from_millis(100)).jitter(0.0));
    broker.declare("acks", &config).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..N {
        let envelope = Envelope::new(i.to_string());
        ids.push(envelope.id());
        broker.publish("acks", envelope).await.unwrap();
    }
    let effects = Effects::default();
    let inbox = InboxLayer::new(Arc::new(MemoryInbox::new())).lease(ack_wait);
    let handler = HandlerBuilder::new().layer(inbox.clone()).handler(&effects);
    let mut deliveries = 0;
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let batch = broker
            .fetch("acks", "w", 16, Duration::from_millis(200))
            .await
            .unwrap();
        for delivery in &batch {
            let settlement = broker_core::verdict(&handler, delivery).await;
            let disposition = broker.settle(delivery, settlement).await.unwrap();
            handler.settled(delivery, &disposition);
            deliveries += 1;
        }
        if batch.is_empty() && broker.pending("acks").await.unwrap() == 0 {
            break;
        }
    }
    let lost = broker.lost.load(Ordering::SeqCst);
    let by_id = effects.0.lock().unwrap().clone();
    assert_eq!(broker.pending("acks").await.unwrap(), 0, "nothing left");
    // 60 acks lose 15; their redeliveries' acks lose some more.
    assert!(lost >= N / 4, "{lost} acks lost");
    assert_eq!(deliveries, N + lost, "one more delivery per lost ack");
    assert_eq!(by_id.len(), N);
    assert!(ids.iter().all(|id| by_id.get(id) == Some(&1)), "{by_id:?}");
    assert_eq!(inbox.skipped(), u64::try_from(lost).unwrap());
    assert!(broker.dead_letters("acks", 10).await.unwrap().is_empty());
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_lost_acks_are_redelivered_and_the_inbox_gives_one_effect() {
    let Some(url) = support::env("REDIS_URL") else {
        return;
    };
    let prefix = format!("bktest-lostack-{}:", MessageId::new().as_uuid().simple());
    let broker = broker_core::RedisBroker::connect(&url, &prefix)
        .await
        .unwrap();
    lost_acks_give_one_effect(&broker).await;
    support::delete_redis_keys(&url, &prefix).await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_lost_acks_are_redelivered_and_the_inbox_gives_one_effect() {
    let Some(url) = support::env("NATS_URL") else {
        return;
    };
    let prefix = format!("bktest-lostack-{}_", MessageId::new().as_uuid().simple());
    let broker = broker_core::NatsBroker::connect(&url, &prefix)
        .await
        .unwrap();
    lost_acks_give_one_effect(&broker).await;
    broker.delete_streams().await.unwrap();
}
