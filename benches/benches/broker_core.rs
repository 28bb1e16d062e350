//! broker-core's embedded broker beside a raw `tokio::sync::mpsc` channel, in one run: the
//! cost of handing one message from a producer to a consumer. Per message, the broker makes
//! an envelope (a UUIDv7 id and a timestamp), queues it, delivers it with an ack deadline
//! and removes it on ack; the channel only moves the payload, so it is the floor.
//! Everything runs on one thread (futures polled once: nothing in the embedded broker
//! waits when a message is ready).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backend_kit_benches::proc::{cpu_ticks, pid_of};
use std::hint::black_box;
use std::time::Duration;

use broker_core::{Broker, EmbeddedBroker, Envelope, QueueConfig, Settlement};
use bytes::Bytes;
use criterion::{Criterion, Throughput};
use futures_util::FutureExt;

const MESSAGES: usize = 1024;
const BATCH: usize = 64;

fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("the embedded broker does not wait for ready messages")
}

fn broker() -> EmbeddedBroker {
    let broker = EmbeddedBroker::new();
    ready(broker.declare("q", &QueueConfig::default())).unwrap();
    broker
}

/// Publish one, fetch one, ack it: the latency path.
fn one_by_one(broker: &EmbeddedBroker, payload: &Bytes) {
    for _ in 0..MESSAGES {
        ready(broker.publish("q", Envelope::new(payload.clone()))).unwrap();
        let got = ready(broker.fetch("q", "c", 1, Duration::ZERO)).unwrap();
        for d in &got {
            black_box(d.envelope.payload());
            ready(broker.settle(d, Settlement::Ack)).unwrap();
        }
    }
}

/// Publish 1024, then fetch and ack 64 at a time: the throughput path.
fn batched(broker: &EmbeddedBroker, payload: &Bytes) {
    for _ in 0..MESSAGES {
        ready(broker.publish("q", Envelope::new(payload.clone()))).unwrap();
    }
    let mut seen = 0;
    while seen < MESSAGES {
        let got = ready(broker.fetch("q", "c", BATCH, Duration::ZERO)).unwrap();
        seen += got.len();
        for d in &got {
            black_box(d.envelope.payload());
            ready(broker.settle(d, Settlement::Ack)).unwrap();
        }
    }
}

/// Publish 1024 in batches of 64 (`publish_batch`), then fetch 64 at a time and ack each
/// fetched batch with one `settle_batch`: the batch API, one lock per 64 messages.
fn batch_api(broker: &EmbeddedBroker, payload: &Bytes) {
    batch_api_with(broker, payload, |payload| {
        (0..BATCH).map(|_| Envelope::new(payload.clone())).collect()
    });
}

/// As `batch_api`, each batch's envelopes made by `Envelope::batch` (one clock read for
/// their ids and timestamps) instead of `Envelope::new` one at a time.
fn batch_api_batch_ids(broker: &EmbeddedBroker, payload: &Bytes) {
    batch_api_with(broker, payload, |payload| {
        Envelope::batch((0..BATCH).map(|_| payload.clone()))
    });
}

fn batch_api_with(
    broker: &EmbeddedBroker,
    payload: &Bytes,
    make: impl Fn(&Bytes) -> Vec<Envelope>,
) {
    for _ in 0..MESSAGES / BATCH {
        ready(broker.publish_batch("q", make(payload))).unwrap();
    }
    let mut seen = 0;
    while seen < MESSAGES {
        let got = ready(broker.fetch("q", "c", BATCH, Duration::ZERO)).unwrap();
        seen += got.len();
        for d in &got {
            black_box(d.envelope.payload());
        }
        for settled in ready(broker.settle_batch(&got, Settlement::Ack)) {
            settled.unwrap();
        }
    }
}

fn mpsc_one_by_one(payload: &Bytes) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(BATCH);
    for _ in 0..MESSAGES {
        tx.try_send(payload.clone()).unwrap();
        black_box(rx.try_recv().unwrap());
    }
}

