#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Per-key ordering on NATS JetStream and Redis Streams with competing consumers in two
//! broker handles (two connections, as two processes would have): one message of a key out
//! at a time, in publication order, a nacked one back before the later ones, different keys
//! in parallel.
#![cfg(any(feature = "nats", feature = "redis"))]

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use broker_core::{Broker, Envelope, Error, ORDERING_KEY, QueueConfig, RetryPolicy, Settlement};

mod support;

const QUEUE: &str = "orders";

fn config() -> QueueConfig {
    QueueConfig::default()
        .ack_wait(Duration::from_secs(5))
        .retry(RetryPolicy::new(5, Duration::from_millis(300)).jitter(0.0))
}

fn keyed(key: &str, step: usize) -> Envelope {
    Envelope::new(format!("{key}-{step}"))
        .with_header(ORDERING_KEY, key)
        .unwrap()
        .with_header("x-step", step.to_string())
        .unwrap()
}

fn key_and_step(envelope: &Envelope) -> (String, usize) {
    let headers = envelope.headers();
    (
        headers.get(ORDERING_KEY).unwrap().to_owned(),
        headers.get("x-step").unwrap().parse().unwrap(),
    )
}

fn fresh_prefix(test: &str) -> String {
    format!(
        "bkord_{test}_{}_",
        broker_core::MessageId::new().as_uuid().simple()
    )
}

async fn declare_both<B: Broker>(one: &B, two: &B) {
    one.declare(QUEUE, &config()).await.unwrap();
    two.declare(QUEUE, &config()).await.unwrap();
}

/// What the consumers saw, shared by both.
#[derive(Default)]
struct Log {
    /// Keys with a delivery being processed now.
    in_flight: HashSet<String>,
    /// The most keys in flight at one moment.
    most_in_flight: usize,
    /// Per key, the steps in the order they were received.
    steps: HashMap<String, Vec<usize>>,
    /// Deliveries per handle.
    per_handle: [usize; 2],
    /// Deliveries whose key already had one in flight.
    overlaps: Vec<(String, usize)>,
}

async fn consume<B: Broker>(broker: &B, handle: usize, log: &Mutex<Log>, total: usize) {
    let done = || {
        log.lock()
            .unwrap()
            .steps
            .values()
            .map(Vec::len)
            .sum::<usize>()
            >= total
    };
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() && tokio::time::Instant::now() < end {
        let batch = broker
            .fetch(
                QUEUE,
                &format!("worker-{handle}"),
                4,
                Duration::from_millis(200),
            )
            .await
            .unwrap();
        {
            let mut log = log.lock().unwrap();
            for delivery in &batch {
                let (key, step) = key_and_step(&delivery.envelope);
                if !log.in_flight.insert(key.clone()) {
                    log.overlaps.push((key.clone(), step));
                }
                log.steps.entry(key).or_default().push(step);
                log.per_handle[handle] += 1;
            }
            log.most_in_flight = log.most_in_flight.max(log.in_flight.len());
        }
        // Some work, so that the other handle competes while these are held.
        tokio::time::sleep(Duration::from_millis(15)).await;
        for delivery in &batch {
            // Out of the in-flight set before the ack leaves: the server cannot hand out
            // the key's next message before it has the ack.
            let (key, _) = key_and_step(&delivery.envelope);
            log.lock().unwrap().in_flight.remove(&key);
            broker.settle(delivery, Settlement::Ack).await.unwrap();
        }
    }
}

