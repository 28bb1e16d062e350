#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Fan-out, request/reply, prefetch, per-key ordering and drain on the embedded broker's
//! virtual clock, where deadlines can be crossed without sleeping.

use std::time::Duration;

use broker_core::{
    Broker, Capabilities, EmbeddedBroker, Envelope, Error, ORDERING_KEY, QueueConfig, RetryPolicy,
    Settlement, Worker,
};

fn config() -> QueueConfig {
    QueueConfig::default()
        .ack_wait(Duration::from_secs(30))
        .retry(RetryPolicy::new(5, Duration::from_secs(1)).jitter(0.0))
}

fn keyed(key: &str, step: u32) -> Envelope {
    Envelope::new(format!("{key}-{step}"))
        .with_header(ORDERING_KEY, key)
        .unwrap()
}

fn payloads(batch: &[broker_core::Delivery]) -> Vec<String> {
    batch
        .iter()
        .map(|d| String::from_utf8(d.envelope.payload().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn prefetch_counts_until_the_ack_deadline_passes() {
    let broker = EmbeddedBroker::deterministic(1);
    broker.declare("q", &config().prefetch(2)).await.unwrap();
    for i in 0..5 {
        broker
            .publish("q", Envelope::new(format!("m{i}")))
            .await
            .unwrap();
    }
    let held = broker.fetch("q", "slow", 10, Duration::ZERO).await.unwrap();
    assert_eq!(held.len(), 2);
    assert!(
        broker
            .fetch("q", "slow", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    // In progress keeps holding; the deadline passing frees the slots (redelivered to
    // whoever fetches next).
    broker
        .settle(&held[0], Settlement::InProgress)
        .await
        .unwrap();
    assert!(
        broker
            .fetch("q", "slow", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    broker.advance(Duration::from_secs(31)).unwrap();
    let again = broker.fetch("q", "slow", 10, Duration::ZERO).await.unwrap();
    assert_eq!(payloads(&again), ["m0", "m1"]);
    assert!(again.iter().all(|d| d.envelope.attempt() == 2));
    // The stale deliveries cannot be settled, and do not free a slot.
    assert!(matches!(
        broker.settle(&held[1], Settlement::Ack).await,
        Err(Error::StaleDelivery)
    ));
    assert!(
        broker
            .fetch("q", "slow", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(broker.stats("q").unwrap().in_flight, 2);
    // A crash frees them too.
    assert_eq!(broker.crash_consumer("q", "slow").unwrap(), 2);
    assert_eq!(
        broker
            .fetch("q", "slow", 10, Duration::ZERO)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn prefetch_zero_is_refused() {
    let broker = EmbeddedBroker::deterministic(1);
    assert!(matches!(
        broker.declare("q", &config().prefetch(0)).await,
        Err(Error::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn ordering_key_waits_for_an_expired_delivery_to_come_back_first() {
    let broker = EmbeddedBroker::deterministic(2);
    broker.declare("q", &config()).await.unwrap();
    for step in 0..3 {
        broker.publish("q", keyed("a", step)).await.unwrap();
    }
    broker.publish("q", keyed("b", 0)).await.unwrap();
    let first = broker.fetch("q", "w1", 10, Duration::ZERO).await.unwrap();
    assert_eq!(payloads(&first), ["a-0", "b-0"]);
    // w1 crashes silently; a-1 must not overtake a-0.
    drop(first);
    assert!(
        broker
            .fetch("q", "w2", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    broker.advance(Duration::from_secs(30)).unwrap();
    let second = broker.fetch("q", "w2", 10, Duration::ZERO).await.unwrap();
    assert_eq!(payloads(&second), ["a-0", "b-0"]);
    // A nack with backoff keeps the key held through the delay.
    let a0 = &second[0];
    broker.settle(a0, Settlement::nack()).await.unwrap();
    assert!(
        broker
            .fetch("q", "w2", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    broker.advance(Duration::from_secs(2)).unwrap();
    let third = broker.fetch("q", "w2", 10, Duration::ZERO).await.unwrap();
    assert_eq!(payloads(&third), ["a-0"]);
    assert_eq!(third[0].envelope.attempt(), 3);
    // Dead-lettering frees the key as an ack does.
    broker
        .settle(&third[0], Settlement::reject("bad"))
        .await
        .unwrap();
    let fourth = broker.fetch("q", "w2", 10, Duration::ZERO).await.unwrap();
    assert_eq!(payloads(&fourth), ["a-1"]);
}

#[tokio::test]
async fn fan_out_is_all_or_nothing_when_a_bound_queue_is_full() {
    let broker = EmbeddedBroker::deterministic(3);
    broker.declare("roomy", &config()).await.unwrap();
    broker
        .declare("tight", &config().max_ready(1))
        .await
        .unwrap();
    broker.bind("events", "roomy").await.unwrap();
    broker.bind("events", "tight").await.unwrap();
    broker
        .publish_topic("events", Envelope::new("one"))
        .await
        .unwrap();
    assert!(matches!(
        broker.publish_topic("events", Envelope::new("two")).await,
        Err(Error::QueueFull { .. })
    ));
    assert_eq!(broker.stats("roomy").unwrap().ready, 1);
    assert_eq!(broker.stats("tight").unwrap().ready, 1);
    // No queue bound: nothing to do. An undeclared queue cannot be bound.
    broker
        .publish_topic("nobody", Envelope::new("x"))
        .await
        .unwrap();
    assert!(matches!(
        broker.bind("events", "missing").await,
        Err(Error::UnknownQueue(_))
    ));
}

#[tokio::test]
async fn request_times_out_with_a_typed_error_and_a_late_reply_is_dropped() {
    let broker = EmbeddedBroker::new();
    broker.declare("rpc", &config()).await.unwrap();
    let outcome = broker
        .request("rpc", Envelope::new("hello"), Duration::from_millis(50))
        .await;
    assert!(matches!(outcome, Err(Error::Timeout(t)) if t == Duration::from_millis(50)));
    let late = broker.fetch("rpc", "r", 1, Duration::ZERO).await.unwrap();
    broker
        .reply(&late[0], Envelope::new("too late"))
        .await
        .unwrap();
    broker.settle(&late[0], Settlement::Ack).await.unwrap();
}

#[tokio::test]
async fn worker_drain_leaves_nothing_in_flight() {
    let broker = EmbeddedBroker::new();
    broker.declare("q", &config()).await.unwrap();
    for i in 0..20 {
        broker
            .publish("q", Envelope::new(format!("m{i}")))
            .await
            .unwrap();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = Some(stop);
    let mut seen = 0;
    let report = Worker::new(&broker, "q", "w")
        .batch(5)
        .run(
            |d| {
                seen += 1;
                if seen == 7
                    && let Some(stop) = stop.take()
                {
                    stop.send(()).unwrap();
                }
                // Every third message fails once: retried later, not lost.
                let fail = d.envelope.payload().ends_with(b"3");
                async move {
                    if fail {
                        Settlement::nack()
                    } else {
                        Settlement::Ack
                    }
                }
            },
            async {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
    assert_eq!(report.processed, 10);
    assert_eq!(report.failed, 1);
    let stats = broker.stats("q").unwrap();
    assert_eq!((stats.in_flight, stats.ready, stats.delayed), (0, 10, 1));
    assert_eq!(broker.pending("q").await.unwrap(), 11);
}

#[test]
fn capabilities_say_what_the_embedded_broker_has() {
    let caps = EmbeddedBroker::new().capabilities();
    assert!(caps.fan_out && caps.request_reply && caps.prefetch && caps.ordered_keys);
    assert!(!caps.publish_dedup);
    assert!(Capabilities::all().pending_count);
}
