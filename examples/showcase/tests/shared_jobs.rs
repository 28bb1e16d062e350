//! The task queue at `/jobs/` on two showcase instances sharing the engines, as behind a
//! load balancer: a job posted on A is known on B, a job that fails its attempts reaches
//! the dead letters and is re-driven from the other instance, an `Idempotency-Key` replayed
//! on B returns A's job, and the workers of both instances run each job once. On Redis
//! Streams (`REDIS_URL`) and on NATS JetStream (`NATS_URL`, with the records in Redis);
//! each test is skipped without its variables and fails under `CI=true`. Every test uses a
//! key prefix of its own (`REDIS_PREFIX`, from which the queue's streams, subjects and keys
//! are named), so tests and runs never see each other's jobs.

// Integration tests: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::{Client, ReplyExt, Server};

/// Two instances on the Redis at `REDIS_URL` under a fresh prefix, with `env`.
fn pair(test: &str, env: &[(&str, &str)]) -> Option<(Server, Server)> {
    let url = serve::testing::peer("REDIS_URL")?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("showcase-test:{test}:{}:{nanos}:", std::process::id());
    let mut all = vec![("PUBLIC_ORIGIN", "http://127.0.0.1:9")];
    all.extend_from_slice(env);
    let a = Server::start_shared(&url, &prefix, &all);
    let b = Server::start_shared(&url, &prefix, &all);
    Some((a, b))
}

/// Polls the job on `client`'s instance until `done` says so (the default backoff is 1 s,
/// then 2 s; bounded at 30 s).
fn wait_for(client: &mut Client, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = client.get(&format!("/jobs/jobs/{id}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let job = reply.json();
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "{job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn enqueue(client: &mut Client, headers: &[(&str, &str)], job: &Value) -> support::Reply {
    client.send_json("POST", "/jobs/jobs", headers, job)
}

/// Everything the issue asks of the queue across instances, on `a` and `b`; `engine` is
/// what the landing page's jobs row must name.
fn jobs_span_instances(a: &Server, b: &Server, engine: &str) {
    let (mut on_a, mut on_b) = (a.client(), b.client());

    // The landing page says where the queue runs.
    let page = on_a.get("/");
    let row = support::landing_row(&page.body, "engine-jobs");
    assert!(row.contains(engine), "{engine} in {row}");
    assert!(
        row.contains("job records, keys and inbox: Redis at"),
        "{row}"
    );
    let listed = on_b.get("/jobs/jobs").json();
    assert_eq!(listed["state"], "redis", "{listed}");

    // Posted on A with a key, read on B; the key replayed on B gives A's job.
    let key = [("Idempotency-Key", "shared-job-1")];
    let echo = json!({"kind": "echo", "payload": {"order": 42}});
    let posted = enqueue(&mut on_a, &key, &echo);
    assert_eq!(posted.status, 202, "{}", posted.body);
    let id = posted.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        posted.header("location"),
        Some(format!("/jobs/jobs/{id}").as_str())
    );
    let seen = on_b.get(&format!("/jobs/jobs/{id}"));
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["id"], id.as_str());
    let replayed = enqueue(&mut on_b, &key, &echo);
    assert_eq!(replayed.status, 200, "{}", replayed.body);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.json()["id"], id.as_str());
    // The same key with another job is refused on either instance.
    let other = json!({"kind": "echo", "payload": {"order": 43}});
    assert_eq!(enqueue(&mut on_a, &key, &other).status, 422);
    let done = wait_for(&mut on_b, &id, |job| job["state"] == "succeeded");
    assert_eq!(done["result"], json!({"order": 42}), "{done}");
    assert_eq!(done["attempts"], 1, "{done}");

    // Twenty jobs posted on both: the workers of both instances compete for them, and
    // each runs once (one attempt, one history entry, no duplicate delivery).
    let mut ids = Vec::new();
    for n in 0..20 {
        let client = if n % 2 == 0 { &mut on_a } else { &mut on_b };
        let posted = enqueue(client, &[], &json!({"kind": "echo", "payload": n}));
        assert_eq!(posted.status, 202, "{}", posted.body);
        ids.push(posted.json()["id"].as_str().unwrap().to_owned());
    }
    let mut workers = BTreeSet::new();
    for (n, id) in ids.iter().enumerate() {
        let client = if n % 2 == 0 { &mut on_b } else { &mut on_a };
        let job = wait_for(client, id, |job| job["state"] == "succeeded");
        assert_eq!(job["attempts"], 1, "{job}");
        assert_eq!(job["duplicate_deliveries"], 0, "{job}");
        assert_eq!(job["history"].as_array().unwrap().len(), 1, "{job}");
        assert_eq!(job["result"], json!(n), "{job}");
        workers.insert(job["history"][0]["worker"].as_str().unwrap().to_owned());
    }
    // Which instance's workers took which jobs is the broker's choice: shown, not asserted.
    eprintln!("workers that ran the 20 jobs: {workers:?}");
    let listed = on_a.get("/jobs/jobs").json();
    let listed_ids: BTreeSet<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|job| job["id"].as_str())
        .collect();
    assert!(
        ids.iter().all(|id| listed_ids.contains(id.as_str())),
        "{listed}"
    );
    assert_eq!(listed["counts"]["succeeded"], 21, "{listed}");

    // A job that fails its 3 attempts, posted on A, is dead on B and in B's dead letters;
    // re-driven from B, its 4th attempt (counted over its life, in the shared record)
    // succeeds, as A shows.
    let flaky = json!({"kind": "flaky", "payload": {"fail_times": 3}});
    let posted = enqueue(&mut on_a, &[], &flaky);
    assert_eq!(posted.status, 202, "{}", posted.body);
    let id = posted.json()["id"].as_str().unwrap().to_owned();
    let dead = wait_for(&mut on_b, &id, |job| job["state"] == "dead");
    assert_eq!(dead["attempts"], 3, "{dead}");
    let letters = on_b.get("/jobs/jobs/dead").json();
    let dead_ids: Vec<&str> = letters["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|letter| letter["id"].as_str())
        .collect();
    assert_eq!(dead_ids, [id.as_str()], "{letters}");
    let redriven = on_b.send("POST", "/jobs/jobs/dead/redrive", &[], b"");
    assert_eq!(redriven.status, 200, "{}", redriven.body);
    assert_eq!(redriven.json()["ids"], json!([id]), "{}", redriven.body);
    let done = wait_for(&mut on_a, &id, |job| job["state"] == "succeeded");
    assert_eq!(done["attempts"], 4, "{done}");
    assert_eq!(done["result"], json!({"succeeded_on_attempt": 4}), "{done}");
    let letters = on_a.get("/jobs/jobs/dead").json();
    assert_eq!(letters["dead_letters"], json!([]), "{letters}");
}

#[test]
fn jobs_span_instances_on_redis_streams() {
    let Some((a, b)) = pair("jobs-redis", &[]) else {
        return;
    };
    jobs_span_instances(&a, &b, "Redis Streams (Redis at");
}

#[test]
fn jobs_span_instances_on_nats_jetstream() {
    let Some(nats) = serve::testing::peer("NATS_URL") else {
        return;
    };
    let Some((a, b)) = pair("jobs-nats", &[("NATS_URL", nats.as_str())]) else {
        return;
    };
    jobs_span_instances(&a, &b, "NATS JetStream at");
}
