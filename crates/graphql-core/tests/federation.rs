#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Apollo Federation subgraphs: the added schema (`_service`, `_entities`, `_Entity`,
//! `_Any`, the directive definitions under their `@link` names) and `_entities`' semantics
//! (compound, nested and multiple keys, `resolvable: false`, `@requires` fields passed in
//! the representation, `@external`, interface entities, errors per representation, the
//! bound on representations).

use graphql_core::{Context, Federation, FieldError, Request, Resolver, Schema};
use serde_json::{Value, json};

const PRODUCTS: &str = r#"
extend schema
  @link(url: "https://specs.apollo.dev/federation/v2.3",
        import: ["@key", "@shareable", "@external", "@requires", "@provides",
                 {name: "@tag", as: "@label"}, "@inaccessible", "@override", "@interfaceObject"])

type Query {
  topProducts(first: Int = 5): [Product!]!
}

"A product; found by `upc`, or by `sku` and `package` together."
type Product @key(fields: "upc") @key(fields: "sku package") @key(fields: "id organization { id }", resolvable: true) {
  upc: String!
  sku: String!
  package: String!
  id: ID!
  organization: Organization!
  name: String @shareable @label(name: "public")
  price: Int @override(from: "legacy")
  weight: Int @external
  shippingEstimate: Int @requires(fields: "weight")
  secret: String @inaccessible
  vendor: Vendor @provides(fields: "name")
}

type Organization { id: ID! }

type Vendor @key(fields: "id", resolvable: false) { id: ID! name: String @external }

interface Media @key(fields: "id") { id: ID! title: String }
type Book implements Media @key(fields: "id") { id: ID! title: String pages: Int }
type Film implements Media @key(fields: "id") { id: ID! title: String minutes: Int }

type Review @key(fields: "id") @interfaceObject { id: ID! stars: Int }
"#;

fn products() -> Schema {
    Schema::build(PRODUCTS)
        .federation(Federation::new().max_representations(5))
        .resolver(
            "Query",
            "topProducts",
            Resolver::sync(|_, _, _| Ok(json!([{"upc": "1", "name": "Table"}]))),
        )
        .entity_resolver(
            "Product",
            Resolver::sync(|_, rep, _| {
                // Found by any of the three keys.
                let upc = match (&rep["upc"], &rep["sku"], &rep["id"]) {
                    (Value::String(upc), _, _) => upc.clone(),
                    (_, Value::String(sku), _) if rep["package"] == "box" => format!("{sku}-box"),
                    (_, _, Value::String(id)) if rep["organization"]["id"] == "acme" => {
                        format!("acme-{id}")
                    }
                    _ => return Ok(Value::Null),
                };
                if upc == "404" {
                    return Ok(Value::Null);
                }
                if upc == "500" {
                    return Err(FieldError::new("the product store is down"));
                }
                Ok(json!({"upc": upc, "name": format!("product {upc}")}))
            }),
        )
        .resolver(
            "Product",
            "shippingEstimate",
            // `weight` is @external: the router passes it in the representation, which
            // stays part of the entity.
            Resolver::sync(|_, parent, _| {
                let weight = parent["weight"]
                    .as_i64()
                    .ok_or_else(|| FieldError::new("no weight"))?;
                Ok(json!(weight * 2))
            }),
        )
        .entity_resolver(
            "Media",
            Resolver::asynchronous(|input| {
                Box::pin(async move {
                    let id = input.parent["id"].as_str().unwrap_or_default().to_owned();
                    Ok(if id == "bad" {
                        json!({"id": id})
                    } else if id.starts_with('b') {
                        json!({"__typename": "Book", "id": id, "title": "Dune", "pages": 412})
                    } else {
                        json!({"__typename": "Film", "id": id, "title": "Alien", "minutes": 117})
                    })
                })
            }),
        )
        .finish()
        .unwrap()
}

async fn run(schema: &Schema, query: &str, variables: Value) -> Value {
    let Value::Object(variables) = variables else {
        panic!("variables must be an object")
    };
    schema
        .execute(
            &Request::new(query).variables(variables),
            &Context::default(),
        )
        .await
        .to_value()
}

const ENTITIES: &str = r#"query($r: [_Any!]!) { _entities(representations: $r) {
  __typename
  ... on Product { upc name shippingEstimate }
  ... on Book { id title pages }
  ... on Film { id minutes }
  ... on Review { id stars }
} }"#;

