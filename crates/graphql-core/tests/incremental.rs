#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Incremental delivery: `@defer` and `@stream` in the graphql-js 17 response format.

use futures_util::StreamExt;
use graphql_core::{Context, FieldError, IncrementalFormat, Request, Resolver, Schema};
use serde_json::{Value, json};

const SDL: &str = r#"
type Query { hero: Hero list: [Int] heroes: [Hero!] nonNullItems: [Int!] }
type Hero { id: ID! name: String friends: [Hero] fail: String mustFail: String! }
"#;

fn schema(incremental: bool) -> Schema {
    let luke = json!({"id": "1", "name": "Luke", "friends": [
        {"id": "2", "name": "Han"}, {"id": "3", "name": "Leia"}
    ]});
    let hero = luke.clone();
    Schema::build(SDL)
        .incremental_delivery(incremental)
        .resolver(
            "Query",
            "hero",
            Resolver::sync(move |_, _, _| Ok(hero.clone())),
        )
        .resolver(
            "Query",
            "list",
            Resolver::sync(|_, _, _| Ok(json!([1, 2, 3, 4]))),
        )
        .resolver(
            "Query",
            "nonNullItems",
            Resolver::sync(|_, _, _| Ok(json!([1, 2, "x", 4]))),
        )
        .resolver(
            "Query",
            "heroes",
            Resolver::sync(move |_, _, _| Ok(luke["friends"].clone())),
        )
        .resolver(
            "Hero",
            "fail",
            Resolver::sync(|_, _, _| Err(FieldError::new("boom"))),
        )
        .resolver(
            "Hero",
            "mustFail",
            Resolver::sync(|_, _, _| Err(FieldError::new("bang"))),
        )
        .finish()
        .unwrap()
}

async fn payloads(schema: &Schema, query: &str) -> Vec<Value> {
    let request = Request::new(query);
    let ctx = Context::default();
    let stream = schema.execute_incremental(&request, &ctx);
    stream.map(|p| p.to_value()).collect().await
}

