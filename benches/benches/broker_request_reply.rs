//! Request/reply latency over NATS: broker-core's `NatsBroker::request` (the request is a
//! JetStream message on a queue, answered by a consumer with `Broker::reply`) beside raw
//! `async-nats` doing the same, on the machine's `nats-server` (`NATS_URL`).
//!
//! Run with: `source /tmp/testenv.sh; cargo bench --manifest-path
//! benches/Cargo.toml --bench broker_request_reply -- [REQUESTS] [RUNS]` (defaults 20,000 and 3).
//!
//! Sides, each with its requester and its responder on connections of their own, the
//! responder a task of this process (one thread, a current-thread runtime):
//!
//! - `adapter`: `Broker::request` with a 5 s timeout; the responder loops on `fetch`
//!   (one at a time, waiting up to 1 s), `reply`, `settle` (ack).
//! - `adapter_fetch16`: the same with the responder fetching up to 16 at a time with a
//!   100 ms wait (`Worker`'s defaults).
//! - `raw_jetstream`: the same path by hand: a subscription to a fresh inbox, a JetStream
//!   publish (waiting for the stream's acknowledgement) with the inbox in a `reply-to`
//!   header, the responder a pull consumer's `messages()` stream that publishes the reply
//!   and acks.
//! - `raw_jetstream_shared`: the same with one subscription to `<inbox>.*` made before
//!   timing, each request's `reply-to` a subject under it (how the adapter does it since
//!   issue 17).
//! - `raw_core`: `Client::request` on plain NATS (no stream, nothing stored), the
//!   responder a subscription that publishes each reply: the floor, with none of the
//!   at-least-once path.
//!
//! `SIDES` (comma-separated names) picks sides; all by default. Each cell: REQUESTS / 10
//! warm-up requests (at most `WARM_UP`), then REQUESTS sequential requests, each timed; p50, p99,
//! p99.9 and the mean, and the CPU time (user + system from /proc, 10 ms ticks) per
//! request of this process (requester and responder) and of `nats-server`. The sides take
//! turns within each run, in a different order each run. Prints one line per cell.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backend_kit_benches::proc::{cpu_ticks, pid_of};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use broker_core::{Broker, Envelope, NatsBroker, QueueConfig, Settlement};
use bytes::Bytes;
use futures_util::StreamExt;

const WARM_UP: usize = 2_000;
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Adapter,
    AdapterFetch16,
    RawJetStream,
    RawJetStreamShared,
    RawCore,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Adapter => "adapter",
            Side::AdapterFetch16 => "adapter_fetch16",
            Side::RawJetStream => "raw_jetstream",
            Side::RawJetStreamShared => "raw_jetstream_shared",
            Side::RawCore => "raw_core",
        }
    }
}

/// Everything one run needs: both sides' requesters (responders run as tasks).
struct Bench {
    ours: NatsBroker,
    js: async_nats::jetstream::Context,
    js_subject: String,
    /// `raw_jetstream_shared`: one subscription to `<inbox>.*` for every request.
    shared_inbox: String,
    shared_replies: tokio::sync::Mutex<async_nats::Subscriber>,
    next_token: std::cell::Cell<u64>,
    core: async_nats::Client,
    core_subject: String,
}

