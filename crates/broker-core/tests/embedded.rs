#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The embedded broker on its virtual clock: retries, deadlines and dead letters without
//! sleeping, reproducible from the seed.

use std::collections::HashSet;
use std::time::Duration;

use broker_core::{
    Broker, DEAD_LETTER_ATTEMPTS, DEAD_LETTER_REASON, Disposition, EmbeddedBroker, Envelope, Error,
    QueueConfig, RetryPolicy, Settlement,
};

fn config(max_attempts: u32) -> QueueConfig {
    QueueConfig::default()
        .ack_wait(Duration::from_secs(30))
        .retry(
            RetryPolicy::new(max_attempts, Duration::from_secs(1))
                .max_delay(Duration::from_secs(60))
                .jitter(0.5),
        )
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<EmbeddedBroker>();
    check::<Envelope>();
    check::<broker_core::Delivery>();
    check::<broker_core::DeadLetter>();
    check::<broker_core::QueueCore>();
    check::<Error>();
}

/// Runs the same nack sequence and returns the retry delays the broker chose.
async fn delays(seed: u64) -> Vec<Duration> {
    let broker = EmbeddedBroker::deterministic(seed);
    broker.declare("q", &config(6)).await.unwrap();
    broker.publish("q", Envelope::new("x")).await.unwrap();
    let mut out = Vec::new();
    for attempt in 1..6 {
        let mut got = broker.fetch("q", "c", 1, Duration::ZERO).await.unwrap();
        let d = got.pop().expect("due");
        assert_eq!(d.envelope.attempt(), attempt);
        let Disposition::Retry { delay } = broker.settle(&d, Settlement::nack()).await.unwrap()
        else {
            panic!("expected a retry")
        };
        // Not a moment early...
        broker.advance(delay - Duration::from_millis(1)).unwrap();
        assert!(
            broker
                .fetch("q", "c", 1, Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );
        // ...and exactly on time.
        broker.advance(Duration::from_millis(1)).unwrap();
        out.push(delay);
    }
    out
}

#[tokio::test]
async fn backoff_is_exponential_jittered_and_reproducible() {
    let a = delays(1).await;
    assert_eq!(a, delays(1).await, "same seed, same delays");
    assert_ne!(a, delays(2).await, "another seed, other jitter");
    for (i, d) in a.iter().enumerate() {
        let full = Duration::from_secs(1 << i);
        assert!(
            *d <= full && *d >= full / 2,
            "delay {i} = {d:?} outside [{:?}, {full:?}]",
            full / 2
        );
    }
}

#[tokio::test]
async fn ack_deadline_redelivers_then_dead_letters() {
    let broker = EmbeddedBroker::deterministic(9);
    broker.declare("q", &config(2)).await.unwrap();
    let envelope = Envelope::new("slow").with_header("x-job", "1").unwrap();
    let id = envelope.id();
    broker.publish("q", envelope).await.unwrap();
    let first = broker.fetch("q", "a", 10, Duration::ZERO).await.unwrap();
    assert_eq!(first.len(), 1);
    broker.advance(Duration::from_secs(29)).unwrap();
    assert!(
        broker
            .fetch("q", "b", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    broker.advance(Duration::from_secs(1)).unwrap();
    let second = broker.fetch("q", "b", 10, Duration::ZERO).await.unwrap();
    assert_eq!(second[0].envelope.attempt(), 2);
    // The first holder's late ack is refused: the message belongs to the second delivery.
    assert!(matches!(
        broker.settle(&first[0], Settlement::Ack).await,
        Err(Error::StaleDelivery)
    ));
    broker.advance(Duration::from_secs(30)).unwrap();
    let stats = broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.in_flight, stats.dead), (0, 0, 1));
    let dead = broker.dead_letters("q", 10).await.unwrap();
    assert_eq!(dead[0].envelope.id(), id);
    assert_eq!(dead[0].attempts, 2);
    assert!(
        dead[0].reason.contains("ack deadline"),
        "{}",
        dead[0].reason
    );
    assert_eq!(
        dead[0].envelope.headers().get(DEAD_LETTER_ATTEMPTS),
        Some("2")
    );
    assert_eq!(
        dead[0].envelope.headers().get(DEAD_LETTER_REASON),
        Some(dead[0].reason.as_str())
    );
    // 2026-01-01T00:00:00Z + 60 s on the virtual clock.
    assert_eq!(
        dead[0].dead_at,
        std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + 60)
    );
}