#[tokio::test]
async fn defer_inline_fragment_with_label() {
    let s = schema(true);
    let p = payloads(&s, r#"{ hero { id ... @defer(label: "D") { name } } }"#).await;
    assert_eq!(
        p,
        vec![
            json!({"data": {"hero": {"id": "1"}}, "pending": [{"id": "0", "path": ["hero"], "label": "D"}], "hasNext": true}),
            json!({"incremental": [{"id": "0", "data": {"name": "Luke"}}], "completed": [{"id": "0"}], "hasNext": false}),
        ]
    );
}

#[tokio::test]
async fn defer_fragment_spread_on_root_and_nested_order() {
    let s = schema(true);
    let p = payloads(
        &s,
        r#"query { ...F @defer(label: "outer") }
           fragment F on Query { hero { id ... @defer(label: "inner") { name } } }"#,
    )
    .await;
    assert_eq!(p.len(), 3);
    assert_eq!(
        p[0],
        json!({"data": {}, "pending": [{"id": "0", "path": [], "label": "outer"}], "hasNext": true})
    );
    assert_eq!(
        p[1],
        json!({"pending": [{"id": "1", "path": ["hero"], "label": "inner"}],
               "incremental": [{"id": "0", "data": {"hero": {"id": "1"}}}],
               "completed": [{"id": "0"}], "hasNext": true})
    );
    assert_eq!(
        p[2],
        json!({"incremental": [{"id": "1", "data": {"name": "Luke"}}], "completed": [{"id": "1"}], "hasNext": false})
    );
}

#[tokio::test]
async fn defer_in_list_items_has_index_paths() {
    let s = schema(true);
    let p = payloads(&s, "{ heroes { id ... @defer { name } } }").await;
    assert_eq!(p.len(), 3);
    assert_eq!(
        p[0]["pending"],
        json!([{"id": "0", "path": ["heroes", 0]}, {"id": "1", "path": ["heroes", 1]}])
    );
    assert_eq!(
        p[1]["incremental"],
        json!([{"id": "0", "data": {"name": "Han"}}])
    );
    assert_eq!(
        p[2]["incremental"],
        json!([{"id": "1", "data": {"name": "Leia"}}])
    );
    assert_eq!(p[2]["hasNext"], json!(false));
}

#[tokio::test]
async fn error_inside_deferred_fragment() {
    let s = schema(true);
    let p = payloads(&s, "{ hero { id ... @defer { name fail } } }").await;
    assert_eq!(p.len(), 2);
    assert!(p[0].get("errors").is_none());
    assert_eq!(
        p[1]["incremental"],
        json!([{"id": "0", "data": {"name": "Luke", "fail": null}, "errors": [
            {"message": "boom", "locations": [{"line": 1, "column": 31}], "path": ["hero", "fail"]}
        ]}])
    );
    // A non-null field failing nulls the whole fragment: completed with errors, no data.
    let p = payloads(&s, "{ hero { id ... @defer { name mustFail } } }").await;
    assert_eq!(p.len(), 2);
    assert!(p[1].get("incremental").is_none());
    assert_eq!(p[1]["completed"][0]["id"], json!("0"));
    assert_eq!(p[1]["completed"][0]["errors"][0]["message"], json!("bang"));
    assert_eq!(
        p[1]["completed"][0]["errors"][0]["path"],
        json!(["hero", "mustFail"])
    );
}

#[tokio::test]
async fn defer_if_false_runs_inline() {
    let s = schema(true);
    let request = Request::new("{ hero { id ... @defer(if: false) { name } } }");
    let ctx = Context::default();
    let all: Vec<_> = s.execute_incremental(&request, &ctx).collect().await;
    assert_eq!(all.len(), 1);
    assert!(!all[0].has_next());
    assert_eq!(
        all[0].to_value(),
        json!({"data": {"hero": {"id": "1", "name": "Luke"}}})
    );
    assert!(all[0].complete_response().is_some());
    // With a variable.
    let request = Request::new("query($d: Boolean!) { hero { id ... @defer(if: $d) { name } } }")
        .variables(serde_json::from_value(json!({"d": false})).unwrap());
    let all: Vec<_> = s.execute_incremental(&request, &ctx).collect().await;
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn execute_runs_defer_and_stream_inline() {
    let s = schema(true);
    let r = s
        .execute(
            &Request::new("{ hero { id ... @defer { name } } list @stream(initialCount: 1) }"),
            &Context::default(),
        )
        .await;
    assert_eq!(
        r.to_value(),
        json!({"data": {"hero": {"id": "1", "name": "Luke"}, "list": [1, 2, 3, 4]}})
    );
}

#[tokio::test]
async fn stream_initial_count() {
    let s = schema(true);
    let p = payloads(&s, r#"{ list @stream(initialCount: 2, label: "L") }"#).await;
    assert_eq!(
        p,
        vec![
            json!({"data": {"list": [1, 2]}, "pending": [{"id": "0", "path": ["list"], "label": "L"}], "hasNext": true}),
            json!({"incremental": [{"id": "0", "items": [3, 4]}], "completed": [{"id": "0"}], "hasNext": false}),
        ]
    );
    // Default initialCount 0.
    let p = payloads(&s, "{ list @stream }").await;
    assert_eq!(p[0]["data"], json!({"list": []}));
    assert_eq!(p[1]["incremental"][0]["items"], json!([1, 2, 3, 4]));
    // initialCount at least the length: nothing streamed.
    let p = payloads(&s, "{ list @stream(initialCount: 10) }").await;
    assert_eq!(p, vec![json!({"data": {"list": [1, 2, 3, 4]}})]);
    // if: false.
    let p = payloads(&s, "{ list @stream(if: false) }").await;
    assert_eq!(p, vec![json!({"data": {"list": [1, 2, 3, 4]}})]);
    // A negative initialCount is a field error.
    let p = payloads(&s, "{ list @stream(initialCount: -1) }").await;
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["data"], json!({"list": null}));
    assert_eq!(
        p[0]["errors"][0]["message"],
        json!("initialCount must be a positive integer")
    );
}

#[tokio::test]
async fn stream_of_objects_and_item_errors() {
    let s = schema(true);
    let p = payloads(&s, "{ heroes @stream(initialCount: 1) { name } }").await;
    assert_eq!(p[0]["data"], json!({"heroes": [{"name": "Han"}]}));
    assert_eq!(p[1]["incremental"][0]["items"], json!([{"name": "Leia"}]));
    // A non-null item failing ends the stream with its error; the items completed before
    // it are sent.
    let p = payloads(&s, "{ nonNullItems @stream(initialCount: 1) }").await;
    assert_eq!(p.len(), 2);
    assert_eq!(p[0]["data"], json!({"nonNullItems": [1]}));
    assert_eq!(p[1]["incremental"], json!([{"id": "0", "items": [2]}]));
    assert_eq!(
        p[1]["completed"][0]["errors"][0]["path"],
        json!(["nonNullItems", 2])
    );
}

/// Item errors of a list resolver (`Resolver::sync_list`) in a streamed list: a failed item
/// before `initialCount` is null in the initial payload, one after it is null in the
/// `items` of a later payload, each with its error at the item's path; a failed non-null
/// item ends the stream with its error.
#[tokio::test]
async fn stream_of_a_list_with_item_errors() {
    let items = || {
        Ok(vec![
            Ok(json!(1)),
            Err(FieldError::new("item 1 failed")),
            Ok(json!(3)),
            Err(FieldError::new("item 3 failed")),
            Ok(json!(5)),
        ])
    };
    let s = Schema::build("type Query { list: [Int] strict: [Int!] }")
        .incremental_delivery(true)
        .resolver("Query", "list", Resolver::sync_list(move |_, _, _| items()))
        .resolver(
            "Query",
            "strict",
            Resolver::sync_list(move |_, _, _| items()),
        )
        .finish()
        .unwrap();
    let p = payloads(&s, "{ list @stream(initialCount: 2) }").await;
    assert_eq!(p[0]["data"], json!({"list": [1, null]}));
    assert_eq!(p[0]["errors"][0]["message"], "item 1 failed");
    assert_eq!(p[0]["errors"][0]["path"], json!(["list", 1]));
    let last = p.last().unwrap();
    assert_eq!(last["incremental"][0]["items"], json!([3, null, 5]));
    assert_eq!(
        last["incremental"][0]["errors"][0]["message"],
        "item 3 failed"
    );
    assert_eq!(
        last["incremental"][0]["errors"][0]["path"],
        json!(["list", 3])
    );
    assert_eq!(last["hasNext"], json!(false));

    let p = payloads(&s, "{ strict @stream(initialCount: 1) }").await;
    assert_eq!(p[0]["data"], json!({"strict": [1]}));
    let last = p.last().unwrap();
    assert!(last.get("incremental").is_none(), "{last}");
    assert_eq!(
        last["completed"][0]["errors"][0]["path"],
        json!(["strict", 1])
    );
}

#[tokio::test]
async fn directives_only_when_enabled() {
    let off = schema(false);
    assert!(off.directive("defer").is_none());
    assert!(off.directive("stream").is_none());
    let r = off
        .execute(
            &Request::new("{ hero { ... @defer { name } } }"),
            &Context::default(),
        )
        .await;
    assert_eq!(
        r.errors[0].message, "Unknown directive \"@defer\".",
        "{:?}",
        r.errors
    );
    let on = schema(true);
    let defer = on.directive("defer").unwrap();
    assert_eq!(defer.args().len(), 2);
    let stream = on.directive("stream").unwrap();
    assert_eq!(stream.args().len(), 3);
    // Schema printing leaves the built-in directives out, as for @skip.
    assert!(!on.to_sdl().contains("@defer"));
}

fn errors_of(schema: &Schema, query: &str) -> Vec<String> {
    let doc = graphql_core::Document::parse(query).unwrap();
    graphql_core::validate(schema, &doc)
        .into_iter()
        .map(|e| e.message)
        .collect()
}

fn ops_schema() -> Schema {
    Schema::build(
        "type Query { list: [Int] one: Int }
         type Mutation { add: Int list: [Int] }
         type Subscription { tick: Int ticks: [Int] }",
    )
    .incremental_delivery(true)
    .finish()
    .unwrap()
}

#[test]
fn validation_rules() {
    let s = ops_schema();
    assert!(
        errors_of(
            &s,
            r#"{ list @stream(label: "a") ... @defer(label: "b") { one } }"#
        )
        .is_empty()
    );
    // Locations (spec rule 5.7.2): @defer on a field, @stream on a fragment.
    assert_eq!(
        errors_of(&s, "{ one @defer }"),
        ["Directive \"@defer\" may not be used on FIELD."]
    );
    assert_eq!(
        errors_of(&s, "{ ... @stream { one } }"),
        ["Directive \"@stream\" may not be used on INLINE_FRAGMENT."]
    );
    // Stream only on lists.
    assert_eq!(
        errors_of(&s, "{ one @stream }"),
        ["Directive \"@stream\" cannot be used on non-list field \"Query.one\"."]
    );
    // Labels static and unique.
    assert_eq!(
        errors_of(
            &s,
            r#"{ list @stream(label: "x") ... @defer(label: "x") { one } }"#
        ),
        [
            "Value for arguments \"defer(label:)\" and \"stream(label:)\" must be unique across all Defer/Stream directive usages."
        ]
    );
    // Every label is checked, also on a second `@stream` of one field (issue 21).
    assert_eq!(
        errors_of(
            &s,
            r#"{ list @stream(label: "x") ... @defer(label: "y") { list @stream(label: "z") @stream(label: "y") } }"#
        ),
        [
            "The directive \"@stream\" can only be used once at this location.",
            "Value for arguments \"defer(label:)\" and \"stream(label:)\" must be unique across all Defer/Stream directive usages."
        ]
    );
    assert_eq!(
        errors_of(&s, "query($l: String) { ... @defer(label: $l) { one } }"),
        ["Argument \"@defer(label:)\" must be a static string."]
    );
    // Not on root mutation fields.
    assert_eq!(
        errors_of(&s, "mutation { ... @defer { add } }"),
        ["Defer directive cannot be used on root mutation type \"Mutation\"."]
    );
    assert_eq!(
        errors_of(&s, "mutation { list @stream }"),
        ["Stream directive cannot be used on root mutation type \"Mutation\"."]
    );
    // Subscriptions: root type and operation.
    let e = errors_of(&s, "subscription { ... @defer { tick } }");
    assert!(
        e.contains(
            &"Defer directive cannot be used on root subscription type \"Subscription\"."
                .to_owned()
        ),
        "{e:?}"
    );
    assert!(
        e.contains(&"Defer directive not supported on subscription operations. Disable `@defer` by setting the `if` argument to `false`.".to_owned()),
        "{e:?}"
    );
    assert!(
        errors_of(&s, "subscription { ... @defer(if: false) { tick } }")
            .iter()
            .all(|m| !m.contains("not supported"))
    );
    // Without incremental delivery the directives are unknown.
    let plain = Schema::build("type Query { list: [Int] }")
        .finish()
        .unwrap();
    assert_eq!(
        errors_of(&plain, "{ list @stream }"),
        ["Unknown directive \"@stream\"."]
    );
}

fn async_schema() -> Schema {
    Schema::build(
        "type Query { hero: Hero nums: [Int!] }
         type Hero { id: ID! slowName: String parts: [Part] }
         type Part { n: Int slow: Int }",
    )
    .incremental_delivery(true)
    .resolver(
        "Query",
        "hero",
        Resolver::sync(|_, _, _| Ok(json!({"id": "1", "parts": [{"n": 1}, {"n": 2}, {"n": 3}]}))),
    )
    .resolver(
        "Query",
        "nums",
        Resolver::asynchronous(|_| {
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(json!([1, 2, 3]))
            })
        }),
    )
    .resolver(
        "Hero",
        "slowName",
        Resolver::asynchronous(|_| {
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(json!("Luke"))
            })
        }),
    )
    .resolver(
        "Part",
        "slow",
        Resolver::asynchronous(|input| {
            let n = input.parent["n"].as_i64().unwrap_or(0);
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                Ok(json!(n * 10))
            })
        }),
    )
    .finish()
    .unwrap()
}

