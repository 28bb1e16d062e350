#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `AmqpBroker` against the machine's RabbitMQ beyond the conformance suite: Python `pika`
//! both ways (it publishes with headers to our direct exchange and we consume; we publish
//! and it consumes; it answers our request), a mandatory publish the server cannot route,
//! a consumer the server cancels, and connections the server closes (one at rest, and
//! repeatedly under load with the end-to-end count of effects checked).
//!
//! Needs `AMQP_URL` (and `PEER_PYTHON` with pika for the peer tests, `rabbitmqctl` for the
//! fault tests); each test skips with a message when one is missing and fails when
//! `CI=true`.
#![cfg(feature = "amqp")]

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use broker_core::{
    AmqpBroker, Broker, Claim, Envelope, Error, MemoryInbox, MessageId, QueueConfig, Settlement,
};
use lapin::options::QueueDeleteOptions;

mod support;

use support::{TRACEPARENT, assert_is_ours, env, missing, peer};

/// `rabbitmqctl`, when it is on the PATH and can talk to the server.
fn rabbitmqctl() -> Option<()> {
    let ok = Command::new("rabbitmqctl")
        .args(["-q", "status"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(())
    } else {
        missing("rabbitmqctl");
        None
    }
}

/// Closes every connection whose client-provided name is `name` (ours only: other tests
/// share the server); returns how many.
fn close_connections(name: &str) -> usize {
    // The table output, whose pids `close_connection` accepts (the JSON one's it does not).
    let out = Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_connections",
            "pid",
            "client_properties",
            "--no-table-headers",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wanted = format!("{{\"connection_name\",\"{name}\"}}");
    let mut closed = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        if !line.contains(&wanted) {
            continue;
        }
        let pid = line.split('\t').next().unwrap();
        let status = Command::new("rabbitmqctl")
            .args(["-q", "close_connection", pid, "fault test"])
            .status()
            .unwrap();
        assert!(status.success());
        closed += 1;
    }
    closed
}

fn prefix(kind: &str) -> String {
    format!(
        "bkt-{kind}-{}.",
        &MessageId::new().as_uuid().simple().to_string()[..16]
    )
}

async fn broker(kind: &str) -> Option<(String, AmqpBroker)> {
    let url = env("AMQP_URL")?;
    let broker = AmqpBroker::connect(&url, &prefix(kind)).await.unwrap();
    broker
        .declare("jobs", &QueueConfig::default())
        .await
        .unwrap();
    Some((url, broker))
}