#[tokio::test]
async fn service_sdl_is_the_subgraph_sdl_as_given() {
    let schema = products();
    let out = run(&schema, "{ _service { sdl } }", json!({})).await;
    assert_eq!(out["data"]["_service"]["sdl"], PRODUCTS);
    // Not the printed schema: no `_entities`, `_Any` or added definitions.
    let sdl = out["data"]["_service"]["sdl"].as_str().unwrap();
    assert!(!sdl.contains("_entities") && !sdl.contains("directive @key"));
}

#[tokio::test]
async fn the_added_schema() {
    let schema = products();
    let printed = schema.to_sdl();
    for expected in [
        "_entities(representations: [_Any!]!): [_Entity]!",
        "_service: _Service!",
        "scalar _Any",
        "scalar federation__FieldSet",
        "scalar link__Import",
        "type _Service",
        "directive @key(fields: federation__FieldSet!, resolvable: Boolean = true) repeatable on OBJECT | INTERFACE",
        "directive @label(name: String!) repeatable on",
        "directive @override(from: String!) on FIELD_DEFINITION",
        "directive @interfaceObject on OBJECT",
        "directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA",
        // Not imported: under the link's namespace.
        "directive @federation__composeDirective(name: String!) repeatable on SCHEMA",
        "directive @federation__extends on OBJECT | INTERFACE",
    ] {
        assert!(printed.contains(expected), "{expected}\n{printed}");
    }
    // Objects with a resolvable key; not Vendor (resolvable: false), not the interface.
    let union = printed
        .lines()
        .find(|l| l.starts_with("union _Entity"))
        .unwrap();
    assert_eq!(union, "union _Entity = Product | Book | Film | Review");
    // v2.3 has no @authenticated (v2.5).
    assert!(!printed.contains("authenticated"));
}

#[tokio::test]
async fn entities_by_simple_compound_and_nested_keys() {
    let schema = products();
    let out = run(
        &schema,
        ENTITIES,
        json!({"r": [
            {"__typename": "Product", "upc": "1"},
            {"__typename": "Product", "sku": "s7", "package": "box"},
            {"__typename": "Product", "id": "9", "organization": {"id": "acme"}},
        ]}),
    )
    .await;
    assert_eq!(
        out,
        json!({"data": {"_entities": [
            {"__typename": "Product", "upc": "1", "name": "product 1", "shippingEstimate": null},
            {"__typename": "Product", "upc": "s7-box", "name": "product s7-box", "shippingEstimate": null},
            {"__typename": "Product", "upc": "acme-9", "name": "product acme-9", "shippingEstimate": null},
        ]}, "errors": [
            {"message": "no weight", "locations": [{"line": 3, "column": 29}], "path": ["_entities", 0, "shippingEstimate"]},
            {"message": "no weight", "locations": [{"line": 3, "column": 29}], "path": ["_entities", 1, "shippingEstimate"]},
            {"message": "no weight", "locations": [{"line": 3, "column": 29}], "path": ["_entities", 2, "shippingEstimate"]},
        ]})
    );
}

#[tokio::test]
async fn requires_fields_come_in_the_representation() {
    let schema = products();
    let out = run(
        &schema,
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { upc weight shippingEstimate } } }",
        json!({"r": [{"__typename": "Product", "upc": "1", "weight": 21}]}),
    )
    .await;
    assert_eq!(
        out,
        json!({"data": {"_entities": [{"upc": "1", "weight": 21, "shippingEstimate": 42}]}})
    );
}

#[tokio::test]
async fn a_failing_representation_is_null_with_its_own_error() {
    let schema = products();
    let out = run(
        &schema,
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { upc } } }",
        json!({"r": [
            {"__typename": "Product", "upc": "1"},
            {"__typename": "Product", "upc": "500"},
            {"__typename": "Product", "upc": "404"},
            {"__typename": "Nope", "upc": "1"},
            {"__typename": "Product", "sku": "only half of a key"},
        ]}),
    )
    .await;
    assert_eq!(
        out["data"],
        json!({"_entities": [{"upc": "1"}, null, null, null, null]})
    );
    let errors = out["errors"].as_array().unwrap();
    // Not found (null from the resolver) is not an error.
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_eq!(errors[0]["message"], "the product store is down");
    assert_eq!(errors[0]["path"], json!(["_entities", 1]));
    assert_eq!(errors[1]["path"], json!(["_entities", 3]));
    assert!(
        errors[1]["message"]
            .as_str()
            .unwrap()
            .contains("\"Nope\" is not an entity"),
        "{errors:#?}"
    );
    assert_eq!(errors[2]["path"], json!(["_entities", 4]));
    assert_eq!(
        errors[2]["message"],
        "The representation of \"Product\" has the fields of none of its keys (\"upc\", \"sku package\", \"id organization { id }\")."
    );
}