fn mpsc_batched(payload: &Bytes) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(MESSAGES);
    for _ in 0..MESSAGES {
        tx.try_send(payload.clone()).unwrap();
    }
    for _ in 0..MESSAGES {
        black_box(rx.try_recv().unwrap());
    }
}

fn handoff(c: &mut Criterion) {
    for size in [16usize, 1024] {
        let payload = Bytes::from(vec![b'x'; size]);
        let mut group = c.benchmark_group(format!("broker_core/handoff_{size}B"));
        group.throughput(Throughput::Elements(MESSAGES as u64));
        let ours = broker();
        // Check once that every message comes through before timing.
        batched(&ours, &payload);
        batch_api(&ours, &payload);
        let stats = ours.stats("q").unwrap();
        assert_eq!((stats.ready, stats.in_flight), (0, 0));
        group.bench_function("embedded_one_by_one", |b| {
            b.iter(|| one_by_one(&ours, &payload))
        });
        group.bench_function("mpsc_one_by_one", |b| b.iter(|| mpsc_one_by_one(&payload)));
        group.bench_function("embedded_batch64", |b| b.iter(|| batched(&ours, &payload)));
        group.bench_function("embedded_batch64_api", |b| {
            b.iter(|| batch_api(&ours, &payload))
        });
        group.bench_function("embedded_batch64_api_batch_ids", |b| {
            b.iter(|| batch_api_batch_ids(&ours, &payload))
        });
        group.bench_function("mpsc_batch", |b| b.iter(|| mpsc_batched(&payload)));
        group.finish();
    }
}

// ---- Over the network: the adapters beside the raw clients, on the machine's servers ----

/// Messages per round trip of the network benches: published concurrently (pipelined),
/// then fetched `BATCH` at a time and acked concurrently.
const ROUND: usize = 1000;
const BATCH_NET: usize = 100;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `rounds` rounds of `ROUND` messages and prints wall time and CPU per message of
/// this process and of the server.
fn measure_cpu<'a>(
    label: &str,
    server: &str,
    rt: &tokio::runtime::Runtime,
    rounds: usize,
    per_round: usize,
    mut round: impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>,
) {
    let server_pid = pid_of(server);
    let before = (cpu_ticks("self"), server_pid.as_deref().and_then(cpu_ticks));
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        rt.block_on(round());
    }
    let wall = start.elapsed();
    let after = (cpu_ticks("self"), server_pid.as_deref().and_then(cpu_ticks));
    let n = (rounds * per_round) as f64;
    let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2} us", (b - a) as f64 * 10_000.0 / n),
        _ => "n/a".into(),
    };
    println!(
        "cpu {label}: {n} messages, wall {:.2} us/msg, client cpu {}/msg, {server} cpu {}/msg",
        wall.as_secs_f64() * 1e6 / n,
        per(before.0, after.0),
        per(before.1, after.1),
    );
}

/// The adapter's round: publishes issued together (each awaits its confirmation, so they
/// pipeline), then fetch `BATCH_NET` at a time and ack each batch together.
async fn adapter_round<B: Broker>(broker: &B, queue: &str, payload: &Bytes) {
    adapter_round_n(broker, queue, payload, ROUND, Duration::ZERO).await;
}

/// [`adapter_round`] with `n` messages, fetching with `wait` (a push-based backend such
/// as MQTT hands messages to the client as they arrive, so a fetch waits for them).
async fn adapter_round_n<B: Broker>(
    broker: &B,
    queue: &str,
    payload: &Bytes,
    n: usize,
    wait: Duration,
) {
    let published = futures_util::future::join_all(
        (0..n).map(|_| broker.publish(queue, Envelope::new(payload.clone()))),
    )
    .await;
    assert!(published.iter().all(Result::is_ok));
    let mut seen = 0;
    while seen < n {
        let got = broker.fetch(queue, "c", BATCH_NET, wait).await.unwrap();
        for d in &got {
            black_box(d.envelope.payload());
        }
        let settled =
            futures_util::future::join_all(got.iter().map(|d| broker.settle(d, Settlement::Ack)))
                .await;
        assert!(settled.iter().all(Result::is_ok));
        seen += got.len();
    }
}