#[tokio::test]
async fn in_progress_extends_and_crash_hands_messages_over() {
    let broker = EmbeddedBroker::deterministic(3);
    broker.declare("q", &config(5)).await.unwrap();
    for i in 0..4 {
        broker
            .publish("q", Envelope::new(format!("{i}")))
            .await
            .unwrap();
    }
    let held = broker.fetch("q", "a", 3, Duration::ZERO).await.unwrap();
    assert_eq!(held.len(), 3);
    broker.advance(Duration::from_secs(20)).unwrap();
    assert_eq!(
        broker
            .settle(&held[0], Settlement::InProgress)
            .await
            .unwrap(),
        Disposition::Extended
    );
    broker.advance(Duration::from_secs(20)).unwrap();
    // 40 s in: the two unextended ones expired, the extended one is still held.
    let stats = broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.in_flight), (3, 1));
    assert_eq!(broker.crash_consumer("q", "a").unwrap(), 1);
    let all = broker.fetch("q", "b", 10, Duration::ZERO).await.unwrap();
    // Redeliveries keep their place: publication order.
    let payloads: Vec<&[u8]> = all.iter().map(|d| d.envelope.payload().as_ref()).collect();
    assert_eq!(payloads, vec![&b"0"[..], b"1", b"2", b"3"]);
    let attempts: Vec<u32> = all.iter().map(|d| d.envelope.attempt()).collect();
    assert_eq!(attempts, vec![2, 2, 2, 1]);
}

#[tokio::test]
async fn competing_consumers_and_bounded_queue() {
    let broker = EmbeddedBroker::deterministic(4);
    broker.declare("q", &config(3).max_ready(10)).await.unwrap();
    for i in 0..10 {
        broker
            .publish("q", Envelope::new(format!("{i}")))
            .await
            .unwrap();
    }
    assert!(matches!(
        broker.publish("q", Envelope::new("overflow")).await,
        Err(Error::QueueFull { limit: 10, .. })
    ));
    let a = broker.fetch("q", "a", 4, Duration::ZERO).await.unwrap();
    let b = broker.fetch("q", "b", 100, Duration::ZERO).await.unwrap();
    assert_eq!((a.len(), b.len()), (4, 6));
    let ids: HashSet<_> = a.iter().chain(&b).map(|d| d.envelope.id()).collect();
    assert_eq!(ids.len(), 10);
    for d in a.iter().chain(&b) {
        assert_eq!(
            broker.settle(d, Settlement::Ack).await.unwrap(),
            Disposition::Removed
        );
    }
    // Settling twice is refused.
    assert!(matches!(
        broker.settle(&a[0], Settlement::Ack).await,
        Err(Error::StaleDelivery)
    ));
    assert_eq!(broker.stats("q").unwrap().in_flight, 0);
}

#[tokio::test]
async fn input_errors_are_typed() {
    let broker = EmbeddedBroker::deterministic(5);
    assert!(matches!(
        broker.declare("bad name", &QueueConfig::default()).await,
        Err(Error::InvalidQueueName(_))
    ));
    assert!(matches!(
        broker.publish("missing", Envelope::new("x")).await,
        Err(Error::UnknownQueue(_))
    ));
    assert!(matches!(
        broker.stats("missing"),
        Err(Error::UnknownQueue(_))
    ));
    assert!(
        EmbeddedBroker::new()
            .advance(Duration::from_secs(1))
            .is_err()
    );
    // A delivery from another broker is refused.
    let other = EmbeddedBroker::deterministic(5);
    other.declare("q", &QueueConfig::default()).await.unwrap();
    broker.declare("q", &QueueConfig::default()).await.unwrap();
    other.publish("q", Envelope::new("x")).await.unwrap();
    let d = other.fetch("q", "c", 1, Duration::ZERO).await.unwrap();
    assert!(matches!(
        broker.settle(&d[0], Settlement::Ack).await,
        Err(Error::StaleDelivery)
    ));
}

