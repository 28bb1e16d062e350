//! Document text to validate and execute against a test schema (limits, parse, the 30
//! rules, coercion, execution): any input must give a response, never a panic or a hang.
#![no_main]

use std::sync::OnceLock;
use std::task::{Context as TaskContext, Poll, Waker};

use graphql_core::{Context, Request, Resolver, Schema};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::build(
            "interface Node { id: ID! }
             type Query { node(id: ID!): Node users(first: Int = 3, filter: F): [User!]! echo(s: String, by: By): String }
             type User implements Node { id: ID! name: String friends: [User] }
             type Mutation { set(v: Int!): Int }
             input F { name: String, nested: F, list: [Int!] }
             input By @oneOf { a: Int b: String }
             union U = User",
        )
        .resolver("Query", "users", Resolver::sync(|_, _, _| {
            Ok(json!([{"__typename": "User", "id": 1, "name": "a", "friends": [{"id": 2}]}]))
        }))
        .resolver("Query", "node", Resolver::sync(|_, _, _| Ok(json!({"__typename": "User", "id": "1"}))))
        .finish()
        .expect("schema")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let request = Request::new(text);
    let ctx = Context::default();
    let mut future = schema().execute(&request, &ctx);
    // Every resolver is synchronous: the future is ready on its first poll.
    let mut cx = TaskContext::from_waker(Waker::noop());
    if let Poll::Ready(response) = future.as_mut().poll(&mut cx) {
        let _ = response.to_json();
    }
});
