#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! broker-core against real Python clients, both ways: nats-py publishes to a JetStream
//! queue our `NatsBroker` consumes (headers included) and consumes what we publish, and
//! answers our request; redis-py `XADD`s entries our `RedisBroker` consumes and reads ours
//! through our consumer group. The peer is `tests/peers/broker_peer.py`.
//!
//! Needs `PEER_PYTHON` (a Python with `.ci/requirements.txt`) and `NATS_URL` / `REDIS_URL`;
//! each test skips with a message when one is unset and fails when `CI=true`.
#![cfg(all(feature = "nats", feature = "redis"))]

use std::time::Duration;

use broker_core::{
    Broker, Delivery, Envelope, MessageId, NatsBroker, QueueConfig, RedisBroker, Settlement,
};

mod support;

use support::{TRACEPARENT, assert_is_ours, env, peer};

/// A peer running in the background while our side works.
fn peer_in_background(
    python: &str,
    args: &[&str],
) -> std::thread::JoinHandle<Vec<serde_json::Value>> {
    let python = python.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        peer(&python, &args)
    })
}

fn unique(backend: &str) -> String {
    format!("bkpeer-{backend}-{}", MessageId::new().as_uuid().simple())
}

fn ours(i: usize) -> Envelope {
    Envelope::new(format!("from broker-core {i}"))
        .with_header("correlation-id", format!("rs-{i}"))
        .unwrap()
        .with_header("traceparent", TRACEPARENT)
        .unwrap()
        .with_header("x-peer", "rust")
        .unwrap()
}

/// Fetches until `n` deliveries arrived (or 20 half-second waits passed); asserts all came.
async fn fetch_all<B: Broker>(broker: &B, queue: &str, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(
            broker
                .fetch(queue, "rust", n - got.len(), Duration::from_millis(500))
                .await
                .unwrap(),
        );
        if got.len() == n {
            break;
        }
    }
    assert_eq!(
        got.len(),
        n,
        "received {} of the peer's messages",
        got.len()
    );
    got
}

/// What our consumer got from the peer: its ids, payloads and headers.
async fn assert_from_peer<B: Broker>(
    broker: &B,
    queue: &str,
    published: &[serde_json::Value],
    what: &str,
) {
    let got = fetch_all(broker, queue, published.len()).await;
    for (i, (d, line)) in got.iter().zip(published).enumerate() {
        assert_eq!(d.envelope.id().to_string(), line["id"].as_str().unwrap());
        assert_eq!(
            d.envelope.payload().as_ref(),
            format!("{what} {i}").as_bytes()
        );
        assert_eq!(d.envelope.attempt(), 1);
        let headers = d.envelope.headers();
        assert_eq!(headers.correlation_id(), Some(format!("py-{i}").as_str()));
        assert_eq!(headers.traceparent(), Some(TRACEPARENT));
        assert_eq!(headers.get("x-peer"), Some("python"));
        broker.settle(d, Settlement::Ack).await.unwrap();
    }
    assert_eq!(broker.pending(queue).await.unwrap(), 0);
}

async fn nats() -> Option<(String, String, NatsBroker, String)> {
    let python = env("PEER_PYTHON")?;
    let url = env("NATS_URL")?;
    let prefix = format!("{}_", unique("nats"));
    let broker = NatsBroker::connect(&url, &prefix).await.unwrap();
    broker
        .declare("jobs", &QueueConfig::default())
        .await
        .unwrap();
    Some((python, url, broker, format!("{prefix}jobs")))
}

#[tokio::test]
async fn nats_py_publishes_and_we_consume() {
    let Some((python, url, broker, name)) = nats().await else {
        return;
    };
    let published = peer(
        &python,
        &["nats-publish", &url, &format!("bkq.{name}"), "3"],
    );
    assert_eq!(published.len(), 3);
    assert_from_peer(&broker, "jobs", &published, "from nats-py").await;
    broker.delete_streams().await.unwrap();
}

