#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `Resolver::typed_list`: a list of `TypedObject` items answers every query exactly as the
//! same items returned as JSON objects by `Resolver::sync` (data, errors with their paths,
//! null propagation, limits, the async path, `@stream` and `@defer`).

use futures_util::StreamExt;
use graphql_core::{
    Context, FieldError, FieldValue, Limits, Request, Resolver, Schema, TypedObject,
};
use serde_json::{Value, json};

const SDL: &str = r#"
type Query { items: [Item!]! maybe: [Item] failing: [Item!] slow: Int }
type Item {
  id: ID! n: Int! name: String! ok: Boolean! x: Float kind: Kind! big: Int
  tags: [String!]! child: Child extra: String computed(by: Int!): Int
}
type Child { a: Int b: String }
enum Kind { A B }
"#;

struct Item {
    id: u32,
    n: i64,
    name: String,
    ok: bool,
    x: Option<f64>,
    kind: &'static str,
    big: i64,
    tags: Value,
    child: Option<Value>,
}

impl TypedObject for Item {
    const FIELDS: &'static [&'static str] =
        &["id", "n", "name", "ok", "x", "kind", "big", "tags", "child"];

    fn field(&self, index: usize) -> FieldValue<'_> {
        match index {
            0 => self.id.into(),
            1 => self.n.into(),
            2 => (&self.name).into(),
            3 => self.ok.into(),
            4 => self.x.into(),
            5 => self.kind.into(),
            6 => self.big.into(),
            7 => (&self.tags).into(),
            8 => self.child.as_ref().into(),
            _ => FieldValue::Null,
        }
    }
}

/// Item 1's `big` is beyond 32 bits, item 2's `kind` is not an enum value, item 3's `x` is
/// NaN; the rest are ordinary.
fn items(count: usize) -> Vec<Item> {
    (0..count)
        .map(|i| Item {
            id: i as u32,
            n: i as i64 * 3,
            name: format!("item \"{i}\"\n"),
            ok: i % 2 == 0,
            x: match i {
                3 => Some(f64::NAN),
                _ if i % 3 == 0 => None,
                _ => Some(i as f64 / 4.0),
            },
            kind: if i == 2 { "Z" } else { "B" },
            big: if i == 1 { 1 << 40 } else { i as i64 },
            tags: json!(["t", format!("u{i}")]),
            child: (i % 2 == 1).then(|| json!({"a": i, "b": "c"})),
        })
        .collect()
}

/// The same items as a resolver returning JSON would give them.
fn items_json(count: usize) -> Value {
    Value::Array(
        items(count)
            .into_iter()
            .map(|it| {
                json!({
                    "id": it.id, "n": it.n, "name": it.name, "ok": it.ok, "x": it.x,
                    "kind": it.kind, "big": it.big, "tags": it.tags, "child": it.child,
                })
            })
            .collect(),
    )
}

fn schema(typed: bool, count: usize, limits: Limits, incremental: bool) -> Schema {
    let mut builder = Schema::build(SDL)
        .limits(limits)
        .incremental_delivery(incremental)
        .resolver(
            "Query",
            "slow",
            Resolver::asynchronous(|_| Box::pin(async { Ok(json!(7)) })),
        )
        .resolver(
            "Item",
            "computed",
            Resolver::sync(|_, parent, args| {
                let n = parent["n"].as_i64().unwrap_or(-1);
                let by = args.get("by").and_then(Value::as_i64).unwrap_or(0);
                Ok(json!(n * by))
            }),
        );
    for field in ["items", "maybe"] {
        builder = if typed {
            builder.resolver(
                "Query",
                field,
                Resolver::typed_list(move |_, _, _| Ok(items(count))),
            )
        } else {
            builder.resolver(
                "Query",
                field,
                Resolver::sync(move |_, _, _| Ok(items_json(count))),
            )
        };
    }
    builder = if typed {
        builder.resolver(
            "Query",
            "failing",
            Resolver::typed_list(|_, _, _| Err::<Vec<Item>, _>(FieldError::new("no items"))),
        )
    } else {
        builder.resolver(
            "Query",
            "failing",
            Resolver::sync(|_, _, _| Err(FieldError::new("no items"))),
        )
    };
    builder.finish().unwrap()
}

async fn run(schema: &Schema, query: &str) -> Value {
    let response = schema
        .execute(&Request::new(query), &Context::default())
        .await;
    serde_json::from_str(&response.to_json()).unwrap()
}

const QUERIES: &[&str] = &[
    "{ items { id n name ok x tags child { a b } } }",
    "{ items { t: __typename nn: n n again: n } }",
    "{ items { extra } }",
    "{ maybe { big } }",
    "{ maybe { n kind } }",
    "{ items { n kind } }",
    "{ items { computed(by: 2) n } }",
    "{ slow items { n name } }",
    "{ failing { n } maybe { n } }",
    "{ maybe { ... on Item { n } ...F } } fragment F on Item { name ok }",
];

