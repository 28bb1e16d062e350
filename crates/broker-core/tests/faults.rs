#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Seeded fault injection in the embedded broker: duplicates and reordering are the same
//! for the same seed; with an inbox a consumer has one effect per message through them;
//! per-key order holds for the effects, and the only out-of-order deliveries of a key are
//! duplicates.

use std::collections::{HashMap, HashSet};
use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use broker_core::{
    Broker, Delivery, EmbeddedBroker, Envelope, Faults, Handler, HandlerBuilder, HandlerResult,
    InboxLayer, MemoryInbox, MessageId, ORDERING_KEY, QueueConfig, RetryPolicy, Settlement, Worker,
};

fn config() -> QueueConfig {
    QueueConfig::default()
        .ack_wait(Duration::from_secs(30))
        .retry(RetryPolicy::new(5, Duration::from_secs(1)).jitter(0.0))
}

fn until_settled<'a>(broker: &'a EmbeddedBroker, queue: &'a str) -> impl Future<Output = ()> + 'a {
    let mut rounds = 0u32;
    poll_fn(move |_| {
        let s = broker.stats(queue).unwrap();
        if s.ready + s.delayed + s.in_flight == 0 {
            return Poll::Ready(());
        }
        rounds += 1;
        assert!(rounds < 100_000, "queue {queue} never settled: {s:?}");
        if s.ready == 0 && s.in_flight == 0 {
            broker.advance(Duration::from_secs(1)).unwrap();
        }
        Poll::Pending
    })
}

fn text(delivery: &Delivery) -> String {
    String::from_utf8(delivery.envelope.payload().to_vec()).unwrap()
}

/// Publishes `n` messages and acks every delivery one at a time; the payloads in delivery
/// order, and the fault counts.
async fn delivery_order(seed: u64, n: usize) -> (Vec<String>, broker_core::FaultStats) {
    let broker = EmbeddedBroker::deterministic(1);
    broker.declare("q", &config()).await.unwrap();
    broker
        .inject_faults("q", Faults::new(seed).duplicates(0.2).reorder(0.3))
        .unwrap();
    for i in 0..n {
        broker
            .publish("q", Envelope::new(i.to_string()))
            .await
            .unwrap();
    }
    let mut order = Vec::new();
    loop {
        let batch = broker.fetch("q", "w", 1, Duration::ZERO).await.unwrap();
        let Some(delivery) = batch.into_iter().next() else {
            break;
        };
        order.push(text(&delivery));
        broker.settle(&delivery, Settlement::Ack).await.unwrap();
    }
    (order, broker.fault_stats("q").unwrap())
}

