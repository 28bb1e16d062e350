#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The real peer: npm `@apollo/gateway` composes the example's two subgraphs and one of
//! `@apollo/subgraph`'s own with `IntrospectAndCompose` (reading each `_service { sdl }`)
//! and answers queries that span them, fetching entities through `_entities`: reviews of
//! products (by `upc`, with the `price` a `@requires` asks for), products of reviews, and
//! products the inventory subgraph names by their compound key `sku package`. Needs
//! `PEER_NODE_MODULES` (a node_modules with `@apollo/gateway`, `@apollo/subgraph` and
//! `graphql`, see .ci/package.json); skipped with a message when unset, a failure under
//! `CI=true`.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use serve::testing::{Process, peer};

#[test]
fn apollo_gateway_composes_the_subgraphs_and_resolves_entities() {
    let Some(modules) = peer("PEER_NODE_MODULES") else {
        return;
    };
    let server = Process::start(env!("CARGO_BIN_EXE_federation"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/gateway.js");
    let stdout = serve::testing::run(
        Command::new("node")
            .arg(script)
            .arg(server.origin())
            .env("NODE_PATH", modules),
    );
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    let results = &out["results"];
    assert_eq!(
        results[0],
        json!({"data": {"topProducts": [
            {"upc": "1", "name": "Table", "reviews": [{"body": "Sturdy", "stars": 5}, {"body": "Wobbly", "stars": 2}],
             "reviewScore": 7, "inStock": true, "shippingEstimate": 30},
            {"upc": "2", "name": "Chair", "reviews": [{"body": "Comfy", "stars": 4}],
             "reviewScore": 8, "inStock": false, "shippingEstimate": 15},
        ]}})
    );
    assert_eq!(
        results[1],
        json!({"data": {"latestReviews": [
            {"body": "Comfy", "product": {"name": "Chair", "price": 50}},
            {"body": "Wobbly", "product": {"name": "Table", "price": 100}},
            {"body": "Sturdy", "product": {"name": "Table", "price": 100}},
        ]}})
    );
    assert_eq!(
        results[2],
        json!({"data": {"stock": [{"sku": "C-2", "name": "Chair", "reviews": [{"stars": 4}]}]}})
    );
    // The plans fetch entities from our subgraphs (`Flatten` nodes are `_entities` calls):
    // reviews by `upc` with the required `price`, products by `upc` and by the compound key.
    let plans: Vec<&str> = out["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let flattened_fetch = |plan: &str, service: &str| {
        plan.split("Flatten(")
            .skip(1)
            .any(|part| part.contains(&format!("Fetch(service: \"{service}\")")))
    };
    assert!(flattened_fetch(plans[0], "reviews"), "{}", plans[0]);
    assert!(plans[0].contains("price"), "{}", plans[0]);
    assert!(flattened_fetch(plans[1], "products"), "{}", plans[1]);
    assert!(flattened_fetch(plans[2], "products"), "{}", plans[2]);
    assert!(plans[2].contains("package"), "{}", plans[2]);
}
