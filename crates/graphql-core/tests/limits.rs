#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Limits against fan-out (issue 14, findings 3 and 8): list fields count an assumed size in
//! the complexity, variables count after their defaults apply, and the executor cuts off a
//! response that grows past its caps on values, bytes or time.

use std::time::Duration;

use graphql_core::{Context, Limits, Request, Resolver, Schema};
use serde_json::{Map, Value, json};

const SDL: &str = r#"
type Query {
  authors: [Author!]!
  items(first: Int): [Item!]!
  itemsByDefault(first: Int = 100000): [Item!]!
  numbers: [Int!]
  asyncNumbers: [Int!]
  words: [String!]
}
type Mutation { addBook(title: String!): Book! }
type Author { id: ID! name: String! books: [Book!]! }
type Book { id: ID! title: String! author: Author! }
type Item { id: ID! }
"#;

/// Two authors, each with eight books (the attack added eight through the example's
/// unauthenticated `addBook`).
fn author(id: u32) -> Value {
    json!({"id": id, "name": format!("author {id}")})
}

fn builder(limits: Limits) -> graphql_core::SchemaBuilder {
    Schema::build(SDL)
        .limits(limits)
        .resolver(
            "Query",
            "authors",
            Resolver::sync(|_, _, _| Ok(json!([author(1), author(2)]))),
        )
        .resolver(
            "Author",
            "books",
            Resolver::sync(|_, parent, _| {
                let id = parent["id"].clone();
                Ok(Value::Array(
                    (0..8)
                        .map(|n| json!({"id": n, "title": format!("book {n}"), "authorId": id}))
                        .collect(),
                ))
            }),
        )
        .resolver(
            "Book",
            "author",
            Resolver::sync(|_, parent, _| {
                Ok(author(parent["authorId"].as_u64().unwrap_or(1) as u32))
            }),
        )
        .resolver(
            "Query",
            "items",
            Resolver::sync(|_, _, args| {
                let n = args
                    .get("first")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(10);
                Ok(Value::Array((0..n).map(|i| json!({"id": i})).collect()))
            }),
        )
        .resolver(
            "Query",
            "numbers",
            Resolver::sync(|_, _, _| Ok(Value::Array((0..300_000).map(Value::from).collect()))),
        )
        .resolver(
            "Query",
            "asyncNumbers",
            Resolver::asynchronous(|_| {
                Box::pin(async { Ok(Value::Array((0..300_000).map(Value::from).collect())) })
            }),
        )
        .resolver(
            "Query",
            "words",
            Resolver::sync(|_, _, _| Ok(Value::Array(vec![json!("x".repeat(100)); 1000]))),
        )
}

/// The start of a response, for failure messages.
fn short(r: &Value) -> String {
    r.to_string().chars().take(300).collect()
}

async fn run(schema: &Schema, request: Request) -> (Value, usize) {
    let response = schema.execute(&request, &Context::new(())).await;
    let json = response.to_json();
    (serde_json::from_str(&json).unwrap(), json.len())
}

