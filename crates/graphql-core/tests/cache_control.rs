#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Cache hints (`@cacheControl`), rule by rule, as Apollo Server defines them: a table of
//! queries and the policy each must get, then the code-first hints, the default `maxAge`,
//! and the `Cache-Control` header GraphQL over HTTP writes.

use graphql_core::{
    CACHE_CONTROL_SDL, CacheHint, CachePolicy, CacheScope, Context, FieldResult, Request, Resolver,
    ResponseFormat, Schema, SchemaBuilder, write_http_response,
};
use serde_json::{Value, json};

const SDL: &str = r#"
type Query {
  a: Int
  hinted: Int @cacheControl(maxAge: 100)
  obj: Obj
  objField: Obj @cacheControl(maxAge: 20)
  nullObj: Obj @cacheControl(maxAge: 100)
  plain: Plain
  inheritAtRoot: Plain @cacheControl(inheritMaxAge: true)
  private: Priv
  list: [Obj]
  asyncObj: Obj @cacheControl(maxAge: 45)
  union: U
  unionHinted: U @cacheControl(maxAge: 15)
  fails: Int @cacheControl(maxAge: 100)
  both: Obj @cacheControl(maxAge: 5, inheritMaxAge: true)
}
type Mutation { m: Obj @cacheControl(maxAge: 100) }
type Obj @cacheControl(maxAge: 50) {
  s: String
  hinted: String @cacheControl(maxAge: 10)
  plain: Plain
  inh: Plain @cacheControl(inheritMaxAge: true)
  inhScope: Plain @cacheControl(inheritMaxAge: true, scope: PRIVATE)
  child: Obj
  scopeOnly: Obj @cacheControl(scope: PRIVATE)
  publicOverride: Priv @cacheControl(scope: PUBLIC)
  inheritsHinted: Priv @cacheControl(inheritMaxAge: true)
}
type Plain { x: Int inhType: InhType }
type InhType @cacheControl(inheritMaxAge: true) { y: Int }
type Priv @cacheControl(maxAge: 40, scope: PRIVATE) { z: Int }
union U @cacheControl(maxAge: 25) = Obj | Priv
"#;

fn sdl() -> String {
    format!("{SDL}\n{CACHE_CONTROL_SDL}")
}

fn obj() -> Value {
    json!({
        "__typename": "Obj",
        "s": "s", "hinted": "h",
        "plain": {"x": 1, "inhType": {"y": 2}},
        "inh": {"x": 1, "inhType": {"y": 2}},
        "inhScope": {"x": 1},
        "child": {"s": "c"},
        "scopeOnly": {"s": "o"},
        "publicOverride": {"z": 1},
        "inheritsHinted": {"z": 1}
    })
}

fn root() -> Value {
    json!({
        "a": 1, "hinted": 2, "obj": obj(), "objField": obj(), "plain": {"x": 1},
        "inheritAtRoot": {"x": 1}, "private": {"z": 3}, "list": [obj(), obj()],
        "union": obj(), "unionHinted": {"__typename": "Priv", "z": 1}, "both": obj(),
        "m": obj()
    })
}

fn builder(sdl: String) -> SchemaBuilder {
    Schema::build(sdl)
        .resolver(
            "Query",
            "asyncObj",
            Resolver::asynchronous(|_| Box::pin(async { FieldResult::Ok(obj()) })),
        )
        .resolver(
            "Query",
            "fails",
            Resolver::sync(|_, _, _| Err(graphql_core::FieldError::new("no"))),
        )
}

fn policy(schema: &Schema, query: &str) -> Option<CachePolicy> {
    let request = Request::new(query).root_value(root());
    let ctx = Context::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(schema.execute(&request, &ctx)).cache_policy
}

fn public(max_age: u32) -> CachePolicy {
    CachePolicy {
        max_age,
        scope: CacheScope::Public,
    }
}

fn private(max_age: u32) -> CachePolicy {
    CachePolicy {
        max_age,
        scope: CacheScope::Private,
    }
}

