//! A request (document, then optionally a NUL byte and the variables as JSON) executed
//! against a schema whose lists fan out (authors, books, their authors...) with every limit
//! on: the complexity count with assumed list sizes, variable defaults, and the executor's
//! caps on result values and bytes. Any input must give a response, never a panic, a hang
//! or an unbounded result.
#![no_main]

use std::sync::OnceLock;
use std::task::{Context as TaskContext, Poll, Waker};

use graphql_core::{Context, Limits, Request, Resolver, Schema};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// Most result values a response may hold here; the executor's cap.
const MAX_VALUES: usize = 5_000;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let limits = Limits {
            max_document_bytes: 8 * 1024,
            max_complexity: 2_000,
            max_result_values: MAX_VALUES,
            max_result_bytes: 256 * 1024,
            // No clock: a run must not depend on the machine's speed.
            max_execution_time: None,
            ..Limits::default()
        };
        Schema::build(
            "type Query {
               authors: [Author!]!
               books(first: Int = 5): [Book!]!
               numbers(limit: Int): [Int!]
               text(repeat: Int = 1): String
             }
             type Author { id: ID! name: String books: [Book!]! }
             type Book { id: ID! title: String! author: Author! tags: [[String]] }",
        )
        .limits(limits)
        .resolver(
            "Query",
            "authors",
            Resolver::sync(|_, _, _| Ok(json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]))),
        )
        .resolver(
            "Query",
            "books",
            Resolver::sync(|_, _, args| {
                let n = args
                    .get("first")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(50);
                Ok(Value::Array(
                    (0..n)
                        .map(|i| json!({"id": i, "title": "t", "authorId": 1}))
                        .collect(),
                ))
            }),
        )
        .resolver(
            "Author",
            "books",
            Resolver::sync(|_, parent, _| {
                let id = parent["id"].clone();
                Ok(Value::Array(
                    (0..8)
                        .map(
                            |i| json!({"id": i, "title": "t", "authorId": id, "tags": [["x"], []]}),
                        )
                        .collect(),
                ))
            }),
        )
        .resolver(
            "Book",
            "author",
            Resolver::sync(|_, parent, _| {
                Ok(json!({"id": parent["authorId"].clone(), "name": "a"}))
            }),
        )
        .resolver(
            "Query",
            "numbers",
            Resolver::sync(|_, _, args| {
                let n = args
                    .get("limit")
                    .and_then(Value::as_u64)
                    .unwrap_or(100_000)
                    .min(100_000);
                Ok(Value::Array((0..n).map(Value::from).collect()))
            }),
        )
        .resolver(
            "Query",
            "text",
            Resolver::sync(|_, _, args| {
                let n = args
                    .get("repeat")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .min(1 << 20);
                Ok(Value::String("x".repeat(n as usize)))
            }),
        )
        .finish()
        .expect("schema")
    })
}

/// How many values a JSON tree holds below its root.
fn nodes(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.iter().map(|v| 1 + nodes(v)).sum(),
        Value::Object(map) => map.values().map(|v| 1 + nodes(v)).sum(),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let (document, variables) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(document) else {
        return;
    };
    let mut request = Request::new(text);
    if let Ok(Value::Object(vars)) = serde_json::from_slice(variables) {
        request.variables = vars;
    }
    let ctx = Context::default();
    let mut future = schema().execute(&request, &ctx);
    // Every resolver is synchronous: the future is ready on its first poll.
    let mut cx = TaskContext::from_waker(Waker::noop());
    if let Poll::Ready(response) = future.as_mut().poll(&mut cx) {
        // The cap holds: the data has at most MAX_VALUES values, plus the nulls written
        // for the fields left once it was reached (at most the document's fields on each
        // of the at most 24 levels being left).
        let data = response.data.as_deref().unwrap_or("null");
        let tree: Value = serde_json::from_str(data).expect("the data is JSON");
        let bound = MAX_VALUES + 1 + 25 * text.len();
        assert!(nodes(&tree) <= bound, "{} values", nodes(&tree));
    }
});
