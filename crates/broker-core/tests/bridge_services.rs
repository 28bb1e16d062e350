#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `Bridge` between the machine's real brokers: MQTT (Mosquitto, `MQTT_URL`) into NATS
//! JetStream (`NATS_URL`) with the destination queue named from the MQTT subject, and
//! RabbitMQ (`AMQP_URL`) into Redis Streams (`REDIS_URL`). Each message arrives exactly
//! once, with its id, its headers and its W3C trace context; the source is left empty.
//! Names are unique per run. A test skips with a message when a variable is unset and
//! fails when `CI=true`. The crash test (the bridge process killed with SIGKILL) is in
//! `examples/broker-bridge/tests/kill.rs`.
#![cfg(any(
    all(feature = "mqtt", feature = "nats"),
    all(feature = "amqp", feature = "redis")
))]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use broker_core::{Bridge, Broker, Envelope, MessageId, Route, Settlement};
use tokio::sync::oneshot;
use tokio::time::Instant;

mod support;

use support::{TRACEPARENT, env};

fn unique(kind: &str) -> String {
    format!(
        "bkb-{kind}-{}",
        &MessageId::new().as_uuid().simple().to_string()[..16]
    )
}

fn message(i: usize, room: &str) -> Envelope {
    Envelope::new(format!("{room} reading {i}"))
        .with_header("traceparent", TRACEPARENT)
        .unwrap()
        .with_header("tracestate", "bk=bridge")
        .unwrap()
        .with_header("x-seq", i.to_string())
        .unwrap()
}

/// Reads `queue` until `expected` messages came, then 500 ms more to catch extras.
async fn read<B: Broker>(broker: &B, queue: &str, expected: usize) -> Vec<Envelope> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_until = None;
    loop {
        let batch = broker
            .fetch(queue, "reader", 128, Duration::from_millis(200))
            .await
            .unwrap();
        for delivery in &batch {
            got.push(delivery.envelope.clone());
        }
        for r in broker.settle_batch(&batch, Settlement::Ack).await {
            r.unwrap();
        }
        if got.len() >= expected && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_millis(500));
        }
        if quiet_until.is_some_and(|t| Instant::now() >= t) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{queue}: {} of {expected} after 60 s",
            got.len()
        );
    }
}

fn check(got: &[Envelope], sent: &[Envelope]) {
    assert_eq!(got.len(), sent.len(), "exactly as many as sent");
    let by_id: HashMap<MessageId, &Envelope> = sent.iter().map(|e| (e.id(), e)).collect();
    let ids: HashSet<MessageId> = got.iter().map(Envelope::id).collect();
    assert_eq!(ids.len(), got.len(), "no duplicates");
    for e in got {
        let original = by_id.get(&e.id()).expect("a sent id");
        assert_eq!(e.payload(), original.payload());
        assert_eq!(e.headers().traceparent(), Some(TRACEPARENT));
        assert_eq!(e.headers().tracestate(), Some("bk=bridge"));
        assert_eq!(e.headers().get("x-seq"), original.headers().get("x-seq"));
    }
}