#[tokio::test]
async fn async_resolvers_in_deferred_fragments_and_streams() {
    let s = async_schema();
    let p = payloads(
        &s,
        r#"{ hero { id ... @defer(label: "slow") { slowName parts @stream(initialCount: 1, label: "parts") { slow } } } nums @stream(initialCount: 2) }"#,
    )
    .await;
    assert_eq!(p.len(), 5, "{p:?}");
    assert_eq!(
        p[0],
        json!({"data": {"hero": {"id": "1"}, "nums": [1, 2]},
               "pending": [{"id": "0", "path": ["hero"], "label": "slow"}, {"id": "1", "path": ["nums"]}],
               "hasNext": true})
    );
    assert_eq!(
        p[1],
        json!({"pending": [{"id": "2", "path": ["hero", "parts"], "label": "parts"}],
               "incremental": [{"id": "0", "data": {"slowName": "Luke", "parts": [{"slow": 10}]}}],
               "completed": [{"id": "0"}], "hasNext": true})
    );
    assert_eq!(
        p[2],
        json!({"incremental": [{"id": "1", "items": [3]}], "completed": [{"id": "1"}], "hasNext": true})
    );
    // Items that wait for an async resolver leave one by one, as each is complete.
    assert_eq!(
        p[3],
        json!({"incremental": [{"id": "2", "items": [{"slow": 20}]}], "hasNext": true})
    );
    assert_eq!(
        p[4],
        json!({"incremental": [{"id": "2", "items": [{"slow": 30}]}],
               "completed": [{"id": "2"}], "hasNext": false})
    );
}