impl Bench {
    async fn one(&self, side: Side, payload: &Bytes) {
        match side {
            Side::Adapter | Side::AdapterFetch16 => {
                let queue = if side == Side::Adapter { "rr" } else { "rr16" };
                let reply = self
                    .ours
                    .request(queue, Envelope::new(payload.clone()), TIMEOUT)
                    .await
                    .unwrap();
                assert_eq!(reply.payload().len(), payload.len());
            }
            Side::RawJetStream => {
                let client = self.js.client();
                let inbox = client.new_inbox();
                let mut replies = client.subscribe(inbox.clone()).await.unwrap();
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("reply-to", inbox.as_str());
                self.js
                    .publish_with_headers(self.js_subject.clone(), headers, payload.clone())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                let reply = tokio::time::timeout(TIMEOUT, replies.next())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(reply.payload.len(), payload.len());
            }
            Side::RawJetStreamShared => {
                let token = self.next_token.get() + 1;
                self.next_token.set(token);
                let reply_to = format!("{}.{token}", self.shared_inbox);
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("reply-to", reply_to.as_str());
                self.js
                    .publish_with_headers(self.js_subject.clone(), headers, payload.clone())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                // Sequential requests: the next reply on the shared subscription is this
                // one's (checked by its subject).
                let mut replies = self.shared_replies.lock().await;
                let reply = tokio::time::timeout(TIMEOUT, replies.next())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(reply.subject.as_str(), reply_to);
                assert_eq!(reply.payload.len(), payload.len());
            }
            Side::RawCore => {
                let reply = tokio::time::timeout(
                    TIMEOUT,
                    self.core
                        .request(self.core_subject.clone(), payload.clone()),
                )
                .await
                .unwrap()
                .unwrap();
                assert_eq!(reply.payload.len(), payload.len());
            }
        }
    }

    /// Times `n` sequential requests; prints the percentiles and CPU per request.
    async fn cell(&self, side: Side, payload: &Bytes, n: usize, run: usize, server: Option<&str>) {
        for _ in 0..(n / 10).min(WARM_UP) {
            self.one(side, payload).await;
        }
        let mut times = Vec::with_capacity(n);
        let before = (cpu_ticks("self"), server.and_then(cpu_ticks));
        let start = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            self.one(side, payload).await;
            times.push(t.elapsed());
        }
        let wall = start.elapsed();
        let after = (cpu_ticks("self"), server.and_then(cpu_ticks));
        times.sort_unstable();
        let at = |q: f64| {
            let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
            times[i].as_secs_f64() * 1e6
        };
        let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.1}", (b - a) as f64 * 10_000.0 / n as f64),
            _ => "n/a".into(),
        };
        println!(
            "run={run} side={} size={} requests={n} p50_us={:.1} p99_us={:.1} p999_us={:.1} \
             mean_us={:.1} cpu_us_per_req={} nats_server_cpu_us_per_req={}",
            side.name(),
            payload.len(),
            at(0.50),
            at(0.99),
            at(0.999),
            wall.as_secs_f64() * 1e6 / n as f64,
            per(before.0, after.0),
            per(before.1, after.1),
        );
    }
}

/// The adapter's responder: fetch, reply with a payload of the request's size, ack.
async fn adapter_responder(
    broker: NatsBroker,
    queue: &'static str,
    batch: usize,
    wait: Duration,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let got = broker.fetch(queue, "responder", batch, wait).await.unwrap();
        for d in &got {
            let size = d.envelope.payload().len();
            broker
                .reply(d, Envelope::new(Bytes::from(vec![b'y'; size])))
                .await
                .unwrap();
            broker.settle(d, Settlement::Ack).await.unwrap();
        }
    }
}

/// The raw JetStream responder: a pull consumer's message stream; reply, then ack.
async fn raw_jetstream_responder(
    client: async_nats::Client,
    consumer: async_nats::jetstream::consumer::PullConsumer,
) {
    let mut messages = consumer.messages().await.unwrap();
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        let reply_to = message
            .headers
            .as_ref()
            .and_then(|h| h.get("reply-to"))
            .map(|v| v.as_str().to_owned())
            .unwrap();
        let size = message.payload.len();
        client
            .publish(reply_to, Bytes::from(vec![b'y'; size]))
            .await
            .unwrap();
        client.flush().await.unwrap();
        message.ack().await.unwrap();
    }
}

/// The raw core responder: a subscription that answers each request.
async fn raw_core_responder(client: async_nats::Client, subject: String) {
    let mut requests = client.subscribe(subject).await.unwrap();
    while let Some(message) = requests.next().await {
        let Some(reply) = message.reply else { continue };
        let size = message.payload.len();
        client
            .publish(reply, Bytes::from(vec![b'y'; size]))
            .await
            .unwrap();
    }
}

