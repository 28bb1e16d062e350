//! task-queue mounted at `/jobs/`: a job through the mount with retries, a dead letter and
//! its re-drive, the landing page's curl samples run as written, and the landing page's
//! jobs row and the queue's page in headless Chromium (`PEER_NODE_MODULES` with
//! playwright-core, `CHROMIUM_PATH`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use serve::testing::run;
use support::{Chromium, Client, ReplyExt as _, Server, curl_samples, landing_row};

/// Polls the job until `done` says so (the default backoff is 1 s, then 2 s).
fn wait_for(
    client: &mut Client,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
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

#[test]
fn jobs_retry_die_and_come_back_through_the_mount() {
    let server = Server::start();
    let mut client = server.client();
    let reply = client.send_json(
        "POST",
        "/jobs/jobs",
        &[],
        &json!({"kind": "flaky", "payload": {"fail_times": 1}}),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let flaky = reply.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply.location_path(&server.origin()),
        format!("/jobs/jobs/{flaky}")
    );
    let reply = client.send_json("POST", "/jobs/jobs", &[], &json!({"kind": "fail"}));
    let doomed = reply.json()["id"].as_str().unwrap().to_owned();

    let job = wait_for(&mut client, &flaky, |job| job["state"] == "succeeded");
    assert_eq!(job["attempts"], 2, "{job}");
    let job = wait_for(&mut client, &doomed, |job| job["state"] == "dead");
    assert_eq!(job["attempts"], 3, "{job}");
    let dead = client.get("/jobs/jobs/dead").json();
    assert_eq!(dead["dead_letters"][0]["id"], *doomed, "{dead}");
    assert_eq!(
        dead["dead_letters"][0]["reason"],
        "nacked on delivery 3 of at most 3"
    );

    let reply = client.send("POST", "/jobs/jobs/dead/redrive", &[], b"");
    assert_eq!(reply.json()["redriven"], 1, "{}", reply.body);
    assert_eq!(reply.json()["ids"][0], *doomed, "{}", reply.body);
    wait_for(&mut client, &doomed, |job| job["attempts"] == 4);

    // Problems through the mount.
    let reply = client.get("/jobs/jobs/0190d6a4-8f5e-7cc0-9a4b-5b1c2f3e4d5a");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let reply = client.send(
        "POST",
        "/jobs/jobs",
        &[("Content-Type", "application/json")],
        b"{",
    );
    assert_eq!(reply.status, 400);
}

#[test]
fn the_landing_page_job_samples_name_the_host_and_work_as_written() {
    let server = Server::start();
    let page = server.client().get("/");
    let row = landing_row(&page.body, "jobs");
    assert!(row.contains(r#"class="status live">live"#), "{row}");
    let samples = curl_samples(row);
    assert_eq!(samples.len(), 2, "{row}");
    let start = format!("curl -s http://{}/jobs/jobs ", server.addr);
    for sample in &samples {
        assert!(sample.starts_with(&start), "{sample}");
    }
    let run = |sample: &str| -> serde_json::Value {
        serde_json::from_str(&run(Command::new("sh").arg("-c").arg(sample))).unwrap()
    };
    let first = run(&samples[0]);
    assert_eq!(first["kind"], "echo", "{first}");
    // Pasted twice, the sample with a key gives the same job.
    assert_eq!(run(&samples[0])["id"], first["id"]);
    let flaky = run(&samples[1]);
    let id = flaky["id"].as_str().unwrap();
    let job = wait_for(&mut server.client(), id, |job| job["state"] == "succeeded");
    assert_eq!(job["attempts"], 3, "{job}");
}

#[test]
fn chromium_enqueues_from_the_page_and_sees_retries_and_dead_letters() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let server = Server::start();
    chromium.run(
        "jobs_browser.js",
        &server,
        &["showcase-jobs-row.png", "showcase-jobs-page.png"],
    );
}
