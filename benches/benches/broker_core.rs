//! broker-core's embedded broker beside a raw `tokio::sync::mpsc` channel, in one run: the
//! cost of handing one message from a producer to a consumer. Per message, the broker makes
//! an envelope (a UUIDv7 id and a timestamp), queues it, delivers it with an ack deadline
//! and removes it on ack; the channel only moves the payload, so it is the floor.
//! Everything runs on one thread (futures polled once: nothing in the embedded broker
//! waits when a message is ready).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use broker_core::{Broker, EmbeddedBroker, Envelope, QueueConfig, Settlement};
use bytes::Bytes;
use criterion::{Criterion, Throughput};
use futures_util::FutureExt;

const MESSAGES: usize = 1024;
const BATCH: usize = 64;

fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    future.now_or_never().expect("the embedded broker does not wait for ready messages")
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
        let stats = ours.stats("q").unwrap();
        assert_eq!((stats.ready, stats.in_flight), (0, 0));
        group.bench_function("embedded_one_by_one", |b| b.iter(|| one_by_one(&ours, &payload)));
        group.bench_function("mpsc_one_by_one", |b| b.iter(|| mpsc_one_by_one(&payload)));
        group.bench_function("embedded_batch64", |b| b.iter(|| batched(&ours, &payload)));
        group.bench_function("mpsc_batch", |b| b.iter(|| mpsc_batched(&payload)));
        group.finish();
    }
}

criterion::criterion_group!(benches, handoff);
criterion::criterion_main!(benches);
