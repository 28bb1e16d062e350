//! broker-core's embedded broker in durable mode (`EmbeddedBroker::open_with`,
//! `SyncPolicy::Batch`) beside the same broker in memory and beside raw `std::fs` writing
//! the same bytes with the same `fsync`s, in one run. Per round of 64 messages of 16
//! bytes: `publish_batch` (one `fsync`), one fetch of 64, `settle_batch` of the 64 acks
//! (one `fsync`). The raw peer appends 64 publish records, 64 delivery records (no
//! `fsync`) and 64 ack records of the journal's sizes, with `sync_data` after the
//! publishes and after the acks: the floor of the file work the journal does. The
//! journal lives in the bench's target directory (a real disk, not tmpfs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use broker_core::{
    Broker, EmbeddedBroker, Envelope, JournalOptions, QueueConfig, Settlement, SyncPolicy,
};
use bytes::Bytes;
use criterion::{Criterion, Throughput};
use futures_util::FutureExt;

const BATCH: usize = 64;
/// The journal's record sizes for a 16-byte payload, no headers, queue "q" (frame header
/// included): publish, delivered, ack.
const RECORDS: [usize; 3] = [61, 35, 31];

fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("the embedded broker does not wait for ready messages")
}

fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("bench-journal-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn round(broker: &EmbeddedBroker, payload: &Bytes) {
    let envelopes = (0..BATCH).map(|_| Envelope::new(payload.clone())).collect();
    ready(broker.publish_batch("q", envelopes)).unwrap();
    let got = ready(broker.fetch("q", "c", BATCH, Duration::ZERO)).unwrap();
    assert_eq!(got.len(), BATCH);
    for d in &got {
        black_box(d.envelope.payload());
    }
    for settled in ready(broker.settle_batch(&got, Settlement::Ack)) {
        settled.unwrap();
    }
}

struct RawLog {
    file: File,
    len: u64,
    chunks: [Vec<u8>; 3],
}

impl RawLog {
    fn round(&mut self) {
        let [publish, delivered, ack] = &self.chunks;
        self.file.write_all(publish).unwrap();
        self.file.sync_data().unwrap();
        self.file.write_all(delivered).unwrap();
        self.file.write_all(ack).unwrap();
        self.file.sync_data().unwrap();
        self.len += (publish.len() + delivered.len() + ack.len()) as u64;
        // The journal compacts at 64 MiB; start the raw file again there too.
        if self.len >= 64 << 20 {
            self.file.set_len(0).unwrap();
            self.len = 0;
        }
    }
}

fn durable(c: &mut Criterion) {
    let payload = Bytes::from(vec![7u8; 16]);
    let memory = EmbeddedBroker::new();
    ready(memory.declare("q", &QueueConfig::default())).unwrap();
    let dir = scratch("broker");
    let journaled =
        EmbeddedBroker::open_with(JournalOptions::new(&dir).sync(SyncPolicy::Batch)).unwrap();
    ready(journaled.declare("q", &QueueConfig::default())).unwrap();
    let raw_dir = scratch("raw");
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(raw_dir.join("raw.log"))
        .unwrap();
    let mut raw = RawLog {
        file,
        len: 0,
        chunks: RECORDS.map(|size| vec![0x5a; size * BATCH]),
    };

    let mut group = c.benchmark_group("broker_core/durable_batch64_16B");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("embedded_memory", |b| b.iter(|| round(&memory, &payload)));
    group.bench_function("embedded_journal_sync_batch", |b| {
        b.iter(|| round(&journaled, &payload));
    });
    group.bench_function("raw_fs_append_fsync", |b| b.iter(|| raw.round()));
    group.finish();
    drop(journaled);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&raw_dir);
}

criterion::criterion_group!(benches, durable);
criterion::criterion_main!(benches);