#[tokio::test]
async fn nulled_parent_announces_nothing() {
    let s = schema(true);
    // `mustFail` is non-null: `hero` becomes null, so its deferred fragment never comes.
    let p = payloads(&s, "{ hero { mustFail ... @defer { name } } list }").await;
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["data"], json!({"hero": null, "list": [1, 2, 3, 4]}));
    assert_eq!(p[0]["errors"][0]["message"], json!("bang"));
    assert!(p[0].get("pending").is_none());
    assert!(p[0].get("hasNext").is_none());
}

#[tokio::test]
async fn leaf_fields_already_sent_are_not_sent_again() {
    let s = schema(true);
    let p = payloads(&s, "{ hero { id ... @defer { id name } } }").await;
    assert_eq!(
        p[1],
        json!({"incremental": [{"id": "0", "data": {"name": "Luke"}}], "completed": [{"id": "0"}], "hasNext": false})
    );
    // Nothing new: the fragment is left out, as graphql-js does ("Can defer a fragment
    // that is also not deferred").
    let p = payloads(&s, "{ hero { id name ... @defer { name } } }").await;
    assert_eq!(
        p,
        vec![json!({"data": {"hero": {"id": "1", "name": "Luke"}}})]
    );
}

// ---------------------------------------------------------------------------------------
// graphql-js 17 (17.0.0-alpha.9) behaviour, from the cases of its defer tests
// (`src/execution/__tests__/defer-test.ts`): the schema, documents and expected entries are
// theirs. graphql-js gathers everything ready at the same time into one payload, this crate
// sends a payload whenever a fragment completes, so the later payloads are compared by
// their entries in order (`merged`), and the split is checked where it matters.

