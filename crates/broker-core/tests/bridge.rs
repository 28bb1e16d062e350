#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `Bridge` between two embedded brokers: every message across once with its id and
//! headers, acknowledged upstream; messages the destination can never take go to the
//! source's dead letters and the rest go on; a destination that fails for a while gets
//! everything once it is back; a drain leaves nothing held. The tests against real
//! services are in `tests/bridge_services.rs`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use broker_core::{
    Bridge, Broker, Capabilities, DeadLetter, Delivery, Disposition, EmbeddedBroker, Envelope,
    Error, QueueConfig, Result, Route, SOURCE_ATTEMPT, Settlement,
};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Stops the bridge once `done` holds (checked each time the bridge polls its shutdown
/// signal, which it does between batches).
async fn until(done: impl Fn() -> bool) {
    std::future::poll_fn(|cx| {
        if done() {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

async fn drain_all(broker: &EmbeddedBroker, queue: &str) -> Vec<Envelope> {
    let mut out = Vec::new();
    loop {
        let batch = broker
            .fetch(queue, "reader", 256, Duration::ZERO)
            .await
            .unwrap();
        if batch.is_empty() {
            return out;
        }
        for delivery in &batch {
            out.push(delivery.envelope.clone());
        }
        for r in broker.settle_batch(&batch, Settlement::Ack).await {
            r.unwrap();
        }
    }
}

#[tokio::test]
async fn forwards_every_message_once_with_id_and_headers() {
    let (up, down) = (EmbeddedBroker::new(), EmbeddedBroker::new());
    let route = Route::to_queue("orders", "orders-copy");
    up.declare("orders", route.get_source_config())
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..500 {
        let e = Envelope::new(format!("order {i}"))
            .with_header("traceparent", TRACEPARENT)
            .unwrap()
            .with_header("tracestate", "vendor=1")
            .unwrap()
            .with_header("x-order", i.to_string())
            .unwrap();
        up.publish("orders", e.clone()).await.unwrap();
        sent.push(e);
    }
    let bridge = Bridge::new(&up, &down).route(route).batch(16).lanes(2);
    let stats = bridge
        .run(until(|| bridge.stats().forwarded >= 500))
        .await
        .unwrap();
    assert_eq!(
        (stats.forwarded, stats.failed, stats.in_flight),
        (500, 0, 0)
    );
    assert_eq!(up.pending("orders").await.unwrap(), 0);
    let got = drain_all(&down, "orders-copy").await;
    assert_eq!(got.len(), 500);
    let ids: HashSet<_> = got.iter().map(Envelope::id).collect();
    assert_eq!(ids, sent.iter().map(Envelope::id).collect());
    for e in &got {
        let original = sent.iter().find(|s| s.id() == e.id()).unwrap();
        assert_eq!(e.payload(), original.payload());
        assert_eq!(e.headers().traceparent(), Some(TRACEPARENT));
        assert_eq!(e.headers().tracestate(), Some("vendor=1"));
        assert_eq!(
            e.headers().get("x-order"),
            original.headers().get("x-order")
        );
        // First deliveries upstream: no source attempt header.
        assert_eq!(e.headers().get(SOURCE_ATTEMPT), None);
    }
}

#[tokio::test]
async fn what_cannot_go_is_dead_lettered_upstream_and_the_rest_goes_on() {
    let (up, down) = (EmbeddedBroker::new(), EmbeddedBroker::new());
    // The destination queue is named after the message's subject header.
    let route = Route::to_queue("in", "room-{subject}");
    up.declare("in", route.get_source_config()).await.unwrap();
    for subject in ["kitchen", "bad.name", "hall", "kitchen"] {
        let e = Envelope::new(subject)
            .with_header("subject", subject)
            .unwrap();
        up.publish("in", e).await.unwrap();
    }
    // No subject at all: the template cannot be filled.
    up.publish("in", Envelope::new("none")).await.unwrap();
    let bridge = Bridge::new(&up, &down).route(route);
    let stats = bridge
        .run(until(|| {
            let s = bridge.stats();
            s.forwarded + s.failed >= 5
        }))
        .await
        .unwrap();
    assert_eq!((stats.forwarded, stats.failed), (3, 2));
    assert_eq!(drain_all(&down, "room-kitchen").await.len(), 2);
    assert_eq!(drain_all(&down, "room-hall").await.len(), 1);
    let dead: Vec<DeadLetter> = up.dead_letters("in", 10).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter().all(|d| d.reason.contains("bridge to embedded")),
        "{dead:?}"
    );
    assert_eq!(up.pending("in").await.unwrap(), 0);
}

#[tokio::test]
async fn an_invalid_template_is_a_typed_error_at_start() {
    let (up, down) = (EmbeddedBroker::new(), EmbeddedBroker::new());
    let bridge = Bridge::new(&up, &down).route(Route::to_queue("in", "x-{name}"));
    let err = bridge.run(std::future::pending()).await.unwrap_err();
    assert!(matches!(err, Error::InvalidSubject { .. }), "{err}");
}

/// An embedded broker whose publishes fail while `failing` is above zero (counting down).
#[derive(Debug)]
struct Flaky {
    inner: EmbeddedBroker,
    failing: AtomicUsize,
}

impl Broker for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        self.inner.declare(queue, config).await
    }
    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        let left = self.failing.load(Ordering::SeqCst);
        if left > 0 {
            self.failing.store(left - 1, Ordering::SeqCst);
            return Err(Error::Backend {
                backend: "flaky",
                detail: "connection reset".into(),
            });
        }
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
        self.inner.settle(delivery, settlement).await
    }
    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        self.inner.dead_letters(queue, max).await
    }
    async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        self.inner.redrive(queue, max).await
    }
}

