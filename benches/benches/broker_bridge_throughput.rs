//! Bridge throughput: broker-core's `Bridge` moving 1 KB messages MQTT -> NATS JetStream and
//! RabbitMQ -> Redis Streams on the machine's servers, beside the raw clients doing the
//! same consume, publish, wait-for-confirmation, acknowledge loop by hand.
//!
//! Run with: `source /tmp/testenv.sh; cargo bench --manifest-path
//! benches/Cargo.toml --bench broker_bridge_throughput -- [all|mqtt-nats|amqp-redis]
//! [MESSAGES] [RUNS]` (defaults: all, 20,000, 3). A pair skips with a message when one of its
//! variables (`MQTT_URL` and `NATS_URL`, `AMQP_URL` and `REDIS_URL`) is unset.
//!
//! Each side drains a preloaded source; the timed part is the drain only (from the first
//! fetch to the moment the last message is confirmed downstream and acknowledged
//! upstream), on one thread (a current-thread runtime, so the process's CPU time is the
//! bridge's). Mosquitto keeps at most 1,000 queued messages per session by default
//! (`max_queued_messages`), so MQTT is preloaded and drained in rounds of `MQTT_ROUND`;
//! RabbitMQ takes all MESSAGES at once.
//!
//! - `bridge`: `Bridge::new(source, destination)` with one `Route::to_queue`, its defaults
//!   (batches of 64, one lane, fetches waiting up to 100 ms).
//! - `raw`: rumqttc (MQTT 5, persistent session, shared subscription, manual acks, receive
//!   maximum 256, as the adapter's) into async-nats JetStream publishes (each message's
//!   user properties as headers, `bk-id` as `Nats-Msg-Id`), up to 64 at a time: publish
//!   them all, await every stream acknowledgement, then PUBACK each. lapin (a long-lived
//!   consumer, `basic.qos` 64) into one pipeline of `XADD`s (the headers table as
//!   fields), then a `basic.ack` per delivery, joined.
//!
//! Both sides read messages published by the same adapter call (so they carry the same
//! headers: `bk-id`, `bk-attempt`, `bk-published-at`, `traceparent`). After each side the
//! destination's length is checked. Prints one line per side and run: messages per second,
//! CPU per message of this process and of each server (user + system from /proc, 10 ms
//! ticks).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backend_kit_benches::proc::{cpu_ticks, pid_of};
use std::future::Future;
use std::time::{Duration, Instant};

use broker_core::{AmqpBroker, Bridge, Broker, Envelope, MqttBroker, MqttOptions, NatsBroker};
use broker_core::{QueueConfig, RedisBroker, Route};
use bytes::Bytes;
use futures_util::StreamExt;

const SIZE: usize = 1024;
const BATCH: usize = 64;
const MQTT_ROUND: usize = 1000;
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// The longest a drain may take before the run is called failed (bounds the run).
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// Wall time and CPU ticks (this process, then each server) summed over drains.
struct Meter {
    pids: Vec<Option<String>>,
    wall: Duration,
    ticks: Vec<u64>,
}

impl Meter {
    fn new(servers: &[&str]) -> Self {
        let mut pids = vec![Some("self".to_owned())];
        pids.extend(servers.iter().map(|s| pid_of(s)));
        let ticks = vec![0; pids.len()];
        Self {
            pids,
            wall: Duration::ZERO,
            ticks,
        }
    }

    fn read(&self) -> Vec<Option<u64>> {
        self.pids
            .iter()
            .map(|p| p.as_deref().and_then(cpu_ticks))
            .collect()
    }

    /// Times one drain: `drain` returns the instant its last message was settled.
    async fn time(&mut self, drain: impl Future<Output = Instant>) {
        let before = self.read();
        let start = Instant::now();
        let end = tokio::time::timeout(DRAIN_LIMIT, drain)
            .await
            .expect("the drain took longer than its limit");
        let after = self.read();
        self.wall += end.duration_since(start);
        for (total, (b, a)) in self.ticks.iter_mut().zip(before.iter().zip(&after)) {
            if let (Some(b), Some(a)) = (b, a) {
                *total += a - b;
            }
        }
    }