const JS_SDL: &str = r#"
type Query { hero: Hero a: a g: g }
type Hero { id: ID name: String nonNullName: String! friends: [Friend]
            nestedObject: NestedObject anotherNestedObject: AnotherNestedObject }
type Friend { id: ID name: String nonNullName: String! }
type NestedObject { deeperObject: DeeperObject name: String }
type AnotherNestedObject { deeperObject: DeeperObject }
type DeeperObject { foo: String bar: String baz: String bak: String }
type a { b: b someField: String }
type b { c: c e: e }
type c { d: String nonNullErrorField: String! }
type e { f: String }
type g { h: String }
"#;

fn js_schema() -> Schema {
    Schema::build(JS_SDL)
        .incremental_delivery(true)
        .finish()
        .unwrap()
}

fn js_hero() -> Value {
    json!({"hero": {"id": 1, "name": "Luke", "friends": [
        {"name": "Han", "id": 2}, {"name": "Leia", "id": 3}, {"name": "C-3PO", "id": 4}
    ]}})
}

async fn run_js(query: &str, root: Value) -> Vec<Value> {
    let s = js_schema();
    let request = Request::new(query).root_value(root);
    let ctx = Context::default();
    s.execute_incremental(&request, &ctx)
        .map(|p| p.to_value())
        .collect()
        .await
}

/// The entries of later payloads, in order, as one payload.
fn merged(later: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["pending", "incremental", "completed"] {
        let all: Vec<Value> = later
            .iter()
            .flat_map(|p| {
                p.get(key)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        if !all.is_empty() {
            out.insert(key.to_owned(), Value::Array(all));
        }
    }
    out.insert(
        "hasNext".to_owned(),
        later.last().map_or(Value::Null, |p| p["hasNext"].clone()),
    );
    Value::Object(out)
}

#[tokio::test]
async fn js_deduplicates_fields_present_in_the_initial_payload() {
    let p = run_js(
        "query { hero {
            nestedObject { deeperObject { foo } }
            anotherNestedObject { deeperObject { foo } }
            ... @defer {
              nestedObject { deeperObject { bar } }
              anotherNestedObject { deeperObject { foo } }
            } } }",
        json!({"hero": {
            "nestedObject": {"deeperObject": {"foo": "foo", "bar": "bar"}},
            "anotherNestedObject": {"deeperObject": {"foo": "foo"}}
        }}),
    )
    .await;
    assert_eq!(
        p,
        vec![
            json!({"data": {"hero": {"nestedObject": {"deeperObject": {"foo": "foo"}},
                                     "anotherNestedObject": {"deeperObject": {"foo": "foo"}}}},
                   "pending": [{"id": "0", "path": ["hero"]}], "hasNext": true}),
            json!({"incremental": [{"data": {"bar": "bar"}, "id": "0",
                                    "subPath": ["nestedObject", "deeperObject"]}],
                   "completed": [{"id": "0"}], "hasNext": false}),
        ]
    );
}