#[tokio::test]
async fn entities_without_resolver_interface_entities_and_interface_objects() {
    let schema = products();
    let out = run(
        &schema,
        ENTITIES,
        json!({"r": [
            {"__typename": "Media", "id": "b1"},
            {"__typename": "Media", "id": "f1"},
            {"__typename": "Review", "id": "r1", "stars": 4},
            {"__typename": "Media", "id": "bad"},
            {"__typename": "Book", "id": "b2", "title": "Emma"},
        ]}),
    )
    .await;
    assert_eq!(
        out["data"]["_entities"],
        json!([
            {"__typename": "Book", "id": "b1", "title": "Dune", "pages": 412},
            {"__typename": "Film", "id": "f1", "minutes": 117},
            // No reference resolver: the representation is the entity.
            {"__typename": "Review", "id": "r1", "stars": 4},
            null,
            {"__typename": "Book", "id": "b2", "title": "Emma", "pages": null},
        ])
    );
    assert_eq!(out["errors"][0]["path"], json!(["_entities", 3]));
    assert!(
        out["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("must return an object whose \"__typename\" names a type implementing it")
    );
}

#[tokio::test]
async fn representations_are_bounded() {
    let schema = products();
    let reps: Vec<Value> = (0..6)
        .map(|i| json!({"__typename": "Product", "upc": i.to_string()}))
        .collect();
    let out = run(
        &schema,
        "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
        json!({ "r": reps }),
    )
    .await;
    assert_eq!(out["data"], Value::Null);
    assert_eq!(
        out["errors"][0]["message"],
        "Too many representations: 6, at most 5 are resolved in one request."
    );
    assert_eq!(out["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
    // A representation that is not an object with a __typename.
    let out = run(
        &schema,
        "{ _entities(representations: [1, {upc: \"1\"}]) { __typename } }",
        json!({}),
    )
    .await;
    assert_eq!(out["data"]["_entities"], json!([null, null]));
    assert_eq!(out["errors"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_subgraph_without_query_type_extending_types_of_others() {
    // Reviews only extends Product (defined in another subgraph), with no Query type.
    let sdl = r#"
extend schema @link(url: "https://specs.apollo.dev/federation/v2.0", import: ["@key", "@external"])
extend type Product @key(fields: "upc") {
  upc: String! @external
  reviews: [String!]!
}
"#;
    let schema = Schema::build(sdl)
        .resolver(
            "Product",
            "reviews",
            Resolver::sync(|_, parent, _| Ok(json!([format!("good {}", parent["upc"])]))),
        )
        .federation(Federation::new())
        .finish()
        .unwrap();
    let out = run(
        &schema,
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { reviews } } _service { sdl } }",
        json!({"r": [{"__typename": "Product", "upc": "7"}]}),
    )
    .await;
    assert_eq!(
        out["data"]["_entities"],
        json!([{"reviews": ["good \"7\""]}])
    );
    assert_eq!(out["data"]["_service"]["sdl"], sdl);
}

#[test]
fn bad_field_sets_and_registrations_are_schema_errors() {
    let base = r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.0", import: ["@key", "@requires", "@provides", "@external"])
type Query { a: A }
"#;
    let cases = [
        (
            "type A @key(fields: \"nope\") { id: ID }",
            "@key(fields: \"nope\") on \"A\": field \"nope\" is not defined on type \"A\".",
        ),
        (
            "type A @key(fields: \"id\") { id: ID b: B @provides(fields: \"x\") } type B { y: Int }",
            "@provides(fields: \"x\") on \"A.b\": field \"x\" is not defined on type \"B\".",
        ),
        (
            "type A @key(fields: \"id\") { id: ID c: Int @requires(fields: \"w {\") }",
            "@requires(fields: \"w {\") on \"A.c\": the field set does not parse",
        ),
        (
            "type A @shareable { id: ID }",
            "Unknown directive \"@shareable\".",
        ),
    ];
    for (sdl, expected) in cases {
        let err = Schema::build(format!("{base}{sdl}"))
            .federation(Federation::new())
            .finish()
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{sdl}: {err}");
    }
    let err = Schema::build(format!("{base}type A {{ id: ID }}"))
        .entity_resolver("A", Resolver::Default)
        .finish()
        .unwrap_err();
    assert!(
        err.to_string().contains("\"A\", which is not an entity"),
        "{err}"
    );
}

#[tokio::test]
async fn federation_1_sdl_without_link() {
    let sdl = r#"
type Query { me: User }
type User @key(fields: "id") { id: ID! name: String }
extend type Account @key(fields: "id") { id: ID! @external user: User }
"#;
    let schema = Schema::build(sdl)
        .entity_resolver(
            "User",
            Resolver::sync(|_, rep, _| Ok(json!({"name": format!("user {}", rep["id"])}))),
        )
        .finish()
        .unwrap();
    assert!(schema.to_sdl().contains("scalar _FieldSet"));
    let out = run(
        &schema,
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id name } } }",
        json!({"r": [{"__typename": "User", "id": "1"}]}),
    )
    .await;
    assert_eq!(
        out,
        json!({"data": {"_entities": [{"id": "1", "name": "user \"1\""}]}})
    );
}