/// The batch API's round: one `publish_batch` of `ROUND` messages, then fetch
/// `BATCH_NET` at a time and ack each batch with one `settle_batch`.
async fn adapter_batch_round<B: Broker>(broker: &B, queue: &str, payload: &Bytes) {
    adapter_batch_round_n(broker, queue, payload, ROUND, Duration::ZERO).await;
}

/// [`adapter_batch_round`] with `n` messages, fetching with `wait`.
async fn adapter_batch_round_n<B: Broker>(
    broker: &B,
    queue: &str,
    payload: &Bytes,
    n: usize,
    wait: Duration,
) {
    let envelopes = (0..n).map(|_| Envelope::new(payload.clone())).collect();
    broker.publish_batch(queue, envelopes).await.unwrap();
    let mut seen = 0;
    while seen < n {
        let got = broker.fetch(queue, "c", BATCH_NET, wait).await.unwrap();
        for d in &got {
            black_box(d.envelope.payload());
        }
        let settled = broker.settle_batch(&got, Settlement::Ack).await;
        assert!(settled.iter().all(Result::is_ok));
        seen += got.len();
    }
}

async fn nats_raw(
    js: &async_nats::jetstream::Context,
    consumer: &async_nats::jetstream::consumer::PullConsumer,
    subject: &str,
    payload: &Bytes,
) {
    use futures_util::StreamExt;
    let mut acks = Vec::with_capacity(ROUND);
    for _ in 0..ROUND {
        // The same dedup header the adapter sets; the adapter also sends its id, attempt
        // and publication time.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            broker_core::MessageId::new().to_string().as_str(),
        );
        acks.push(
            js.publish_with_headers(subject.to_owned(), headers, payload.clone())
                .await
                .unwrap(),
        );
    }
    let acks = acks.into_iter().map(std::future::IntoFuture::into_future);
    for ack in futures_util::future::join_all(acks).await {
        ack.unwrap();
    }
    let mut seen = 0;
    while seen < ROUND {
        let mut batch = consumer
            .fetch()
            .max_messages(BATCH_NET)
            .messages()
            .await
            .unwrap();
        let mut got = Vec::with_capacity(BATCH_NET);
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            black_box(&m.payload);
            got.push(m);
        }
        let acked = futures_util::future::join_all(got.iter().map(|m| m.ack())).await;
        assert!(acked.iter().all(Result::is_ok));
        seen += got.len();
    }
}