async fn competing_handles_keep_each_keys_order_and_run_keys_in_parallel<B: Broker>(
    one: &B,
    two: &B,
) {
    declare_both(one, two).await;
    // `key-0` to `key-5` fall in six different partitions of the default 16.
    let keys: Vec<String> = (0..6).map(|k| format!("key-{k}")).collect();
    let steps = 8;
    let mut batch = Vec::new();
    for step in 0..steps {
        for key in &keys {
            batch.push(keyed(key, step));
        }
    }
    one.publish_batch(QUEUE, batch).await.unwrap();
    let log = Mutex::new(Log::default());
    let total = keys.len() * steps;
    tokio::join!(consume(one, 0, &log, total), consume(two, 1, &log, total));
    let log = log.into_inner().unwrap();
    assert!(log.overlaps.is_empty(), "held twice: {:?}", log.overlaps);
    for key in &keys {
        assert_eq!(
            log.steps.get(key).map(Vec::as_slice),
            Some((0..steps).collect::<Vec<_>>().as_slice()),
            "{key}"
        );
    }
    assert!(
        log.most_in_flight >= 2,
        "keys never ran in parallel ({})",
        log.most_in_flight
    );
    assert!(
        log.per_handle[0] > 0 && log.per_handle[1] > 0,
        "one handle got everything: {:?}",
        log.per_handle
    );
    assert_eq!(one.pending(QUEUE).await.unwrap(), 0);

    // Fan-out copies are not kept in order here: refused, not sent unordered.
    let topic = one.publish_topic("events", keyed("key-0", 0)).await;
    assert!(
        matches!(
            topic,
            Err(Error::Unsupported {
                capability: "ordered_keys",
                ..
            })
        ),
        "{topic:?}"
    );
}

