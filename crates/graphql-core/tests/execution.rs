#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Execution (spec section 6), limits and introspection through `Schema::execute`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graphql_core::{
    Context, FieldError, FieldResult, Limits, ListResult, Request, Resolver, Schema, TypeResolver,
};
use serde_json::{Value, json};

const SDL: &str = r#"
type Query {
  hello(name: String = "world"): String!
  me: User
  users(first: Int = 10): [User!]!
  node(id: ID!): Node
  search: [SearchResult]
  slow(ms: Int!): Int
  failing: String
  failingNonNull: String!
  required: User!
  echo(input: Filter, list: [Int], kind: Kind): String
  pick(by: By!): String
}
type Mutation { push(value: Int!): [Int!]! }
interface Node { id: ID! }
type User implements Node {
  id: ID!
  name: String
  age: Int
  kind: Kind
  friends: [User!]
  bestFriend: User!
}
type Post implements Node { id: ID! title: String }
union SearchResult = User | Post
enum Kind { ADMIN GUEST }
input Filter { kind: Kind = GUEST, names: [String!] }
input By @oneOf { id: ID, name: String }
"#;

fn user(id: u32) -> Value {
    json!({"__typename": "User", "id": id, "name": format!("user{id}"), "age": 20 + id, "kind": "GUEST", "friends": []})
}

fn schema() -> Schema {
    let log: Arc<Mutex<Vec<i64>>> = Arc::new(Mutex::new(Vec::new()));
    let push_log = Arc::clone(&log);
    Schema::build(SDL)
        .resolver(
            "Query",
            "hello",
            Resolver::sync(|_, _, args| {
                Ok(json!(format!(
                    "hello {}",
                    args.get("name").and_then(Value::as_str).unwrap_or("?")
                )))
            }),
        )
        .resolver(
            "Query",
            "me",
            Resolver::sync(|_, _, _| {
                Ok(json!({"id": "1", "name": "Ada", "age": 36, "kind": "ADMIN",
                "friends": [user(2), user(3)], "bestFriend": user(2)}))
            }),
        )
        .resolver(
            "Query",
            "users",
            Resolver::sync(|_, _, args| {
                let n = args.get("first").and_then(Value::as_u64).unwrap_or(0) as u32;
                Ok(Value::Array((0..n).map(user).collect()))
            }),
        )
        .resolver(
            "Query",
            "node",
            Resolver::sync(|_, _, args| {
                Ok(match args.get("id").and_then(Value::as_str) {
                    Some("p1") => json!({"__typename": "Post", "id": "p1", "title": "Hi"}),
                    Some(id) => json!({"__typename": "User", "id": id, "name": "N"}),
                    None => Value::Null,
                })
            }),
        )
        .resolver(
            "Query",
            "search",
            Resolver::sync(|_, _, _| {
                Ok(json!([{"id": "u1", "name": "U"}, {"id": "p1", "title": "T"}, {"id": "x"}]))
            }),
        )
        .type_resolver(
            "SearchResult",
            TypeResolver::new(|_, v| {
                let id = v.get("id")?.as_str()?;
                Some(
                    if id.starts_with('u') {
                        "User"
                    } else if id.starts_with('p') {
                        "Post"
                    } else {
                        "Nope"
                    }
                    .to_owned(),
                )
            }),
        )
        .resolver(
            "Query",
            "slow",
            Resolver::asynchronous(|input| {
                Box::pin(async move {
                    let ms = input.args.get("ms").and_then(Value::as_u64).unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    FieldResult::Ok(json!(ms))
                })
            }),
        )
        .resolver(
            "Query",
            "failing",
            Resolver::sync(|_, _, _| {
                Err(FieldError::new("it broke").with_extension("code", json!("BROKEN")))
            }),
        )
        .resolver(
            "Query",
            "failingNonNull",
            Resolver::sync(|_, _, _| Err("no value".into())),
        )
        .resolver(
            "Query",
            "required",
            Resolver::sync(|_, _, _| Ok(json!({"id": "1", "bestFriend": null}))),
        )
        .resolver(
            "Query",
            "echo",
            Resolver::sync(|_, _, args| {
                Ok(json!(
                    serde_json::to_string(&args.iter().collect::<Vec<_>>()).unwrap()
                ))
            }),
        )
        .resolver(
            "Query",
            "pick",
            Resolver::sync(|_, _, args| Ok(json!(args.get("by").unwrap().to_string()))),
        )
        .resolver(
            "Mutation",
            "push",
            Resolver::asynchronous(move |input| {
                let log = Arc::clone(&push_log);
                Box::pin(async move {
                    let v = input.args.get("value").and_then(Value::as_i64).unwrap();
                    // Later fields finish sooner: only serial execution keeps the order.
                    tokio::time::sleep(Duration::from_millis(30 - 10 * v.min(2) as u64)).await;
                    let mut log = log.lock().unwrap();
                    log.push(v);
                    FieldResult::Ok(json!(log.clone()))
                })
            }),
        )
        .finish()
        .unwrap()
}