#[cfg(all(feature = "mqtt", feature = "nats"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_devices_into_nats_jetstream_by_subject() {
    use broker_core::{MqttBroker, MqttOptions, NatsBroker};

    let (Some(mqtt_url), Some(nats_url)) = (env("MQTT_URL"), env("NATS_URL")) else {
        return;
    };
    let name = unique("m2n");
    let options = MqttOptions::default().session_expiry(Duration::from_secs(300));
    let source = MqttBroker::connect_with(&mqtt_url, &name, options.clone())
        .await
        .unwrap();
    let devices = MqttBroker::connect_with(&mqtt_url, &name, options)
        .await
        .unwrap();
    let nats_prefix = format!("{}_", name.replace('-', "_"));
    let destination = NatsBroker::connect(&nats_url, &nats_prefix).await.unwrap();
    let reader = NatsBroker::connect(&nats_url, &nats_prefix).await.unwrap();

    // Readings of every room go to a JetStream queue named after the room.
    let route = Route::to_queue("readings", "room-{1}").subject("sensors.*.temp");
    source
        .declare("readings", route.get_source_config())
        .await
        .unwrap();
    source.bind("sensors.*.temp", "readings").await.unwrap();
    for room in ["room-kitchen", "room-hall"] {
        reader
            .declare(room, &broker_core::QueueConfig::default())
            .await
            .unwrap();
    }
    let bridge = Bridge::new(&source, &destination)
        .route(route)
        .batch(32)
        .lanes(2);
    let (stop, stopped) = oneshot::channel::<()>();
    let work = async {
        let mut sent: HashMap<&str, Vec<Envelope>> = HashMap::new();
        for i in 0..300 {
            for room in ["kitchen", "hall"] {
                let e = message(i, room);
                devices
                    .publish_topic(&format!("sensors.{room}.temp"), e.clone())
                    .await
                    .unwrap();
                sent.entry(room).or_default().push(e);
            }
        }
        // Not bound: must not cross.
        devices
            .publish_topic("sensors.kitchen.humidity", message(0, "kitchen"))
            .await
            .unwrap();
        for room in ["kitchen", "hall"] {
            let got = read(&reader, &format!("room-{room}"), 300).await;
            check(&got, &sent[room]);
            let subject = format!("sensors.{room}.temp");
            assert!(
                got.iter()
                    .all(|e| e.headers().get("subject") == Some(subject.as_str()))
            );
        }
        let _ = stop.send(());
    };
    let (stats, ()) = tokio::join!(
        bridge.run(async {
            let _ = stopped.await;
        }),
        work
    );
    let stats = stats.unwrap();
    assert_eq!(stats.forwarded, 600, "{stats:?}");
    assert_eq!((stats.failed, stats.in_flight), (0, 0), "{stats:?}");
    destination.delete_streams().await.unwrap();
    source.delete_sessions().await.unwrap();
    devices.close().await;
}

// Two lanes fetch the same RabbitMQ queue at once: this found two fetches opening two
// consume channels, one of them dropped with 50 deliveries unacknowledged (delivered and
// forwarded again: 1050 arrived).
#[cfg(all(feature = "amqp", feature = "redis"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_into_redis_streams() {
    use broker_core::{AmqpBroker, QueueConfig, RedisBroker};

    let (Some(amqp_url), Some(redis_url)) = (env("AMQP_URL"), env("REDIS_URL")) else {
        return;
    };
    let name = unique("a2r");
    let source = AmqpBroker::connect(&amqp_url, &format!("{name}."))
        .await
        .unwrap();
    let redis_prefix = format!("{name}:");
    let destination = RedisBroker::connect(&redis_url, &redis_prefix)
        .await
        .unwrap();
    let reader = RedisBroker::connect(&redis_url, &redis_prefix)
        .await
        .unwrap();
    let route = Route::to_queue("jobs", "jobs-copy");
    source
        .declare("jobs", route.get_source_config())
        .await
        .unwrap();
    reader
        .declare("jobs-copy", &QueueConfig::default())
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..1000 {
        let e = message(i, "job");
        sent.push(e.clone());
    }
    source.publish_batch("jobs", sent.clone()).await.unwrap();

    let bridge = Bridge::new(&source, &destination)
        .route(route)
        .batch(50)
        .lanes(2);
    let (stop, stopped) = oneshot::channel::<()>();
    let work = async {
        let got = read(&reader, "jobs-copy", 1000).await;
        check(&got, &sent);
        let _ = stop.send(());
    };
    let (stats, ()) = tokio::join!(
        bridge.run(async {
            let _ = stopped.await;
        }),
        work
    );
    let stats = stats.unwrap();
    assert_eq!(stats.forwarded, 1000, "{stats:?}");
    assert_eq!((stats.failed, stats.in_flight), (0, 0), "{stats:?}");
    assert_eq!(source.pending("jobs").await.unwrap(), 0);
    source.delete_topology().await.unwrap();
    // Leave nothing behind on the shared Redis.
    support::delete_redis_keys(&redis_url, &redis_prefix).await;
}
