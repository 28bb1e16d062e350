//! A worker process killed with SIGKILL while it holds messages, on Redis Streams
//! (`REDIS_URL`, feature `redis`; unique key prefixes on the shared server).
//!
//! Worker A fetches a batch of 8 slow jobs and settles the batch after its last job; it is
//! killed once a few of them have had their effect, so it dies holding 8 unacknowledged
//! messages, some done and some not. Worker B gets them after the ack wait. With the inbox
//! each job has its effect exactly once (the effects log has one line per job); without
//! it, the jobs A finished run again (the control, which shows the count can fail).

#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serve::testing::{Process, peer};

const JOBS: usize = 16;
const ACK_WAIT_MS: &str = "1500";

fn worker(url: &str, prefix: &str, log: &Path, workers: &str, inbox: bool) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_task-queue"));
    command
        .env("BROKER_URL", url)
        .env("BROKER_PREFIX", prefix)
        .env("WORKERS", workers)
        .env("BATCH", "8")
        .env("ACK_WAIT_MS", ACK_WAIT_MS)
        .env("MAX_ATTEMPTS", "10")
        .env("RETRY_INITIAL_MS", "100")
        .env("EFFECTS_LOG", log);
    if !inbox {
        command.env("INBOX_URL", "none");
    }
    Process::spawn(command)
}

/// Effects per job id, from the log.
fn effects(log: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let id = line.split(' ').next().unwrap().to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

fn total(counts: &BTreeMap<String, usize>) -> usize {
    counts.values().sum()
}

/// Runs the crash and returns the effects per job and the duplicate deliveries B saw.
fn crash_and_recover(url: &str, inbox: bool) -> (Vec<String>, BTreeMap<String, usize>, u64) {
    let prefix = format!(
        "tqkill-{}",
        broker_core::MessageId::new().as_uuid().simple()
    );
    let log: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{prefix}.log"));
    let _ = std::fs::remove_file(&log);

    // The jobs are enqueued through an instance without workers.
    let api = worker(url, &prefix, &log, "0", inbox);
    let ids: Vec<String> = (0..JOBS)
        .map(|_| {
            let reply = api.send(
                "POST",
                "/jobs",
                &[("Content-Type", "application/json")],
                br#"{"kind":"sleep","payload":{"ms":150}}"#,
            );
            assert_eq!(reply.status, 202, "{}", reply.body);
            let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();

    // Worker A takes a batch of 8 and dies after three of its jobs had their effect.
    let mut a = worker(url, &prefix, &log, "1", inbox);
    let deadline = Instant::now() + Duration::from_secs(20);
    while total(&effects(&log)) < 3 {
        assert!(Instant::now() < deadline, "worker A did no work");
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = Command::new("kill")
        .args(["-KILL", &a.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = a.wait(Duration::from_secs(5));
    assert!(!status.success(), "A was killed, not exited: {status:?}");
    let done_by_a = total(&effects(&log));
    assert!(
        done_by_a < 8,
        "A finished its batch before the kill ({done_by_a})"
    );

    // Worker B gets the rest, and A's 8 after the ack wait.
    let b = worker(url, &prefix, &log, "2", inbox);
    let deadline = Instant::now() + Duration::from_secs(30);
    while effects(&log).len() < JOBS {
        assert!(
            Instant::now() < deadline,
            "not every job ran: {:?}",
            effects(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Late duplicates would come within a few ack waits: wait for them, and for B to
    // have settled every job.
    let deadline = Instant::now() + Duration::from_secs(30);
    let duplicates = loop {
        std::thread::sleep(Duration::from_millis(200));
        let list: serde_json::Value = serde_json::from_str(&b.get("/jobs").body).unwrap();
        let jobs = list["jobs"].as_array().unwrap();
        let settled = ids.iter().all(|id| {
            let job = jobs.iter().find(|job| job["id"] == **id);
            // B knows the jobs it ran or saw as duplicates; the ones A finished and B
            // never saw cannot be, since A acknowledged nothing.
            job.is_some_and(|job| job["state"] == "succeeded")
        });
        let duplicates: u64 = jobs
            .iter()
            .map(|job| job["duplicate_deliveries"].as_u64().unwrap_or(0))
            .sum();
        if settled {
            break duplicates;
        }
        assert!(
            Instant::now() < deadline,
            "B did not settle every job: {list}"
        );
    };
    std::thread::sleep(Duration::from_millis(3 * 1500));
    let counts = effects(&log);
    println!(
        "inbox {inbox}: A had {done_by_a} effects when killed holding 8; {} effects for {} jobs; B skipped {duplicates} duplicate deliveries",
        total(&counts),
        counts.len()
    );
    drop((api, b));
    delete_keys(url, &prefix);
    let _ = std::fs::remove_file(&log);
    (ids, counts, duplicates)
}

fn delete_keys(url: &str, prefix: &str) {
    let run = |args: &[&str]| {
        Command::new("redis-cli")
            .args(["-u", url])
            .args(args)
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    if let Ok(keys) = run(&["--scan", "--pattern", &format!("{prefix}:*")]) {
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if !keys.is_empty() {
            let mut args = vec!["DEL"];
            args.extend(keys);
            let _ = run(&args);
        }
    }
}

#[test]
fn with_the_inbox_each_job_has_its_effect_once_after_a_sigkill() {
    let Some(url) = peer("REDIS_URL") else {
        return;
    };
    let (ids, counts, duplicates) = crash_and_recover(&url, true);
    for id in &ids {
        assert_eq!(counts.get(id), Some(&1), "effects per job: {counts:?}");
    }
    assert_eq!(total(&counts), JOBS, "{counts:?}");
    // The jobs A finished came back to B, which skipped them.
    assert!(duplicates >= 3, "B saw {duplicates} duplicate deliveries");
}

#[test]
fn without_the_inbox_the_jobs_a_finished_run_again() {
    let Some(url) = peer("REDIS_URL") else {
        return;
    };
    let (ids, counts, duplicates) = crash_and_recover(&url, false);
    assert!(ids.iter().all(|id| counts.contains_key(id)), "{counts:?}");
    assert_eq!(duplicates, 0);
    let repeated = counts.values().filter(|n| **n > 1).count();
    assert!(
        repeated >= 3,
        "A's finished jobs should have run twice: {counts:?}"
    );
}