fn nats_bench(c: &mut Criterion) {
    let Ok(url) = std::env::var("NATS_URL") else {
        println!("skipped: NATS_URL is not set");
        return;
    };
    let rt = runtime();
    // The JetStream context spawns on the current runtime.
    let _entered = rt.enter();
    let prefix = format!("bench_{}_", std::process::id());
    let broker = rt
        .block_on(broker_core::NatsBroker::connect(&url, &prefix))
        .unwrap();
    rt.block_on(broker.declare("ours", &QueueConfig::default()))
        .unwrap();
    let client = rt.block_on(async_nats::connect(&url)).unwrap();
    let js = async_nats::jetstream::new(client);
    let subject = format!("bench.raw.{}", std::process::id());
    let raw_stream = format!("RAW_{}", std::process::id());
    let consumer: async_nats::jetstream::consumer::PullConsumer = rt.block_on(async {
        let stream = js
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: raw_stream.clone(),
                subjects: vec![subject.clone()],
                retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .unwrap();
        stream
            .get_or_create_consumer(
                "bk",
                async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some("bk".into()),
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    });
    let payload = Bytes::from(vec![b'x'; 16]);
    let mut group = c.benchmark_group("broker_core/nats_publish_consume_16B");
    group.throughput(Throughput::Elements(ROUND as u64));
    group.sample_size(10);
    group.bench_function("adapter", |b| {
        b.iter(|| rt.block_on(adapter_round(&broker, "ours", &payload)))
    });
    group.bench_function("adapter_batch_api", |b| {
        b.iter(|| rt.block_on(adapter_batch_round(&broker, "ours", &payload)))
    });
    group.bench_function("raw_async_nats", |b| {
        b.iter(|| rt.block_on(nats_raw(&js, &consumer, &subject, &payload)))
    });
    group.finish();
    measure_cpu("nats adapter", "nats-server", &rt, 20, ROUND, || {
        Box::pin(adapter_round(&broker, "ours", &payload))
    });
    measure_cpu(
        "nats adapter batch api",
        "nats-server",
        &rt,
        20,
        ROUND,
        || Box::pin(adapter_batch_round(&broker, "ours", &payload)),
    );
    measure_cpu("nats raw", "nats-server", &rt, 20, ROUND, || {
        Box::pin(nats_raw(&js, &consumer, &subject, &payload))
    });
    rt.block_on(async {
        broker.delete_streams().await.unwrap();
        js.delete_stream(&raw_stream).await.unwrap();
    });
}

/// Pipelined XADD, XREADGROUP, and pipelined XACKs + one XDEL (the adapter deletes acked
/// entries too, so the stream does not grow).
async fn redis_raw(conn: &mut redis::aio::MultiplexedConnection, key: &str, payload: &Bytes) {
    let mut pipe = redis::pipe();
    for _ in 0..ROUND {
        pipe.cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("p")
            .arg(payload.as_ref())
            .ignore();
    }
    let () = pipe.query_async(conn).await.unwrap();
    let mut seen = 0;
    while seen < ROUND {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(BATCH_NET)
            .arg("STREAMS")
            .arg(key)
            .arg(">")
            .query_async(conn)
            .await
            .unwrap();
        // The adapter's acks, as plain commands: an XACK per entry (its reply says
        // whether the entry was still pending) and one XDEL of the batch (the adapter
        // wraps the same commands in MULTI/EXEC).
        let mut pipe = redis::pipe();
        let mut xdel = redis::cmd("XDEL");
        xdel.arg(key);
        for stream in &reply.keys {
            for entry in &stream.ids {
                black_box(entry.map.get("p"));
                pipe.cmd("XACK").arg(key).arg("g").arg(&entry.id).ignore();
                xdel.arg(&entry.id);
                seen += 1;
            }
        }
        pipe.add_command(xdel).ignore();
        let () = pipe.query_async(conn).await.unwrap();
    }
}

fn redis_bench(c: &mut Criterion) {
    let Ok(url) = std::env::var("REDIS_URL") else {
        println!("skipped: REDIS_URL is not set");
        return;
    };
    let rt = runtime();
    let prefix = format!("bench-{}:", std::process::id());
    let broker = rt
        .block_on(broker_core::RedisBroker::connect(&url, &prefix))
        .unwrap();
    rt.block_on(broker.declare("ours", &QueueConfig::default()))
        .unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let key = format!("{prefix}raw");
    rt.block_on(async {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg("g")
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await
            .unwrap();
    });
    let payload = Bytes::from(vec![b'x'; 16]);
    let mut group = c.benchmark_group("broker_core/redis_publish_consume_16B");
    group.throughput(Throughput::Elements(ROUND as u64));
    group.sample_size(10);
    group.bench_function("adapter", |b| {
        b.iter(|| rt.block_on(adapter_round(&broker, "ours", &payload)))
    });
    group.bench_function("adapter_batch_api", |b| {
        b.iter(|| rt.block_on(adapter_batch_round(&broker, "ours", &payload)))
    });
    group.bench_function("raw_redis_pipelined", |b| {
        b.iter(|| rt.block_on(redis_raw(&mut conn.clone(), &key, &payload)))
    });
    group.finish();
    measure_cpu("redis adapter", "redis-server", &rt, 20, ROUND, || {
        Box::pin(adapter_round(&broker, "ours", &payload))
    });
    measure_cpu(
        "redis adapter batch api",
        "redis-server",
        &rt,
        20,
        ROUND,
        || Box::pin(adapter_batch_round(&broker, "ours", &payload)),
    );
    let raw_conn = conn.clone();
    measure_cpu("redis raw", "redis-server", &rt, 20, ROUND, || {
        let mut conn = raw_conn.clone();
        let key = key.clone();
        let payload = payload.clone();
        Box::pin(async move { redis_raw(&mut conn, &key, &payload).await })
    });
    rt.block_on(async {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
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
    });
}

/// Raw lapin: publishes with confirms on a confirm-mode channel (to the default exchange,
/// `mandatory`, persistent, a `message-id` per message: what the adapter sets besides its
/// headers table), all sent before any confirm is awaited, the confirms awaited together; then a long-lived consumer with
/// `basic.qos` `BATCH_NET` takes `BATCH_NET` deliveries at a time and acks each batch.
async fn amqp_raw(
    channel: &lapin::Channel,
    mut consumer: lapin::Consumer,
    queue: &lapin::types::ShortString,
    payload: &Bytes,
) {
    use futures_util::StreamExt;
    // All publishes framed at once (pipelined), then every confirm awaited together.
    let published = futures_util::future::join_all((0..ROUND).map(|_| {
        let props = lapin::BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(broker_core::MessageId::new().to_string().into());
        channel.basic_publish(
            "".into(),
            queue.clone(),
            lapin::options::BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            payload,
            props,
        )
    }))
    .await;
    let confirms = published.into_iter().map(Result::unwrap);
    for confirm in futures_util::future::join_all(confirms).await {
        assert!(matches!(confirm.unwrap(), lapin::Confirmation::Ack(None)));
    }
    let mut seen = 0;
    while seen < ROUND {
        let mut got = Vec::with_capacity(BATCH_NET);
        while got.len() < BATCH_NET && seen + got.len() < ROUND {
            let delivery = consumer.next().await.unwrap().unwrap();
            black_box(&delivery.data);
            got.push(delivery);
        }
        let acked = futures_util::future::join_all(
            got.iter()
                .map(|d| d.acker.ack(lapin::options::BasicAckOptions::default())),
        )
        .await;
        assert!(acked.iter().all(Result::is_ok));
        seen += got.len();
    }
}

fn amqp_bench(c: &mut Criterion) {
    let Ok(url) = std::env::var("AMQP_URL") else {
        println!("skipped: AMQP_URL is not set");
        return;
    };
    let rt = runtime();
    let _entered = rt.enter();
    let prefix = format!("bench{}.", std::process::id());
    let broker = rt
        .block_on(broker_core::AmqpBroker::connect(&url, &prefix))
        .unwrap();
    rt.block_on(broker.declare("ours", &QueueConfig::default()))
        .unwrap();
    let queue: lapin::types::ShortString = format!("{prefix}raw").as_str().into();
    let (connection, channel, consumer) = rt.block_on(async {
        let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .unwrap();
        channel
            .queue_declare(
                queue.clone(),
                lapin::options::QueueDeclareOptions::durable(),
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        let consume = connection.create_channel().await.unwrap();
        consume
            .basic_qos(BATCH_NET as u16, lapin::options::BasicQosOptions::default())
            .await
            .unwrap();
        let consumer = consume
            .basic_consume(
                queue.clone(),
                "bench".into(),
                lapin::options::BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        (connection, channel, consumer)
    });
    let payload = Bytes::from(vec![b'x'; 16]);
    let mut group = c.benchmark_group("broker_core/amqp_publish_consume_16B");
    group.throughput(Throughput::Elements(ROUND as u64));
    group.sample_size(10);
    group.bench_function("adapter", |b| {
        b.iter(|| rt.block_on(adapter_round(&broker, "ours", &payload)))
    });
    group.bench_function("adapter_batch_api", |b| {
        b.iter(|| rt.block_on(adapter_batch_round(&broker, "ours", &payload)))
    });
    group.bench_function("raw_lapin", |b| {
        b.iter(|| rt.block_on(amqp_raw(&channel, consumer.clone(), &queue, &payload)))
    });
    group.finish();
    measure_cpu("amqp adapter", "beam.smp", &rt, 20, ROUND, || {
        Box::pin(adapter_round(&broker, "ours", &payload))
    });
    measure_cpu("amqp adapter batch api", "beam.smp", &rt, 20, ROUND, || {
        Box::pin(adapter_batch_round(&broker, "ours", &payload))
    });
    measure_cpu("amqp raw", "beam.smp", &rt, 20, ROUND, || {
        Box::pin(amqp_raw(&channel, consumer.clone(), &queue, &payload))
    });
    rt.block_on(async {
        broker.delete_topology().await.unwrap();
        channel
            .queue_delete(queue.clone(), lapin::options::QueueDeleteOptions::default())
            .await
            .unwrap();
        let _ = connection.close(200, "done".into()).await;
    });
}

/// Messages per round of the MQTT benches: Mosquitto keeps at most 1,000 queued QoS 1
/// messages per session by default (`max_queued_messages`) and drops the rest, and a
/// round publishes all of its messages before it consumes them.
const ROUND_MQTT: usize = 500;

/// The two raw rumqttc connections (MQTT 5) and what their event loops forward.
struct MqttRaw {
    publisher: rumqttc::v5::AsyncClient,
    /// One item per PUBACK the publisher received.
    pubacks: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<()>>,
    consumer: rumqttc::v5::AsyncClient,
    incoming: tokio::sync::Mutex<
        tokio::sync::mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Publish>,
    >,
    topic: String,
}

/// Raw rumqttc at QoS 1: `ROUND_MQTT` publishes (one user property, a message id, as the
/// adapter's `bk-id`), every PUBACK awaited; the consumer (persistent session, shared
/// subscription, manual acks, as the adapter's) takes what has arrived, up to
/// `BATCH_NET`, and PUBACKs each.
async fn mqtt_raw(raw: &MqttRaw, payload: &Bytes) {
    use rumqttc::v5::mqttbytes::QoS;
    for _ in 0..ROUND_MQTT {
        let mut props = rumqttc::v5::mqttbytes::v5::PublishProperties::default();
        props
            .user_properties
            .push(("id".into(), broker_core::MessageId::new().to_string()));
        raw.publisher
            .publish_with_properties(
                raw.topic.as_str(),
                QoS::AtLeastOnce,
                false,
                payload.clone(),
                props,
            )
            .await
            .unwrap();
    }
    {
        let mut pubacks = raw.pubacks.lock().await;
        for _ in 0..ROUND_MQTT {
            pubacks.recv().await.unwrap();
        }
    }
    let mut incoming = raw.incoming.lock().await;
    let mut seen = 0;
    while seen < ROUND_MQTT {
        let mut got = vec![incoming.recv().await.unwrap()];
        while got.len() < BATCH_NET {
            match incoming.try_recv() {
                Ok(p) => got.push(p),
                Err(_) => break,
            }
        }
        for p in &got {
            black_box(&p.payload);
            raw.consumer.ack(p).await.unwrap();
        }
        seen += got.len();
    }
}

fn mqtt_raw_connect(url: &str, pid: u32) -> MqttRaw {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let address = url
        .trim_start_matches("mqtt://")
        .trim_start_matches("tcp://")
        .trim_end_matches('/');
    let (host, port) = address.rsplit_once(':').unwrap_or((address, "1883"));
    let port: u16 = port.parse().unwrap();
    let options = |id: String| {
        let mut o = MqttOptions::new(id, host, port);
        o.set_max_packet_size(Some(4 * 1024 * 1024));
        o.set_receive_maximum(Some(256));
        o
    };
    let (publisher, mut publisher_loop) =
        AsyncClient::new(options(format!("bench-{pid}-raw-p")), 64);
    let (ack_tx, pubacks) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match publisher_loop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    let _ = ack_tx.send(());
                }
                Ok(_) => {}
                Err(e) => panic!("raw MQTT publisher: {e}"),
            }
        }
    });
    let mut consumer_options = options(format!("bench-{pid}-raw-c"));
    consumer_options.set_manual_acks(true);
    consumer_options.set_clean_start(false);
    consumer_options.set_session_expiry_interval(Some(60));
    let (consumer, mut consumer_loop) = AsyncClient::new(consumer_options, 64);
    let (tx, incoming) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match consumer_loop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(p);
                }
                Ok(_) => {}
                Err(e) => panic!("raw MQTT consumer: {e}"),
            }
        }
    });
    let topic = format!("bench/{pid}/raw");
    MqttRaw {
        publisher,
        pubacks: tokio::sync::Mutex::new(pubacks),
        consumer,
        incoming: tokio::sync::Mutex::new(incoming),
        topic,
    }
    .subscribed(QoS::AtLeastOnce)
}