async fn run(schema: &Schema, request: Request) -> Value {
    schema
        .execute(&request, &Context::default())
        .await
        .to_value()
}

async fn q(query: &str) -> Value {
    run(&schema(), Request::new(query)).await
}

#[tokio::test]
async fn hello_uses_the_argument_default() {
    assert_eq!(
        q("{ hello }").await,
        json!({"data": {"hello": "hello world"}})
    );
    assert_eq!(
        q("{ a: hello(name: \"Bob\") b: hello }").await,
        json!({"data": {"a": "hello Bob", "b": "hello world"}})
    );
}

#[tokio::test]
async fn response_keeps_field_order() {
    let schema = schema();
    let r = schema
        .execute(
            &Request::new("{ me { name age id } hello }"),
            &Context::default(),
        )
        .await;
    assert_eq!(
        r.to_json(),
        r#"{"data":{"me":{"name":"Ada","age":36,"id":"1"},"hello":"hello world"}}"#
    );
}

#[tokio::test]
async fn default_resolvers_read_json_parents_and_lists() {
    assert_eq!(
        q("{ me { name friends { id name } bestFriend { age } } users(first: 2) { id } }").await,
        json!({"data": {"me": {"name": "Ada", "friends": [{"id": "2", "name": "user2"}, {"id": "3", "name": "user3"}], "bestFriend": {"age": 22}}, "users": [{"id": "0"}, {"id": "1"}]}})
    );
}

#[tokio::test]
async fn fragments_inline_fragments_and_typename() {
    assert_eq!(
        q("{ me { ...f ... on User { age } ... { kind } } } fragment f on Node { id __typename }")
            .await,
        json!({"data": {"me": {"id": "1", "__typename": "User", "age": 36, "kind": "ADMIN"}}})
    );
}

#[tokio::test]
async fn abstract_types_resolve_by_typename_and_by_type_resolver() {
    assert_eq!(
        q("{ u: node(id: \"7\") { __typename id ... on User { name } } p: node(id: \"p1\") { id ... on Post { title } } }").await,
        json!({"data": {"u": {"__typename": "User", "id": "7", "name": "N"}, "p": {"id": "p1", "title": "Hi"}}})
    );
    let r = q("{ search { __typename ... on User { name } ... on Post { title } } }").await;
    assert_eq!(
        r["data"]["search"],
        json!([{"__typename": "User", "name": "U"}, {"__typename": "Post", "title": "T"}, null])
    );
    assert_eq!(
        r["errors"][0]["message"],
        "Runtime Object type \"Nope\" is not a possible type for \"SearchResult\"."
    );
    assert_eq!(r["errors"][0]["path"], json!(["search", 2]));
}

#[tokio::test]
async fn skip_and_include() {
    let schema = schema();
    let r = run(
        &schema,
        Request::new("query($yes: Boolean!) { a: hello @include(if: $yes) b: hello @skip(if: $yes) me @include(if: false) { id } c: hello @skip(if: false) @include(if: true) }")
            .variables(json!({"yes": true}).as_object().unwrap().clone()),
    )
    .await;
    assert_eq!(r, json!({"data": {"a": "hello world", "c": "hello world"}}));
}