/// The composer's subgraph rules `finish` applies to a federation v2 subgraph, each with
/// the error it gives (the composer's codes in comments; examples/federation's
/// composition test shows `composeServices` refusing the same SDLs).
#[test]
fn composition_rules_checked_when_the_schema_is_built() {
    let base = |minor: u32| {
        format!(
            r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.{minor}", import: ["@key", "@requires", "@provides", "@external", "@override", "@composeDirective"])
"#
        )
    };
    let cases = [
        // REQUIRES_FIELDS_MISSING_EXTERNAL
        (
            3,
            r#"type Query { p: P } type P @key(fields: "id") { id: ID! w: Int x: Int @requires(fields: "w") }"#,
            r#"@requires(fields: "w") on "P.x": field "P.w" is resolved by this subgraph (it is not marked @external), so it cannot be part of a @requires."#,
        ),
        // PROVIDES_FIELDS_MISSING_EXTERNAL
        (
            3,
            r#"type Query { p: P @provides(fields: "w") } type P @key(fields: "id") { id: ID! w: Int }"#,
            r#"@provides(fields: "w") on "Query.p": field "P.w" is resolved by this subgraph"#,
        ),
        // EXTERNAL_COLLISION_WITH_ANOTHER_DIRECTIVE
        (
            3,
            r#"type Query { q: Q } type Q @key(fields: "id") { id: ID! p: P @external @provides(fields: "w") } type P @key(fields: "id") { id: ID! w: Int @external }"#,
            r#"@provides on "Q.p": a field cannot be both @provides and @external."#,
        ),
        // PROVIDES_ON_NON_OBJECT_FIELD
        (
            3,
            r#"type Query { p: Int @provides(fields: "w") } type P @key(fields: "id") { id: ID! w: Int @external }"#,
            r#"@provides on "Query.p": the field's type "Int" is not an object, interface or union type."#,
        ),
        // KEY_FIELDS_HAS_ARGS
        (
            3,
            r#"type Query { p: P } type P @key(fields: "id") { id(x: Int): ID! }"#,
            r#"@key(fields: "id") on "P": field "P.id" has arguments, which @key does not allow."#,
        ),
        // KEY_FIELDS_SELECT_INVALID_TYPE
        (
            3,
            r#"type Query { p: P } interface I { a: Int } type P @key(fields: "i { a }") { i: I }"#,
            r#"field "P.i" is of an interface or union type, which @key does not allow."#,
        ),
        // OVERRIDE_LABEL_INVALID
        (
            7,
            r#"type Query { p: P } type P @key(fields: "id") { id: ID! n: String @override(from: "other", label: "percent(101)") }"#,
            r#"Invalid @override label "percent(101)" on "P.n""#,
        ),
        (
            7,
            r#"type Query { p: P } type P @key(fields: "id") { id: ID! n: String @override(from: "other", label: "1abc") }"#,
            r#"Invalid @override label "1abc""#,
        ),
        // INVALID_GRAPHQL (`label` is not an argument before v2.7)
        (
            6,
            r#"type Query { p: P } type P @key(fields: "id") { id: ID! n: String @override(from: "other", label: "percent(5)") }"#,
            r#"@override(label:) on "P.n" needs federation v2.7 or later, and the schema links v2.6."#,
        ),
        // DIRECTIVE_COMPOSITION_ERROR, four ways
        (
            3,
            r#"extend schema @link(url: "https://example.com/foo/v1.0", import: ["@foo"]) @composeDirective(name: "@foo")
               type Query { p: Int }"#,
            r#"@composeDirective(name: "@foo"): the SDL does not define that directive."#,
        ),
        (
            3,
            r#"extend schema @composeDirective(name: "@foo") directive @foo on FIELD_DEFINITION
               type Query { p: Int @foo }"#,
            r#"@composeDirective(name: "@foo"): the directive must come from a specification the schema links"#,
        ),
        (
            3,
            r#"extend schema @link(url: "https://example.com/foo/v1.0", import: ["@foo"]) @composeDirective(name: "foo")
               directive @foo on FIELD_DEFINITION type Query { p: Int @foo }"#,
            r#"@composeDirective(name: "foo"): the name must start with "@"."#,
        ),
        (
            3,
            r#"extend schema @composeDirective(name: "@key") type Query { p: Int }"#,
            r#"@composeDirective(name: "@key"): federation's own directives are not composed this way."#,
        ),
    ];
    for (minor, sdl, expected) in cases {
        let err = Schema::build(format!("{}{sdl}", base(minor)))
            .federation(Federation::new())
            .finish()
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{sdl}:\n{err}");
    }

    // What the rules allow: a field below an @external one, nested @provides, labels of
    // both forms, a composed directive imported (or renamed) from its specification.
    let ok = [
        (
            3,
            r#"type Query { p: P } type P @key(fields: "id") { id: ID! o: O @external x: Int @requires(fields: "o { a b }") } type O { a: Int b: Int }"#,
        ),
        (
            3,
            r#"type Query { p: P @provides(fields: "o { a }") } type P @key(fields: "id") { id: ID! o: O @external } type O { a: Int }"#,
        ),
        (
            3,
            r#"type Query { q: Q } type Q @key(fields: "id") { id: ID! x: Int @requires(fields: "w") } extend type Q @external { w: Int }"#,
        ),
        (
            7,
            r#"type Query { p: P } type P @key(fields: "id") { id: ID! a: Int @override(from: "x", label: "percent(0.12345678)") b: Int @override(from: "x", label: "percent(100)") c: Int @override(from: "x", label: "beta/cohort-1:v2.x") }"#,
        ),
        (
            3,
            r#"extend schema @link(url: "https://example.com/foo/v1.0", import: [{name: "@foo", as: "@bar"}]) @link(url: "https://example.com/baz/v0.1") @composeDirective(name: "@bar") @composeDirective(name: "@baz__qux")
               directive @bar on FIELD_DEFINITION directive @baz__qux on FIELD_DEFINITION
               type Query { p: Int @bar q: Int @baz__qux }"#,
        ),
    ];
    for (minor, sdl) in ok {
        if let Err(err) = Schema::build(format!("{}{sdl}", base(minor)))
            .federation(Federation::new())
            .finish()
        {
            panic!("{sdl}:\n{err}");
        }
    }
}