    fn report(&self, label: &str, run: usize, n: usize, servers: &[&str]) {
        let per = |ticks: u64| ticks as f64 * 10_000.0 / n as f64;
        let mut line = format!(
            "run={run} {label} messages={n} size={SIZE} msgs_per_s={:.0} wall_us_per_msg={:.2} \
             cpu_us_per_msg={:.1}",
            n as f64 / self.wall.as_secs_f64(),
            self.wall.as_secs_f64() * 1e6 / n as f64,
            per(self.ticks[0]),
        );
        for (i, server) in servers.iter().enumerate() {
            match self.pids[i + 1] {
                Some(_) => line.push_str(&format!(
                    " {server}_cpu_us_per_msg={:.1}",
                    per(self.ticks[i + 1])
                )),
                None => line.push_str(&format!(" {server}_cpu_us_per_msg=n/a")),
            }
        }
        println!("{line}");
    }
}

fn message(payload: &Bytes) -> Envelope {
    Envelope::new(payload.clone())
        .with_header("traceparent", TRACEPARENT)
        .unwrap()
}

/// Runs `bridge` until it has forwarded `target` messages in all and holds none; returns
/// the moment that was seen (the bridge's own wind-down, up to one fetch wait, is not
/// counted).
async fn bridge_until<S: Broker, D: Broker>(bridge: &Bridge<'_, S, D>, target: u64) -> Instant {
    let mut done = None;
    let stop = async {
        loop {
            let stats = bridge.stats();
            if stats.forwarded >= target && stats.in_flight == 0 {
                done = Some(Instant::now());
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let stats = bridge.run(stop).await.unwrap();
    assert_eq!((stats.failed, stats.retried), (0, 0), "{stats:?}");
    done.unwrap()
}

// ---- MQTT -> NATS JetStream ----

struct RawMqtt {
    client: rumqttc::v5::AsyncClient,
    incoming: tokio::sync::mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Publish>,
    driver: tokio::task::JoinHandle<()>,
}

/// A raw consumer of the adapter's queue topic `topic`, as the adapter's own: persistent
/// session, shared subscription, manual acks, receive maximum 256.
async fn raw_mqtt_consumer(url: &str, client_id: &str, group: &str, topic: &str) -> RawMqtt {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions as Options};
    let address = url
        .trim_start_matches("mqtt://")
        .trim_start_matches("tcp://")
        .trim_end_matches('/');
    let (host, port) = address.rsplit_once(':').unwrap_or((address, "1883"));
    let mut options = Options::new(client_id, host, port.parse().unwrap());
    options.set_max_packet_size(Some(4 * 1024 * 1024));
    options.set_receive_maximum(Some(256));
    options.set_manual_acks(true);
    options.set_clean_start(false);
    options.set_session_expiry_interval(Some(120));
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let (tx, incoming) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    let driver = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(p);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed_tx.take() {
                        let _ = s.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("raw MQTT consumer: {e}"),
            }
        }
    });
    client
        .subscribe(format!("$share/{group}/{topic}"), QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .unwrap()
        .unwrap();
    RawMqtt {
        client,
        incoming,
        driver,
    }
}