#[tokio::test]
async fn js_deduplicates_fields_with_deferred_fragments_at_multiple_levels() {
    let p = run_js(
        "query { hero {
            nestedObject { deeperObject { foo } }
            ... @defer {
              nestedObject {
                deeperObject { foo bar }
                ... @defer {
                  deeperObject { foo bar baz ... @defer { foo bar baz bak } }
                } } } } }",
        json!({"hero": {"nestedObject": {"deeperObject":
            {"foo": "foo", "bar": "bar", "baz": "baz", "bak": "bak"}}}}),
    )
    .await;
    assert_eq!(
        p[0],
        json!({"data": {"hero": {"nestedObject": {"deeperObject": {"foo": "foo"}}}},
               "pending": [{"id": "0", "path": ["hero"]}], "hasNext": true})
    );
    assert_eq!(
        merged(&p[1..]),
        json!({"pending": [{"id": "1", "path": ["hero", "nestedObject"]},
                           {"id": "2", "path": ["hero", "nestedObject", "deeperObject"]}],
               "incremental": [
                   {"data": {"bar": "bar"}, "id": "0", "subPath": ["nestedObject", "deeperObject"]},
                   {"data": {"baz": "baz"}, "id": "1", "subPath": ["deeperObject"]},
                   {"data": {"bak": "bak"}, "id": "2"}],
               "completed": [{"id": "0"}, {"id": "1"}, {"id": "2"}], "hasNext": false})
    );
    // A nested fragment is announced with the completion of the one it is in.
    assert_eq!(
        p[1]["pending"],
        json!([{"id": "1", "path": ["hero", "nestedObject"]}])
    );
    assert_eq!(p[1]["completed"], json!([{"id": "0"}]));
}

#[tokio::test]
async fn js_separately_emits_fragments_with_varying_subfields() {
    let p = run_js(
        r#"query HeroNameQuery {
            ... @defer(label: "DeferID") { hero { id } }
            ... @defer(label: "DeferName") { hero { name } } }"#,
        js_hero(),
    )
    .await;
    assert_eq!(
        p[0],
        json!({"data": {}, "pending": [{"id": "0", "path": [], "label": "DeferID"},
                                       {"id": "1", "path": [], "label": "DeferName"}],
               "hasNext": true})
    );
    assert_eq!(
        merged(&p[1..]),
        json!({"incremental": [
                   {"data": {"hero": {}}, "id": "0"},
                   {"data": {"id": "1"}, "id": "0", "subPath": ["hero"]},
                   {"data": {"name": "Luke"}, "id": "1", "subPath": ["hero"]}],
               "completed": [{"id": "0"}, {"id": "1"}], "hasNext": false})
    );
}

#[tokio::test]
async fn js_nulls_cross_defer_boundaries() {
    let p = run_js(
        "query {
            ... @defer { a { someField b { c { nonNullErrorField } } } }
            a { ... @defer { b { c { d } } } } }",
        json!({"a": {"b": {"c": {"d": "d"}}, "someField": "someField"}}),
    )
    .await;
    assert_eq!(
        p[0],
        json!({"data": {"a": {}}, "pending": [{"id": "0", "path": ["a"]}, {"id": "1", "path": []}],
               "hasNext": true})
    );
    let rest = merged(&p[1..]);
    assert_eq!(
        rest["incremental"],
        json!([{"data": {"b": {"c": {}}}, "id": "0"},
               {"data": {"d": "d"}, "id": "0", "subPath": ["b", "c"]}])
    );
    let completed = rest["completed"].as_array().unwrap();
    assert_eq!(completed.len(), 2);
    assert_eq!(completed[0]["id"], "1");
    assert_eq!(
        completed[0]["errors"][0]["message"],
        "Cannot return null for non-nullable field c.nonNullErrorField."
    );
    assert_eq!(
        completed[0]["errors"][0]["path"],
        json!(["a", "b", "c", "nonNullErrorField"])
    );
    assert_eq!(completed[1], json!({"id": "0"}));
    assert_eq!(rest["hasNext"], false);
}