#[test]
fn apollo_rules_table() {
    let schema = builder(sdl()).finish().unwrap();
    let table: &[(&str, &str, CachePolicy)] = &[
        ("root scalar field without a hint: 0", "{ a }", public(0)),
        ("root field with a hint", "{ hinted }", public(100)),
        ("meta field at the root: 0", "{ __typename }", public(0)),
        ("scalar fields inherit", "{ hinted obj { s } }", public(50)),
        (
            "the minimum over all fields",
            "{ obj { hinted } }",
            public(10),
        ),
        (
            "a field hint overrides the type hint",
            "{ objField { s } }",
            public(20),
        ),
        (
            "composite field without any hint: 0",
            "{ plain { x } }",
            public(0),
        ),
        (
            "nested composite field without a hint: 0",
            "{ obj { plain { x } } }",
            public(0),
        ),
        (
            "inheritMaxAge on a field",
            "{ obj { inh { x } } }",
            public(50),
        ),
        (
            "inheritMaxAge on the type",
            "{ obj { inh { inhType { y } } } }",
            public(50),
        ),
        (
            "inheritMaxAge keeps the field's scope",
            "{ obj { inhScope { x } } }",
            private(50),
        ),
        (
            "inheritMaxAge does not apply at the root",
            "{ inheritAtRoot { x } }",
            public(0),
        ),
        (
            "inheritMaxAge with maxAge: maxAge ignored, the type's applies",
            "{ both { s } }",
            public(50),
        ),
        (
            "a field without a hint gets its type's",
            "{ obj { child { s } } }",
            public(50),
        ),
        (
            "a scope-only field hint keeps the type's maxAge",
            "{ obj { scopeOnly { s } } }",
            private(50),
        ),
        ("a private type", "{ private { z } }", private(40)),
        (
            "a field scope overrides the type's",
            "{ obj { publicOverride { z } } }",
            public(40),
        ),
        (
            "inheritMaxAge under a type with maxAge: the type's",
            "{ obj { inheritsHinted { z } } }",
            private(40),
        ),
        (
            "list items: the item type's hint",
            "{ list { s } }",
            public(50),
        ),
        ("async resolvers", "{ asyncObj { s } hinted }", public(45)),
        (
            "a union's hint",
            "{ union { ... on Obj { s } } }",
            public(25),
        ),
        (
            "a union field's hint, runtime type's fields",
            "{ unionHinted { ... on Priv { z } ... on Obj { plain { x } } } }",
            public(15),
        ),
        (
            "fields never resolved do not count",
            "{ nullObj { plain { x } } }",
            public(100),
        ),
        (
            "errors: not cacheable",
            "{ hinted fails }",
            CachePolicy::NO_STORE,
        ),
        (
            "mutations: not cacheable",
            "mutation { m { s } }",
            CachePolicy::NO_STORE,
        ),
        (
            "request errors: not cacheable",
            "{ nope }",
            CachePolicy::NO_STORE,
        ),
        ("syntax errors: not cacheable", "{", CachePolicy::NO_STORE),
    ];
    let mut failures = Vec::new();
    for (rule, query, expected) in table {
        let got = policy(&schema, query);
        if got != Some(*expected) {
            failures.push(format!(
                "{rule}: {query} gave {got:?}, expected {expected:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The same again, from the document cache.
    assert_eq!(policy(&schema, "{ obj { hinted } }"), Some(public(10)));
}

#[test]
fn without_hints_responses_have_no_policy() {
    let schema = Schema::build("type Query { a: Int }").finish().unwrap();
    assert_eq!(policy(&schema, "{ a }"), None);
    let response = write_http_response(
        &graphql_core::Response {
            data: Some("{}".into()),
            errors: vec![],
            cache_policy: None,
        },
        ResponseFormat::Json,
    );
    assert!(response.headers().get("cache-control").is_none());
}

#[test]
fn default_max_age_and_the_added_definitions() {
    // No definition in the SDL: `cache_control` adds it, so the hints are accepted.
    let schema = Schema::build(
        "type Query { a: Int plain: Plain cached: Int @cacheControl(maxAge: 9, scope: PRIVATE) } type Plain { x: Int }",
    )
    .cache_control(5)
    .finish()
    .unwrap();
    assert_eq!(policy(&schema, "{ a }"), Some(public(5)));
    assert_eq!(policy(&schema, "{ plain { x } }"), Some(public(5)));
    assert_eq!(policy(&schema, "{ cached a }"), Some(private(5)));
    let sdl = schema.to_sdl();
    assert!(sdl.contains("directive @cacheControl(maxAge: Int, scope: CacheControlScope, inheritMaxAge: Boolean) on FIELD_DEFINITION | OBJECT | INTERFACE | UNION"), "{sdl}");
    assert!(sdl.contains("enum CacheControlScope"), "{sdl}");
    // Without `cache_control`, an SDL using the directive it does not define is invalid.
    assert!(
        Schema::build("type Query { a: Int @cacheControl(maxAge: 1) }")
            .finish()
            .is_err()
    );
}

#[test]
fn hints_from_code() {
    let schema = builder(sdl())
        .cache_hint("Query", "a", CacheHint::max_age(7))
        .type_cache_hint("Plain", CacheHint::max_age(8).scope(CacheScope::Private))
        // Replaces the SDL's `@cacheControl(maxAge: 10)`.
        .cache_hint("Obj", "hinted", CacheHint::inherit())
        .finish()
        .unwrap();
    assert_eq!(policy(&schema, "{ a }"), Some(public(7)));
    assert_eq!(policy(&schema, "{ plain { x } }"), Some(private(8)));
    assert_eq!(policy(&schema, "{ obj { hinted } }"), Some(public(50)));

    // Code alone turns cache hints on, without the directive in the SDL.
    let schema = Schema::build("type Query { a: Int }")
        .cache_hint("Query", "a", CacheHint::max_age(3))
        .finish()
        .unwrap();
    assert_eq!(policy(&schema, "{ a }"), Some(public(3)));

    let err = Schema::build("type Query { a: Int }")
        .cache_hint("Query", "b", CacheHint::max_age(3))
        .finish()
        .unwrap_err();
    assert!(err.to_string().contains("Query.b"), "{err}");
    let err = Schema::build("type Query { a: Int }")
        .type_cache_hint("Int", CacheHint::max_age(3))
        .finish()
        .unwrap_err();
    assert!(err.to_string().contains("\"Int\""), "{err}");
}

#[test]
fn the_policy_becomes_cache_control() {
    let schema = builder(sdl()).finish().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ctx = Context::default();
    let header = |query: &str| {
        let request = Request::new(query).root_value(root());
        let response = rt.block_on(schema.execute(&request, &ctx));
        let http = write_http_response(&response, ResponseFormat::GraphQLResponseJson);
        http.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        header("{ hinted obj { s } }").as_deref(),
        Some("max-age=50, public")
    );
    assert_eq!(
        header("{ private { z } }").as_deref(),
        Some("max-age=40, private")
    );
    assert_eq!(header("{ a }").as_deref(), Some("no-store"));
    assert_eq!(header("{ hinted fails }").as_deref(), Some("no-store"));
    assert_eq!(header("{ nope }").as_deref(), Some("no-store"));
}