impl MqttRaw {
    fn subscribed(self, qos: rumqttc::v5::mqttbytes::QoS) -> Self {
        // Sent when the runtime next runs the event loop; the caller waits for the SUBACK.
        self.consumer
            .try_subscribe(format!("$share/raw/{}", self.topic), qos)
            .unwrap();
        self
    }
}

fn mqtt_bench(c: &mut Criterion) {
    let Ok(url) = std::env::var("MQTT_URL") else {
        println!("skipped: MQTT_URL is not set");
        return;
    };
    let rt = runtime();
    let _entered = rt.enter();
    let pid = std::process::id();
    let prefix = format!("bench/{pid}");
    let broker = rt
        .block_on(broker_core::MqttBroker::connect(&url, &prefix))
        .unwrap();
    rt.block_on(broker.declare("ours", &QueueConfig::default()))
        .unwrap();
    let raw = mqtt_raw_connect(&url, pid);
    // The SUBACK: nothing else to wait on without a handle on the event loop.
    rt.block_on(tokio::time::sleep(Duration::from_millis(500)));
    let payload = Bytes::from(vec![b'x'; 16]);
    let wait = Duration::from_secs(5);
    let mut group = c.benchmark_group("broker_core/mqtt_publish_consume_16B");
    group.throughput(Throughput::Elements(ROUND_MQTT as u64));
    group.sample_size(10);
    group.bench_function("adapter", |b| {
        b.iter(|| rt.block_on(adapter_round_n(&broker, "ours", &payload, ROUND_MQTT, wait)))
    });
    group.bench_function("adapter_batch_api", |b| {
        b.iter(|| {
            rt.block_on(adapter_batch_round_n(
                &broker, "ours", &payload, ROUND_MQTT, wait,
            ))
        })
    });
    group.bench_function("raw_rumqttc", |b| {
        b.iter(|| rt.block_on(mqtt_raw(&raw, &payload)))
    });
    group.finish();
    measure_cpu("mqtt adapter", "mosquitto", &rt, 20, ROUND_MQTT, || {
        Box::pin(adapter_round_n(&broker, "ours", &payload, ROUND_MQTT, wait))
    });
    measure_cpu(
        "mqtt adapter batch api",
        "mosquitto",
        &rt,
        20,
        ROUND_MQTT,
        || {
            Box::pin(adapter_batch_round_n(
                &broker, "ours", &payload, ROUND_MQTT, wait,
            ))
        },
    );
    measure_cpu("mqtt raw", "mosquitto", &rt, 20, ROUND_MQTT, || {
        Box::pin(mqtt_raw(&raw, &payload))
    });
    rt.block_on(async {
        broker.delete_sessions().await.unwrap();
        broker.close().await;
    });
}

criterion::criterion_group!(
    benches,
    handoff,
    nats_bench,
    redis_bench,
    amqp_bench,
    mqtt_bench
);
criterion::criterion_main!(benches);