/// Deletes a queue behind the broker's back, on a connection of its own.
async fn delete_queue(url: &str, name: &str) {
    let conn = lapin::Connection::connect(url, Default::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_delete(name.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "done".into()).await.unwrap();
}

#[tokio::test]
async fn pika_publishes_with_headers_and_we_consume() {
    let Some(python) = env("PEER_PYTHON") else {
        return;
    };
    let Some((url, broker)) = broker("pp").await else {
        return;
    };
    let published = peer(
        &python,
        &[
            "amqp-publish",
            &url,
            &broker.direct_exchange(),
            &broker.queue_name("jobs"),
            "3",
        ],
    );
    assert_eq!(published.len(), 3);
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(
            broker
                .fetch("jobs", "rust", 3 - got.len(), Duration::from_millis(500))
                .await
                .unwrap(),
        );
        if got.len() == 3 {
            break;
        }
    }
    assert_eq!(got.len(), 3);
    for (i, (d, line)) in got.iter().zip(&published).enumerate() {
        assert_eq!(d.envelope.id().to_string(), line["id"].as_str().unwrap());
        assert_eq!(
            d.envelope.payload().as_ref(),
            format!("from pika {i}").as_bytes()
        );
        assert_eq!(d.envelope.attempt(), 1);
        let headers = d.envelope.headers();
        assert_eq!(headers.correlation_id(), Some(format!("py-{i}").as_str()));
        assert_eq!(headers.traceparent(), Some(TRACEPARENT));
        assert_eq!(headers.get("x-peer"), Some("python"));
        broker.settle(d, Settlement::Ack).await.unwrap();
    }
    assert_eq!(broker.pending("jobs").await.unwrap(), 0);
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn we_publish_and_pika_consumes_with_headers_intact() {
    let Some(python) = env("PEER_PYTHON") else {
        return;
    };
    let Some((url, broker)) = broker("wp").await else {
        return;
    };
    let sent: Vec<Envelope> = (0..3)
        .map(|i| {
            Envelope::new(format!("from broker-core {i}"))
                .with_header("correlation-id", format!("rs-{i}"))
                .unwrap()
                .with_header("traceparent", TRACEPARENT)
                .unwrap()
                .with_header("x-peer", "rust")
                .unwrap()
        })
        .collect();
    for e in &sent {
        broker.publish("jobs", e.clone()).await.unwrap();
    }
    let read = peer(
        &python,
        &["amqp-consume", &url, &broker.queue_name("jobs"), "3"],
    );
    assert_eq!(read.len(), 3);
    for line in &read {
        assert_is_ours(line, &sent);
    }
    assert_eq!(broker.pending("jobs").await.unwrap(), 0);
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn pika_answers_our_request() {
    let Some(python) = env("PEER_PYTHON") else {
        return;
    };
    let Some((url, broker)) = broker("pr").await else {
        return;
    };
    let queue = broker.queue_name("jobs");
    let responder = std::thread::spawn(move || peer(&python, &["amqp-respond", &url, &queue]));
    let request = Envelope::new("what time is it")
        .with_header("correlation-id", "rq-1")
        .unwrap();
    let answer = broker
        .request("jobs", request, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        answer.payload().as_ref(),
        b"answer from pika: what time is it"
    );
    assert_eq!(answer.headers().correlation_id(), Some("rq-1"));
    assert_eq!(responder.join().unwrap().len(), 1);
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn an_unroutable_publish_is_an_error() {
    let Some((url, broker)) = broker("ur").await else {
        return;
    };
    delete_queue(&url, &broker.queue_name("jobs")).await;
    // Mandatory: the server returns it, and publish says so instead of dropping it.
    let outcome = broker.publish("jobs", Envelope::new("lost?")).await;
    assert!(
        matches!(&outcome, Err(Error::UnknownQueue(q)) if q == "jobs"),
        "{outcome:?}"
    );
    // Declaring again restores the route.
    broker
        .declare("jobs", &QueueConfig::default())
        .await
        .unwrap();
    broker
        .publish("jobs", Envelope::new("found"))
        .await
        .unwrap();
    assert_eq!(broker.pending("jobs").await.unwrap(), 1);
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn a_consumer_the_server_cancels_ends_the_fetch() {
    let Some((url, broker)) = broker("sc").await else {
        return;
    };
    let broker = Arc::new(broker);
    let waiting = {
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let outcome = broker.fetch("jobs", "c1", 5, Duration::from_secs(20)).await;
            (outcome, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    delete_queue(&url, &broker.queue_name("jobs")).await;
    let (outcome, took) = waiting.await.unwrap();
    assert!(
        matches!(&outcome, Err(Error::Backend { detail, .. }) if detail.contains("cancelled")),
        "{outcome:?}"
    );
    assert!(took < Duration::from_secs(10), "fetch ended after {took:?}");
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn a_closed_connection_is_reopened_with_the_topology() {
    let Some((url, broker)) = broker("rc").await else {
        return;
    };
    if rabbitmqctl().is_none() {
        return;
    }
    broker
        .publish("jobs", Envelope::new("before"))
        .await
        .unwrap();
    let held = broker
        .fetch("jobs", "c1", 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    // The queue disappears and the connection is closed: the next call reconnects and
    // declares the queue (and its binding) again.
    delete_queue(&url, &broker.queue_name("jobs")).await;
    assert_eq!(close_connections(&broker.connection_name()), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    broker
        .publish("jobs", Envelope::new("after"))
        .await
        .unwrap();
    assert_eq!(broker.reconnects(), 1);
    // What was held on the old connection cannot be settled any more.
    let outcome = broker.settle(&held[0], Settlement::Ack).await;
    assert!(matches!(outcome, Err(Error::StaleDelivery)), "{outcome:?}");
    let got = broker
        .fetch("jobs", "c1", 5, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope.payload().as_ref(), b"after");
    broker.settle(&got[0], Settlement::Ack).await.unwrap();
    broker.delete_topology().await.unwrap();
}

/// Fetches until `n` deliveries came (each fetch waits at most a second), within 10 s.
async fn fetch_all(broker: &AmqpBroker, queue: &str, n: usize) -> Vec<broker_core::Delivery> {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < n && tokio::time::Instant::now() < end {
        got.extend(
            broker
                .fetch(queue, "c", n - got.len(), Duration::from_secs(1))
                .await
                .unwrap(),
        );
    }
    assert_eq!(got.len(), n, "fetched {} of {n}", got.len());
    got
}

/// Publishes `n` messages and fetches 2 of them: the queue's consumer (prefetch 4) has the
/// next 2 on their way to this process, not handed out. Returns the 2 ids handed out.
async fn hand_out_two(broker: &AmqpBroker, n: usize) -> Vec<MessageId> {
    for i in 0..n {
        broker
            .publish("jobs", Envelope::new(format!("m{i}")))
            .await
            .unwrap();
    }
    let held = fetch_all(broker, "jobs", 2).await;
    // Long enough for the next 2 to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.iter().map(|d| d.envelope.id()).collect()
}

/// Each delivery's attempt: 2 for the `held` ones (handed out, then returned by the
/// server), 1 for the rest (received by a consumer but never handed out).
fn assert_attempts(got: &[broker_core::Delivery], held: &[MessageId]) {
    for d in got {
        let expected = if held.contains(&d.envelope.id()) {
            2
        } else {
            1
        };
        assert_eq!(
            d.envelope.attempt(),
            expected,
            "{:?} (held: {})",
            d.envelope.payload(),
            held.contains(&d.envelope.id())
        );
    }
}

#[tokio::test]
async fn messages_received_and_not_handed_out_are_pending_and_cost_no_attempt_on_close() {
    let Some((url, broker)) = broker("hb").await else {
        return;
    };
    let held = hand_out_two(&broker, 6).await;
    // Exact: those on their way to this process count, as do the 2 handed out.
    assert_eq!(broker.pending("jobs").await.unwrap(), 6);
    // Closing gives the received ones back as they were; the 2 held go back flagged.
    broker.close().await.unwrap();
    // Another process (a broker of its own on the same queues) gets all 6.
    let prefix = broker.queue_name("");
    let other = AmqpBroker::connect(&url, &prefix).await.unwrap();
    other
        .declare("jobs", &QueueConfig::default())
        .await
        .unwrap();
    let got = fetch_all(&other, "jobs", 6).await;
    assert_attempts(&got, &held);
    for d in &got {
        other.settle(d, Settlement::Ack).await.unwrap();
    }
    assert_eq!(other.pending("jobs").await.unwrap(), 0);
    other.delete_topology().await.unwrap();
}

#[tokio::test]
async fn messages_received_and_not_handed_out_cost_no_attempt_when_the_connection_is_lost() {
    let Some((_, broker)) = broker("lc").await else {
        return;
    };
    if rabbitmqctl().is_none() {
        return;
    }
    let held = hand_out_two(&broker, 6).await;
    assert_eq!(close_connections(&broker.connection_name()), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The server took back all 4 it had sent; only the 2 handed out were attempts.
    let got = fetch_all(&broker, "jobs", 6).await;
    assert_eq!(broker.reconnects(), 1);
    assert_attempts(&got, &held);
    for d in &got {
        broker.settle(d, Settlement::Ack).await.unwrap();
    }
    assert_eq!(broker.pending("jobs").await.unwrap(), 0);
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn an_idle_subscription_hands_its_messages_back() {
    let Some((url, broker)) = broker("is").await else {
        return;
    };
    let config = QueueConfig::default().ack_wait(Duration::from_secs(1));
    broker.declare("jobs", &config).await.unwrap();
    let held = hand_out_two(&broker, 6).await;
    let handled = fetch_all(&broker, "jobs", 2).await;
    for d in &handled {
        assert!(!held.contains(&d.envelope.id()));
        broker.settle(d, Settlement::Ack).await.unwrap();
    }
    // The window has room again: the consumer receives the last 2 and the 2 held are
    // never settled. No fetch for the ack wait: the consumer is cancelled and the 2
    // received go back, for another process (the 2 held are retried after their ack wait).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let prefix = broker.queue_name("");
    let other = AmqpBroker::connect(&url, &prefix).await.unwrap();
    other.declare("jobs", &config).await.unwrap();
    let got = fetch_all(&other, "jobs", 4).await;
    // Received by the first broker and handed back: still the first attempt.
    assert_attempts(&got, &held);
    for d in &got {
        other.settle(d, Settlement::Ack).await.unwrap();
    }
    assert_eq!(other.pending("jobs").await.unwrap(), 0);
    other.close().await.unwrap();
    broker.delete_topology().await.unwrap();
}

/// Producers and consumers run while the server closes their connections three times; each
/// message has its effect exactly once (the inbox absorbs publisher retries and
/// redeliveries), nothing is dead-lettered and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_closed_under_load_lose_and_double_nothing() {
    let Some(url) = env("AMQP_URL") else {
        return;
    };
    if rabbitmqctl().is_none() {
        return;
    }
    const N: usize = 3000;
    let prefix = prefix("fl");
    let config = QueueConfig::default().ack_wait(Duration::from_secs(5));
    let producer = Arc::new(AmqpBroker::connect(&url, &prefix).await.unwrap());
    let consumer = Arc::new(AmqpBroker::connect(&url, &prefix).await.unwrap());
    producer.declare("jobs", &config).await.unwrap();
    consumer.declare("jobs", &config).await.unwrap();

    let published = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let publishing = {
        let producer = Arc::clone(&producer);
        let published = Arc::clone(&published);
        tokio::spawn(async move {
            let mut retries = 0;
            for i in 0..N {
                let envelope = Envelope::new(i.to_string())
                    .with_header("x-n", i.to_string())
                    .unwrap();
                // At least once: a publish whose confirm was lost is sent again (same id).
                while let Err(e) = producer.publish("jobs", envelope.clone()).await {
                    assert!(matches!(e, Error::Backend { .. }), "{e}");
                    retries += 1;
                    assert!(retries < 1000, "publish keeps failing: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Paced, so the connections are closed while publishes are under way.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            retries
        })
    };
    let inbox = Arc::new(MemoryInbox::new());
    let effects = Arc::new(std::sync::Mutex::new(HashMap::<usize, usize>::new()));
    let mut workers = Vec::new();
    for w in 0..2 {
        let (consumer, inbox, effects) = (
            Arc::clone(&consumer),
            Arc::clone(&inbox),
            Arc::clone(&effects),
        );
        workers.push(tokio::spawn(async move {
            let name = format!("w{w}");
            let end = tokio::time::Instant::now() + Duration::from_secs(90);
            while effects.lock().unwrap().len() < N && tokio::time::Instant::now() < end {
                let Ok(batch) = consumer
                    .fetch("jobs", &name, 50, Duration::from_millis(200))
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                for d in batch {
                    let id = d.envelope.id();
                    match inbox.claim_at(id, Duration::from_secs(5), std::time::Instant::now()) {
                        Claim::Acquired(token) => {
                            let n: usize =
                                d.envelope.headers().get("x-n").unwrap().parse().unwrap();
                            // The effect takes a while, so closes land mid-batch.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            *effects.lock().unwrap().entry(n).or_default() += 1;
                            inbox.complete_at(
                                id,
                                &token,
                                Duration::from_secs(600),
                                std::time::Instant::now(),
                            );
                        }
                        Claim::Done => {}
                        Claim::Busy => continue,
                        _ => unreachable!(),
                    }
                    // A settlement on a lost connection fails; the server redelivers.
                    let _ = consumer.settle(&d, Settlement::Ack).await;
                }
            }
        }));
    }
    let name = producer.connection_name();
    let mut closed = 0;
    // While publishing, then twice while consuming.
    let progress = |round: usize| match round {
        0 => published.load(std::sync::atomic::Ordering::Relaxed) >= N / 3,
        _ => effects.lock().unwrap().len() >= N * round / 3,
    };
    for round in 0..3 {
        let end = tokio::time::Instant::now() + Duration::from_secs(60);
        while !progress(round) && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let at = (
            published.load(std::sync::atomic::Ordering::Relaxed),
            effects.lock().unwrap().len(),
        );
        closed += tokio::task::spawn_blocking({
            let name = name.clone();
            move || close_connections(&name)
        })
        .await
        .unwrap();
        println!("round {round}: closed at {at:?} (published, effects); {closed} so far");
    }
    let retries = publishing.await.unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let effects = effects.lock().unwrap().clone();
    let doubled: Vec<_> = effects.iter().filter(|(_, c)| **c != 1).collect();
    assert!(doubled.is_empty(), "effects not once: {doubled:?}");
    assert_eq!(
        effects.len(),
        N,
        "{} of {N} messages had their effect",
        effects.len()
    );
    assert!(closed >= 4, "closed {closed} connections");
    assert!(producer.reconnects() >= 1 && consumer.reconnects() >= 3);
    println!(
        "closed {closed} connections; reconnects: producer {}, consumer {}; publish retries {retries}",
        producer.reconnects(),
        consumer.reconnects()
    );
    // Redeliveries were acked (or absorbed); nothing waits and nothing died.
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rest = consumer
            .fetch("jobs", "sweep", 100, Duration::from_millis(200))
            .await
            .unwrap();
        for d in &rest {
            assert!(
                matches!(
                    inbox.claim_at(
                        d.envelope.id(),
                        Duration::from_secs(5),
                        std::time::Instant::now()
                    ),
                    Claim::Done
                ),
                "a message without its effect after the run"
            );
            consumer.settle(d, Settlement::Ack).await.unwrap();
        }
        if rest.is_empty() && consumer.pending("jobs").await.unwrap() == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < end, "messages left behind");
    }
    assert!(consumer.dead_letters("jobs", 10).await.unwrap().is_empty());
    consumer.delete_topology().await.unwrap();
}