#[tokio::test]
async fn field_errors_carry_message_locations_path_extensions() {
    let r = q("{ hello\n  failing }").await;
    assert_eq!(
        r,
        json!({"data": {"hello": "hello world", "failing": null},
               "errors": [{"message": "it broke", "locations": [{"line": 2, "column": 3}], "path": ["failing"], "extensions": {"code": "BROKEN"}}]})
    );
}

#[tokio::test]
async fn null_propagates_to_the_nearest_nullable_parent() {
    // A non-null field fails: the whole data is null.
    let r = q("{ hello failingNonNull }").await;
    assert_eq!(r["data"], Value::Null);
    assert_eq!(r["errors"][0]["message"], "no value");
    assert_eq!(r["errors"][0]["path"], json!(["failingNonNull"]));
    // required: User! with bestFriend: User! null -> required null -> data null.
    let r = q("{ required { id bestFriend { id } } }").await;
    assert_eq!(r["data"], Value::Null);
    assert_eq!(r["errors"].as_array().unwrap().len(), 1);
    assert_eq!(
        r["errors"][0]["message"],
        "Cannot return null for non-nullable field User.bestFriend."
    );
    assert_eq!(r["errors"][0]["path"], json!(["required", "bestFriend"]));
    // A nullable parent stops the propagation.
    let r = q("{ hello node(id: \"5\") { id ... on User { bestFriend { id } } } }").await;
    assert_eq!(r["data"], json!({"hello": "hello world", "node": null}));
    assert_eq!(r["errors"][0]["path"], json!(["node", "bestFriend"]));
}

#[tokio::test]
async fn leaf_values_are_checked_when_serialized() {
    let schema = Schema::build("type Query { n: Int s: [Int!] e: E } enum E { A }")
        .resolver("Query", "n", Resolver::sync(|_, _, _| Ok(json!(1.5))))
        .resolver("Query", "s", Resolver::sync(|_, _, _| Ok(json!([1, "x"]))))
        .resolver("Query", "e", Resolver::sync(|_, _, _| Ok(json!("B"))))
        .finish()
        .unwrap();
    let r = run(&schema, Request::new("{ n s e }")).await;
    assert_eq!(r["data"], json!({"n": null, "s": null, "e": null}));
    let messages: Vec<_> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        messages,
        [
            "Int cannot represent non 32-bit signed integer value: 1.5",
            "Int cannot represent non 32-bit signed integer value: \"x\"",
            "Enum \"E\" cannot represent value: \"B\"",
        ]
    );
    assert_eq!(r["errors"][1]["path"], json!(["s", 1]));
}

#[tokio::test]
async fn async_fields_run_concurrently() {
    let schema = schema();
    let start = Instant::now();
    let r = run(
        &schema,
        Request::new("{ a: slow(ms: 60) b: slow(ms: 60) c: slow(ms: 60) hello }"),
    )
    .await;
    let took = start.elapsed();
    assert_eq!(
        r,
        json!({"data": {"a": 60, "b": 60, "c": 60, "hello": "hello world"}})
    );
    assert!(
        took < Duration::from_millis(150),
        "fields ran one after another: {took:?}"
    );
}

#[tokio::test]
async fn mutation_fields_run_serially() {
    let schema = schema();
    let r = run(
        &schema,
        Request::new("mutation { a: push(value: 0) b: push(value: 1) c: push(value: 2) }"),
    )
    .await;
    assert_eq!(r, json!({"data": {"a": [0], "b": [0, 1], "c": [0, 1, 2]}}));
}