#[tokio::test]
async fn a_failing_destination_gets_everything_once_it_is_back() {
    let up = EmbeddedBroker::new();
    // 10 failures: the first batch's 1 + 2 retries fail, it goes back upstream, and so on.
    let down = Flaky {
        inner: EmbeddedBroker::new(),
        failing: AtomicUsize::new(10),
    };
    let route = Route::to_queue("in", "out");
    up.declare("in", route.get_source_config()).await.unwrap();
    let mut ids = HashSet::new();
    for i in 0..100 {
        let e = Envelope::new(format!("m{i}"));
        ids.insert(e.id());
        up.publish("in", e).await.unwrap();
    }
    let bridge = Bridge::new(&up, &down)
        .route(route)
        .batch(10)
        .retries(2)
        .backoff(Duration::from_millis(5), Duration::from_millis(20));
    let stats = bridge
        .run(until(|| bridge.stats().forwarded >= 100))
        .await
        .unwrap();
    assert_eq!(stats.forwarded, 100);
    assert_eq!(stats.failed, 0);
    assert!(stats.errors >= 10, "{stats:?}");
    assert!(stats.retried >= 10, "{stats:?}");
    let got = drain_all(&down.inner, "out").await;
    assert_eq!(got.iter().map(Envelope::id).collect::<HashSet<_>>(), ids);
    assert_eq!(got.len(), 100);
    // Those handed back came again upstream: they say on which attempt they were taken.
    let again = got
        .iter()
        .filter_map(|e| e.headers().get(SOURCE_ATTEMPT))
        .map(|a| a.parse::<u32>().unwrap())
        .collect::<Vec<_>>();
    assert!(
        !again.is_empty() && again.iter().all(|&a| a >= 2),
        "{again:?}"
    );
    assert_eq!(up.pending("in").await.unwrap(), 0);
}

#[tokio::test]
async fn a_drain_stops_fetching_and_leaves_nothing_held() {
    let (up, down) = (EmbeddedBroker::new(), EmbeddedBroker::new());
    let route = Route::to_queue("in", "out");
    up.declare("in", route.get_source_config()).await.unwrap();
    for i in 0..1000 {
        up.publish("in", Envelope::new(format!("m{i}")))
            .await
            .unwrap();
    }
    let bridge = Bridge::new(&up, &down).route(route).batch(7).lanes(3);
    // Stop as soon as anything went across: batches in hand are finished.
    let stats = bridge
        .run(until(|| bridge.stats().forwarded > 0))
        .await
        .unwrap();
    assert_eq!(stats.in_flight, 0);
    assert!(stats.forwarded > 0 && stats.forwarded < 1000, "{stats:?}");
    let pending = up.pending("in").await.unwrap();
    assert_eq!(
        pending as u64 + stats.forwarded,
        1000,
        "nothing held, nothing lost"
    );
    assert_eq!(drain_all(&down, "out").await.len() as u64, stats.forwarded);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Bridge<'static, EmbeddedBroker, EmbeddedBroker>>();
    check::<Route>();
    check::<broker_core::BridgeStats>();
}