const BATCHED: &str = r#"
extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
type Query { a: Int }
type Product @key(fields: "upc") { upc: String! name: String }
type User @key(fields: "id") { id: ID! name: String }
type Review @key(fields: "id") { id: ID! body: String }
"#;

/// Products come from an async batch resolver, users from a sync one, reviews one by one.
fn batched(calls: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> Schema {
    let product_calls = calls.clone();
    let user_calls = calls.clone();
    Schema::build(BATCHED)
        .entity_batch_resolver(
            "Product",
            Resolver::asynchronous_list(move |input| {
                let calls = product_calls.clone();
                Box::pin(async move {
                    let reps = input.parent.as_array().unwrap();
                    let upcs: Vec<&str> = reps.iter().map(|r| r["upc"].as_str().unwrap()).collect();
                    calls
                        .lock()
                        .unwrap()
                        .push(format!("Product {}", upcs.join(",")));
                    tokio::task::yield_now().await;
                    Ok(upcs
                        .iter()
                        .map(|upc| match *upc {
                            "404" => Ok(Value::Null),
                            "500" => Err(FieldError::new(format!("product {upc} failed"))),
                            _ => Ok(json!({"name": format!("product {upc}")})),
                        })
                        .collect())
                })
            }),
        )
        .entity_batch_resolver(
            "User",
            Resolver::sync_list(move |_, reps, _| {
                let ids: Vec<&str> = reps
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_str().unwrap())
                    .collect();
                user_calls
                    .lock()
                    .unwrap()
                    .push(format!("User {}", ids.join(",")));
                if ids.contains(&"down") {
                    return Err(FieldError::new("the user store is down"));
                }
                if ids.contains(&"short") {
                    return Ok(vec![Ok(json!({}))]);
                }
                Ok(ids
                    .iter()
                    .map(|id| Ok(json!({"name": format!("user {id}")})))
                    .collect())
            }),
        )
        .entity_resolver(
            "Review",
            Resolver::sync(move |_, rep, _| {
                calls
                    .lock()
                    .unwrap()
                    .push(format!("Review {}", rep["id"].as_str().unwrap()));
                Ok(json!({"body": "ok"}))
            }),
        )
        .finish()
        .unwrap()
}