#[tokio::test]
async fn system_clock_fetch_waits_for_a_publish() {
    let broker = EmbeddedBroker::new();
    broker.declare("q", &QueueConfig::default()).await.unwrap();
    let publisher = broker.clone();
    let handle = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        publisher.publish("q", Envelope::new("late")).await.unwrap();
    });
    let started = std::time::Instant::now();
    let got = broker
        .fetch("q", "c", 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(4));
    handle.await.unwrap();
    // And gives up after its wait when nothing comes.
    let started = std::time::Instant::now();
    assert!(
        broker
            .fetch("q", "c", 1, Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn batches_publish_all_or_nothing_and_settle_each() {
    let broker = EmbeddedBroker::deterministic(3);
    broker.declare("b", &config(3).max_ready(4)).await.unwrap();
    // Five do not fit under max_ready 4: none is stored.
    let five = (0..5).map(|i| Envelope::new(format!("m{i}"))).collect();
    assert!(matches!(
        broker.publish_batch("b", five).await,
        Err(Error::QueueFull { .. })
    ));
    assert_eq!(broker.stats("b").unwrap().ready, 0);
    let three = (0..3).map(|i| Envelope::new(format!("m{i}"))).collect();
    broker.publish_batch("b", three).await.unwrap();
    let got = broker.fetch("b", "w", 10, Duration::ZERO).await.unwrap();
    let payloads: Vec<&[u8]> = got.iter().map(|d| d.envelope.payload().as_ref()).collect();
    assert_eq!(payloads, [&b"m0"[..], b"m1", b"m2"]);
    assert!(
        got.iter()
            .all(|d| &*d.queue == "b" && d.envelope.attempt() == 1)
    );
    // The middle one is settled before the batch: the batch reports it stale, the others
    // are removed.
    broker.settle(&got[1], Settlement::Ack).await.unwrap();
    let results = broker.settle_batch(&got, Settlement::Ack).await;
    assert!(matches!(results[0], Ok(Disposition::Removed)));
    assert!(matches!(results[1], Err(Error::StaleDelivery)));
    assert!(matches!(results[2], Ok(Disposition::Removed)));
    let stats = broker.stats("b").unwrap();
    assert_eq!((stats.ready, stats.in_flight), (0, 0));
    // A nacked batch comes back after the backoff, each on its second delivery.
    broker
        .publish_batch("b", vec![Envelope::new("x"), Envelope::new("y")])
        .await
        .unwrap();
    let got = broker.fetch("b", "w", 10, Duration::ZERO).await.unwrap();
    let results = broker.settle_batch(&got, Settlement::nack()).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(Disposition::Retry { .. })))
    );
    broker.advance(Duration::from_secs(60)).unwrap();
    let again = broker.fetch("b", "w", 10, Duration::ZERO).await.unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|d| d.envelope.attempt() == 2));
}

#[tokio::test]
async fn many_settled_deliveries_keep_deadlines_exact() {
    // Thousands of acks out of order around one held delivery: the held one still
    // expires at its deadline, and nothing else comes back.
    let broker = EmbeddedBroker::deterministic(5);
    broker.declare("d", &config(3)).await.unwrap();
    let envelopes = (0..5000).map(|i| Envelope::new(format!("{i}"))).collect();
    broker.publish_batch("d", envelopes).await.unwrap();
    let got = broker.fetch("d", "w", 5000, Duration::ZERO).await.unwrap();
    let (held, rest) = got.split_first().unwrap();
    for d in rest.iter().rev() {
        broker.settle(d, Settlement::Ack).await.unwrap();
    }
    broker.advance(Duration::from_secs(29)).unwrap();
    assert_eq!(broker.stats("d").unwrap().in_flight, 1);
    broker.advance(Duration::from_secs(1)).unwrap();
    let back = broker.fetch("d", "w", 10, Duration::ZERO).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].envelope.id(), held.envelope.id());
    assert_eq!(back[0].envelope.attempt(), 2);
    assert!(matches!(
        broker.settle(held, Settlement::Ack).await,
        Err(Error::StaleDelivery)
    ));
}