#[tokio::test]
async fn js_does_not_deduplicate_list_fields_with_non_overlapping_fields() {
    let p = run_js(
        "query { hero { friends { name } ... @defer { friends { id } } } }",
        js_hero(),
    )
    .await;
    assert_eq!(
        p,
        vec![
            json!({"data": {"hero": {"friends": [{"name": "Han"}, {"name": "Leia"}, {"name": "C-3PO"}]}},
                   "pending": [{"id": "0", "path": ["hero"]}], "hasNext": true}),
            json!({"incremental": [
                       {"data": {"id": "2"}, "id": "0", "subPath": ["friends", 0]},
                       {"data": {"id": "3"}, "id": "0", "subPath": ["friends", 1]},
                       {"data": {"id": "4"}, "id": "0", "subPath": ["friends", 2]}],
                   "completed": [{"id": "0"}], "hasNext": false}),
        ]
    );
}

#[tokio::test]
async fn js_empty_fragments_are_left_out() {
    // "Does not emit empty defer fragments".
    let p = run_js(
        "query { hero { ... @defer { name @skip(if: true) } } }",
        js_hero(),
    )
    .await;
    assert_eq!(p, vec![json!({"data": {"hero": {}}})]);
    // "Emits children of empty defer fragments".
    let p = run_js(
        "query { hero { ... @defer { ... @defer { name } } } }",
        js_hero(),
    )
    .await;
    assert_eq!(
        p,
        vec![
            json!({"data": {"hero": {}}, "pending": [{"id": "0", "path": ["hero"]}], "hasNext": true}),
            json!({"incremental": [{"data": {"name": "Luke"}, "id": "0"}],
                   "completed": [{"id": "0"}], "hasNext": false}),
        ]
    );
    // "Can defer a fragment that is also not deferred", both orders.
    for query in [
        "query { hero { ...Top @defer(label: \"DeferTop\") ...Top } } fragment Top on Hero { name }",
        "query { hero { ...Top ...Top @defer(label: \"DeferTop\") } } fragment Top on Hero { name }",
    ] {
        let p = run_js(query, js_hero()).await;
        assert_eq!(
            p,
            vec![json!({"data": {"hero": {"name": "Luke"}}})],
            "{query}"
        );
    }
}

#[tokio::test]
async fn js_defer_within_deferred_fragment() {
    // "Can defer a fragment within an already deferred fragment".
    let p = run_js(
        r#"query HeroNameQuery { hero { ...TopFragment @defer(label: "DeferTop") } }
           fragment TopFragment on Hero { id ...NestedFragment @defer(label: "DeferNested") }
           fragment NestedFragment on Hero { friends { name } }"#,
        js_hero(),
    )
    .await;
    assert_eq!(
        p[0],
        json!({"data": {"hero": {}}, "pending": [{"id": "0", "path": ["hero"], "label": "DeferTop"}],
               "hasNext": true})
    );
    assert_eq!(
        merged(&p[1..]),
        json!({"pending": [{"id": "1", "path": ["hero"], "label": "DeferNested"}],
               "incremental": [
                   {"data": {"id": "1"}, "id": "0"},
                   {"data": {"friends": [{"name": "Han"}, {"name": "Leia"}, {"name": "C-3PO"}]}, "id": "1"}],
               "completed": [{"id": "0"}, {"id": "1"}], "hasNext": false})
    );
}

/// The format of 2022-08-24 (Apollo Client 3): paths and labels on every entry, no
/// `pending`/`completed`, a failed fragment as `data: null` with its errors.
#[tokio::test]
async fn format_of_2022_08_24() {
    let s = schema(true);
    let ctx = Context::default();
    let request = Request::new(
        r#"{ hero { id ... @defer(label: "D") { name } } list @stream(initialCount: 2) }"#,
    );
    let p: Vec<Value> = s
        .execute_incremental_as(&request, &ctx, IncrementalFormat::Defer20220824)
        .map(|p| p.to_value())
        .collect()
        .await;
    assert_eq!(
        p,
        vec![
            json!({"data": {"hero": {"id": "1"}, "list": [1, 2]}, "hasNext": true}),
            json!({"incremental": [{"data": {"name": "Luke"}, "path": ["hero"], "label": "D"}], "hasNext": true}),
            json!({"incremental": [{"items": [3, 4], "path": ["list", 2]}], "hasNext": false}),
        ]
    );
    let request = Request::new("{ hero { id ... @defer { mustFail } } }");
    let p: Vec<Value> = s
        .execute_incremental_as(&request, &ctx, IncrementalFormat::Defer20220824)
        .map(|p| p.to_value())
        .collect()
        .await;
    assert_eq!(p.len(), 2);
    assert_eq!(p[1]["incremental"][0]["data"], Value::Null);
    assert_eq!(p[1]["incremental"][0]["path"], json!(["hero"]));
    assert_eq!(p[1]["incremental"][0]["errors"][0]["message"], "bang");
    assert_eq!(p[1]["hasNext"], false);
}

