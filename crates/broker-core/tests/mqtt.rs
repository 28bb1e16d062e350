#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `MqttBroker` against the machine's Mosquitto beyond the conformance suite: QoS 0/1/2,
//! retained messages, wildcards, the last will, a persistent session that keeps what was
//! published while its consumer was away, a shared subscription split between two
//! processes, the refused `pending` count, Python `paho-mqtt` (MQTT 5) both ways with user
//! properties, a Mosquitto of our own restarted under QoS 1 load with nothing lost, and a
//! queue's session set-up cut after the server lost its sessions with nothing lost.
//!
//! Needs `MQTT_URL` (and `PEER_PYTHON` with paho-mqtt for the peer tests, the `mosquitto`
//! binary for the fault tests); each test skips with a message when one is missing and
//! fails when `CI=true`.
#![cfg(feature = "mqtt")]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_core::{
    Broker, Envelope, Error, MessageId, MqttBroker, MqttOptions, MqttPublish, MqttQos, QueueConfig,
    SUBJECT_HEADER, Settlement,
};
use tokio::time::Instant;

mod support;

use support::{OwnServer, TRACEPARENT, env, peer};

fn prefix(kind: &str) -> String {
    format!(
        "bkt-{kind}-{}",
        &MessageId::new().as_uuid().simple().to_string()[..16]
    )
}

fn quick() -> MqttOptions {
    MqttOptions::default().session_expiry(Duration::from_secs(300))
}

async fn broker(kind: &str) -> Option<(String, String, MqttBroker)> {
    let url = env("MQTT_URL")?;
    let prefix = prefix(kind);
    let broker = MqttBroker::connect_with(&url, &prefix, quick())
        .await
        .unwrap();
    Some((url, prefix, broker))
}

async fn fetch_all(
    broker: &MqttBroker,
    queue: &str,
    consumer: &str,
    n: usize,
) -> Vec<broker_core::Delivery> {
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while got.len() < n && Instant::now() < end {
        got.extend(
            broker
                .fetch(queue, consumer, n - got.len(), Duration::from_millis(300))
                .await
                .unwrap(),
        );
    }
    got
}