fn codes(r: &Value) -> Vec<String> {
    r["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

const NESTED: &str = "{authors{books{author{books{author{books{author{books{author{books{author{books{title}}}}}}}}}}}}}";

#[tokio::test]
async fn nested_lists_without_size_arguments_are_refused_by_complexity() {
    let schema = builder(Limits::default()).finish().unwrap();
    let (r, len) = run(&schema, Request::new(NESTED)).await;
    assert_eq!(codes(&r), ["LIMIT_EXCEEDED"], "{}", short(&r));
    let message = r["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("complexity"), "{message}");
    assert!(r.get("data").is_none());
    assert!(len < 1_000, "{len}");
    // Two levels are fine: 1 + 10 x (1 + 10 x 1) = 111.
    let (r, _) = run(&schema, Request::new("{authors{books{title}}}")).await;
    assert!(r.get("errors").is_none(), "{}", short(&r));
    assert_eq!(r["data"]["authors"][1]["books"][7]["title"], "book 7");
}

#[tokio::test]
async fn per_field_list_size_replaces_the_assumed_size() {
    let schema = builder(Limits {
        max_complexity: 100,
        ..Limits::default()
    })
    .list_size("Query", "authors", 2)
    .list_size("Author", "books", 40)
    .finish()
    .unwrap();
    // 1 + 2 x (1 + 40 x 1) = 83: allowed.
    let (r, _) = run(&schema, Request::new("{authors{books{id}}}")).await;
    assert!(r.get("errors").is_none(), "{}", short(&r));
    // 1 + 2 x (1 + 40 x 2) = 163: refused.
    let (r, _) = run(&schema, Request::new("{authors{books{id title}}}")).await;
    assert_eq!(
        r["errors"][0]["message"],
        "The query has complexity 163, more than the limit of 100."
    );
    // An unknown field is a schema error.
    let err = builder(Limits::default())
        .list_size("Author", "nope", 3)
        .finish()
        .unwrap_err();
    assert!(err.to_string().contains("list size"), "{err}");
}

#[tokio::test]
async fn a_variable_default_counts_in_the_list_multiplier() {
    let schema = builder(Limits::default()).finish().unwrap();
    let limit = |r: &Value| codes(r) == ["LIMIT_EXCEEDED"];
    // The literal was refused before the fix too.
    let (r, _) = run(&schema, Request::new("{items(first:100000){id}}")).await;
    assert!(limit(&r), "{}", short(&r));
    // The attack: the same size as a variable's default value.
    let (r, _) = run(
        &schema,
        Request::new("query($n:Int=100000){items(first:$n){id}}"),
    )
    .await;
    assert!(limit(&r), "{}", short(&r));
    // The argument's own default in the schema, the argument left out or given a variable
    // the request leaves out without a default.
    let (r, _) = run(&schema, Request::new("{itemsByDefault{id}}")).await;
    assert!(limit(&r), "{}", short(&r));
    let (r, _) = run(
        &schema,
        Request::new("query($n:Int){itemsByDefault(first:$n){id}}"),
    )
    .await;
    assert!(limit(&r), "{}", short(&r));
    // A value given in the request still wins over the default.
    let mut vars = Map::new();
    vars.insert("n".into(), json!(3));
    let (r, _) = run(
        &schema,
        Request::new("query($n:Int=100000){items(first:$n){id}}").variables(vars),
    )
    .await;
    assert!(r.get("errors").is_none(), "{}", short(&r));
    assert_eq!(r["data"]["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_huge_list_is_cut_off_by_the_result_value_cap() {
    // Complexity cannot see a resolver's list length: the executor's cap does.
    let schema = builder(Limits {
        max_complexity: usize::MAX,
        ..Limits::default()
    })
    .finish()
    .unwrap();
    for query in ["{numbers}", "{asyncNumbers}"] {
        let (r, len) = run(&schema, Request::new(query)).await;
        assert_eq!(codes(&r), ["LIMIT_EXCEEDED"], "{query}: {}", short(&r));
        let message = r["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("200000 result values"), "{message}");
        // Partial data: the list itself is null; nothing of it is sent.
        let field = &query[1..query.len() - 1];
        assert_eq!(r["data"][field], Value::Null, "{query}");
        assert!(len < 1_000, "{query}: {len}");
    }
}

#[tokio::test]
async fn nested_fan_out_is_cut_off_when_complexity_is_off() {
    let schema = builder(Limits {
        max_complexity: usize::MAX,
        max_result_values: 5_000,
        ..Limits::default()
    })
    .finish()
    .unwrap();
    let (r, len) = run(&schema, Request::new(NESTED)).await;
    assert_eq!(codes(&r), ["LIMIT_EXCEEDED"], "{}", short(&r));
    // `authors` is non-null all the way up: data is null, and the output stays small.
    assert_eq!(r["data"], Value::Null);
    assert!(len < 1_000, "{len}");
}

#[tokio::test]
async fn leaf_bytes_are_capped() {
    let schema = builder(Limits {
        max_result_bytes: 10_000,
        ..Limits::default()
    })
    .finish()
    .unwrap();
    let (r, len) = run(&schema, Request::new("{words}")).await;
    assert_eq!(codes(&r), ["LIMIT_EXCEEDED"], "{}", short(&r));
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("10000 bytes"),
        "{}",
        short(&r)
    );
    assert_eq!(r["data"]["words"], Value::Null);
    assert!(len < 1_000, "{len}");
}

#[tokio::test]
async fn execution_time_is_capped() {
    // A deadline already passed: the first value is cut off, on both paths.
    let schema = builder(Limits {
        max_execution_time: Some(Duration::ZERO),
        ..Limits::default()
    })
    .finish()
    .unwrap();
    for query in ["{numbers}", "{asyncNumbers}"] {
        let (r, _) = run(&schema, Request::new(query)).await;
        assert_eq!(codes(&r), ["LIMIT_EXCEEDED"], "{query}: {}", short(&r));
        assert!(
            r["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("time limit"),
            "{}",
            short(&r)
        );
        assert_eq!(
            r["data"],
            json!({query[1..query.len() - 1].to_owned(): null})
        );
    }
}

#[tokio::test]
async fn the_introspection_query_fits_the_default_limits() {
    let schema = builder(Limits::default()).finish().unwrap();
    let query = r#"{ __schema { queryType { name } types { name kind fields(includeDeprecated: true) {
        name args { name type { kind name ofType { kind name ofType { kind name } } } defaultValue }
        type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }
        inputFields { name type { kind name } } interfaces { name } enumValues { name }
        possibleTypes { name } } directives { name locations args { name } } } }"#;
    let (r, _) = run(&schema, Request::new(query)).await;
    assert!(r.get("errors").is_none(), "{}", short(&r));
    assert!(r["data"]["__schema"]["types"].as_array().unwrap().len() > 10);
}

/// GraphQL over HTTP (draft 2025, section 6.4.2): a response with `data` is 2xx, so a cut
/// off result is 200 with its error; a refusal before execution has no `data`: 400.
#[tokio::test]
async fn statuses_over_http() {
    use graphql_core::{ResponseFormat, write_http_response};
    let schema = builder(Limits {
        max_result_values: 100,
        ..Limits::default()
    })
    .finish()
    .unwrap();
    let ctx = Context::new(());
    let cut = schema.execute(&Request::new("{numbers}"), &ctx).await;
    let http = write_http_response(&cut, ResponseFormat::GraphQLResponseJson);
    assert_eq!(http.status(), 200);
    let body: Value = serde_json::from_slice(http.body()).unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
    let refused = schema.execute(&Request::new(NESTED), &ctx).await;
    let http = write_http_response(&refused, ResponseFormat::GraphQLResponseJson);
    assert_eq!(http.status(), 400);
}