#[tokio::test]
async fn typed_items_answer_as_json_items() {
    let typed = schema(true, 6, Limits::default(), false);
    let json = schema(false, 6, Limits::default(), false);
    for query in QUERIES {
        let a = run(&typed, query).await;
        let b = run(&json, query).await;
        assert_eq!(a, b, "{query}");
    }
}

#[tokio::test]
async fn typed_items_write_the_selected_fields() {
    let typed = schema(true, 4, Limits::default(), false);
    let a = run(&typed, "{ items { id n name ok x tags child { b } } }").await;
    assert_eq!(a["errors"], Value::Null);
    assert_eq!(
        a["data"]["items"][1],
        json!({"id": "1", "n": 3, "name": "item \"1\"\n", "ok": false, "x": 0.25,
               "tags": ["t", "u1"], "child": {"b": "c"}})
    );
    // NaN is null, as serde_json makes it.
    assert_eq!(a["data"]["items"][3]["x"], Value::Null);
    // An Int beyond 32 bits: the field's error at its path, the field null.
    let b = run(&typed, "{ maybe { big } }").await;
    assert_eq!(b["data"]["maybe"][1]["big"], Value::Null);
    assert_eq!(b["data"]["maybe"][2]["big"], json!(2));
    assert_eq!(b["errors"][0]["path"], json!(["maybe", 1, "big"]));
    // A non-null enum field with a value not of the enum: the item is null in `[Item]`,
    // and the whole non-null list in `[Item!]!` (so `data`).
    let c = run(&typed, "{ maybe { kind } }").await;
    assert_eq!(c["data"]["maybe"][2], Value::Null);
    assert_eq!(c["data"]["maybe"][1], json!({"kind": "B"}));
    assert_eq!(c["errors"][0]["path"], json!(["maybe", 2, "kind"]));
    let d = run(&typed, "{ items { kind } }").await;
    assert_eq!(d["data"], Value::Null);
}

#[tokio::test]
async fn typed_items_count_against_the_limits() {
    let limits = Limits {
        max_result_values: 40,
        ..Limits::default()
    };
    let typed = schema(true, 30, limits.clone(), false);
    let json = schema(false, 30, limits, false);
    for query in ["{ maybe { n name } }", "{ items { n } }"] {
        let a = run(&typed, query).await;
        let b = run(&json, query).await;
        assert_eq!(a, b, "{query}");
        assert!(
            a["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("limit of 40 result values"),
            "{a}"
        );
    }
}

async fn payloads(schema: &Schema, query: &str) -> Vec<Value> {
    let request = Request::new(query);
    let ctx = Context::default();
    schema
        .execute_incremental(&request, &ctx)
        .map(|p| p.to_value())
        .collect()
        .await
}

#[tokio::test]
async fn typed_items_under_stream_and_defer() {
    let typed = schema(true, 4, Limits::default(), true);
    let json = schema(false, 4, Limits::default(), true);
    for query in [
        "{ maybe @stream(initialCount: 1) { n name } }",
        "{ maybe { n ... @defer { name } } }",
        // Not streamed, not deferred inside: the fast path, with a deferred sibling.
        "{ maybe { n kind } ... @defer { items { name } } }",
    ] {
        let a = payloads(&typed, query).await;
        let b = payloads(&json, query).await;
        assert!(a.len() > 1, "{query}: {a:?}");
        assert_eq!(a, b, "{query}");
    }
}

struct Named(&'static str);

impl TypedObject for Named {
    const FIELDS: &'static [&'static str] = &["a", "nope"];
    fn field(&self, _index: usize) -> FieldValue<'_> {
        self.0.into()
    }
}

#[test]
fn the_schema_refuses_typed_lists_that_do_not_fit() {
    let base = "type Query { one: Child many: [Child] n: Int } type Child { a: Int b: String }";
    let typed = || Resolver::typed_list(|_, _, _| Ok(vec![Named("x")]));
    for field in ["one", "n"] {
        let error = Schema::build(base)
            .resolver("Query", field, typed())
            .finish()
            .unwrap_err()
            .to_string();
        assert!(error.contains("needs a list of an object type"), "{error}");
    }
    let error = Schema::build(base)
        .resolver("Query", "many", typed())
        .finish()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("names a field \"nope\" that \"Child\" does not have"),
        "{error}"
    );
}

static READS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Counted(i32);

impl TypedObject for Counted {
    const FIELDS: &'static [&'static str] = &["a", "b"];
    fn field(&self, index: usize) -> FieldValue<'_> {
        READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match index {
            0 => self.0.into(),
            _ => FieldValue::String("b"),
        }
    }
}

#[tokio::test]
async fn only_the_selected_fields_are_read() {
    let schema = Schema::build("type Query { many: [Child!]! } type Child { a: Int b: String }")
        .resolver(
            "Query",
            "many",
            Resolver::typed_list(|_, _, _| Ok((0..100).map(Counted).collect())),
        )
        .finish()
        .unwrap();
    let a = run(&schema, "{ many { a } }").await;
    assert_eq!(a["data"]["many"][99], json!({"a": 99}));
    // One read per item: the items were written directly, not turned into JSON objects
    // (which reads both fields of each).
    assert_eq!(READS.load(std::sync::atomic::Ordering::Relaxed), 100);
}
