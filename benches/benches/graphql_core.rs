//! graphql-core against async-graphql 7.2 and juniper 0.18 in the same run: `{ hello }` end to end (parse,
//! validate, execute, serialize the response to JSON text), and a list of 1000 objects with
//! 5 fields each (per-field cost = time / 5000). Every side builds the list's data inside the
//! resolver on every request: ours as `Resolver::typed_list` of structs (and, to compare, as
//! JSON objects), the peers as their derived structs.

use std::hint::black_box;

use async_graphql::{EmptyMutation, EmptySubscription, Object, SimpleObject};
use criterion::{Criterion, criterion_group, criterion_main};
use graphql_core::{Context, FieldValue, Request, Resolver, Schema, TypedObject};
use serde_json::{Map, Value, json};

const ITEMS: usize = 1000;

/// graphql-js's `getIntrospectionQuery()` (descriptions on, the options both engines know).
const INTROSPECTION_QUERY: &str = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name } types { ...FullType } directives { name description locations args { ...InputValue } } } }
fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

struct Query;

#[derive(SimpleObject, Clone)]
struct Item {
    a: i32,
    b: String,
    c: bool,
    d: f64,
    e: String,
}

#[Object]
impl Query {
    async fn hello(&self) -> &'static str {
        "world"
    }
    async fn items(&self) -> Vec<Item> {
        (0..ITEMS)
            .map(|i| Item {
                a: i as i32,
                b: format!("b{i}"),
                c: i % 2 == 0,
                d: i as f64 / 2.0,
                e: "e".to_owned(),
            })
            .collect()
    }
}

/// juniper's side: the same two fields, resolved synchronously (`execute_sync`, its fast path).
mod peer_juniper {
    use juniper::{EmptyMutation, EmptySubscription, GraphQLObject, RootNode, graphql_object};

    #[derive(GraphQLObject, Clone)]
    pub struct Item {
        a: i32,
        b: String,
        c: bool,
        d: f64,
        e: String,
    }

    pub struct Query;

    #[graphql_object]
    impl Query {
        fn hello() -> &'static str {
            "world"
        }
        fn items() -> Vec<Item> {
            (0..super::ITEMS)
                .map(|i| Item {
                    a: i as i32,
                    b: format!("b{i}"),
                    c: i % 2 == 0,
                    d: i as f64 / 2.0,
                    e: "e".to_owned(),
                })
                .collect()
        }
    }

    pub type Schema = RootNode<Query, EmptyMutation<()>, EmptySubscription<()>>;

    pub fn schema() -> Schema {
        RootNode::new(Query, EmptyMutation::new(), EmptySubscription::new())
    }

    /// Parse, validate, execute, serialize.
    pub fn run(schema: &Schema, query: &str) -> String {
        let variables = juniper::Variables::new();
        match juniper::execute_sync(query, None, schema, &variables, &()) {
            Ok((value, errors)) => {
                let data = serde_json::to_string(&value).expect("json");
                if errors.is_empty() {
                    format!("{{\"data\":{data}}}")
                } else {
                    format!("{{\"data\":{data},\"errors\":{}}}", errors.len())
                }
            }
            Err(e) => format!("{{\"errors\":[{:?}]}}", e.to_string()),
        }
    }
}

/// Our side's item: the same struct as the peers', answered through `TypedObject`.
struct TypedItem {
    a: i32,
    b: String,
    c: bool,
    d: f64,
    e: String,
}

impl TypedObject for TypedItem {
    const FIELDS: &'static [&'static str] = &["a", "b", "c", "d", "e"];

    fn field(&self, index: usize) -> FieldValue<'_> {
        match index {
            0 => self.a.into(),
            1 => (&self.b).into(),
            2 => self.c.into(),
            3 => self.d.into(),
            4 => (&self.e).into(),
            _ => FieldValue::Null,
        }
    }
}

/// With the default document cache (4 MiB): a repeated document skips parsing and validation.
fn ours() -> Schema {
    ours_with(4 << 20, Items::Typed)
}

/// How our `items` resolver builds its 1000 objects.
#[derive(Clone, Copy)]
enum Items {
    /// `Resolver::typed_list` of structs, as the peers build theirs (since 2026-12-05
    /// 12:00 UTC).
    Typed,
    /// `serde_json::Map` inserts of values built directly: the resolver of the runs from
    /// 2026-12-05 05:30 to 12:00 UTC.
    Direct,
    /// serde_json's `json!` macro, which passes every value through `to_value` (a second
    /// copy of each string): the resolver of the runs before 2026-12-05 05:30 UTC.
    JsonMacro,
}