#[tokio::test]
async fn qos_levels_retained_messages_and_wildcards() {
    let Some((_, _, broker)) = broker("qos").await else {
        return;
    };
    let mut one = broker
        .subscribe("sensors.*.temp", None, MqttQos::ExactlyOnce)
        .await
        .unwrap();
    let mut all = broker
        .subscribe("sensors.>", None, MqttQos::AtLeastOnce)
        .await
        .unwrap();
    for (i, qos) in [
        MqttQos::AtMostOnce,
        MqttQos::AtLeastOnce,
        MqttQos::ExactlyOnce,
    ]
    .into_iter()
    .enumerate()
    {
        let envelope = Envelope::new(format!("{i}"))
            .with_header("x-qos", i.to_string())
            .unwrap();
        broker
            .publish_to(
                &format!("sensors.room-{i}.temp"),
                envelope,
                &MqttPublish::new().qos(qos),
            )
            .await
            .unwrap();
    }
    broker
        .publish_to(
            "sensors.room-9.humidity",
            Envelope::new("h"),
            &MqttPublish::new(),
        )
        .await
        .unwrap();
    for i in 0..3 {
        let m = one.next(Duration::from_secs(5)).await.unwrap().unwrap();
        assert_eq!(m.subject, format!("sensors.room-{i}.temp"));
        assert_eq!(m.envelope.payload().as_ref(), i.to_string().as_bytes());
        assert_eq!(
            m.envelope.headers().get("x-qos"),
            Some(i.to_string().as_str())
        );
        assert_eq!(
            m.envelope.headers().get(SUBJECT_HEADER),
            Some(m.subject.as_str())
        );
        // Delivered with the QoS it was published with (the subscription allows 2).
        let expected = [
            MqttQos::AtMostOnce,
            MqttQos::AtLeastOnce,
            MqttQos::ExactlyOnce,
        ][i];
        assert_eq!(m.qos, expected);
        assert!(!m.retained);
    }
    // `*` is one level: the humidity reading is not for `sensors.*.temp`...
    assert!(
        one.next(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    // ...but `>` takes it, and caps the QoS at the subscription's.
    let mut subjects = Vec::new();
    for _ in 0..4 {
        let m = all.next(Duration::from_secs(5)).await.unwrap().unwrap();
        assert_ne!(m.qos, MqttQos::ExactlyOnce);
        subjects.push(m.subject);
    }
    assert_eq!(
        subjects.last().map(String::as_str),
        Some("sensors.room-9.humidity")
    );

    // Retained: a later subscriber gets the last one, flagged; cleared, nothing.
    broker
        .publish_to(
            "status.gw",
            Envelope::new("old"),
            &MqttPublish::new().retain(true),
        )
        .await
        .unwrap();
    broker
        .publish_to(
            "status.gw",
            Envelope::new("online"),
            &MqttPublish::new().retain(true),
        )
        .await
        .unwrap();
    let mut late = broker
        .subscribe("status.*", None, MqttQos::AtLeastOnce)
        .await
        .unwrap();
    let m = late.next(Duration::from_secs(5)).await.unwrap().unwrap();
    assert!(m.retained);
    assert_eq!(m.envelope.payload().as_ref(), b"online");
    assert!(
        late.next(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    broker.clear_retained("status.gw").await.unwrap();
    let mut later = broker
        .subscribe("status.*", None, MqttQos::AtLeastOnce)
        .await
        .unwrap();
    assert!(
        later
            .next(Duration::from_millis(500))
            .await
            .unwrap()
            .is_none()
    );
    // A subject to publish to has no wildcards, and bk- subjects are the adapter's.
    for subject in ["a.*", "bk-q.x", "a..b"] {
        let outcome = broker
            .publish_to(subject, Envelope::new("x"), &MqttPublish::new())
            .await;
        assert!(
            matches!(outcome, Err(Error::InvalidSubject { .. })),
            "{subject}: {outcome:?}"
        );
    }
    broker.close().await;
}

#[tokio::test]
async fn last_will_fires_when_the_connection_is_lost_not_on_close() {
    let Some((url, prefix, watcher)) = broker("will").await else {
        return;
    };
    let mut wills = watcher
        .subscribe("wills.>", None, MqttQos::AtLeastOnce)
        .await
        .unwrap();
    let dying = MqttBroker::connect_with(
        &url,
        &prefix,
        quick().last_will("wills.w1", "w1 gone", MqttQos::AtLeastOnce, false),
    )
    .await
    .unwrap();
    let closing = MqttBroker::connect_with(
        &url,
        &prefix,
        quick().last_will("wills.w2", "w2 gone", MqttQos::AtLeastOnce, false),
    )
    .await
    .unwrap();
    closing.close().await;
    drop(closing);
    // Dropped without a DISCONNECT: the server publishes the will.
    drop(dying);
    let m = wills.next(Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!(m.subject, "wills.w1");
    assert_eq!(m.envelope.payload().as_ref(), b"w1 gone");
    assert!(
        wills
            .next(Duration::from_millis(700))
            .await
            .unwrap()
            .is_none()
    );
    watcher.close().await;
}

#[tokio::test]
async fn a_persistent_session_keeps_what_was_published_while_away() {
    let Some((url, prefix, publisher)) = broker("away").await else {
        return;
    };
    let options = || quick().instance("worker-a");
    let consumer = MqttBroker::connect_with(&url, &prefix, options())
        .await
        .unwrap();
    consumer
        .declare("jobs", &QueueConfig::default())
        .await
        .unwrap();
    consumer.close().await;
    drop(consumer);
    let mut sent = HashSet::new();
    for i in 0..5 {
        let envelope = Envelope::new(format!("job {i}"));
        sent.insert(envelope.id());
        publisher.publish("jobs", envelope).await.unwrap();
    }
    // Back with the same instance name: the session (and its messages) is resumed.
    let consumer = MqttBroker::connect_with(&url, &prefix, options())
        .await
        .unwrap();
    consumer
        .declare("jobs", &QueueConfig::default())
        .await
        .unwrap();
    let got = fetch_all(&consumer, "jobs", "w", 5).await;
    let ids: HashSet<MessageId> = got.iter().map(|d| d.envelope.id()).collect();
    assert_eq!(ids, sent);
    for d in &got {
        assert_eq!(d.envelope.attempt(), 1);
        consumer.settle(d, Settlement::Ack).await.unwrap();
    }
    // MQTT has no queue depth: refused with a typed error, and the flag says so.
    assert!(!consumer.capabilities().pending_count);
    assert!(!consumer.capabilities().retry_state_in_broker);
    assert!(matches!(
        consumer.pending("jobs").await,
        Err(Error::Unsupported {
            capability: "pending_count",
            ..
        })
    ));
    consumer.delete_sessions().await.unwrap();
    publisher.close().await;
}

#[tokio::test]
async fn a_shared_subscription_splits_a_queue_between_processes() {
    let Some((url, prefix, publisher)) = broker("share").await else {
        return;
    };
    let a = MqttBroker::connect_with(&url, &prefix, quick().instance("a"))
        .await
        .unwrap();
    let b = MqttBroker::connect_with(&url, &prefix, quick().instance("b"))
        .await
        .unwrap();
    a.declare("work", &QueueConfig::default()).await.unwrap();
    b.declare("work", &QueueConfig::default()).await.unwrap();
    let mut sent = HashSet::new();
    for i in 0..20 {
        let envelope = Envelope::new(format!("w{i}"));
        sent.insert(envelope.id());
        publisher.publish("work", envelope).await.unwrap();
    }
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let end = Instant::now() + Duration::from_secs(10);
    while got_a.len() + got_b.len() < 20 && Instant::now() < end {
        got_a.extend(
            a.fetch("work", "a", 20, Duration::from_millis(200))
                .await
                .unwrap(),
        );
        got_b.extend(
            b.fetch("work", "b", 20, Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    let ids_a: HashSet<MessageId> = got_a.iter().map(|d| d.envelope.id()).collect();
    let ids_b: HashSet<MessageId> = got_b.iter().map(|d| d.envelope.id()).collect();
    assert!(ids_a.is_disjoint(&ids_b), "both processes got a message");
    assert!(
        !ids_a.is_empty() && !ids_b.is_empty(),
        "{} / {}",
        ids_a.len(),
        ids_b.len()
    );
    assert_eq!(ids_a.union(&ids_b).copied().collect::<HashSet<_>>(), sent);
    for d in &got_a {
        a.settle(d, Settlement::Ack).await.unwrap();
    }
    for d in &got_b {
        b.settle(d, Settlement::Ack).await.unwrap();
    }
    a.delete_sessions().await.unwrap();
    b.delete_sessions().await.unwrap();
    publisher.close().await;
}

#[tokio::test]
async fn paho_publishes_with_user_properties_and_we_consume() {
    let Some(python) = env("PEER_PYTHON") else {
        return;
    };
    let Some((url, prefix, broker)) = broker("pp").await else {
        return;
    };
    broker
        .declare("readings", &QueueConfig::default())
        .await
        .unwrap();
    broker.bind("devices.*.temp", "readings").await.unwrap();
    let topic = broker.subject_topic("devices.sensor-1.temp").unwrap();
    assert_eq!(topic, format!("{prefix}/devices/sensor-1/temp"));
    let published = peer(&python, &["mqtt-publish", &url, &topic, "3"]);
    assert_eq!(published.len(), 3);
    assert!(published.iter().all(|l| l["published"] == true));
    let got = fetch_all(&broker, "readings", "rust", 3).await;
    assert_eq!(got.len(), 3);
    let mut indexes = Vec::new();
    for d in &got {
        let h = d.envelope.headers();
        let i = h.get("x-index").unwrap().to_owned();
        assert_eq!(
            d.envelope.payload().as_ref(),
            format!("from paho {i}").as_bytes()
        );
        assert_eq!(h.get("x-peer"), Some("paho"));
        assert_eq!(h.traceparent(), Some(TRACEPARENT));
        assert_eq!(h.content_type(), Some("text/plain"));
        assert_eq!(h.correlation_id(), Some(format!("paho-{i}").as_str()));
        assert_eq!(h.get(SUBJECT_HEADER), Some("devices.sensor-1.temp"));
        assert_eq!(d.envelope.attempt(), 1);
        indexes.push(i);
        broker.settle(d, Settlement::Ack).await.unwrap();
    }
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);
    broker.delete_sessions().await.unwrap();
}

/// Runs the peer until it printed `{"ready": true}`; the rest of its output is read later.
fn spawn_ready(python: &str, args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(python)
        .arg(support::PEER)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("ready"), "peer said {line:?}");
    (child, out)
}

#[tokio::test]
async fn we_publish_and_paho_reads_user_properties() {
    let Some(python) = env("PEER_PYTHON") else {
        return;
    };
    let Some((url, _, broker)) = broker("pc").await else {
        return;
    };
    let filter = broker.subject_topic("events.>").unwrap();
    let (mut child, out) = spawn_ready(&python, &["mqtt-consume", &url, &filter, "3"]);
    let mut sent = Vec::new();
    for i in 0..3 {
        let envelope = Envelope::new(format!("from rust {i}"))
            .with_header("x-index", i.to_string())
            .unwrap()
            .with_header("traceparent", TRACEPARENT)
            .unwrap()
            .with_header("content-type", "text/plain")
            .unwrap()
            .with_header("correlation-id", format!("rust-{i}"))
            .unwrap();
        sent.push(envelope.clone());
        broker
            .publish_topic(&format!("events.e{i}"), envelope)
            .await
            .unwrap();
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        // Every header arrives: ours as user properties, the well-known ones as MQTT 5
        // properties (content type, correlation data).
        support::assert_is_ours(line, &sent);
        assert_eq!(line["qos"], 1);
        assert!(
            line["topic"]
                .as_str()
                .unwrap()
                .starts_with(&filter[..filter.len() - 1])
        );
    }
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_mosquitto_restarted_under_qos1_load_loses_nothing() {
    let Some(_) = env("MQTT_URL") else {
        return;
    };
    let Some(mut mosquitto) = OwnServer::mosquitto() else {
        return;
    };
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let options = MqttOptions::default()
        .session_expiry(Duration::from_secs(600))
        .publish_timeout(Duration::from_secs(30))
        .keep_alive(Duration::from_secs(5));
    let consumer = Arc::new(
        MqttBroker::connect_with(&url, "fault", options.clone().instance("c"))
            .await
            .unwrap(),
    );
    let config = QueueConfig::default().ack_wait(Duration::from_secs(5));
    consumer.declare("load", &config).await.unwrap();
    let publisher = Arc::new(
        MqttBroker::connect_with(&url, "fault", options)
            .await
            .unwrap(),
    );

    const N: usize = 600;
    let seen: Arc<Mutex<HashMap<MessageId, usize>>> = Arc::default();
    let consuming = {
        let (consumer, seen) = (Arc::clone(&consumer), Arc::clone(&seen));
        tokio::spawn(async move {
            let end = Instant::now() + Duration::from_secs(90);
            let mut errors = 0;
            loop {
                let done = seen.lock().unwrap().len() >= N;
                if done || Instant::now() >= end {
                    break;
                }
                match consumer
                    .fetch("load", "c", 100, Duration::from_millis(200))
                    .await
                {
                    Ok(batch) => {
                        for d in batch {
                            *seen.lock().unwrap().entry(d.envelope.id()).or_default() += 1;
                            // A delivery from before the restart settles as stale; the
                            // server sends it again.
                            let _ = consumer.settle(&d, Settlement::Ack).await;
                        }
                    }
                    // The server is down: try again.
                    Err(_) => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            errors
        })
    };
    // Four publishers; each publish returns only once the server confirmed it (PUBACK),
    // retrying across the restart.
    let ids: Vec<MessageId> = (0..N).map(|_| MessageId::new()).collect();
    let published = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for part in ids.chunks(N / 4) {
        let (publisher, published) = (Arc::clone(&publisher), Arc::clone(&published));
        let part = part.to_vec();
        tasks.push(tokio::spawn(async move {
            for id in part {
                publisher
                    .publish("load", Envelope::new("x").with_id(id))
                    .await
                    .unwrap();
                published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    while published.load(std::sync::atomic::Ordering::Relaxed) < N / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at_kill = published.load(std::sync::atomic::Ordering::Relaxed);
    mosquitto.stop();
    mosquitto.mosquitto_saved();
    tokio::time::sleep(Duration::from_millis(500)).await;
    mosquitto.run();
    for task in tasks {
        task.await.unwrap();
    }
    let errors = consuming.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let missing: Vec<&MessageId> = ids.iter().filter(|id| !seen.contains_key(id)).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "killed after {at_kill} of {N} confirmed publishes; received {} distinct, {duplicates} \
         duplicates; consumer errors while down: {errors}; reconnects: publisher {}, consumer {}",
        seen.len(),
        publisher.reconnects(),
        consumer.reconnects()
    );
    assert!(missing.is_empty(), "{} of {N} never arrived", missing.len());
    assert!(
        seen.keys().all(|id| ids.contains(id)),
        "an unknown id arrived"
    );
    assert!(publisher.reconnects() >= 1 && consumer.reconnects() >= 1);
}

/// A plain subscription (not a queue) rides out a restart of the server: it reconnects
/// with its client id, the server resumes its session (Mosquitto with persistence), and
/// every QoS 1 message confirmed to the publisher, before, during and after the restart,
/// arrives at least once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_subscription_reconnects_and_resumes_its_session() {
    let Some(_) = env("MQTT_URL") else {
        return;
    };
    let Some(mut mosquitto) = OwnServer::mosquitto() else {
        return;
    };
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let options = MqttOptions::default()
        .publish_timeout(Duration::from_secs(30))
        .keep_alive(Duration::from_secs(5));
    let broker = Arc::new(
        MqttBroker::connect_with(&url, "plain", options)
            .await
            .unwrap(),
    );
    let mut subscription = broker
        .subscribe("feed.>", None, MqttQos::AtLeastOnce)
        .await
        .unwrap();

    const N: usize = 300;
    let ids: Vec<MessageId> = (0..N).map(|_| MessageId::new()).collect();
    let published = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let publishing = {
        let (broker, ids, published) = (Arc::clone(&broker), ids.clone(), Arc::clone(&published));
        tokio::spawn(async move {
            for (i, id) in ids.into_iter().enumerate() {
                broker
                    .publish_to(
                        &format!("feed.{}", i % 3),
                        Envelope::new("x").with_id(id),
                        &MqttPublish::new(),
                    )
                    .await
                    .unwrap();
                published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let mut seen: HashMap<MessageId, usize> = HashMap::new();
    let mut errors = 0;
    let mut restarted = false;
    let end = Instant::now() + Duration::from_secs(60);
    while seen.len() < N && Instant::now() < end {
        if !restarted && published.load(std::sync::atomic::Ordering::Relaxed) >= N / 3 {
            // SIGTERM: Mosquitto saves its sessions, and loads them again on start.
            mosquitto.stop();
            mosquitto.mosquitto_saved();
            tokio::time::sleep(Duration::from_millis(300)).await;
            mosquitto.run();
            restarted = true;
        }
        match subscription.next(Duration::from_millis(500)).await {
            Ok(Some(message)) => *seen.entry(message.envelope.id()).or_default() += 1,
            Ok(None) => {}
            Err(_) => errors += 1,
        }
    }
    publishing.await.unwrap();
    let missing = ids.iter().filter(|id| !seen.contains_key(id)).count();
    println!(
        "plain subscription across a restart: {} of {N} distinct, {errors} errors while down, \
         {} reconnects",
        seen.len(),
        subscription.reconnects()
    );
    assert!(restarted);
    assert_eq!(
        missing, 0,
        "{missing} of {N} confirmed messages never arrived"
    );
    assert!(subscription.reconnects() >= 1);
    // Still live after the restart.
    let id = MessageId::new();
    broker
        .publish_to(
            "feed.last",
            Envelope::new("x").with_id(id),
            &MqttPublish::new(),
        )
        .await
        .unwrap();
    let mut last = None;
    for _ in 0..20 {
        if let Ok(Some(message)) = subscription.next(Duration::from_millis(500)).await
            && message.envelope.id() == id
        {
            last = Some(message);
            break;
        }
    }
    assert!(
        last.is_some(),
        "the message after the restart did not arrive"
    );
    subscription.close().await;
    broker.close().await;
}

/// What the server still held for a plain subscription when it was stopped (sent and not
/// yet acknowledged, or queued behind the receive maximum) arrives after the restart. This
/// needs Mosquitto to save the session, which it does only for a session opened with clean
/// start off (its `persist__client_save`); a subscription whose first connection had clean
/// start on lost all of it. Nothing is read before the restart, so most of the messages
/// are in the server then, every time (the test above hits the case only by timing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_subscription_gets_what_the_server_held_across_a_restart() {
    let Some(_) = env("MQTT_URL") else {
        return;
    };
    let Some(mut mosquitto) = OwnServer::mosquitto() else {
        return;
    };
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let options = MqttOptions::default()
        .receive_maximum(10)
        .keep_alive(Duration::from_secs(5));
    let broker = MqttBroker::connect_with(&url, "held", options)
        .await
        .unwrap();
    let mut subscription = broker
        .subscribe("feed.>", None, MqttQos::AtLeastOnce)
        .await
        .unwrap();
    const N: usize = 200;
    let ids: Vec<MessageId> = (0..N).map(|_| MessageId::new()).collect();
    for id in &ids {
        broker
            .publish_to(
                "feed.a",
                Envelope::new("x").with_id(*id),
                &MqttPublish::new(),
            )
            .await
            .unwrap();
    }
    mosquitto.stop();
    mosquitto.mosquitto_saved();
    mosquitto.run();
    let mut seen = HashSet::new();
    let end = Instant::now() + Duration::from_secs(30);
    while seen.len() < N && Instant::now() < end {
        if let Ok(Some(message)) = subscription.next(Duration::from_millis(500)).await {
            seen.insert(message.envelope.id());
        }
    }
    let missing = ids.iter().filter(|id| !seen.contains(id)).count();
    assert!(subscription.reconnects() >= 1);
    assert_eq!(
        missing, 0,
        "{missing} of {N} confirmed messages never arrived"
    );
    subscription.close().await;
    broker.close().await;
}

/// A TCP forwarder to our Mosquitto on `target` that, while `cutting` is set, closes a
/// client's connection when the client sends a SUBSCRIBE (as if the server died right after
/// accepting the session); `cuts` counts them.
async fn cutting_forwarder(target: u16, cutting: Arc<AtomicBool>, cuts: Arc<AtomicUsize>) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (cutting, cuts) = (Arc::clone(&cutting), Arc::clone(&cuts));
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                // The client's bytes, a whole MQTT packet at a time.
                let mut buf = Vec::new();
                let mut chunk = [0_u8; 4096];
                'read: loop {
                    let n = match client_read.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(len) = packet_len(&buf) {
                        if buf[0] & 0xf0 == 0x80 && cutting.load(Ordering::SeqCst) {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            break 'read;
                        }
                        if server_write.write_all(&buf[..len]).await.is_err() {
                            break 'read;
                        }
                        buf.drain(..len);
                    }
                }
                down.abort();
            });
        }
    });
    port
}

/// The length of the whole MQTT packet at the start of `buf` (fixed header and remaining
/// length), once it is all there.
fn packet_len(buf: &[u8]) -> Option<usize> {
    let (mut remaining, mut scale) = (0_usize, 1_usize);
    for i in 1..5 {
        let byte = *buf.get(i)?;
        remaining += usize::from(byte & 0x7f) * scale;
        if byte & 0x80 == 0 {
            let total = 1 + i + remaining;
            return (buf.len() >= total).then_some(total);
        }
        scale *= 128;
    }
    None
}

/// Our Mosquitto loses a queue's session (SIGKILL, no persistence file) while the queue's
/// consumer holds three messages (one fetched and not settled, two waiting); the new
/// session's set-up then fails at its SUBSCRIBE (the connection is cut there). The failed
/// set-up keeps the three, and the next session (which the server now has: the failed
/// one's) publishes them again. Before, the failed set-up dropped them for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_session_set_up_after_a_lost_session_loses_nothing() {
    let Some(_) = env("MQTT_URL") else {
        return;
    };
    let Some(mut mosquitto) = OwnServer::mosquitto() else {
        return;
    };
    let (cutting, cuts) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let port = cutting_forwarder(mosquitto.port, Arc::clone(&cutting), Arc::clone(&cuts)).await;
    let url = format!("mqtt://127.0.0.1:{port}");
    let options = MqttOptions::default()
        .session_expiry(Duration::from_secs(600))
        .keep_alive(Duration::from_secs(5));
    let broker = MqttBroker::connect_with(&url, "cut", options)
        .await
        .unwrap();
    let config = QueueConfig::default().ack_wait(Duration::from_secs(60));
    broker.declare("q", &config).await.unwrap();
    let ids: Vec<MessageId> = (0..3).map(|_| MessageId::new()).collect();
    for id in &ids {
        broker
            .publish("q", Envelope::new("x").with_id(*id))
            .await
            .unwrap();
    }
    let first = broker
        .fetch("q", "c", 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // The other two reach the queue's session and wait there.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The server loses every session; the queue's next set-up is cut at its SUBSCRIBE.
    cutting.store(true, Ordering::SeqCst);
    mosquitto.kill();
    let _ = std::fs::remove_file(mosquitto.dir.join("mosquitto.db"));
    mosquitto.run();
    let end = Instant::now() + Duration::from_secs(20);
    while cuts.load(Ordering::SeqCst) == 0 {
        match broker.fetch("q", "c", 3, Duration::from_millis(200)).await {
            Ok(got) => assert!(got.is_empty(), "fetched while every set-up fails"),
            Err(error) => println!("while cut: {error}"),
        }
        assert!(Instant::now() < end, "no set-up reached its SUBSCRIBE");
    }

    cutting.store(false, Ordering::SeqCst);
    let mut seen = HashSet::new();
    let end = Instant::now() + Duration::from_secs(20);
    while seen.len() < ids.len() && Instant::now() < end {
        if let Ok(batch) = broker.fetch("q", "c", 3, Duration::from_millis(300)).await {
            for delivery in batch {
                seen.insert(delivery.envelope.id());
                let _ = broker.settle(&delivery, Settlement::Ack).await;
            }
        }
    }
    let missing = ids.iter().filter(|id| !seen.contains(id)).count();
    assert_eq!(missing, 0, "{missing} of 3 held messages never came back");
    broker.close().await;
}
