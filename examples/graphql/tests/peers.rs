#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Real clients against the example: the graphql-http audit suite (npm `graphql-http`,
//! `serverAudits`) on `/graphql`, and the npm `graphql-ws` client over a WebSocket. Needs
//! `PEER_NODE_MODULES` (a node_modules with graphql-http, graphql, graphql-ws and ws, see
//! .ci/package.json); skipped with a message when unset, a failure under `CI=true`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use serve::testing::{Process, peer};

fn start() -> Process {
    Process::start(env!("CARGO_BIN_EXE_graphql"))
}

#[test]
fn graphql_ws_client_subscribes_receives_and_completes() {
    let Some(modules) = peer("PEER_NODE_MODULES") else {
        return;
    };
    let server = start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/graphql_ws.js");
    let stdout = serve::testing::run(
        Command::new("node")
            .arg(script)
            .arg(server.origin())
            .env("NODE_PATH", modules),
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        seen["events"],
        serde_json::json!([
            {"data": {"bookAdded": {"title": "Dune", "author": {"name": "Frank Herbert"}}}},
            {"data": {"bookAdded": {"title": "Children of Dune", "author": {"name": "Frank Herbert"}}}}
        ])
    );
    assert_eq!(
        seen["query"][0]["data"]["authors"][1]["name"],
        "Frank Herbert"
    );
}

#[test]
fn graphql_http_audits_all_pass() {
    let Some(modules) = peer("PEER_NODE_MODULES") else {
        return;
    };
    let server = start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/audit.js");
    let stdout = serve::testing::run(
        Command::new("node")
            .arg(script)
            .arg(format!("{}/graphql", server.origin()))
            .env("NODE_PATH", modules),
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    let failed: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] != "ok")
        .collect();
    println!(
        "graphql-http audits: {} of {} pass",
        report["ok"], report["total"]
    );
    assert!(failed.is_empty(), "{failed:#?}");
    // graphql-http 1.23.1 has 61 audits (MUST, SHOULD and MAY).
    assert_eq!(report["total"], 61);
}