#[tokio::test]
async fn the_same_seed_gives_the_same_duplicates_and_reordering() {
    let (a, stats) = delivery_order(42, 200).await;
    let (b, again) = delivery_order(42, 200).await;
    let (c, _) = delivery_order(43, 200).await;
    assert_eq!(a, b);
    assert_eq!(stats, again);
    assert_ne!(a, c);
    // Duplicates were delivered on top of the 200 ...
    assert!(stats.duplicated > 10, "{stats:?}");
    assert_eq!(a.len(), 200 + usize::try_from(stats.duplicated).unwrap());
    // ... every message at least once ...
    let distinct: HashSet<&String> = a.iter().collect();
    assert_eq!(distinct.len(), 200);
    // ... and not in publication order.
    assert!(stats.reordered > 10, "{stats:?}");
    let mut first_seen = Vec::new();
    for p in &a {
        if !first_seen.contains(p) {
            first_seen.push(p.clone());
        }
    }
    let published: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    assert_ne!(first_seen, published);

    // Zero rates turn the faults off: publication order, each once.
    let broker = EmbeddedBroker::deterministic(1);
    broker.declare("q", &config()).await.unwrap();
    broker.inject_faults("q", Faults::new(42)).unwrap();
    for i in 0..20 {
        broker
            .publish("q", Envelope::new(i.to_string()))
            .await
            .unwrap();
    }
    let batch = broker.fetch("q", "w", 100, Duration::ZERO).await.unwrap();
    let got: Vec<String> = batch.iter().map(text).collect();
    assert_eq!(got, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
}

/// Counts effects per id; with `keyed`, also the order of effects and raw deliveries
/// per ordering key.
#[derive(Default)]
struct Effects {
    by_id: Mutex<HashMap<MessageId, usize>>,
    effects_by_key: Mutex<HashMap<String, Vec<usize>>>,
    calls: AtomicUsize,
}

impl Handler for Effects {
    async fn handle(&self, delivery: &Delivery) -> HandlerResult {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self
            .by_id
            .lock()
            .unwrap()
            .entry(delivery.envelope.id())
            .or_default() += 1;
        if let Some(key) = delivery.envelope.headers().get(ORDERING_KEY) {
            let n: usize = text(delivery).parse().unwrap();
            self.effects_by_key
                .lock()
                .unwrap()
                .entry(key.to_owned())
                .or_default()
                .push(n);
        }
        Ok(Settlement::Ack)
    }
}

/// Records every delivery (before the inbox) per ordering key.
struct Raw<H> {
    inner: H,
    seen: Mutex<Vec<(String, usize, MessageId)>>,
}

impl<H: Handler> Handler for Raw<H> {
    async fn handle(&self, delivery: &Delivery) -> HandlerResult {
        if let Some(key) = delivery.envelope.headers().get(ORDERING_KEY) {
            self.seen.lock().unwrap().push((
                key.to_owned(),
                text(delivery).parse().unwrap(),
                delivery.envelope.id(),
            ));
        }
        self.inner.handle(delivery).await
    }
}

#[tokio::test]
async fn with_the_inbox_each_message_has_one_effect_under_duplicates_reordering_and_a_crash() {
    for use_inbox in [true, false] {
        let broker = EmbeddedBroker::deterministic(5);
        broker.declare("jobs", &config()).await.unwrap();
        broker
            .inject_faults("jobs", Faults::new(2026).duplicates(0.3).reorder(0.5))
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..300 {
            let envelope = Envelope::new(i.to_string());
            ids.push(envelope.id());
            broker.publish("jobs", envelope).await.unwrap();
        }
        // A consumer takes 20 and crashes before acking: they come back (attempt 2).
        let taken = broker
            .fetch("jobs", "doomed", 20, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(broker.crash_consumer("jobs", "doomed").unwrap(), 20);
        drop(taken);

        let effects = Effects::default();
        let inbox_layer = InboxLayer::new(Arc::new(MemoryInbox::new()));
        if use_inbox {
            let handler = HandlerBuilder::new()
                .layer(inbox_layer.clone())
                .handler(&effects);
            Worker::new(&broker, "jobs", "w")
                .serve(&handler, until_settled(&broker, "jobs"))
                .await
                .unwrap();
        } else {
            Worker::new(&broker, "jobs", "w")
                .serve(&effects, until_settled(&broker, "jobs"))
                .await
                .unwrap();
        }
        let stats = broker.fault_stats("jobs").unwrap();
        assert!(stats.duplicated > 50, "{stats:?}");
        assert!(stats.reordered > 50, "{stats:?}");
        let by_id = effects.by_id.lock().unwrap().clone();
        assert_eq!(by_id.len(), 300);
        assert!(ids.iter().all(|id| by_id.contains_key(id)));
        let total: usize = by_id.values().sum();
        if use_inbox {
            // One effect per message; every duplicate delivery was acked unseen.
            assert!(by_id.values().all(|n| *n == 1), "{by_id:?}");
            assert_eq!(total, 300);
            assert_eq!(
                inbox_layer.skipped(),
                stats.duplicated,
                "each duplicate skipped"
            );
        } else {
            // Without it, the duplicates are effects too.
            assert_eq!(total, 300 + usize::try_from(stats.duplicated).unwrap());
        }
        assert!(broker.dead_letters("jobs", 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn per_key_order_holds_for_effects_and_only_duplicates_arrive_out_of_order() {
    let broker = EmbeddedBroker::deterministic(6);
    broker.declare("orders", &config()).await.unwrap();
    broker
        .inject_faults("orders", Faults::new(7).duplicates(0.3).reorder(0.6))
        .unwrap();
    const KEYS: usize = 4;
    const PER_KEY: usize = 40;
    // Interleaved keys: k0:0, k1:0, k2:0, k3:0, k0:1, ...
    for n in 0..PER_KEY {
        for k in 0..KEYS {
            let envelope = Envelope::new(n.to_string())
                .with_header(ORDERING_KEY, format!("k{k}"))
                .unwrap();
            broker.publish("orders", envelope).await.unwrap();
        }
    }
    let effects = Effects::default();
    let handler = Raw {
        inner: HandlerBuilder::new()
            .layer(InboxLayer::new(Arc::new(MemoryInbox::new())))
            .handler(&effects),
        seen: Mutex::new(Vec::new()),
    };
    Worker::new(&broker, "orders", "w")
        .serve(&handler, until_settled(&broker, "orders"))
        .await
        .unwrap();
    let stats = broker.fault_stats("orders").unwrap();
    assert!(stats.duplicated > 10 && stats.reordered > 10, "{stats:?}");

    // The effects of each key are its messages once each, in publication order.
    let seen = handler.seen.lock().unwrap().clone();
    let mut first_ids = HashSet::new();
    let mut max_by_key: HashMap<String, usize> = HashMap::new();
    let mut violations = 0;
    let mut effects_by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (key, n, id) in &seen {
        let first = first_ids.insert(*id);
        let max = max_by_key.get(key).copied();
        if max.is_some_and(|m| *n < m) {
            // An out-of-order delivery of this key: it must be a duplicate of a message
            // already handled, never a first delivery.
            assert!(!first, "first delivery of {key}:{n} after {key}:{max:?}");
            violations += 1;
        }
        if first {
            effects_by_key.entry(key.clone()).or_default().push(*n);
        }
        max_by_key.insert(key.clone(), max.map_or(*n, |m| m.max(*n)));
    }
    let effects_seen = effects.effects_by_key.lock().unwrap().clone();
    for k in 0..KEYS {
        let key = format!("k{k}");
        let expected: Vec<usize> = (0..PER_KEY).collect();
        assert_eq!(effects_by_key[&key], expected, "first deliveries of {key}");
        assert_eq!(effects_seen[&key], expected, "effects of {key}");
    }
    assert!(effects.by_id.lock().unwrap().values().all(|n| *n == 1));
    // The duplicates do show up out of order, as documented: reported, not hidden.
    assert!(violations > 0);
    assert_eq!(
        seen.len(),
        KEYS * PER_KEY + usize::try_from(stats.duplicated).unwrap()
    );
    // Across keys the global order was scrambled: first deliveries are not in
    // publication order.
    let firsts: Vec<(String, usize)> = {
        let mut ids = HashSet::new();
        seen.iter()
            .filter(|(_, _, id)| ids.insert(*id))
            .map(|(k, n, _)| (k.clone(), *n))
            .collect()
    };
    let published: Vec<(String, usize)> = (0..PER_KEY)
        .flat_map(|n| (0..KEYS).map(move |k| (format!("k{k}"), n)))
        .collect();
    assert_ne!(firsts, published);
}

/// Handles every delivery of `queue` with `handler` and settles it as the handler says,
/// moving the virtual clock a second whenever nothing is ready, until nothing is pending;
/// returns how many deliveries were handled.
async fn consume_all<H: Handler>(broker: &EmbeddedBroker, queue: &str, handler: &H) -> usize {
    let mut handled = 0;
    for _ in 0..100_000 {
        let batch = broker.fetch(queue, "w", 16, Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            let s = broker.stats(queue).unwrap();
            if s.ready + s.delayed + s.in_flight == 0 {
                return handled;
            }
            broker.advance(Duration::from_secs(1)).unwrap();
            continue;
        }
        for delivery in &batch {
            let settlement = broker_core::verdict(handler, delivery).await;
            let disposition = broker.settle(delivery, settlement).await.unwrap();
            handler.settled(delivery, &disposition);
            handled += 1;
        }
    }
    panic!("queue {queue} never settled");
}

#[tokio::test]
async fn with_the_inbox_a_lost_ack_gives_one_effect() {
    for use_inbox in [true, false] {
        let broker = EmbeddedBroker::deterministic(9);
        let config = QueueConfig::default()
            .ack_wait(Duration::from_secs(30))
            .retry(RetryPolicy::new(20, Duration::from_secs(1)).jitter(0.0));
        broker.declare("jobs", &config).await.unwrap();
        broker
            .inject_faults("jobs", Faults::new(77).lost_acks(0.25))
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..200 {
            let envelope = Envelope::new(i.to_string());
            ids.push(envelope.id());
            broker.publish("jobs", envelope).await.unwrap();
        }
        let effects = Effects::default();
        let inbox_layer = InboxLayer::new(Arc::new(MemoryInbox::new()));
        let handled = if use_inbox {
            let handler = HandlerBuilder::new()
                .layer(inbox_layer.clone())
                .handler(&effects);
            consume_all(&broker, "jobs", &handler).await
        } else {
            consume_all(&broker, "jobs", &effects).await
        };
        let lost = usize::try_from(broker.fault_stats("jobs").unwrap().lost_acks).unwrap();
        assert!(lost >= 30, "{lost} acks lost");
        // Every lost ack is one more delivery, after the ack deadline.
        assert_eq!(handled, 200 + lost);
        let by_id = effects.by_id.lock().unwrap().clone();
        assert_eq!(by_id.len(), 200);
        assert!(ids.iter().all(|id| by_id.contains_key(id)));
        let total: usize = by_id.values().sum();
        if use_inbox {
            assert!(by_id.values().all(|n| *n == 1), "{by_id:?}");
            assert_eq!(total, 200);
            assert_eq!(inbox_layer.skipped(), u64::try_from(lost).unwrap());
        } else {
            assert_eq!(total, 200 + lost);
        }
        assert!(broker.dead_letters("jobs", 10).await.unwrap().is_empty());
        assert_eq!(broker.pending("jobs").await.unwrap(), 0);
    }
}