/// A list resolved as a stream of items (`Resolver::item_stream`): under `@stream`, the
/// first `initialCount` items come with the initial payload, then each item leaves as soon
/// as the source yields it; without `@stream`, the list is read whole.
#[tokio::test]
async fn item_stream_sends_items_as_they_arrive() {
    // A channel the test feeds: the source yields an item once the test sent it.
    #[derive(Default)]
    struct Channel {
        items: std::collections::VecDeque<i64>,
        waker: Option<std::task::Waker>,
        closed: bool,
    }
    let channel = std::sync::Arc::new(std::sync::Mutex::new(Channel::default()));
    let send = |n: Option<i64>| {
        let mut c = channel.lock().unwrap();
        match n {
            Some(n) => c.items.push_back(n),
            None => c.closed = true,
        }
        if let Some(w) = c.waker.take() {
            w.wake();
        }
    };
    let source = std::sync::Arc::clone(&channel);
    let s = Schema::build("type Query { numbers: [Int!] fixed: [Int] }")
        .incremental_delivery(true)
        .resolver(
            "Query",
            "numbers",
            Resolver::item_stream(move |_, _, _| {
                let source = std::sync::Arc::clone(&source);
                Box::pin(futures_util::stream::poll_fn(move |cx| {
                    let mut c = source.lock().unwrap();
                    match c.items.pop_front() {
                        Some(n) => std::task::Poll::Ready(Some(Ok(json!(n)))),
                        None if c.closed => std::task::Poll::Ready(None),
                        None => {
                            c.waker = Some(cx.waker().clone());
                            std::task::Poll::Pending
                        }
                    }
                }))
            }),
        )
        .resolver(
            "Query",
            "fixed",
            Resolver::item_stream(|_, _, _| {
                Box::pin(futures_util::stream::iter(vec![
                    Ok(json!(1)),
                    Err(FieldError::new("no 2")),
                    Ok(json!(3)),
                ]))
            }),
        )
        .finish()
        .unwrap();
    let ctx = Context::default();
    let request = Request::new("{ numbers @stream(initialCount: 1) }");
    let mut stream = s.execute_incremental(&request, &ctx);
    send(Some(1));
    let first = stream.next().await.unwrap().to_value();
    assert_eq!(
        first,
        json!({"data": {"numbers": [1]}, "pending": [{"id": "0", "path": ["numbers"]}], "hasNext": true})
    );
    for n in 2..=4 {
        send(Some(n));
        let next = stream.next().await.unwrap().to_value();
        assert_eq!(
            next,
            json!({"incremental": [{"id": "0", "items": [n]}], "hasNext": true})
        );
    }
    send(None);
    let last = stream.next().await.unwrap().to_value();
    assert_eq!(last, json!({"completed": [{"id": "0"}], "hasNext": false}));
    assert!(stream.next().await.is_none());

    // Without @stream, and with an item error.
    let r = s.execute(&Request::new("{ fixed }"), &ctx).await;
    assert_eq!(r.to_value()["data"], json!({"fixed": [1, null, 3]}));
    assert_eq!(r.errors[0].message, "no 2");
    // Streamed, all ready at once: one batch.
    let p = payloads(&s, "{ fixed @stream(initialCount: 1) }").await;
    assert_eq!(p[0]["data"], json!({"fixed": [1]}));
    assert_eq!(
        p[1],
        json!({"incremental": [{"id": "0", "items": [null, 3], "errors": [
            {"message": "no 2", "locations": [{"line": 1, "column": 3}], "path": ["fixed", 1]}
        ]}], "completed": [{"id": "0"}], "hasNext": false})
    );
}
