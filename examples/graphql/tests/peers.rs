#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Real clients against the example: the graphql-http audit suite (npm `graphql-http`,
//! `serverAudits`) on `/graphql`, the npm `graphql-ws` client over a WebSocket, the npm
//! `graphql-sse` client over Server-Sent Events in both of its modes, and the npm `meros`
//! multipart reader on `@defer`/`@stream` responses. Needs `PEER_NODE_MODULES` (a
//! node_modules with graphql-http, graphql, graphql-ws, ws, graphql-sse and meros, see
//! .ci/package.json); skipped with a message when unset, a failure under `CI=true`.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use serve::testing::{Process, peer};

/// The example alone: without `REDIS_URL` and `NATS_URL`, so that the `bookAdded` events of the servers
/// other tests run at the same time (which would share them through Redis) never reach it.
fn start() -> Process {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_graphql"));
    command.env_remove("REDIS_URL").env_remove("NATS_URL");
    Process::spawn(command)
}

/// Runs tests/peers/`script` with node (the npm peers on `NODE_PATH`) and `args`; gives
/// the JSON it prints.
fn node(modules: &str, script: &str, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script);
    let stdout = serve::testing::run(
        Command::new("node")
            .arg(script)
            .args(args)
            .env("NODE_PATH", modules),
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn graphql_ws_client_subscribes_receives_and_completes() {
    let Some(modules) = peer("PEER_NODE_MODULES") else {
        return;
    };
    let server = start();
    let seen = node(&modules, "graphql_ws.js", &[&server.origin()]);
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

/// `@defer`/`@stream` over `multipart/mixed`, read by the npm `meros` multipart reader and
/// applied to the result as a client does, in graphql-js 17's format and in the 2022-08-24
/// one: every part is JSON, and the assembled result is the complete one.
#[test]
fn meros_reads_incremental_delivery_in_both_formats() {
    let Some(modules) = peer("PEER_NODE_MODULES") else {
        return;
    };
    let server = start();
    let seen = node(&modules, "meros_multipart.js", &[&server.origin()]);
    let complete = json!({"books": [{"title": "A Wizard of Earthsea"}, {"title": "The Dispossessed"}],
                          "book": {"id": "1", "year": 1968, "author": {"name": "Ursula K. Le Guin"}}});
    let current = &seen["current"];
    assert_eq!(current["status"], 200);
    assert_eq!(
        current["contentType"],
        "multipart/mixed; boundary=\"-\"; incrementalSpec=v0.2"
    );
    assert_eq!(
        current["parts"],
        json!([
            {"data": {"books": [{"title": "A Wizard of Earthsea"}], "book": {"id": "1"}},
             "pending": [{"id": "0", "path": ["books"]}, {"id": "1", "path": ["book"], "label": "more"}],
             "hasNext": true},
            {"incremental": [{"id": "0", "items": [{"title": "The Dispossessed"}]}],
             "completed": [{"id": "0"}], "hasNext": true},
            {"incremental": [{"id": "1", "data": {"year": 1968, "author": {"name": "Ursula K. Le Guin"}}}],
             "completed": [{"id": "1"}], "hasNext": false}
        ])
    );
    assert_eq!(
        current["result"],
        json!({"data": complete, "errors": [], "open": 0})
    );
    let legacy = &seen["legacy"];
    assert_eq!(
        legacy["contentType"],
        "multipart/mixed; boundary=\"-\"; deferSpec=20220824"
    );
    assert_eq!(legacy["parts"].as_array().unwrap().len(), 3);
    assert!(legacy["parts"][0].get("pending").is_none());
    assert_eq!(legacy["result"], json!({"data": complete, "errors": []}));
}

#[test]
fn graphql_http_audits_all_pass() {
    let Some(modules) = peer("PEER_NODE_MODULES") else {
        return;
    };
    let server = start();
    let endpoint = format!("{}/graphql", server.origin());
    let report = node(&modules, "audit.js", &[&endpoint]);
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

/// Runs tests/peers/graphql_sse.js in `mode` against a fresh server and checks what the
/// client saw; gives the HTTP requests it made.
fn graphql_sse_client(mode: &str) -> Option<Vec<Value>> {
    let modules = peer("PEER_NODE_MODULES")?;
    let server = start();
    let seen = node(&modules, "graphql_sse.js", &[&server.origin(), mode]);
    // @defer and @stream: the payloads as successive `next` events, in order.
    assert_eq!(
        seen["incremental"],
        json!([
            {"data": {"books": [{"title": "A Wizard of Earthsea"}], "book": {"id": "1"}},
             "pending": [{"id": "0", "path": ["books"]}, {"id": "1", "path": ["book"], "label": "more"}],
             "hasNext": true},
            {"incremental": [{"id": "0", "items": [{"title": "The Dispossessed"}]}],
             "completed": [{"id": "0"}], "hasNext": true},
            {"incremental": [{"id": "1", "data": {"year": 1968, "author": {"name": "Ursula K. Le Guin"}}}],
             "completed": [{"id": "1"}], "hasNext": false}
        ]),
        "{mode}"
    );
    assert_eq!(
        seen["query"],
        json!([{"data": {"authors": [{"name": "Ursula K. Le Guin"}, {"name": "Frank Herbert"}]}}])
    );
    assert_eq!(
        seen["mutation"],
        json!([{"data": {"addBook": {"title": "Heretics of Dune", "year": null}}}])
    );
    assert_eq!(
        seen["events"],
        json!([
            {"data": {"bookAdded": {"title": "Dune", "author": {"name": "Frank Herbert"}}}},
            {"data": {"bookAdded": {"title": "Children of Dune", "author": {"name": "Frank Herbert"}}}}
        ])
    );
    // Cancelled before any event: nothing arrives, not even the book added afterwards.
    assert_eq!(seen["cancelled"], json!({"seen": [], "failed": null}));
    Some(
        seen["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["url"].as_str().unwrap().starts_with("/graphql"))
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .chain(std::iter::once(seen["stopAgain"].clone()))
            .collect(),
    )
}

#[test]
fn graphql_sse_client_distinct_connections() {
    let Some(mut requests) = graphql_sse_client("distinct") else {
        return;
    };
    assert_eq!(requests.pop(), Some(Value::Null));
    // One POST per operation (event stream, 200), nothing else: cancelling closes it.
    assert_eq!(requests.len(), 5, "{requests:?}");
    for r in &requests {
        assert_eq!(
            (&r["method"], &r["status"]),
            (&json!("POST"), &json!(200)),
            "{r}"
        );
    }
}

#[test]
fn graphql_sse_client_single_connection() {
    let Some(mut requests) = graphql_sse_client("single") else {
        return;
    };
    // Stopping a cancelled operation again: the server no longer has it.
    assert_eq!(requests.pop(), Some(json!(404)));
    let summary: Vec<(String, u64)> = requests
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let count = |method: &str, status: u64| {
        summary
            .iter()
            .filter(|(m, s)| m == method && *s == status)
            .count()
    };
    // One reservation and one stream for everything, five operations accepted, both
    // subscriptions stopped with DELETE.
    assert_eq!(summary[0], ("PUT".to_owned(), 201), "{summary:?}");
    assert_eq!(summary[1], ("GET".to_owned(), 200), "{summary:?}");
    assert_eq!(count("PUT", 201), 1, "{summary:?}");
    assert_eq!(count("POST", 202), 5, "{summary:?}");
    assert_eq!(count("DELETE", 200), 2, "{summary:?}");
    assert_eq!(summary.len(), 9, "{summary:?}");
}
