#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The embedded broker's durable mode: what a restart (a drop, a torn write, a SIGKILL)
//! keeps, and what a damaged journal reports.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use broker_core::{
    Broker, EmbeddedBroker, Envelope, Error, JournalOptions, MessageId, QueueConfig, RetryPolicy,
    Settlement, SyncPolicy,
};

const JOURNAL: &str = "journal.bkj";

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bk-durable-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config() -> QueueConfig {
    QueueConfig::default()
        .ack_wait(Duration::from_secs(60))
        .retry(RetryPolicy::new(3, Duration::from_secs(1)).jitter(0.0))
}

fn message(i: usize) -> Envelope {
    Envelope::new(format!("payload {i}").into_bytes())
        .with_header("content-type", "text/plain")
        .unwrap()
        .with_header("x-index", i.to_string())
        .unwrap()
}

async fn fetch_all(broker: &EmbeddedBroker, queue: &str) -> Vec<broker_core::Delivery> {
    broker
        .fetch(queue, "reader", 100_000, Duration::ZERO)
        .await
        .unwrap()
}

fn journal_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(JOURNAL)).unwrap().len()
}

#[tokio::test]
async fn published_messages_survive_a_restart_intact() {
    let dir = fresh_dir("publish");
    let mut sent = Vec::new();
    {
        let broker = EmbeddedBroker::open(&dir).unwrap();
        broker.declare("jobs", &config()).await.unwrap();
        for i in 0..50 {
            let envelope = message(i);
            sent.push(envelope.clone());
            broker.publish("jobs", envelope).await.unwrap();
        }
        let batch: Vec<Envelope> = (50..120).map(message).collect();
        sent.extend(batch.iter().cloned());
        broker.publish_batch("jobs", batch).await.unwrap();
        // A second queue and a topic binding come back too.
        broker
            .declare("audit", &QueueConfig::default())
            .await
            .unwrap();
        broker.bind("events", "audit").await.unwrap();
    }
    let broker = EmbeddedBroker::open(&dir).unwrap();
    // The same configuration is accepted; another one is refused as before.
    broker.declare("jobs", &config()).await.unwrap();
    assert!(matches!(
        broker
            .declare("jobs", &config().ack_wait(Duration::from_secs(1)))
            .await,
        Err(Error::InvalidConfig(_))
    ));
    let got = fetch_all(&broker, "jobs").await;
    assert_eq!(got.len(), 120);
    for (delivery, original) in got.iter().zip(&sent) {
        let e = &delivery.envelope;
        assert_eq!(e.id(), original.id());
        assert_eq!(e.payload(), original.payload());
        assert_eq!(e.headers(), original.headers());
        assert_eq!(e.attempt(), 1);
    }
    // Publication times are the broker's, kept to the millisecond.
    assert!(
        got.iter()
            .all(|d| d.envelope.published_at() > std::time::UNIX_EPOCH)
    );
    broker
        .publish_topic("events", Envelope::new("fan-out"))
        .await
        .unwrap();
    assert_eq!(fetch_all(&broker, "audit").await.len(), 1);
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn acked_messages_are_gone_and_held_ones_come_back_as_attempt_2() {
    let dir = fresh_dir("ack");
    let mut unacked = HashSet::new();
    let published_at: HashMap<MessageId, _>;
    {
        let broker = EmbeddedBroker::open(&dir).unwrap();
        broker.declare("jobs", &config()).await.unwrap();
        broker
            .publish_batch("jobs", (0..10).map(message).collect())
            .await
            .unwrap();
        let taken = fetch_all(&broker, "jobs").await;
        assert_eq!(taken.len(), 10);
        published_at = taken
            .iter()
            .map(|d| (d.envelope.id(), d.envelope.published_at()))
            .collect();
        // Four single acks, two in a batch; four stay held when the broker goes away.
        for delivery in &taken[..4] {
            broker.settle(delivery, Settlement::Ack).await.unwrap();
        }
        let results = broker.settle_batch(&taken[4..6], Settlement::Ack).await;
        assert!(results.iter().all(Result::is_ok));
        unacked.extend(taken[6..].iter().map(|d| d.envelope.id()));
    }
    let broker = EmbeddedBroker::open(&dir).unwrap();
    assert_eq!(broker.pending("jobs").await.unwrap(), 4);
    let again = fetch_all(&broker, "jobs").await;
    let ids: HashSet<MessageId> = again.iter().map(|d| d.envelope.id()).collect();
    assert_eq!(ids, unacked);
    for delivery in &again {
        assert_eq!(delivery.envelope.attempt(), 2);
        assert_eq!(
            Some(&delivery.envelope.published_at()),
            published_at.get(&delivery.envelope.id())
        );
    }
    // Held again across a second restart: attempt 3.
    drop(again);
    drop(broker);
    let broker = EmbeddedBroker::open(&dir).unwrap();
    let third = fetch_all(&broker, "jobs").await;
    assert_eq!(third.len(), 4);
    assert!(third.iter().all(|d| d.envelope.attempt() == 3));
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn dead_letters_and_redrives_survive() {
    let dir = fresh_dir("dead");
    let single = QueueConfig::default().retry(RetryPolicy::new(1, Duration::from_secs(1)));
    {
        let broker = EmbeddedBroker::open(&dir).unwrap();
        broker.declare("jobs", &single).await.unwrap();
        broker
            .publish_batch("jobs", (0..4).map(message).collect())
            .await
            .unwrap();
        let taken = fetch_all(&broker, "jobs").await;
        broker
            .settle(
                &taken[0],
                Settlement::Reject {
                    reason: "poison".into(),
                },
            )
            .await
            .unwrap();
        // The last allowed delivery fails: dead-lettered.
        broker.settle(&taken[1], Settlement::nack()).await.unwrap();
        broker.settle(&taken[2], Settlement::Ack).await.unwrap();
        // taken[3] is held on its only allowed delivery when the broker goes away.
    }
    let broker = EmbeddedBroker::open(&dir).unwrap();
    let dead = broker.dead_letters("jobs", 10).await.unwrap();
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert_eq!(dead[0].reason, "rejected: poison");
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(
        dead[0].envelope.headers().get("x-index"),
        Some("0"),
        "headers kept"
    );
    assert_eq!(dead[1].attempts, 1);
    assert!(
        dead[2].reason.contains("ack deadline"),
        "{}",
        dead[2].reason
    );
    assert!(fetch_all(&broker, "jobs").await.is_empty());
    // Re-drive two: after another restart they are ready (attempt 1) and one stays dead.
    assert_eq!(broker.redrive("jobs", 2).await.unwrap(), 2);
    drop(broker);
    let broker = EmbeddedBroker::open(&dir).unwrap();
    let dead = broker.dead_letters("jobs", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].reason.contains("ack deadline"));
    let ready = fetch_all(&broker, "jobs").await;
    let indexes: Vec<&str> = ready
        .iter()
        .map(|d| d.envelope.headers().get("x-index").unwrap())
        .collect();
    assert_eq!(indexes, ["0", "1"]);
    assert!(ready.iter().all(|d| d.envelope.attempt() == 1));
    assert!(ready.iter().all(|d| {
        d.envelope
            .headers()
            .get(broker_core::DEAD_LETTER_REASON)
            .is_none()
    }));
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_torn_tail_is_dropped_and_the_good_prefix_opens() {
    let dir = fresh_dir("torn");
    {
        let broker = EmbeddedBroker::open(&dir).unwrap();
        broker.declare("jobs", &config()).await.unwrap();
        for i in 0..5 {
            broker.publish("jobs", message(i)).await.unwrap();
        }
    }
    let full = journal_len(&dir);
    // Cut the last record in the middle, as a crash during its write would.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(JOURNAL))
        .unwrap();
    file.set_len(full - 9).unwrap();
    drop(file);
    let broker = EmbeddedBroker::open(&dir).unwrap();
    assert!(
        journal_len(&dir) < full - 9,
        "truncated to the last good record"
    );
    let got = fetch_all(&broker, "jobs").await;
    let indexes: Vec<&str> = got
        .iter()
        .map(|d| d.envelope.headers().get("x-index").unwrap())
        .collect();
    assert_eq!(indexes, ["0", "1", "2", "3"]);
    // New records follow the good prefix.
    broker.publish("jobs", message(5)).await.unwrap();
    drop(got);
    drop(broker);
    let broker = EmbeddedBroker::open(&dir).unwrap();
    assert_eq!(broker.pending("jobs").await.unwrap(), 5);
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_flipped_byte_mid_file_is_a_typed_error() {
    let dir = fresh_dir("flip");
    {
        let broker = EmbeddedBroker::open(&dir).unwrap();
        broker.declare("jobs", &config()).await.unwrap();
        for i in 0..20 {
            broker.publish("jobs", message(i)).await.unwrap();
        }
    }
    let path = dir.join(JOURNAL);
    let mut data = std::fs::read(&path).unwrap();
    let at = data.len() / 2;
    data[at] ^= 0x01;
    std::fs::write(&path, &data).unwrap();
    match EmbeddedBroker::open(&dir) {
        Err(Error::JournalCorrupt { offset, reason }) => {
            assert!(offset <= at as u64, "{offset} {reason}");
        }
        other => panic!("expected JournalCorrupt, got {other:?}"),
    }
    // Not a journal at all.
    std::fs::write(&path, b"hello, world").unwrap();
    assert!(matches!(
        EmbeddedBroker::open(&dir),
        Err(Error::JournalCorrupt { offset: 0, .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn compaction_keeps_exactly_the_live_messages() {
    let dir = fresh_dir("compact");
    let (held, dead_id);
    {
        let broker = EmbeddedBroker::open_with(
            // No compaction on its own here: the test calls it.
            JournalOptions::new(&dir)
                .sync(SyncPolicy::Batch)
                .compact_min_bytes(u64::MAX),
        )
        .unwrap();
        broker.declare("jobs", &config()).await.unwrap();
        broker
            .publish_batch("jobs", (0..300).map(message).collect())
            .await
            .unwrap();
        let taken = broker
            .fetch("jobs", "w", 290, Duration::ZERO)
            .await
            .unwrap();
        broker.settle_batch(&taken[..270], Settlement::Ack).await;
        broker
            .settle(
                &taken[270],
                Settlement::Reject {
                    reason: "bad".into(),
                },
            )
            .await
            .unwrap();
        dead_id = taken[270].envelope.id();
        held = taken[271..]
            .iter()
            .map(|d| d.envelope.id())
            .collect::<HashSet<_>>();
        let before = journal_len(&dir);
        broker.compact().unwrap();
        let after = journal_len(&dir);
        assert!(after * 5 < before, "{before} -> {after} bytes");
        // Records after a compaction go to the new file.
        broker.publish("jobs", message(1000)).await.unwrap();
    }
    assert!(!dir.join("journal.bkj.compact").exists());
    let broker = EmbeddedBroker::open(&dir).unwrap();
    let got = fetch_all(&broker, "jobs").await;
    let attempts: HashMap<MessageId, u32> = got
        .iter()
        .map(|d| (d.envelope.id(), d.envelope.attempt()))
        .collect();
    // 19 held (now attempt 2), 10 never fetched, 1 published after the compaction.
    assert_eq!(got.len(), 30);
    assert!(held.iter().all(|id| attempts.get(id) == Some(&2)));
    assert_eq!(attempts.values().filter(|a| **a == 1).count(), 11);
    let indexes: Vec<usize> = got
        .iter()
        .map(|d| {
            d.envelope
                .headers()
                .get("x-index")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let mut sorted = indexes.clone();
    sorted.sort_unstable();
    assert_eq!(indexes, sorted, "publication order kept");
    let dead = broker.dead_letters("jobs", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.id(), dead_id);
    assert_eq!(dead[0].reason, "rejected: bad");
    drop(got);
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_settled_journal_compacts_on_its_own() {
    let dir = fresh_dir("autocompact");
    let broker = EmbeddedBroker::open_with(
        JournalOptions::new(&dir)
            .sync(SyncPolicy::Never)
            .compact_min_bytes(16 * 1024),
    )
    .unwrap();
    broker.declare("jobs", &config()).await.unwrap();
    let mut largest = 0;
    for round in 0..200 {
        broker
            .publish_batch("jobs", (0..20).map(|i| message(round * 20 + i)).collect())
            .await
            .unwrap();
        let taken = fetch_all(&broker, "jobs").await;
        broker.settle_batch(&taken, Settlement::Ack).await;
        largest = largest.max(journal_len(&dir));
    }
    // 4000 messages of about 150 bytes of records each went through; the file stayed
    // within a few times the threshold.
    assert!(largest < 64 * 1024, "{largest} bytes");
    broker.publish("jobs", message(9999)).await.unwrap();
    drop(broker);
    let broker = EmbeddedBroker::open(&dir).unwrap();
    assert_eq!(broker.pending("jobs").await.unwrap(), 1);
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}

const CHILD_DIR: &str = "BK_DURABLE_CHILD_DIR";

/// Run by `a_publisher_killed_mid_stream_loses_no_confirmed_message` in a child process:
/// publishes with `SyncPolicy::Always` until killed, printing each id once its publish
/// returned `Ok`. Does nothing in a normal test run.
#[tokio::test]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let broker = EmbeddedBroker::open(&dir).unwrap();
    broker.declare("jobs", &config()).await.unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let envelope = message(i);
        let id = envelope.id();
        if i % 3 == 0 {
            broker
                .publish_batch("jobs", vec![envelope, message(i + 1_000_000)])
                .await
                .unwrap();
        } else {
            broker.publish("jobs", envelope).await.unwrap();
        }
        writeln!(out, "confirmed {id}").unwrap();
        out.flush().unwrap();
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_publisher_killed_mid_stream_loses_no_confirmed_message() {
    let dir = fresh_dir("crash");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut confirmed = Vec::new();
    while confirmed.len() < 300 {
        let line = lines
            .next()
            .expect("the child ended early")
            .expect("child output");
        if let Some(id) = line.strip_prefix("confirmed ") {
            confirmed.push(id.parse::<MessageId>().unwrap());
        }
    }
    // SIGKILL while it keeps publishing.
    child.kill().unwrap();
    // What it printed before it died was confirmed too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(id) = line.strip_prefix("confirmed ")
            && let Ok(id) = id.parse::<MessageId>()
        {
            confirmed.push(id);
        }
    }
    child.wait().unwrap();
    let broker = EmbeddedBroker::open(&dir).unwrap();
    let got: HashSet<MessageId> = fetch_all(&broker, "jobs")
        .await
        .iter()
        .map(|d| d.envelope.id())
        .collect();
    let missing: Vec<&MessageId> = confirmed.iter().filter(|id| !got.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} confirmed publishes lost: {missing:?}",
        missing.len(),
        confirmed.len()
    );
    println!(
        "{} confirmed publishes before the kill, {} messages after reopening",
        confirmed.len(),
        got.len()
    );
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}
