#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Real peers against the chat server: Python `websockets`, headless Chromium, and the
//! Autobahn TestSuite cases through kosoku. Each needs its environment variable and says
//! `skipped` without it; `.ci/run` sets them all.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::start;
use serve::testing::peer;

fn here(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(file)
}

#[test]
fn python_websockets_client() {
    let Some(python) = peer("PEER_PYTHON") else {
        return;
    };
    let server = start();
    let stdout = serve::testing::run(
        Command::new(python)
            .arg(here("peer_websockets.py"))
            .arg(server.origin()),
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[test]
fn chromium_two_pages_chat_with_presence_and_deflate() {
    let Some(modules) = peer("PEER_NODE_MODULES") else {
        return;
    };
    let Some(chromium) = peer("CHROMIUM_PATH") else {
        return;
    };
    let server = start();
    let stdout = serve::testing::run(
        Command::new("node")
            .arg(here("peer_browser.js"))
            .arg(server.origin())
            .env("NODE_PATH", modules)
            .env("CHROMIUM_PATH", chromium),
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

/// Issue 19: two chat instances on the Redis at `REDIS_URL` (skipped without it, a failure
/// under `CI=true`, like the browser): ada's page on one, bob's on the other, in a room of
/// this run's own; ada sees bob join and leave live, once, and their messages cross.
#[test]
fn chromium_pages_on_two_instances_share_presence_and_messages() {
    let Some(modules) = peer("PEER_NODE_MODULES") else {
        return;
    };
    let Some(chromium) = peer("CHROMIUM_PATH") else {
        return;
    };
    let Some(redis) = peer("REDIS_URL") else {
        return;
    };
    let on_redis = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
        command.env("REDIS_URL", &redis);
        serve::testing::Process::spawn(command)
    };
    let (a, b) = (on_redis(), on_redis());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let room = format!("browsers-{}-{nanos}", std::process::id());
    let stdout = serve::testing::run(
        Command::new("node")
            .arg(here("peer_browser.js"))
            .arg(a.origin())
            .arg(b.origin())
            .arg(&room)
            .env("NODE_PATH", modules)
            .env("CHROMIUM_PATH", chromium),
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

/// Issue 22, items 1 and 2: the chat page as a user meets it (layout, nicknames, the size
/// limit, direct messages, reconnecting). Screenshots are written to
/// `CARGO_TARGET_TMPDIR/chat-ui/`.
#[test]
fn chromium_chat_page_as_a_user() {
    let Some(modules) = peer("PEER_NODE_MODULES") else {
        return;
    };
    let Some(chromium) = peer("CHROMIUM_PATH") else {
        return;
    };
    let server = start();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chat-ui");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let stdout = serve::testing::run(
        Command::new("node")
            .arg(here("chat_ui_browser.js"))
            .arg(format!("{}/", server.origin()))
            .arg(&shots)
            .env("NODE_PATH", modules)
            .env("CHROMIUM_PATH", chromium),
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    for name in [
        "chat-desktop.png",
        "chat-phone.png",
        "chat-name-taken.png",
        "chat-too-big.png",
        "chat-connection-lost.png",
    ] {
        let png = std::fs::read(shots.join(name)).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    }
    println!("screenshots: {}", shots.display());
}

/// Cases kosoku 0.1.0 cannot run: for the zero-length cases 12.x.1 and 13.x.1 with binary
/// test data its case code hashes a `str` and raises before connecting ("Strings must be
/// encoded before hashing"), whatever the server. They are reported, not hidden; what they
/// check (1000 small messages, text and binary, echoed under each 13.x kind of deflate
/// offer) is checked with Python `websockets` in `peer_websockets.py` instead.
const TOOL_ERRORS: &[&str] = &[
    "12.1.1", "12.2.1", "12.3.1", "12.4.1", "12.5.1", "13.1.1", "13.2.1", "13.3.1", "13.4.1",
    "13.5.1", "13.6.1", "13.7.1",
];

#[test]
fn autobahn_testsuite_via_kosoku() {
    let Some(python) = peer("PEER_PYTHON") else {
        return;
    };
    let kosoku = Path::new(&python).with_file_name("kosoku");
    assert!(kosoku.exists(), "kosoku is not installed next to {python}");
    let server = start();
    let reports = std::env::temp_dir().join(format!("ws-core-autobahn-{}", std::process::id()));
    let status = Command::new(&kosoku)
        .args(["-p", "4", "-o"])
        .arg(&reports)
        .arg(format!("ws://{}/echo", server.addr))
        .status()
        .unwrap();
    // kosoku exits 1 when any case is not OK; the counts below are the verdict.
    let _ = status;
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("index.json")).unwrap()).unwrap();
    let cases = index
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_object()
        .unwrap();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut bad = Vec::new();
    for (id, case) in cases {
        let behavior = case["behavior"].as_str().unwrap().to_owned();
        let close = case["behaviorClose"].as_str().unwrap();
        *counts.entry(behavior.clone()).or_default() += 1;
        let tool_error = behavior == "ERROR" && TOOL_ERRORS.contains(&id.as_str());
        let fine = matches!(behavior.as_str(), "OK" | "NON-STRICT" | "INFORMATIONAL")
            && matches!(close, "OK" | "INFORMATIONAL");
        if !fine && !tool_error {
            bad.push(format!("{id}: {behavior}/{close}"));
        }
    }
    println!("autobahn via kosoku: {} cases, {counts:?}", cases.len());
    assert_eq!(cases.len(), 517);
    assert!(bad.is_empty(), "cases not passing: {bad:?}");
    assert_eq!(counts.get("FAILED"), None);
    assert_eq!(counts.get("UNIMPLEMENTED"), None);
    let _ = std::fs::remove_dir_all(&reports);
}