async fn a_nack_mid_sequence_holds_the_key_and_comes_back_first<B: Broker>(one: &B, two: &B) {
    declare_both(one, two).await;
    for step in 0..5 {
        one.publish(QUEUE, keyed("key-0", step)).await.unwrap();
    }
    one.publish(QUEUE, keyed("key-1", 0)).await.unwrap();
    let wait = Duration::from_millis(500);
    let mut order = Vec::new();
    // Steps 0 and 1 go through one handle, one at a time.
    for expected in 0..2 {
        let got = one.fetch(QUEUE, "w1", 10, wait).await.unwrap();
        let mine: Vec<_> = got
            .iter()
            .filter(|d| key_and_step(&d.envelope).0 == "key-0")
            .collect();
        assert_eq!(mine.len(), 1, "one of key-0 at a time");
        assert_eq!(key_and_step(&mine[0].envelope).1, expected);
        order.push((expected, mine[0].envelope.attempt()));
        for d in &got {
            one.settle(d, Settlement::Ack).await.unwrap();
        }
    }
    // Step 2 fails on its first attempt, with a delay.
    let got = one.fetch(QUEUE, "w1", 10, wait).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(key_and_step(&got[0].envelope), ("key-0".into(), 2));
    let retry = one
        .settle(&got[0], Settlement::nack_after(Duration::from_millis(700)))
        .await
        .unwrap();
    assert!(matches!(retry, broker_core::Disposition::Retry { .. }));
    // While it waits for its retry, the key stays held: the other handle gets nothing.
    let none = two
        .fetch(QUEUE, "w2", 10, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(
        none.is_empty(),
        "during the retry delay: {:?}",
        none.iter()
            .map(|d| key_and_step(&d.envelope))
            .collect::<Vec<_>>()
    );
    // Then step 2 again (attempt 2), before 3 and 4, on whichever handle asks.
    let mut rest = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while rest.len() < 3 && tokio::time::Instant::now() < end {
        for d in two.fetch(QUEUE, "w2", 10, wait).await.unwrap() {
            rest.push((key_and_step(&d.envelope).1, d.envelope.attempt()));
            two.settle(&d, Settlement::Ack).await.unwrap();
        }
    }
    order.extend(rest);
    assert_eq!(order, [(0, 1), (1, 1), (2, 2), (3, 1), (4, 1)]);
    assert_eq!(one.pending(QUEUE).await.unwrap(), 0);
}

/// A consumer that dies holding a key's message: nothing more of that key goes out until
/// the ack wait passed, then that message first (attempt 2), then the rest.
async fn a_held_message_past_its_ack_wait_comes_back_before_the_rest<B: Broker>(one: &B, two: &B) {
    let config = config().ack_wait(Duration::from_secs(1));
    one.declare(QUEUE, &config).await.unwrap();
    two.declare(QUEUE, &config).await.unwrap();
    for step in 0..3 {
        one.publish(QUEUE, keyed("key-0", step)).await.unwrap();
    }
    let held = one
        .fetch(QUEUE, "dies", 10, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(key_and_step(&held[0].envelope).1, 0);
    // Never settled. Within the ack wait the key stays held.
    let none = two
        .fetch(QUEUE, "w2", 10, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(none.is_empty(), "within the ack wait: {}", none.len());
    let mut order = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while order.len() < 3 && tokio::time::Instant::now() < end {
        for d in two
            .fetch(QUEUE, "w2", 10, Duration::from_millis(500))
            .await
            .unwrap()
        {
            order.push((key_and_step(&d.envelope).1, d.envelope.attempt()));
            two.settle(&d, Settlement::Ack).await.unwrap();
        }
    }
    assert_eq!(order, [(0, 2), (1, 1), (2, 1)]);
    assert_eq!(two.pending(QUEUE).await.unwrap(), 0);
}

/// A handle that found no keyed messages reads only the keyless path, asking the server
/// about the partitions at most once a second: keyed messages another handle (another
/// process) publishes later still reach it, in a waiting fetch and in short ones.
async fn keyed_messages_published_elsewhere_reach_a_handle_that_saw_none<B: Broker>(
    one: &B,
    two: &B,
) {
    declare_both(one, two).await;
    let nothing = two.fetch(QUEUE, "w2", 10, Duration::ZERO).await.unwrap();
    assert!(nothing.is_empty());
    one.publish(QUEUE, keyed("key-0", 0)).await.unwrap();
    // One waiting fetch: its wait is cut into slices that look again.
    let got = two
        .fetch(QUEUE, "w2", 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(key_and_step(&got[0].envelope), ("key-0".to_owned(), 0));
    two.settle(&got[0], Settlement::Ack).await.unwrap();
    // Once a look found the partitions empty again, fetches that do not wait.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        two.fetch(QUEUE, "w2", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    one.publish(QUEUE, keyed("key-1", 0)).await.unwrap();
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.is_empty() && tokio::time::Instant::now() < end {
        got = two.fetch(QUEUE, "w2", 10, Duration::ZERO).await.unwrap();
        if got.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(got.len(), 1, "the keyed message never came");
    assert_eq!(key_and_step(&got[0].envelope), ("key-1".to_owned(), 0));
    two.settle(&got[0], Settlement::Ack).await.unwrap();
    assert_eq!(one.pending(QUEUE).await.unwrap(), 0);
}

#[cfg(feature = "nats")]
mod nats {
    use broker_core::NatsBroker;

    async fn two_handles(test: &str) -> Option<(NatsBroker, NatsBroker)> {
        let url = super::support::env("NATS_URL")?;
        let prefix = super::fresh_prefix(test);
        let one = NatsBroker::connect(&url, &prefix).await.unwrap();
        let two = NatsBroker::connect(&url, &prefix).await.unwrap();
        Some((one, two))
    }

    #[tokio::test]
    async fn competing_handles_keep_each_keys_order_and_run_keys_in_parallel() {
        let Some((one, two)) = two_handles("compete").await else {
            return;
        };
        super::competing_handles_keep_each_keys_order_and_run_keys_in_parallel(&one, &two).await;
        one.delete_streams().await.unwrap();
    }

    #[tokio::test]
    async fn a_nack_mid_sequence_holds_the_key_and_comes_back_first() {
        let Some((one, two)) = two_handles("nack").await else {
            return;
        };
        super::a_nack_mid_sequence_holds_the_key_and_comes_back_first(&one, &two).await;
        one.delete_streams().await.unwrap();
    }

    #[tokio::test]
    async fn a_held_message_past_its_ack_wait_comes_back_before_the_rest() {
        let Some((one, two)) = two_handles("expire").await else {
            return;
        };
        super::a_held_message_past_its_ack_wait_comes_back_before_the_rest(&one, &two).await;
        one.delete_streams().await.unwrap();
    }

    #[tokio::test]
    async fn keyed_messages_published_elsewhere_reach_a_handle_that_saw_none() {
        let Some((one, two)) = two_handles("elsewhere").await else {
            return;
        };
        super::keyed_messages_published_elsewhere_reach_a_handle_that_saw_none(&one, &two).await;
        one.delete_streams().await.unwrap();
    }
}

#[cfg(feature = "redis")]
mod redis {
    use broker_core::{Broker, RedisBroker};

    async fn two_handles(test: &str) -> Option<(RedisBroker, RedisBroker, String, String)> {
        let url = super::support::env("REDIS_URL")?;
        let prefix = format!("{}:", super::fresh_prefix(test));
        let one = RedisBroker::connect(&url, &prefix).await.unwrap();
        let two = RedisBroker::connect(&url, &prefix).await.unwrap();
        Some((one, two, url, prefix))
    }

    #[tokio::test]
    async fn competing_handles_keep_each_keys_order_and_run_keys_in_parallel() {
        let Some((one, two, url, prefix)) = two_handles("compete").await else {
            return;
        };
        super::competing_handles_keep_each_keys_order_and_run_keys_in_parallel(&one, &two).await;
        super::support::delete_redis_keys(&url, &prefix).await;
    }

    #[tokio::test]
    async fn a_nack_mid_sequence_holds_the_key_and_comes_back_first() {
        let Some((one, two, url, prefix)) = two_handles("nack").await else {
            return;
        };
        super::a_nack_mid_sequence_holds_the_key_and_comes_back_first(&one, &two).await;
        super::support::delete_redis_keys(&url, &prefix).await;
    }

    #[tokio::test]
    async fn a_held_message_past_its_ack_wait_comes_back_before_the_rest() {
        let Some((one, two, url, prefix)) = two_handles("expire").await else {
            return;
        };
        super::a_held_message_past_its_ack_wait_comes_back_before_the_rest(&one, &two).await;
        super::support::delete_redis_keys(&url, &prefix).await;
    }

    #[tokio::test]
    async fn keyed_messages_published_elsewhere_reach_a_handle_that_saw_none() {
        let Some((one, two, url, prefix)) = two_handles("elsewhere").await else {
            return;
        };
        super::keyed_messages_published_elsewhere_reach_a_handle_that_saw_none(&one, &two).await;
        super::support::delete_redis_keys(&url, &prefix).await;
    }

    #[tokio::test]
    async fn the_first_declaration_fixes_the_partition_count() {
        let Some((one, two, url, prefix)) = two_handles("partitions").await else {
            return;
        };
        assert!(matches!(
            RedisBroker::connect(&url, &prefix)
                .await
                .unwrap()
                .key_partitions(257),
            Err(broker_core::Error::InvalidConfig(_))
        ));
        let one = one.key_partitions(4).unwrap();
        let two = two.key_partitions(32).unwrap();
        let config = super::config();
        one.declare(super::QUEUE, &config).await.unwrap();
        two.declare(super::QUEUE, &config).await.unwrap();
        // Both place keys in 4 partitions: 4 streams, whichever handle published.
        for k in 0..16 {
            two.publish(super::QUEUE, super::keyed(&format!("key-{k}"), 0))
                .await
                .unwrap();
        }
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let count: u32 = redis::cmd("GET")
            .arg(format!("{prefix}{}:kn", super::QUEUE))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(count, 4);
        let mut streams: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}{}:k:*", super::QUEUE))
            .query_async(&mut conn)
            .await
            .unwrap();
        streams.sort();
        assert_eq!(streams.len(), 4, "{streams:?}");
        assert_eq!(one.pending(super::QUEUE).await.unwrap(), 16);
        super::support::delete_redis_keys(&url, &prefix).await;
    }
}