const BATCHED_ENTITIES: &str = "query($r: [_Any!]!) { _entities(representations: $r) { __typename ... on Product { upc name } ... on User { id name } ... on Review { id body } } }";

#[tokio::test]
async fn batch_resolvers_are_called_once_per_type_and_keep_the_order() {
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let schema = batched(calls.clone());
    let out = run(
        &schema,
        BATCHED_ENTITIES,
        json!({"r": [
            {"__typename": "Product", "upc": "1"},
            {"__typename": "User", "id": "u1"},
            {"__typename": "Review", "id": "r1"},
            {"__typename": "Product", "upc": "404"},
            {"__typename": "Product", "nope": "no key"},
            {"__typename": "Product", "upc": "500"},
            {"__typename": "User", "id": "u2"},
            {"__typename": "Review", "id": "r2"},
            {"__typename": "Product", "upc": "2"},
        ]}),
    )
    .await;
    assert_eq!(
        out["data"]["_entities"],
        json!([
            {"__typename": "Product", "upc": "1", "name": "product 1"},
            {"__typename": "User", "id": "u1", "name": "user u1"},
            {"__typename": "Review", "id": "r1", "body": "ok"},
            null,
            null,
            null,
            {"__typename": "User", "id": "u2", "name": "user u2"},
            {"__typename": "Review", "id": "r2", "body": "ok"},
            {"__typename": "Product", "upc": "2", "name": "product 2"},
        ])
    );
    let errors = out["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0]["path"], json!(["_entities", 4]));
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("none of its keys"),
        "{errors:#?}"
    );
    assert_eq!(errors[1]["path"], json!(["_entities", 5]));
    assert_eq!(errors[1]["message"], "product 500 failed");
    // One call per batched type with its representations in request order (the one
    // without a key is left out), one call per review.
    let mut calls = calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(
        calls,
        [
            "Product 1,404,500,2",
            "Review r1",
            "Review r2",
            "User u1,u2"
        ]
    );
}

#[tokio::test]
async fn a_failing_batch_fails_each_of_its_representations() {
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let schema = batched(calls);
    for (id, message) in [
        ("down", "the user store is down"),
        (
            "short",
            "The batch reference resolver of \"User\" returned 1 results for 2 representations.",
        ),
    ] {
        let out = run(
            &schema,
            BATCHED_ENTITIES,
            json!({"r": [
                {"__typename": "User", "id": "u1"},
                {"__typename": "Product", "upc": "1"},
                {"__typename": "User", "id": id},
            ]}),
        )
        .await;
        assert_eq!(
            out["data"]["_entities"],
            json!([null, {"__typename": "Product", "upc": "1", "name": "product 1"}, null])
        );
        let errors = out["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert_eq!(errors[0]["path"], json!(["_entities", 0]));
        assert_eq!(errors[1]["path"], json!(["_entities", 2]));
        assert_eq!(errors[0]["message"], message);
        assert_eq!(errors[1]["message"], message);
    }
}

#[test]
fn a_batch_resolver_must_return_a_list() {
    let err = Schema::build(BATCHED)
        .entity_batch_resolver("Product", Resolver::sync(|_, _, _| Ok(json!([]))))
        .finish()
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "The batch reference resolver of \"Product\" must return one item per representation"
        ),
        "{err}"
    );
}
