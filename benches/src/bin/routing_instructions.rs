//! The routing benchmark's loop without criterion, for counting instructions and branch
//! mispredictions under `valgrind --tool=callgrind`: counts that do not move with the load of
//! the machine or with where the linker put the hot loop, which move the timed figures of
//! `benches/rest_core.rs` by several percent from one build to the next.
//!
//! ```text
//! cargo build --release --bin routing_instructions
//! valgrind --tool=callgrind --branch-sim=yes --callgrind-out-file=/dev/null \
//!     $CARGO_TARGET_DIR/release/routing_instructions ours all 2000
//! ```
//!
//! Arguments: `raw` (matchit alone) or `ours` (rest-core's `Router`); `all` (every route of
//! the table), `dynamic` (the routes with a parameter) or `static` (those without); the
//! number of passes over the
//! requests. Run once with 0 passes and once with N: the difference divided by N times the
//! number of requests (printed) is the cost of one lookup.

use std::hint::black_box;

use backend_kit_benches::{concrete_path, github_routes};
use http::Method;
use rest_core::Router;

#[inline(never)]
fn pass_raw(raw: &matchit::Router<usize>, requests: &[(Method, String)]) {
    for (_, path) in requests {
        black_box(raw.at(black_box(path.as_str())).ok());
    }
}

#[inline(never)]
fn pass_ours(ours: &Router<usize>, requests: &[(Method, String)]) {
    for (method, path) in requests {
        black_box(ours.at(black_box(method), black_box(path.as_str())));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "ours".to_owned());
    let subset = args.next().unwrap_or_else(|| "all".to_owned());
    let passes: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let routes = github_routes();
    let mut ours = Router::new();
    let mut raw = matchit::Router::new();
    let mut seen = std::collections::HashSet::new();
    for (index, (method, template)) in routes.iter().enumerate() {
        ours.insert(method.clone(), template, index)
            .expect("no conflict");
        if seen.insert(template.clone()) {
            raw.insert(template.as_str(), index).expect("no conflict");
        }
    }
    let requests: Vec<(Method, String)> = routes
        .iter()
        .filter(|(_, template)| match subset.as_str() {
            "dynamic" => template.contains('{'),
            "static" => !template.contains('{'),
            _ => true,
        })
        .map(|(method, template)| (method.clone(), concrete_path(template)))
        .collect();
    for _ in 0..passes {
        if which == "raw" {
            pass_raw(&raw, &requests);
        } else {
            pass_ours(&ours, &requests);
        }
    }
    println!("{which}: {passes} passes over {} requests", requests.len());
}