#[tokio::test]
async fn variables_are_coerced_with_precise_errors() {
    let schema = schema();
    let vars = |v: Value| v.as_object().unwrap().clone();
    let r = run(
        &schema,
        Request::new("query($f: Filter, $l: [Int]) { echo(input: $f, list: $l) }")
            .variables(vars(json!({"f": {"names": "solo"}, "l": 3}))),
    )
    .await;
    assert_eq!(
        r["data"]["echo"],
        json!(r#"[["input",{"kind":"GUEST","names":["solo"]}],["list",[3]]]"#)
    );

    let r = run(
        &schema,
        Request::new("query($n: String!) { hello(name: $n) }"),
    )
    .await;
    assert_eq!(
        r,
        json!({"errors": [{"message": "Variable \"$n\" of required type \"String!\" was not provided.", "locations": [{"line": 1, "column": 7}]}]})
    );

    let r = run(
        &schema,
        Request::new("query($n: String!) { hello(name: $n) }").variables(vars(json!({"n": null}))),
    )
    .await;
    assert_eq!(
        r["errors"][0]["message"],
        "Variable \"$n\" of non-null type \"String!\" must not be null."
    );
    assert!(r.get("data").is_none(), "a request error has no data entry");

    let r = run(
        &schema,
        Request::new("query($l: [Int]) { echo(list: $l) }")
            .variables(vars(json!({"l": [1, "two"]}))),
    )
    .await;
    assert_eq!(
        r["errors"][0]["message"],
        "Variable \"$l\" got invalid value [1,\"two\"]; Int cannot represent non-integer value: \"two\" At index [1]."
    );

    let r = run(
        &schema,
        Request::new("query($f: Filter) { echo(input: $f) }")
            .variables(vars(json!({"f": {"kind": "NOPE"}}))),
    )
    .await;
    assert_eq!(
        r["errors"][0]["message"],
        "Variable \"$f\" got invalid value {\"kind\":\"NOPE\"}; Value \"NOPE\" does not exist in \"Kind\" enum. At \"kind\"."
    );

    let r = run(
        &schema,
        Request::new("query($b: By!) { pick(by: $b) }")
            .variables(vars(json!({"b": {"id": "1", "name": "x"}}))),
    )
    .await;
    assert_eq!(
        r["errors"][0]["message"],
        "Variable \"$b\" got invalid value {\"id\":\"1\",\"name\":\"x\"}; OneOf input object By must specify exactly one field, found 2"
    );

    let r = run(
        &schema,
        Request::new("query($b: By!) { pick(by: $b) }").variables(vars(json!({"b": {"id": 7}}))),
    )
    .await;
    assert_eq!(r["data"]["pick"], json!(r#"{"id":"7"}"#));
}

#[tokio::test]
async fn operation_selection() {
    let schema = schema();
    let doc = "query A { hello } query B { me { id } }";
    let r = run(&schema, Request::new(doc)).await;
    assert_eq!(
        r["errors"][0]["message"],
        "Must provide operation name if query contains multiple operations."
    );
    let r = run(&schema, Request::new(doc).operation_name("B")).await;
    assert_eq!(r, json!({"data": {"me": {"id": "1"}}}));
    let r = run(&schema, Request::new(doc).operation_name("C")).await;
    assert_eq!(r["errors"][0]["message"], "Unknown operation named \"C\".");
}

#[tokio::test]
async fn validation_and_syntax_errors_are_request_errors() {
    let r = q("{ nope }").await;
    assert_eq!(
        r,
        json!({"errors": [{"message": "Cannot query field \"nope\" on type \"Query\". Did you mean \"node\"?", "locations": [{"line": 1, "column": 3}]}]})
    );
    let r = q("{ hello").await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Syntax Error")
    );
    assert!(r.get("data").is_none());
}

#[tokio::test]
async fn limits_are_checked_before_execution() {
    let limits = Limits {
        max_depth: 3,
        max_aliases: 2,
        max_complexity: 50,
        max_tokens: 200,
        max_document_bytes: 2_000,
        ..Limits::default()
    };
    let schema = Schema::build(SDL).limits(limits).finish().unwrap();
    let message = |r: &Value| r["errors"][0]["message"].as_str().unwrap().to_owned();
    let r = run(
        &schema,
        Request::new("{ me { friends { friends { id } } } }"),
    )
    .await;
    assert_eq!(
        message(&r),
        "The query is nested 4 levels deep, more than the limit of 3."
    );
    assert_eq!(r["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
    // Depth through fragments, and fragment cycles terminate.
    let r = run(
        &schema,
        Request::new("{ me { ...f } } fragment f on User { friends { friends { id } } }"),
    )
    .await;
    assert_eq!(
        message(&r),
        "The query is nested 4 levels deep, more than the limit of 3."
    );
    let r = run(&schema, Request::new("{ a: hello b: hello c: hello }")).await;
    assert_eq!(
        message(&r),
        "The query uses 3 aliases, more than the limit of 2."
    );
    let r = run(&schema, Request::new("{ users(first: 100) { id name } }")).await;
    assert_eq!(
        message(&r),
        "The query has complexity 201, more than the limit of 50."
    );
    let r = run(
        &schema,
        Request::new(format!("{{ {} }}", "hello ".repeat(250))),
    )
    .await;
    assert!(
        message(&r).starts_with("The document has 252 tokens"),
        "{}",
        message(&r)
    );
    let r = run(
        &schema,
        Request::new(format!("{{ hello }} # {}", "x".repeat(3_000))),
    )
    .await;
    assert!(
        message(&r).starts_with("The document is 3012 bytes"),
        "{}",
        message(&r)
    );
    let r = run(
        &schema,
        Request::new("{ me { ...f } } fragment f on User { friends { ...f } }"),
    )
    .await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("within itself"),
        "{r}"
    );
}

#[tokio::test]
async fn many_aliases_of_an_expensive_field_are_refused_by_default() {
    let query = format!(
        "{{ {} }}",
        (0..1000)
            .map(|i| format!("a{i}: slow(ms: 1000)"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let start = Instant::now();
    let r = run(&schema(), Request::new(query)).await;
    assert!(start.elapsed() < Duration::from_millis(500));
    assert!(r.get("data").is_none());
    assert_eq!(r["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
}

#[tokio::test]
async fn introspection_answers_schema_and_type_queries() {
    let r = q(r#"{ __schema { queryType { name } mutationType { name } subscriptionType { name } types { name } directives { name } }
                 __type(name: "User") { kind name interfaces { name } fields { name type { kind name ofType { kind name } } } }
                 k: __type(name: "Kind") { enumValues { name } }
                 b: __type(name: "By") { isOneOf inputFields { name } } }"#).await;
    let data = &r["data"];
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    assert_eq!(data["__schema"]["mutationType"]["name"], "Mutation");
    assert_eq!(data["__schema"]["subscriptionType"], Value::Null);
    let names: Vec<_> = data["__schema"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for n in [
        "Query", "User", "Kind", "By", "String", "Boolean", "Int", "ID", "__Schema", "__Type",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(
        !names.contains(&"Float"),
        "unreferenced built-in scalars are not listed"
    );
    let directives: Vec<_> = data["__schema"]["directives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        directives,
        ["include", "skip", "deprecated", "specifiedBy", "oneOf"]
    );
    assert_eq!(data["__type"]["kind"], "OBJECT");
    assert_eq!(data["__type"]["interfaces"], json!([{"name": "Node"}]));
    assert_eq!(
        data["__type"]["fields"][0],
        json!({"name": "id", "type": {"kind": "NON_NULL", "name": null, "ofType": {"kind": "SCALAR", "name": "ID"}}})
    );
    assert_eq!(
        data["k"]["enumValues"],
        json!([{"name": "ADMIN"}, {"name": "GUEST"}])
    );
    assert_eq!(
        data["b"],
        json!({"isOneOf": true, "inputFields": [{"name": "id"}, {"name": "name"}]})
    );
}

#[tokio::test]
async fn introspection_hides_deprecated_members_unless_asked() {
    let schema = Schema::build("type Query { a: Int old: Int @deprecated(reason: \"no\") f(x: Int @deprecated, y: Int): Int }").finish().unwrap();
    let r = run(&schema, Request::new(r#"{ __type(name: "Query") { fields { name } all: fields(includeDeprecated: true) { name isDeprecated deprecationReason args { name } allArgs: args(includeDeprecated: true) { name } } } }"#)).await;
    let t = &r["data"]["__type"];
    assert_eq!(t["fields"], json!([{"name": "a"}, {"name": "f"}]));
    assert_eq!(
        t["all"][1],
        json!({"name": "old", "isDeprecated": true, "deprecationReason": "no", "args": [], "allArgs": []})
    );
    assert_eq!(t["all"][2]["args"], json!([{"name": "y"}]));
    assert_eq!(
        t["all"][2]["allArgs"],
        json!([{"name": "x"}, {"name": "y"}])
    );
}

#[tokio::test]
async fn introspection_can_be_disabled() {
    let schema = Schema::build(SDL).introspection(false).finish().unwrap();
    let r = run(&schema, Request::new("{ __schema { queryType { name } } }")).await;
    assert_eq!(
        r["errors"][0]["message"],
        "GraphQL introspection has been disabled, but the requested query contained the field \"__schema\"."
    );
    let r = run(&schema, Request::new("{ me { __typename } }")).await;
    assert!(r.get("errors").is_none(), "{r}");
}

#[tokio::test]
async fn execute_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let schema = schema();
    let request = Request::new("{ hello }");
    let ctx = Context::new(42u32);
    let fut = schema.execute(&request, &ctx);
    assert_send(&fut);
    assert_eq!(
        fut.await.to_value(),
        json!({"data": {"hello": "hello world"}})
    );
}

#[tokio::test]
async fn context_data_reaches_resolvers() {
    let schema = Schema::build("type Query { whoami: String }")
        .resolver(
            "Query",
            "whoami",
            Resolver::sync(|ctx, _, _| Ok(json!(ctx.data::<String>().cloned()))),
        )
        .finish()
        .unwrap();
    let r = schema
        .execute(&Request::new("{ whoami }"), &Context::new("ada".to_owned()))
        .await;
    assert_eq!(r.to_value(), json!({"data": {"whoami": "ada"}}));
}

#[tokio::test]
async fn async_resolvers_below_lists_and_mixed_sync_siblings() {
    let schema = Schema::build(
        "type Query { items: [Item!]! } type Item { id: Int! double: Int! name: String }",
    )
    .resolver(
        "Query",
        "items",
        Resolver::sync(|_, _, _| {
            Ok(json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3}]))
        }),
    )
    .resolver(
        "Item",
        "double",
        Resolver::asynchronous(|input| {
            Box::pin(async move {
                tokio::task::yield_now().await;
                FieldResult::Ok(json!(input.parent["id"].as_i64().unwrap() * 2))
            })
        }),
    )
    .finish()
    .unwrap();
    let r = schema
        .execute(
            &Request::new("{ items { id double name } }"),
            &Context::default(),
        )
        .await;
    assert_eq!(
        r.to_json(),
        r#"{"data":{"items":[{"id":1,"double":2,"name":"a"},{"id":2,"double":4,"name":"b"},{"id":3,"double":6,"name":null}]}}"#
    );
}

#[tokio::test]
async fn hostile_documents_are_refused_in_bounded_time() {
    let schema = schema();
    let start = Instant::now();
    // A 10 MB document: refused by size before parsing.
    let big = format!("{{ hello }} #{}", "x".repeat(10 * 1024 * 1024));
    let r = run(&schema, Request::new(big)).await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("bytes, more than the limit")
    );
    // Thousands of variables: refused by the token limit.
    let vars: Vec<String> = (0..5000).map(|i| format!("$v{i}: Int")).collect();
    let r = run(
        &schema,
        Request::new(format!("query({}) {{ hello }}", vars.join(", "))),
    )
    .await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("tokens, more than the limit")
    );
    // A depth bomb through fragments.
    let deep = format!(
        "{{ me {{ ...a }} }} fragment a on User {{ friends {{ ...b }} }} fragment b on User {{ friends {{ ...c }} }} fragment c on User {{ {}id{} }}",
        "friends { ".repeat(22),
        " }".repeat(22)
    );
    let r = run(&schema, Request::new(deep)).await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED",
        "{r}"
    );
    // Mutually recursive fragments: a validation error, not a hang.
    let r = run(&schema, Request::new("{ me { ...a } } fragment a on User { friends { ...b } } fragment b on User { friends { ...a } }")).await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("within itself"),
        "{r}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn validation_cache_remembers_only_valid_documents() {
    for capacity in [0, 1, 1024] {
        let schema = Schema::build(SDL)
            .validation_cache(capacity)
            .finish()
            .unwrap();
        for _ in 0..3 {
            assert_eq!(
                run(&schema, Request::new("{ __typename }")).await,
                json!({"data": {"__typename": "Query"}})
            );
            let r = run(&schema, Request::new("{ nope }")).await;
            assert_eq!(
                r["errors"][0]["message"],
                "Cannot query field \"nope\" on type \"Query\". Did you mean \"node\"?",
                "capacity {capacity}"
            );
            assert_eq!(
                run(&schema, Request::new("{ a: __typename }")).await,
                json!({"data": {"a": "Query"}})
            );
        }
    }
}

#[tokio::test]
async fn async_path_propagates_nulls_and_errors_like_the_sync_path() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let schema = Schema::build(
        "type Query { items: [Item!] nodes: [N] }
         type Item { id: Int! label: String! slow: Int! count: Int }
         interface N { id: Int! }
         type A implements N { id: Int! late: String! }",
    )
    .resolver(
        "Query",
        "items",
        Resolver::sync(|_, _, _| {
            Ok(json!([{"id": 1, "label": "a"}, {"id": 2}, {"id": 3, "label": "c"}]))
        }),
    )
    .resolver(
        "Query",
        "nodes",
        Resolver::sync(|_, _, _| {
            Ok(json!([{"__typename": "A", "id": 1}, {"__typename": "A", "id": 2}]))
        }),
    )
    .resolver(
        "Item",
        "slow",
        Resolver::asynchronous(|input| {
            Box::pin(async move {
                tokio::task::yield_now().await;
                FieldResult::Ok(input.parent["id"].clone())
            })
        }),
    )
    .resolver(
        "Item",
        "count",
        Resolver::sync(move |_, _, _| Ok(json!(counter.fetch_add(1, Ordering::SeqCst)))),
    )
    .resolver(
        "A",
        "late",
        Resolver::asynchronous(|input| {
            Box::pin(async move {
                tokio::task::yield_now().await;
                if input.parent["id"] == 2 {
                    FieldResult::Err(FieldError::new("late failed"))
                } else {
                    FieldResult::Ok(json!("ok"))
                }
            })
        }),
    )
    .finish()
    .unwrap();
    // Item 2 has no label (String!): the item is non-null too, so the whole list is null.
    let r = schema
        .execute(
            &Request::new("{ items { id slow count label } }"),
            &Context::default(),
        )
        .await
        .to_value();
    assert_eq!(r["data"], json!({"items": null}));
    assert_eq!(r["errors"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["errors"][0]["path"], json!(["items", 1, "label"]));
    assert_eq!(
        r["errors"][0]["message"],
        "Cannot return null for non-nullable field Item.label."
    );
    // A sibling sync resolver runs again at most once, for the first object where the async
    // field is discovered.
    assert!(
        calls.load(Ordering::SeqCst) <= 4,
        "count ran {} times",
        calls.load(Ordering::SeqCst)
    );
    // Async field errors under an interface list: the failing item becomes null.
    let r = schema
        .execute(
            &Request::new("{ nodes { id ... on A { late } } }"),
            &Context::default(),
        )
        .await
        .to_value();
    assert_eq!(r["data"], json!({"nodes": [{"id": 1, "late": "ok"}, null]}));
    assert_eq!(r["errors"][0]["message"], "late failed");
    assert_eq!(r["errors"][0]["path"], json!(["nodes", 1, "late"]));
    assert_eq!(
        r["errors"][0]["locations"],
        json!([{"line": 1, "column": 25}])
    );
}

#[tokio::test]
async fn per_field_costs_count_in_complexity() {
    let limits = Limits {
        max_complexity: 100,
        ..Limits::default()
    };
    let schema = Schema::build(SDL)
        .cost("Query", "users", 10)
        .cost("User", "friends", 20)
        .limits(limits)
        .finish()
        .unwrap();
    let message = |r: &Value| r["errors"][0]["message"].as_str().unwrap_or("").to_owned();
    // users (10) + 3 items x (id 1 + name 1) = 16: allowed.
    // (The schema has no resolvers here: only the limit is under test.)
    let r = run(&schema, Request::new("{ users(first: 3) { id name } }")).await;
    assert!(!message(&r).contains("complexity"), "{r}");
    // users (10) + 5 x (friends 20 + 10 assumed friends x id 1) = 160: refused, also
    // through a fragment.
    let r = run(
        &schema,
        Request::new("{ users(first: 5) { ...f } } fragment f on User { friends { id } }"),
    )
    .await;
    assert_eq!(
        message(&r),
        "The query has complexity 160, more than the limit of 100."
    );
    // Through an inline fragment on an interface field's concrete type.
    let r = run(&schema, Request::new("{ node(id: \"1\") { ... on User { friends { id } friends2: friends { id } } } users(first: 5) { id } }")).await;
    // node 1 + 2 x (20 + 10 x 1) + users 10 + 5 x 1 = 76: allowed.
    assert!(
        r["errors"].as_array().is_none_or(|e| !e
            .iter()
            .any(|e| e["extensions"]["code"] == "LIMIT_EXCEEDED")),
        "{r}"
    );
    let err = Schema::build(SDL)
        .cost("User", "nope", 3)
        .finish()
        .unwrap_err();
    assert!(err.to_string().contains("\"User.nope\""), "{err}");
}

/// A list resolver returns items and item errors together (`Resolver::sync_list`,
/// `Resolver::asynchronous_list`): each failed item is null in place with a field error at
/// its path (spec 6.4.4), the other items are intact, and a failed non-null item makes the
/// list field null.
#[tokio::test]
async fn list_items_and_item_errors_together() {
    let list = || -> ListResult {
        Ok(vec![
            Ok(json!("a")),
            Err(FieldError::new("item 1 failed").with_extension("code", json!("GONE"))),
            Ok(json!("c")),
            Err(FieldError::new("item 3 failed")),
        ])
    };
    let schema = Schema::build(
        "type Query { tags: [String] asyncTags: [String] strict: [String!] wrapper: Wrapper }
         type Wrapper { strictOuter: [String!]! other: String }",
    )
    .resolver("Query", "tags", Resolver::sync_list(move |_, _, _| list()))
    .resolver(
        "Query",
        "asyncTags",
        Resolver::asynchronous_list(move |_| Box::pin(async move { list() })),
    )
    .resolver(
        "Query",
        "strict",
        Resolver::sync_list(move |_, _, _| list()),
    )
    .resolver(
        "Query",
        "wrapper",
        Resolver::sync(|_, _, _| Ok(json!({"other": "x"}))),
    )
    .resolver(
        "Wrapper",
        "strictOuter",
        Resolver::sync_list(move |_, _, _| list()),
    )
    .finish()
    .unwrap();
    let r = run(&schema, Request::new("{ tags\n  asyncTags }")).await;
    assert_eq!(
        r["data"],
        json!({"tags": ["a", null, "c", null], "asyncTags": ["a", null, "c", null]})
    );
    assert_eq!(
        r["errors"],
        json!([
            {"message": "item 1 failed", "locations": [{"line": 1, "column": 3}], "path": ["tags", 1], "extensions": {"code": "GONE"}},
            {"message": "item 3 failed", "locations": [{"line": 1, "column": 3}], "path": ["tags", 3]},
            {"message": "item 1 failed", "locations": [{"line": 2, "column": 3}], "path": ["asyncTags", 1], "extensions": {"code": "GONE"}},
            {"message": "item 3 failed", "locations": [{"line": 2, "column": 3}], "path": ["asyncTags", 3]},
        ])
    );
    // Non-null items: the first failed item nulls the whole (nullable) list field.
    let r = run(&schema, Request::new("{ strict }")).await;
    assert_eq!(r["data"], json!({"strict": null}));
    assert_eq!(r["errors"][0]["message"], "item 1 failed");
    assert_eq!(r["errors"][0]["path"], json!(["strict", 1]));
    // A non-null list of non-null items: the null goes up to the nearest nullable parent.
    let r = run(&schema, Request::new("{ wrapper { other strictOuter } }")).await;
    assert_eq!(r["data"], json!({"wrapper": null}));
    assert_eq!(r["errors"][0]["path"], json!(["wrapper", "strictOuter", 1]));
}