fn main() {
    let Ok(url) = std::env::var("NATS_URL") else {
        println!("skipped: NATS_URL is not set");
        return;
    };
    // `cargo bench` adds `--bench`.
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let requests: usize = args.next().map_or(20_000, |a| a.parse().unwrap());
    let runs: usize = args.next().map_or(3, |a| a.parse().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pid = std::process::id();
        let prefix = format!("rrbench_{pid}_");
        let ours = NatsBroker::connect(&url, &prefix).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut adapter_tasks = Vec::new();
        for (queue, batch, wait) in [
            ("rr", 1, Duration::from_secs(1)),
            ("rr16", 16, Duration::from_millis(100)),
        ] {
            ours.declare(queue, &QueueConfig::default()).await.unwrap();
            let responder = NatsBroker::connect(&url, &prefix).await.unwrap();
            responder
                .declare(queue, &QueueConfig::default())
                .await
                .unwrap();
            adapter_tasks.push(tokio::spawn(adapter_responder(
                responder,
                queue,
                batch,
                wait,
                Arc::clone(&stop),
            )));
        }

        let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
        let js_subject = format!("rrbench.raw.{pid}");
        let raw_stream = format!("RRRAW_{pid}");
        let stream = js
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: raw_stream.clone(),
                subjects: vec![js_subject.clone()],
                retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .unwrap();
        let consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                "bk",
                async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some("bk".into()),
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let js_responder = async_nats::connect(&url).await.unwrap();
        let js_task = tokio::spawn(raw_jetstream_responder(js_responder, consumer));

        let core = async_nats::connect(&url).await.unwrap();
        let core_subject = format!("rrbench.core.{pid}");
        let core_responder = async_nats::connect(&url).await.unwrap();
        let core_task = tokio::spawn(raw_core_responder(core_responder, core_subject.clone()));
        // The responder's SUB reaches the server before the first request.
        core_responder_ready(&core, &core_subject).await;

        let shared_inbox = js.client().new_inbox();
        let shared_replies = js
            .client()
            .subscribe(format!("{shared_inbox}.*"))
            .await
            .unwrap();
        let bench = Bench {
            ours,
            js,
            js_subject,
            shared_inbox,
            shared_replies: tokio::sync::Mutex::new(shared_replies),
            next_token: std::cell::Cell::new(0),
            core,
            core_subject,
        };
        let server = pid_of("nats-server");
        let all = [
            Side::Adapter,
            Side::AdapterFetch16,
            Side::RawJetStream,
            Side::RawJetStreamShared,
            Side::RawCore,
        ];
        let chosen: Vec<Side> = match std::env::var("SIDES") {
            Ok(names) => all
                .into_iter()
                .filter(|s| names.split(',').any(|n| n.trim() == s.name()))
                .collect(),
            Err(_) => all.to_vec(),
        };
        for run in 0..runs {
            // A different order each run.
            let mut order = chosen.clone();
            let turn = run % order.len().max(1);
            order.rotate_left(turn);
            if run % 2 == 1 {
                order.reverse();
            }
            for size in [16usize, 1024] {
                let payload = Bytes::from(vec![b'x'; size]);
                for &side in &order {
                    bench
                        .cell(side, &payload, requests, run, server.as_deref())
                        .await;
                }
            }
        }

        stop.store(true, Ordering::Relaxed);
        for task in adapter_tasks {
            task.await.unwrap();
        }
        js_task.abort();
        core_task.abort();
        bench.ours.delete_streams().await.unwrap();
        bench.js.delete_stream(&raw_stream).await.unwrap();
    });
}

/// Sends requests until the core responder answers one (its subscription is live).
async fn core_responder_ready(client: &async_nats::Client, subject: &str) {
    for _ in 0..50 {
        let request = client.request(subject.to_owned(), Bytes::from_static(b"ping"));
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(100), request).await {
            return;
        }
    }
    panic!("the raw core responder did not answer");
}
