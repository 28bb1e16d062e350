//! The job queue over HTTP, in process, on every backend: the embedded broker always, Redis
//! and NATS when `REDIS_URL` / `NATS_URL` are set (they must be under `CI=true`; build with
//! `--features redis,nats`). Each backend runs the same scenario: a job succeeds; a flaky
//! one retries with backoff and succeeds; a failing one ends in the dead letters with its
//! attempts and reason; re-driving brings dead jobs back; an `Idempotency-Key` returns the
//! same job.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use serve::testing::{Reply, call, get, request};
use task_queue::{App, Settings};

/// Fast retries so a test sees the whole life of a job in well under a second per attempt.
fn settings(broker_url: Option<String>, prefix: &str) -> Settings {
    Settings {
        broker_url,
        prefix: prefix.to_owned(),
        workers: 2,
        batch: 4,
        ack_wait: Duration::from_secs(5),
        retry: broker_core::RetryPolicy::new(3, Duration::from_millis(50)).jitter(0.0),
        ..Settings::default()
    }
}

async fn start(settings: Settings) -> Arc<App> {
    let app = App::new(settings).await.unwrap();
    app.spawn_workers();
    Arc::new(app)
}

#[cfg(any(feature = "redis", feature = "nats"))]
fn unique(backend: &str) -> String {
    format!(
        "tqtest-{backend}-{}",
        broker_core::MessageId::new().as_uuid().simple()
    )
}

async fn post(app: &Arc<App>, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    call(
        app,
        request(Method::POST, path, &all, body.to_owned().into()),
    )
    .await
}

fn json_of(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

async fn enqueue(app: &Arc<App>, job: Value) -> String {
    let reply = post(app, "/jobs", &[], &job.to_string()).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let body = json_of(&reply);
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.header("location"), Some(&*format!("/jobs/{id}")));
    id
}

