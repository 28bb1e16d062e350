//! What the peer tests (`peers.rs`, `amqp.rs`) share: the skip-or-fail rule for a missing
//! variable or tool, the Python peer (`tests/peers/broker_peer.py`) and the check of what it
//! read from us.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::process::Command;

use broker_core::Envelope;

pub(crate) const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/broker_peer.py");
pub(crate) const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Skips with a message, or fails under `CI=true`, when `what` is not available.
pub(crate) fn missing(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} must be available under CI=true"
    );
    println!("skipped: {what} is not available");
}

/// A non-empty environment variable, or [`missing`].
pub(crate) fn env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            missing(name);
            None
        }
    }
}

/// Runs the peer with `args` and returns its JSON lines.
pub(crate) fn peer(python: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let output = Command::new(python).arg(PEER).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "peer {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// What the peer printed for one of our messages: payload and headers as we sent them.
pub(crate) fn assert_is_ours(line: &serde_json::Value, sent: &[Envelope]) {
    let headers = &line["headers"];
    let id = headers["bk-id"].as_str().unwrap();
    let original = sent
        .iter()
        .find(|e| e.id().to_string() == id)
        .unwrap_or_else(|| panic!("peer read an unknown id {id}"));
    assert_eq!(
        line["payload"].as_str().unwrap().as_bytes(),
        original.payload().as_ref()
    );
    for (name, value) in original.headers().iter() {
        assert_eq!(
            headers[name].as_str(),
            Some(value),
            "header {name} in {line}"
        );
    }
    assert_eq!(headers["bk-attempt"].as_str(), Some("0"));
}