fn ours_with(document_cache: usize, items: Items) -> Schema {
    let items = match items {
        Items::Typed => Resolver::typed_list(|_, _, _| {
            Ok((0..ITEMS)
                .map(|i| TypedItem {
                    a: i as i32,
                    b: format!("b{i}"),
                    c: i % 2 == 0,
                    d: i as f64 / 2.0,
                    e: "e".to_owned(),
                })
                .collect())
        }),
        Items::Direct => Resolver::sync(|_, _, _| {
            Ok(Value::Array(
                (0..ITEMS)
                    .map(|i| {
                        let mut item = Map::new();
                        item.insert("a".to_owned(), Value::from(i));
                        item.insert("b".to_owned(), Value::String(format!("b{i}")));
                        item.insert("c".to_owned(), Value::Bool(i % 2 == 0));
                        item.insert("d".to_owned(), Value::from(i as f64 / 2.0));
                        item.insert("e".to_owned(), Value::String("e".to_owned()));
                        Value::Object(item)
                    })
                    .collect(),
            ))
        }),
        Items::JsonMacro => Resolver::sync(|_, _, _| {
            Ok(Value::Array(
                (0..ITEMS)
                    .map(|i| {
                        json!({"a": i, "b": format!("b{i}"), "c": i % 2 == 0, "d": i as f64 / 2.0, "e": "e"})
                    })
                    .collect(),
            ))
        }),
    };
    Schema::build(
        "type Query { hello: String! items: [Item!]! }
         type Item { a: Int! b: String! c: Boolean! d: Float! e: String! }",
    )
    .resolver(
        "Query",
        "hello",
        Resolver::sync(|_, _, _| Ok(json!("world"))),
    )
    .resolver("Query", "items", items)
    .document_cache(document_cache)
    .finish()
    .expect("schema")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let schema = ours();
    let uncached = ours_with(0, Items::Typed);
    let json_items = ours_with(4 << 20, Items::Direct);
    let json_macro = ours_with(4 << 20, Items::JsonMacro);
    let peer = async_graphql::Schema::new(Query, EmptyMutation, EmptySubscription);
    let juniper_schema = peer_juniper::schema();
    let ctx = Context::default();

    for (name, query) in [
        ("hello", "{ hello }"),
        ("list_1000x5", "{ items { a b c d e } }"),
        ("introspection", INTROSPECTION_QUERY),
    ] {
        // Same answer from both before timing.
        let a: Value = serde_json::from_str(
            &rt.block_on(schema.execute(&Request::new(query), &ctx))
                .to_json(),
        )
        .expect("ours");
        let b: Value = serde_json::from_str(
            &serde_json::to_string(&rt.block_on(peer.execute(query))).expect("peer json"),
        )
        .expect("peer");
        if name == "introspection" {
            // Same shape; the two schemas differ in descriptions and built-in details.
            assert!(
                a["errors"].is_null() && b["errors"].is_null(),
                "{name}: {a} {b}"
            );
            assert_eq!(
                a["data"]["__schema"]["types"]
                    .as_array()
                    .map(Vec::len)
                    .is_some(),
                b["data"]["__schema"]["types"]
                    .as_array()
                    .map(Vec::len)
                    .is_some()
            );
        } else {
            assert_eq!(a, b, "{name}: different answers");
        }

        let mut group = c.benchmark_group(format!("graphql/{name}"));
        let request = Request::new(query);
        group.bench_function("graphql-core", |bench| {
            bench.iter(|| {
                let response = rt.block_on(schema.execute(black_box(&request), &ctx));
                black_box(response.to_json())
            })
        });
        // The same without the document cache: every request is parsed and validated.
        group.bench_function("graphql-core-no-document-cache", |bench| {
            bench.iter(|| {
                let response = rt.block_on(uncached.execute(black_box(&request), &ctx));
                black_box(response.to_json())
            })
        });
        if name == "list_1000x5" {
            let d: Value = serde_json::from_str(
                &rt.block_on(json_items.execute(&Request::new(query), &ctx))
                    .to_json(),
            )
            .expect("ours, JSON items");
            assert_eq!(a, d, "{name}: typed and JSON items differ");
            group.bench_function("graphql-core-json-items", |bench| {
                bench.iter(|| {
                    let response = rt.block_on(json_items.execute(black_box(&request), &ctx));
                    black_box(response.to_json())
                })
            });
            let m: Value = serde_json::from_str(
                &rt.block_on(json_macro.execute(&Request::new(query), &ctx))
                    .to_json(),
            )
            .expect("ours, json! items");
            assert_eq!(a, m, "{name}: the two item resolvers differ");
            group.bench_function("graphql-core-json-macro-items", |bench| {
                bench.iter(|| {
                    let response = rt.block_on(json_macro.execute(black_box(&request), &ctx));
                    black_box(response.to_json())
                })
            });
        }
        if name != "introspection" {
            let j: Value =
                serde_json::from_str(&peer_juniper::run(&juniper_schema, query)).expect("juniper");
            assert_eq!(a, j, "{name}: juniper answers differently");
        }
        group.bench_function("juniper", |bench| {
            bench.iter(|| black_box(peer_juniper::run(&juniper_schema, black_box(query))))
        });
        group.bench_function("async-graphql", |bench| {
            bench.iter(|| {
                let response = rt.block_on(peer.execute(black_box(query)));
                black_box(serde_json::to_string(&response).expect("json"))
            })
        });
        group.finish();
    }
}

/// Where graphql-core's time goes on `{ hello }`: each phase alone.
fn phases(c: &mut Criterion) {
    let schema = ours();
    let query = "{ hello }";
    let mut group = c.benchmark_group("graphql/hello_phases");
    group.bench_function("limits", |b| {
        b.iter(|| graphql_core::Limits::default().check_source(black_box(query)))
    });
    group.bench_function("parse", |b| {
        b.iter(|| {
            graphql_core::Document::parse(black_box(query)).map(|d| d.ast().definitions.len())
        })
    });
    let doc = graphql_core::Document::parse(query).expect("parse");
    group.bench_function("validate", |b| {
        b.iter(|| graphql_core::validate(&schema, black_box(&doc)).len())
    });
    group.finish();
}

criterion_group!(benches, bench, phases);
criterion_main!(benches);