/// Polls `GET /jobs/{id}` until its state is `state`.
async fn wait_for(app: &Arc<App>, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = get(app, &format!("/jobs/{id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let job = json_of(&reply);
        if job["state"] == state {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never became {state}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn scenario(app: &Arc<App>) {
    // Enqueue -> success.
    let id = enqueue(app, json!({"kind": "echo", "payload": {"n": 7}})).await;
    let job = wait_for(app, &id, "succeeded").await;
    assert_eq!(job["result"], json!({"n": 7}));
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["history"][0]["outcome"], "succeeded");

    // Two failures, retried after the backoff, then success.
    let flaky = enqueue(app, json!({"kind": "flaky", "payload": {"fail_times": 2}})).await;
    let job = wait_for(app, &flaky, "succeeded").await;
    assert_eq!(job["attempts"], 3, "{job}");
    let outcomes: Vec<&str> = job["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "failed", "succeeded"], "{job}");
    assert_eq!(job["result"], json!({"succeeded_on_attempt": 3}));

    // Always failing: dead after 3 attempts, with its reason, listed in the dead letters.
    let doomed = enqueue(
        app,
        json!({"kind": "fail", "payload": {"reason": "card declined"}}),
    )
    .await;
    // Fails 4 times: dead after 3, succeeds once re-driven.
    let revived = enqueue(app, json!({"kind": "flaky", "payload": {"fail_times": 4}})).await;
    let job = wait_for(app, &doomed, "dead").await;
    assert_eq!(job["attempts"], 3, "{job}");
    assert_eq!(job["last_error"], "card declined");
    assert!(
        job["dead_reason"]
            .as_str()
            .unwrap()
            .contains("delivery 3 of at most 3"),
        "{job}"
    );
    wait_for(app, &revived, "dead").await;
    let reply = get(app, "/jobs/dead").await;
    assert_eq!(reply.status, 200);
    let letters = json_of(&reply)["dead_letters"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 2, "{letters:?}");
    let letter = letters.iter().find(|l| l["id"] == *doomed).unwrap();
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["kind"], "fail");
    assert!(
        letter["reason"].as_str().unwrap().contains("nacked"),
        "{letter}"
    );

    // Re-drive: both go back; the flaky one succeeds on its 5th attempt, the other dies
    // again after 3 more.
    let reply = post(app, "/jobs/dead/redrive", &[], "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = json_of(&reply);
    assert_eq!(body["redriven"], 2, "{body}");
    let job = wait_for(app, &revived, "succeeded").await;
    assert_eq!(job["attempts"], 5, "{job}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = json_of(&get(app, &format!("/jobs/{doomed}")).await);
        if job["state"] == "dead" && job["attempts"] == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let letters = json_of(&get(app, "/jobs/dead").await)["dead_letters"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["id"], *doomed);

    // Idempotency-Key: a retried POST gets the same job, not a second one.
    let body = json!({"kind": "echo", "payload": "once"}).to_string();
    let key = [("idempotency-key", "order-42")];
    let first = post(app, "/jobs", &key, &body).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let again = post(app, "/jobs", &key, &body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(json_of(&again)["id"], json_of(&first)["id"]);
    assert_eq!(again.header("location"), first.header("location"));
    // The same key for another job: 422.
    let other = post(app, "/jobs", &key, r#"{"kind":"echo","payload":"twice"}"#).await;
    assert_eq!(other.status, 422, "{}", other.body);
    assert_eq!(
        other.header("content-type"),
        Some("application/problem+json")
    );
    let list = json_of(&get(app, "/jobs").await);
    let echoes = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["payload"] == "once")
        .count();
    assert_eq!(echoes, 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_broker_runs_retries_dead_letters_redrive_and_idempotency() {
    let app = start(settings(None, "tq")).await;
    assert_eq!(app.broker_name(), "embedded");
    assert_eq!(app.inbox_name(), "memory");
    scenario(&app).await;
}

#[tokio::test]
async fn errors_are_problem_details_with_the_right_status() {
    let app = start(settings(None, "tq")).await;
    let problem = |reply: &Reply, status: u16| {
        assert_eq!(reply.status, status, "{}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{}",
            reply.body
        );
        json_of(reply)
    };
    // Malformed JSON: 400 with the position.
    let body = problem(&post(&app, "/jobs", &[], r#"{"kind": "#).await, 400);
    assert!(
        body["detail"].as_str().unwrap().contains("line 1"),
        "{body}"
    );
    // An unknown kind, a payload that does not fit the kind, an unknown member: 422.
    let body = problem(&post(&app, "/jobs", &[], r#"{"kind":"mine"}"#).await, 422);
    assert!(body["detail"].as_str().unwrap().contains("/kind"), "{body}");
    let body = problem(
        &post(
            &app,
            "/jobs",
            &[],
            r#"{"kind":"flaky","payload":{"fail_times":-1}}"#,
        )
        .await,
        422,
    );
    assert!(
        body["detail"].as_str().unwrap().contains("/payload"),
        "{body}"
    );
    problem(
        &post(&app, "/jobs", &[], r#"{"kind":"echo","extra":1}"#).await,
        422,
    );
    // Not JSON at all: 415.
    let reply = call(
        &app,
        request(
            Method::POST,
            "/jobs",
            &[("content-type", "text/plain")],
            "hi".into(),
        ),
    )
    .await;
    problem(&reply, 415);
    // Unknown jobs: 404, whether or not the id is a UUID.
    let body = problem(
        &get(&app, "/jobs/0190d6a4-8f5e-7cc0-9a4b-5b1c2f3e4d5a").await,
        404,
    );
    assert!(
        body["detail"].as_str().unwrap().contains("no job"),
        "{body}"
    );
    problem(&get(&app, "/jobs/nope").await, 404);
    // A method the path does not take: 405 with Allow.
    let reply = call(&app, request(Method::DELETE, "/jobs", &[], "".into())).await;
    problem(&reply, 405);
    assert!(
        reply.header("allow").unwrap().contains("POST"),
        "{:?}",
        reply.headers
    );
    // A body over the limit: 413.
    let big = format!(r#"{{"kind":"echo","payload":"{}"}}"#, "x".repeat(70_000));
    problem(&post(&app, "/jobs", &[], &big).await, 413);
    // A bad Idempotency-Key: 400.
    let long = "k".repeat(300);
    problem(
        &post(
            &app,
            "/jobs",
            &[("idempotency-key", &long)],
            r#"{"kind":"echo"}"#,
        )
        .await,
        400,
    );
    // The page and the health check.
    let page = get(&app, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("task-queue"));
    assert_eq!(get(&app, "/healthz").await.body, "ok\n");
}

#[tokio::test]
async fn a_mounted_app_serves_below_its_prefix() {
    let app = start(Settings {
        base_path: "/jobs".to_owned(),
        ..settings(None, "tq")
    })
    .await;
    assert_eq!(get(&app, "/jobs/").await.status, 200);
    let reply = post(&app, "/jobs/jobs", &[], r#"{"kind":"echo"}"#).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = json_of(&reply)["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.header("location"), Some(&*format!("/jobs/jobs/{id}")));
    assert_eq!(get(&app, &format!("/jobs/jobs/{id}")).await.status, 200);
    assert_eq!(get(&app, "/jobs/jobs/dead").await.status, 200);
    assert_eq!(get(&app, "/other").await.status, 404);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_broker_runs_the_same_scenario() {
    let Some(url) = serve::testing::peer("REDIS_URL") else {
        return;
    };
    let prefix = unique("redis");
    let app = start(settings(Some(url.clone()), &prefix)).await;
    assert_eq!(app.broker_name(), "redis");
    assert_eq!(app.inbox_name(), "redis");
    scenario(&app).await;
    delete_redis_keys(&url, &prefix).await;
}

#[cfg(feature = "redis")]
async fn delete_redis_keys(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "no keys under {prefix}:");
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_broker_runs_the_same_scenario() {
    let Some(url) = serve::testing::peer("NATS_URL") else {
        return;
    };
    let prefix = unique("nats");
    let app = start(settings(Some(url), &prefix)).await;
    assert_eq!(app.broker_name(), "nats");
    assert_eq!(app.inbox_name(), "memory");
    scenario(&app).await;
    app.delete_queues().await.unwrap();
}

/// Two apps (as two instances) on one Redis broker with the records and keys in that Redis
/// too (`state_url`): what one enqueues, the other shows, dead-letters and re-drives, and a
/// key replayed on the other returns the same job.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_apps_share_records_and_keys_in_redis() {
    let Some(url) = serve::testing::peer("REDIS_URL") else {
        return;
    };
    let prefix = unique("shared");
    let shared = || Settings {
        state_url: Some(url.clone()),
        ..settings(Some(url.clone()), &prefix)
    };
    let a = start(shared()).await;
    let b = start(shared()).await;
    assert_eq!(b.state_name(), "redis");

    let key = [("idempotency-key", "two-apps-1")];
    let body = json!({"kind": "echo", "payload": {"n": 1}}).to_string();
    let first = post(&a, "/jobs", &key, &body).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let id = json_of(&first)["id"].as_str().unwrap().to_owned();
    let replay = post(&b, "/jobs", &key, &body).await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(json_of(&replay)["id"], id.as_str());
    let job = wait_for(&b, &id, "succeeded").await;
    assert_eq!(job["attempts"], 1, "{job}");

    // Fails 3 times (dead, seen on B), re-driven on B, succeeds on its 4th attempt (A).
    let id = enqueue(&a, json!({"kind": "flaky", "payload": {"fail_times": 3}})).await;
    let dead = wait_for(&b, &id, "dead").await;
    assert_eq!(dead["attempts"], 3, "{dead}");
    let redriven = post(&b, "/jobs/dead/redrive", &[], "").await;
    assert_eq!(json_of(&redriven)["ids"], json!([id]), "{}", redriven.body);
    let done = wait_for(&a, &id, "succeeded").await;
    assert_eq!(done["result"], json!({"succeeded_on_attempt": 4}), "{done}");

    // Both list both jobs, with the counts over every instance's.
    let listed = json_of(&get(&b, "/jobs").await);
    assert_eq!(listed["state"], "redis");
    assert_eq!(listed["counts"]["succeeded"], 2, "{listed}");
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 2, "{listed}");
    // An id nobody enqueued is a 404 on either.
    let unknown = broker_core::MessageId::new();
    assert_eq!(get(&a, &format!("/jobs/{unknown}")).await.status, 404);
    delete_redis_keys(&url, &prefix).await;
}