/// The raw loop: up to `BATCH` received messages, each published to JetStream, every
/// acknowledgement awaited, then each PUBACKed; until `n` messages went across.
async fn raw_mqtt_to_nats(
    raw: &mut RawMqtt,
    js: &async_nats::jetstream::Context,
    subject: &str,
    n: usize,
) -> Instant {
    let mut moved = 0;
    while moved < n {
        let mut got = vec![raw.incoming.recv().await.unwrap()];
        while got.len() < BATCH {
            match raw.incoming.try_recv() {
                Ok(p) => got.push(p),
                Err(_) => break,
            }
        }
        let mut acks = Vec::with_capacity(got.len());
        for p in &got {
            let mut headers = async_nats::HeaderMap::new();
            if let Some(props) = &p.properties {
                for (name, value) in &props.user_properties {
                    if name == "bk-id" {
                        headers.insert("Nats-Msg-Id", value.as_str());
                    }
                    headers.insert(name.as_str(), value.as_str());
                }
            }
            acks.push(
                js.publish_with_headers(subject.to_owned(), headers, p.payload.clone())
                    .await
                    .unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }
        for p in &got {
            raw.client.ack(p).await.unwrap();
        }
        moved += got.len();
    }
    Instant::now()
}

async fn mqtt_to_nats(mqtt_url: &str, nats_url: &str, n: usize, runs: usize) {
    let pid = std::process::id();
    let servers = ["mosquitto", "nats-server"];
    let payload = Bytes::from(vec![b'x'; SIZE]);
    let rounds = n.div_ceil(MQTT_ROUND);
    let options = MqttOptions::default().session_expiry(Duration::from_secs(300));
    let mqtt_prefix = format!("m2nbench/{pid}");
    let source = MqttBroker::connect_with(mqtt_url, &mqtt_prefix, options.clone())
        .await
        .unwrap();
    let devices = MqttBroker::connect_with(mqtt_url, &mqtt_prefix, options)
        .await
        .unwrap();
    let nats_prefix = format!("m2nbench_{pid}_");
    let destination = NatsBroker::connect(nats_url, &nats_prefix).await.unwrap();
    let route = Route::to_queue("m2n", "m2n-out");
    source
        .declare("m2n", route.get_source_config())
        .await
        .unwrap();
    let bridge = Bridge::new(&source, &destination).route(route);

    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
    let raw_subject = format!("m2nbench.raw.{pid}");
    let raw_stream = format!("M2NRAW_{pid}");
    let stream = js
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: raw_stream.clone(),
            subjects: vec![raw_subject.clone()],
            retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut raw = raw_mqtt_consumer(
        mqtt_url,
        &format!("m2nbench-{pid}-raw"),
        "raw",
        &devices.queue_topic("raw"),
    )
    .await;

    for run in 0..runs {
        let bridge_first = run % 2 == 0;
        for side in 0..2 {
            let is_bridge = (side == 0) == bridge_first;
            let mut meter = Meter::new(&servers);
            for round in 0..rounds {
                let count = MQTT_ROUND.min(n - round * MQTT_ROUND);
                let queue = if is_bridge { "m2n" } else { "raw" };
                let batch = (0..count).map(|_| message(&payload)).collect();
                devices.publish_batch(queue, batch).await.unwrap();
                if is_bridge {
                    let target = bridge.stats().forwarded + count as u64;
                    meter.time(bridge_until(&bridge, target)).await;
                } else {
                    meter
                        .time(raw_mqtt_to_nats(&mut raw, &js, &raw_subject, count))
                        .await;
                }
            }
            if is_bridge {
                let stored = destination.pending("m2n-out").await.unwrap();
                assert_eq!(stored, n * (run + 1), "every message across, once");
                meter.report("mqtt->nats side=bridge", run, n, &servers);
            } else {
                let stored = js
                    .get_stream(&raw_stream)
                    .await
                    .unwrap()
                    .info()
                    .await
                    .unwrap()
                    .state
                    .messages;
                assert_eq!(stored as usize, n * (run + 1), "every message across, once");
                meter.report("mqtt->nats side=raw", run, n, &servers);
            }
        }
    }
    drop(stream);
    raw.driver.abort();
    destination.delete_streams().await.unwrap();
    js.delete_stream(&raw_stream).await.unwrap();
    source.delete_sessions().await.unwrap();
    source.close().await;
    devices.close().await;
}

// ---- RabbitMQ -> Redis Streams ----

/// The text of a headers-table value the adapter writes (long strings), or its debug form.
fn amqp_text(value: &lapin::types::AMQPValue) -> Vec<u8> {
    match value {
        lapin::types::AMQPValue::LongString(s) => s.as_bytes().to_vec(),
        other => format!("{other:?}").into_bytes(),
    }
}

/// The raw loop: a delivery awaited, up to `BATCH` in all taken without waiting, one
/// pipeline of `XADD`s awaited, then a `basic.ack` per delivery, joined; until `n`
/// messages went across.
async fn raw_amqp_to_redis(
    consumer: &mut lapin::Consumer,
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    n: usize,
) -> Instant {
    use futures_util::FutureExt;
    let mut moved = 0;
    while moved < n {
        let mut got = vec![consumer.next().await.unwrap().unwrap()];
        while got.len() < BATCH {
            match consumer.next().now_or_never() {
                Some(Some(d)) => got.push(d.unwrap()),
                _ => break,
            }
        }
        let mut pipe = redis::pipe();
        for d in &got {
            let xadd = pipe.cmd("XADD").arg(key).arg("*");
            if let Some(headers) = d.properties.headers() {
                for (name, value) in headers.inner() {
                    xadd.arg(name.as_str()).arg(amqp_text(value));
                }
            }
            xadd.arg("p").arg(d.data.as_slice()).ignore();
        }
        let () = pipe.query_async(conn).await.unwrap();
        let acked = futures_util::future::join_all(
            got.iter()
                .map(|d| d.acker.ack(lapin::options::BasicAckOptions::default())),
        )
        .await;
        assert!(acked.iter().all(Result::is_ok));
        moved += got.len();
    }
    Instant::now()
}

async fn amqp_to_redis(amqp_url: &str, redis_url: &str, n: usize, runs: usize) {
    let pid = std::process::id();
    let servers = ["beam.smp", "redis-server"];
    let payload = Bytes::from(vec![b'x'; SIZE]);
    let amqp_prefix = format!("a2rbench{pid}.");
    let source = AmqpBroker::connect(amqp_url, &amqp_prefix).await.unwrap();
    let publisher = AmqpBroker::connect(amqp_url, &amqp_prefix).await.unwrap();
    let redis_prefix = format!("a2rbench-{pid}:");
    let destination = RedisBroker::connect(redis_url, &redis_prefix)
        .await
        .unwrap();
    let route = Route::to_queue("a2r", "a2r-out");
    source
        .declare("a2r", route.get_source_config())
        .await
        .unwrap();
    for (queue, config) in [
        ("a2r", route.get_source_config()),
        ("raw", &QueueConfig::default()),
    ] {
        publisher.declare(queue, config).await.unwrap();
    }
    let bridge = Bridge::new(&source, &destination).route(route);

    let connection = lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_qos(BATCH as u16, lapin::options::BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            publisher.queue_name("raw").as_str().into(),
            "rawbench".into(),
            lapin::options::BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let raw_key = format!("{redis_prefix}raw");

    for run in 0..runs {
        let bridge_first = run % 2 == 0;
        for side in 0..2 {
            let is_bridge = (side == 0) == bridge_first;
            let queue = if is_bridge { "a2r" } else { "raw" };
            for chunk in 0..n.div_ceil(1000) {
                let count = 1000.min(n - chunk * 1000);
                let batch = (0..count).map(|_| message(&payload)).collect();
                publisher.publish_batch(queue, batch).await.unwrap();
            }
            let mut meter = Meter::new(&servers);
            if is_bridge {
                let target = bridge.stats().forwarded + n as u64;
                meter.time(bridge_until(&bridge, target)).await;
                let stored = destination.pending("a2r-out").await.unwrap();
                assert_eq!(stored, n * (run + 1), "every message across, once");
                meter.report("amqp->redis side=bridge", run, n, &servers);
            } else {
                meter
                    .time(raw_amqp_to_redis(&mut consumer, &mut conn, &raw_key, n))
                    .await;
                let stored: usize = redis::cmd("XLEN")
                    .arg(&raw_key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(stored, n * (run + 1), "every message across, once");
                meter.report("amqp->redis side=raw", run, n, &servers);
            }
        }
    }
    let _ = connection.close(200, "done".into()).await;
    source.delete_topology().await.unwrap();
    publisher.delete_topology().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{redis_prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

fn main() {
    // `cargo bench` adds `--bench`.
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let which = args.next().unwrap_or_else(|| "all".to_owned());
    let n: usize = args.next().map_or(20_000, |a| a.parse().unwrap());
    let runs: usize = args.next().map_or(3, |a| a.parse().unwrap());
    let var = |name: &str| std::env::var(name).ok();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = rt.enter();
    if matches!(which.as_str(), "all" | "mqtt-nats") {
        match (var("MQTT_URL"), var("NATS_URL")) {
            (Some(mqtt), Some(nats)) => rt.block_on(mqtt_to_nats(&mqtt, &nats, n, runs)),
            _ => println!("skipped mqtt->nats: MQTT_URL or NATS_URL is not set"),
        }
    }
    if matches!(which.as_str(), "all" | "amqp-redis") {
        match (var("AMQP_URL"), var("REDIS_URL")) {
            (Some(amqp), Some(redis)) => rt.block_on(amqp_to_redis(&amqp, &redis, n, runs)),
            _ => println!("skipped amqp->redis: AMQP_URL or REDIS_URL is not set"),
        }
    }
}