/// A message as our own publisher sends it to a queue (user headers, the id once as
/// `Nats-Msg-Id`, no `bk-` headers): the id, attempt and publication time come from the
/// message and JetStream's delivery metadata.
#[tokio::test]
async fn nats_py_publishes_without_our_headers_and_we_consume() {
    let Some((python, url, broker, name)) = nats().await else {
        return;
    };
    let before = std::time::SystemTime::now() - Duration::from_secs(1);
    let published = peer(
        &python,
        &["nats-publish-plain", &url, &format!("bkq.{name}"), "3"],
    );
    assert_eq!(published.len(), 3);
    let got = fetch_all(&broker, "jobs", 3).await;
    let after = std::time::SystemTime::now();
    for (i, (d, line)) in got.iter().zip(&published).enumerate() {
        assert_eq!(d.envelope.id().to_string(), line["id"].as_str().unwrap());
        assert_eq!(d.envelope.attempt(), 1);
        let stored = d.envelope.published_at();
        assert!(
            stored >= before && stored <= after,
            "published_at {stored:?} is the stream's store time"
        );
        let headers = d.envelope.headers();
        assert_eq!(headers.correlation_id(), Some(format!("py-{i}").as_str()));
        assert_eq!(headers.get("x-peer"), Some("python"));
        assert!(headers.iter().all(|(name, _)| !name.starts_with("bk-")));
        broker.settle(d, Settlement::Ack).await.unwrap();
    }
    assert_eq!(broker.pending("jobs").await.unwrap(), 0);
    broker.delete_streams().await.unwrap();
}

#[tokio::test]
async fn we_publish_and_nats_py_consumes() {
    let Some((python, url, broker, name)) = nats().await else {
        return;
    };
    let sent: Vec<Envelope> = (0..3).map(ours).collect();
    for e in &sent {
        broker.publish("jobs", e.clone()).await.unwrap();
    }
    let read = peer(&python, &["nats-consume", &url, &format!("Q_{name}"), "3"]);
    assert_eq!(read.len(), 3);
    for line in &read {
        assert_is_ours(line, &sent);
    }
    // nats-py acked them on our durable consumer: nothing is left.
    assert_eq!(broker.pending("jobs").await.unwrap(), 0);
    broker.delete_streams().await.unwrap();
}

#[tokio::test]
async fn nats_py_answers_our_request() {
    let Some((python, url, broker, name)) = nats().await else {
        return;
    };
    let responder = peer_in_background(&python, &["nats-respond", &url, &format!("Q_{name}")]);
    let request = Envelope::new("what time is it")
        .with_header("correlation-id", "rq-1")
        .unwrap();
    let answer = broker
        .request("jobs", request, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        answer.payload().as_ref(),
        b"answer from nats-py: what time is it"
    );
    assert_eq!(answer.headers().correlation_id(), Some("rq-1"));
    assert_eq!(responder.join().unwrap().len(), 1);
    broker.delete_streams().await.unwrap();
}

async fn redis() -> Option<(String, String, RedisBroker, String)> {
    let python = env("PEER_PYTHON")?;
    let url = env("REDIS_URL")?;
    let prefix = format!("{}:", unique("redis"));
    let broker = RedisBroker::connect(&url, &prefix).await.unwrap();
    broker
        .declare("jobs", &QueueConfig::default())
        .await
        .unwrap();
    Some((python, url, broker, prefix))
}

#[tokio::test]
async fn redis_py_xadds_and_we_consume() {
    let Some((python, url, broker, prefix)) = redis().await else {
        return;
    };
    let published = peer(
        &python,
        &["redis-xadd", &url, &format!("{prefix}jobs:s"), "3"],
    );
    assert_eq!(published.len(), 3);
    assert_from_peer(&broker, "jobs", &published, "from redis-py").await;
    support::delete_redis_keys(&url, &prefix).await;
}

#[tokio::test]
async fn we_publish_and_redis_py_reads() {
    let Some((python, url, broker, prefix)) = redis().await else {
        return;
    };
    let sent: Vec<Envelope> = (0..3).map(ours).collect();
    for e in &sent {
        broker.publish("jobs", e.clone()).await.unwrap();
    }
    let read = peer(
        &python,
        &["redis-read", &url, &format!("{prefix}jobs:s"), "3"],
    );
    assert_eq!(read.len(), 3);
    for line in &read {
        assert_is_ours(line, &sent);
    }
    // redis-py acked and deleted them in our group: nothing is left.
    assert_eq!(broker.pending("jobs").await.unwrap(), 0);
    support::delete_redis_keys(&url, &prefix).await;
}
