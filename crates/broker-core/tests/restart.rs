#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The broker restarted under load: a Redis and a NATS server of the test's own
//! (persistence on, another port) are killed with SIGKILL while publishers publish 2000
//! messages and a consumer with an inbox processes them, then started again on the same
//! port and data. Every publish returns (confirmed or an error) within a bound, a failed
//! publish is retried with the same message id, the consumer reconnects, and at the end
//! every message has had its effect exactly once and nothing is pending.
//!
//! Needs the `redis-server` and `nats-server` binaries; each test skips with a message when
//! its binary is missing and fails when `CI=true`.
#![cfg(any(feature = "redis", feature = "nats"))]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_core::{
    Broker, Claim, Envelope, Inbox, MemoryInbox, MessageId, QueueConfig, RetryPolicy, Settlement,
};
use tokio::time::Instant;

use support::OwnServer;

const N: usize = 2000;
const PUBLISHERS: usize = 4;
/// The longest a publish or a fetch may take, server down or not.
const BOUND: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
struct Report {
    publish_errors: usize,
    slowest_publish: Duration,
    consumer_errors: usize,
    slowest_fetch: Duration,
    deliveries: usize,
}

/// Runs the load, kills the server once a third is published, starts it again after half
/// a second, and checks the effects.
async fn restart_under_load<B: Broker + 'static>(
    server: &mut OwnServer,
    publisher: Arc<B>,
    consumer: Arc<B>,
) -> Report {
    let config = QueueConfig::default()
        .ack_wait(Duration::from_secs(2))
        .retry(RetryPolicy::new(100, Duration::from_millis(50)).jitter(0.0));
    publisher.declare("load", &config).await.unwrap();
    consumer.declare("load", &config).await.unwrap();

    let report = Arc::new(Mutex::new(Report::default()));
    // The effect: one count per message id, behind the inbox.
    let effects: Arc<Mutex<HashMap<MessageId, usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let consuming = {
        let (consumer, effects, stop, report) = (
            Arc::clone(&consumer),
            Arc::clone(&effects),
            Arc::clone(&stop),
            Arc::clone(&report),
        );
        tokio::spawn(async move {
            let inbox = MemoryInbox::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let fetched = tokio::time::timeout(
                    BOUND,
                    consumer.fetch("load", "c", 100, Duration::from_millis(200)),
                )
                .await
                .expect("a fetch returns within the bound");
                let took = started.elapsed();
                let batch = match fetched {
                    Ok(batch) => batch,
                    Err(_) => {
                        {
                            let mut r = report.lock().unwrap();
                            r.consumer_errors += 1;
                            r.slowest_fetch = r.slowest_fetch.max(took);
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                {
                    let mut r = report.lock().unwrap();
                    r.slowest_fetch = r.slowest_fetch.max(took);
                    r.deliveries += batch.len();
                }
                for delivery in batch {
                    let id = delivery.envelope.id();
                    match inbox.claim(id, Duration::from_secs(60)).await.unwrap() {
                        Claim::Acquired(token) => {
                            *effects.lock().unwrap().entry(id).or_default() += 1;
                            inbox
                                .complete(id, &token, Duration::from_secs(3600))
                                .await
                                .unwrap();
                        }
                        Claim::Done => {}
                        other => panic!("one consumer task: never {other:?}"),
                    }
                    // A settlement lost with the server leaves the message to come again
                    // after the ack wait; the inbox makes that harmless.
                    let settled =
                        tokio::time::timeout(BOUND, consumer.settle(&delivery, Settlement::Ack))
                            .await
                            .expect("a settlement returns within the bound");
                    if settled.is_err() {
                        report.lock().unwrap().consumer_errors += 1;
                    }
                }
            }
        })
    };

    let ids: Vec<MessageId> = (0..N).map(|_| MessageId::new()).collect();
    let published = Arc::new(AtomicUsize::new(0));
    let mut publishing = Vec::new();
    for part in ids.chunks(N / PUBLISHERS) {
        let (publisher, published, report) = (
            Arc::clone(&publisher),
            Arc::clone(&published),
            Arc::clone(&report),
        );
        let part = part.to_vec();
        publishing.push(tokio::spawn(async move {
            for (i, id) in part.into_iter().enumerate() {
                // Until confirmed, always with the same id.
                loop {
                    let envelope = Envelope::new(format!("{i}")).with_id(id);
                    let started = Instant::now();
                    let result = tokio::time::timeout(BOUND, publisher.publish("load", envelope))
                        .await
                        .expect("a publish returns within the bound");
                    let took = started.elapsed();
                    {
                        let mut r = report.lock().unwrap();
                        r.slowest_publish = r.slowest_publish.max(took);
                        if result.is_err() {
                            r.publish_errors += 1;
                        }
                    }
                    if result.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                published.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }));
    }

    while published.load(Ordering::Relaxed) < N / 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let at_kill = published.load(Ordering::Relaxed);
    tokio::task::block_in_place(|| {
        server.kill();
        std::thread::sleep(Duration::from_millis(500));
        server.run();
    });
    for task in publishing {
        task.await.unwrap();
    }

    // Every effect once, and nothing left in the broker.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending = usize::MAX;
    loop {
        let done = effects.lock().unwrap().len() >= N;
        if done {
            pending = match publisher.pending("load").await {
                Ok(n) => n,
                Err(_) => usize::MAX,
            };
            if pending == 0 {
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    consuming.await.unwrap();
    // A worker started after the restart declares the queue again: that clears what an
    // unclean stop left behind (see `NatsBroker::declare`), and nothing is pending.
    consumer.declare("load", &config).await.unwrap();
    let pending_after_declare = consumer.pending("load").await.unwrap();

    let effects = effects.lock().unwrap().clone();
    let report = std::mem::take(&mut *report.lock().unwrap());
    println!(
        "{}: killed after {at_kill} of {N} confirmed publishes; {report:?}; {} distinct \
         effects; pending at the end {pending}",
        publisher.name(),
        effects.len()
    );
    let lost = ids.iter().filter(|id| !effects.contains_key(id)).count();
    assert_eq!(lost, 0, "{lost} of {N} messages never had their effect");
    assert_eq!(effects.len(), N, "an unknown id had an effect");
    let twice = effects.values().filter(|&&n| n != 1).count();
    assert_eq!(twice, 0, "{twice} messages had their effect more than once");
    assert_eq!(pending, 0, "left pending in the broker");
    assert_eq!(pending_after_declare, 0);
    assert!(report.slowest_publish < BOUND && report.slowest_fetch < BOUND);
    assert!(report.deliveries >= N);
    report
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_gives_each_effect_once() {
    use broker_core::RedisBroker;
    let Some(mut server) = OwnServer::redis() else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}", server.port);
    let publisher = Arc::new(RedisBroker::connect(&url, "restart-").await.unwrap());
    let consumer = Arc::new(RedisBroker::connect(&url, "restart-").await.unwrap());
    let report = restart_under_load(&mut server, publisher, consumer).await;
    // The kill was felt on both sides.
    assert!(
        report.publish_errors + report.consumer_errors > 0,
        "{report:?}"
    );
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_restarted_under_load_gives_each_effect_once() {
    use broker_core::NatsBroker;
    let Some(mut server) = OwnServer::nats() else {
        return;
    };
    let url = format!("nats://127.0.0.1:{}", server.port);
    let publisher = Arc::new(NatsBroker::connect(&url, "restart").await.unwrap());
    let consumer = Arc::new(NatsBroker::connect(&url, "restart").await.unwrap());
    let report = restart_under_load(&mut server, publisher, consumer).await;
    // The NATS client buffers publishes and reconnects by itself, so the outage may show
    // as no error at all: then it shows as a publish or fetch that waited through it, or
    // as redeliveries of messages whose acknowledgements were lost with the server.
    let waited = Duration::from_millis(400);
    assert!(
        report.publish_errors + report.consumer_errors > 0
            || report.slowest_publish >= waited
            || report.slowest_fetch >= waited
            || report.deliveries > N,
        "{report:?}"
    );
}
