#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Schema-first building: SDL validation (spec section 3), registrations, printing.

use graphql_core::{
    Context, Error, Resolver, ScalarCoercion, Schema, TypeKind, TypeRef, TypeResolver,
};
use serde_json::json;

const FULL: &str = r#"
"""
A point in time, as RFC 3339 text.
"""
scalar DateTime @specifiedBy(url: "https://www.rfc-editor.org/rfc/rfc3339")

"Something with an id."
interface Node {
  id: ID!
}

interface Named implements Node {
  id: ID!
  name(upper: Boolean = false): String
}

type User implements Named & Node {
  id: ID!
  name(upper: Boolean = false, suffix: String): String!
  "When they joined."
  joined: DateTime
  legacy: Int @deprecated
  old: Int @deprecated(reason: "use `joined`")
  friends(first: Int = 10): [User!]!
}

type Bot implements Node {
  id: ID!
}

union Actor = User | Bot

enum Role {
  ADMIN
  "Can read."
  READER
  GUEST @deprecated(reason: "gone")
}

input Filter {
  role: Role = READER
  nameContains: String
  limits: [Int!] = [1, 2]
}

input UserBy @oneOf {
  id: ID
  name: String
}

directive @cost(weight: Int! = 1) repeatable on FIELD_DEFINITION | OBJECT

type Query {
  node(id: ID!): Node
  user(by: UserBy!): User @cost(weight: 2)
  users(filter: Filter = {role: ADMIN}): [User!]!
  actors: [Actor!]!
}

type Mutation {
  setRole(id: ID!, role: Role!): User
}

extend type Query {
  now: DateTime
}
"#;

fn errors_of(sdl: &str) -> Vec<String> {
    match Schema::build(sdl).finish() {
        Err(Error::InvalidSchema(errors)) => errors.into_iter().map(|e| e.message).collect(),
        Err(other) => panic!("expected InvalidSchema, got {other}"),
        Ok(_) => panic!("schema was accepted:\n{sdl}"),
    }
}

fn assert_error(sdl: &str, needle: &str) {
    let errors = errors_of(sdl);
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "expected an error containing {needle:?}, got {errors:#?}"
    );
}

#[test]
fn full_schema_builds_into_tables() {
    let schema = Schema::build(FULL).finish().unwrap();
    let user = schema.type_by_name("User").unwrap();
    let fields = user.fields().unwrap();
    assert_eq!(
        fields.fields().iter().map(|f| f.name()).collect::<Vec<_>>(),
        ["id", "name", "joined", "legacy", "old", "friends"]
    );
    assert_eq!(
        fields.get("legacy").unwrap().deprecation(),
        Some("No longer supported")
    );
    assert_eq!(
        fields.get("old").unwrap().deprecation(),
        Some("use `joined`")
    );
    assert_eq!(
        fields.get("joined").unwrap().description(),
        Some("When they joined.")
    );
    let friends = fields.get("friends").unwrap();
    assert_eq!(
        friends.arg("first").unwrap().default_value(),
        Some(&json!(10))
    );
    match friends.ty() {
        TypeRef::NonNull(inner) => assert!(matches!(**inner, TypeRef::List(_))),
        other => panic!("unexpected {other:?}"),
    }
    // Extensions add fields.
    let query = schema.type_at(schema.query_type()).unwrap();
    assert!(query.fields().unwrap().get("now").is_some());
    assert!(schema.mutation_type().is_some());
    assert!(schema.subscription_type().is_none());

    let date = schema.type_by_name("DateTime").unwrap();
    match date.kind() {
        TypeKind::Scalar(s) => assert_eq!(
            s.specified_by(),
            Some("https://www.rfc-editor.org/rfc/rfc3339")
        ),
        other => panic!("unexpected {other:?}"),
    }
    // Interface possible types include only objects that implement it.
    let node = schema.type_id("Node").unwrap();
    let named = schema.type_id("Named").unwrap();
    let user_id = schema.type_id("User").unwrap();
    let bot = schema.type_id("Bot").unwrap();
    assert!(schema.is_possible_type(node, user_id));
    assert!(schema.is_possible_type(node, bot));
    assert!(schema.is_possible_type(named, user_id));
    assert!(!schema.is_possible_type(named, bot));
    assert!(schema.is_possible_type(schema.type_id("Actor").unwrap(), bot));

    // Input defaults are coerced, including nested input-object defaults.
    let users = query.fields().unwrap().get("users").unwrap();
    assert_eq!(
        users.arg("filter").unwrap().default_value(),
        Some(&json!({"role": "ADMIN", "limits": [1, 2]}))
    );
    match schema.type_by_name("UserBy").unwrap().kind() {
        TypeKind::InputObject { one_of, .. } => assert!(*one_of),
        other => panic!("unexpected {other:?}"),
    }
    let cost = schema.directive("cost").unwrap();
    assert!(cost.is_repeatable());
    assert_eq!(cost.args()[0].default_value(), Some(&json!(1)));
}

#[test]
fn printed_sdl_round_trips() {
    let schema = Schema::build(FULL).finish().unwrap();
    let printed = schema.to_sdl();
    for needle in [
        "scalar DateTime @specifiedBy(url: \"https://www.rfc-editor.org/rfc/rfc3339\")",
        "interface Named implements Node {",
        "type User implements Named & Node {",
        "  legacy: Int @deprecated\n",
        "  old: Int @deprecated(reason: \"use `joined`\")",
        "  \"\"\"When they joined.\"\"\"\n  joined: DateTime",
        "union Actor = User | Bot",
        "  GUEST @deprecated(reason: \"gone\")",
        "input UserBy @oneOf {",
        "  limits: [Int!] = [1, 2]",
        "directive @cost(weight: Int! = 1) repeatable on FIELD_DEFINITION | OBJECT",
        "  users(filter: Filter = {role: ADMIN}): [User!]!",
        "  now: DateTime\n}",
        "\"\"\"Something with an id.\"\"\"\ninterface Node",
    ] {
        assert!(
            printed.contains(needle),
            "missing {needle:?} in:\n{printed}"
        );
    }
    assert!(
        !printed.contains("scalar String"),
        "built-ins are not printed"
    );
    assert!(
        !printed.contains("schema {"),
        "conventional root names need no schema block"
    );
    // Printing the printed schema gives the same text.
    let again = Schema::build(printed.clone()).finish().unwrap().to_sdl();
    assert_eq!(printed, again);
}

#[test]
fn schema_definition_printed_for_custom_root_names() {
    let sdl =
        "schema { query: Root mutation: Change }\ntype Root { a: Int }\ntype Change { b: Int }";
    let schema = Schema::build(sdl).finish().unwrap();
    let printed = schema.to_sdl();
    assert!(
        printed.starts_with("schema {\n  query: Root\n  mutation: Change\n}\n"),
        "{printed}"
    );
    assert_eq!(schema.type_at(schema.query_type()).unwrap().name(), "Root");
}

#[test]
fn multi_line_descriptions_print_as_block_strings() {
    let sdl = "type Query {\n  \"\"\"\n  first line\n  second \\\"\"\" line\n  \"\"\"\n  a: Int\n}";
    let schema = Schema::build(sdl).finish().unwrap();
    let printed = schema.to_sdl();
    assert!(
        printed.contains("  \"\"\"\n  first line\n  second \\\"\"\" line\n  \"\"\"\n  a: Int"),
        "{printed}"
    );
    let again = Schema::build(printed).finish().unwrap();
    assert_eq!(
        again
            .type_by_name("Query")
            .unwrap()
            .fields()
            .unwrap()
            .get("a")
            .unwrap()
            .description(),
        Some("first line\nsecond \"\"\" line")
    );
}

#[test]
fn syntax_errors_are_reported_as_such() {
    assert!(matches!(
        Schema::build("type Query {").finish(),
        Err(Error::SdlSyntax(_))
    ));
}

// --- Names and uniqueness (spec 3.1, 3.4) ---

#[test]
fn duplicate_type_names_are_refused() {
    assert_error(
        "type Query { a: Int }\ntype A { a: Int }\nenum A { X }",
        "There can be only one type named \"A\".",
    );
}

#[test]
fn redeclaring_a_builtin_scalar_is_accepted() {
    Schema::build("scalar String\ntype Query { a: String }")
        .finish()
        .unwrap();
}

#[test]
fn reserved_names_are_refused() {
    assert_error("type Query { __a: Int }", "must not begin with \"__\"");
    assert_error("type Query { a: Int }\ntype __T { a: Int }", "\"__T\"");
    assert_error("type Query { a(__x: Int): Int }", "\"__x\"");
    assert_error("type Query { a: Int }\nenum E { __X }", "\"__X\"");
}

#[test]
fn duplicate_fields_arguments_values_and_input_fields_are_refused() {
    assert_error(
        "type Query { a: Int a: String }",
        "Field \"Query.a\" can only be defined once.",
    );
    assert_error(
        "type Query { a(x: Int, x: Int): Int }",
        "there can be only one argument named \"x\"",
    );
    assert_error(
        "type Query { a: Int }\nenum E { X X }",
        "Enum value \"E.X\" can only be defined once.",
    );
    assert_error(
        "type Query { a: Int }\ninput I { x: Int x: Int }",
        "there can be only one input field named \"x\"",
    );
    assert_error(
        "type Query { a: Int }\nextend type Query { a: Int }",
        "Field \"Query.a\" can only be defined once.",
    );
}

#[test]
fn unknown_types_are_refused() {
    assert_error("type Query { a: Missing }", "Unknown type \"Missing\".");
    assert_error(
        "type Query { a: Int }\nunion U = Nope",
        "Unknown type \"Nope\".",
    );
}

// --- Root operation types (spec 3.3.1) ---

#[test]
fn query_root_is_required() {
    assert_error("type Foo { a: Int }", "Query root type must be provided.");
    assert_error(
        "schema { mutation: M }\ntype M { a: Int }",
        "must name a query root operation type",
    );
}

#[test]
fn root_types_must_be_distinct_objects() {
    assert_error(
        "schema { query: I }\ninterface I { a: Int }",
        "The query root type must be an Object type",
    );
    assert_error(
        "schema { query: Q mutation: Q }\ntype Q { a: Int }",
        "must be different types",
    );
    assert_error(
        "schema { query: Q }\nschema { query: Q }\ntype Q { a: Int }",
        "only one schema definition",
    );
}

// --- Objects and interfaces (spec 3.6, 3.7) ---

#[test]
fn objects_and_interfaces_need_fields() {
    assert_error(
        "type Query",
        "Object type \"Query\" must define one or more fields.",
    );
    assert_error(
        "type Query { a: Int }\ninterface I",
        "Interface type \"I\" must define one or more fields.",
    );
}

#[test]
fn field_types_must_be_output_types_and_arguments_input_types() {
    assert_error(
        "type Query { a: In }\ninput In { x: Int }",
        "The type of \"Query.a\" must be an output type",
    );
    assert_error(
        "type Query { a(o: Query): Int }",
        "The type of \"Query.a(o:)\" must be an input type",
    );
}

#[test]
fn required_arguments_cannot_be_deprecated() {
    assert_error(
        "type Query { a(x: Int! @deprecated): Int }",
        "Required argument \"Query.a(x:)\" cannot be deprecated.",
    );
    // With a default it is not required.
    Schema::build("type Query { a(x: Int! = 1 @deprecated): Int }")
        .finish()
        .unwrap();
}

#[test]
fn only_interfaces_can_be_implemented() {
    assert_error(
        "type Query implements Other { a: Int }\ntype Other { a: Int }",
        "must only implement Interface types",
    );
    assert_error(
        "type Query { a: Int }\ninterface I implements I { a: Int }",
        "cannot implement itself",
    );
    assert_error(
        "type Query implements I & I { a: Int }\ninterface I { a: Int }",
        "can only implement \"I\" once",
    );
}

#[test]
fn interface_fields_must_be_provided() {
    assert_error(
        "type Query implements I { a: Int }\ninterface I { b: Int }",
        "Interface field \"I.b\" expected but \"Query\" does not provide it.",
    );
}

#[test]
fn implementation_field_types_are_covariant() {
    let base = "interface I { f: I }\ninterface J implements I { f: I }\n";
    // A sub-type (an object implementing the interface), a non-null: allowed.
    Schema::build(format!("{base}type Query implements I {{ f: Query! }}"))
        .finish()
        .unwrap();
    // An unrelated type: refused.
    assert_error(
        &format!("{base}type Query implements I {{ f: Int }}"),
        "Interface field \"I.f\" expects type \"I\" but \"Query.f\" is type \"Int\".",
    );
    // Nullable where the interface is non-null: refused.
    assert_error(
        "interface I { f: Int! }\ntype Query implements I { f: Int }",
        "expects type \"Int!\"",
    );
    // List variance.
    Schema::build("interface I { f: [I] }\ntype Query implements I { f: [Query!]! }")
        .finish()
        .unwrap();
    assert_error(
        "interface I { f: [Int] }\ntype Query implements I { f: Int }",
        "expects type \"[Int]\"",
    );
    // Union member.
    Schema::build("union U = Query\ninterface I { f: U }\ntype Query implements I { f: Query }")
        .finish()
        .unwrap();
}

#[test]
fn implementation_arguments_are_invariant_and_extras_optional() {
    assert_error(
        "interface I { f(x: Int): Int }\ntype Query implements I { f: Int }",
        "Interface field argument \"I.f(x:)\" expected but \"Query.f\" does not provide it.",
    );
    assert_error(
        "interface I { f(x: Int): Int }\ntype Query implements I { f(x: Int!): Int }",
        "expects type \"Int\" but \"Query.f(x:)\" is type \"Int!\"",
    );
    assert_error(
        "interface I { f: Int }\ntype Query implements I { f(y: Int!): Int }",
        "must not be required type \"Int!\"",
    );
    Schema::build(
        "interface I { f: Int }\ntype Query implements I { f(y: Int! = 3, z: Int): Int }",
    )
    .finish()
    .unwrap();
}

#[test]
fn interfaces_implementing_interfaces_must_list_transitive_ones() {
    assert_error(
        "interface A { a: Int }\ninterface B implements A { a: Int }\ntype Query implements B { a: Int }",
        "Type \"Query\" must implement \"A\" because it is implemented by \"B\".",
    );
    assert_error(
        "interface A implements B { a: Int }\ninterface B implements A { a: Int }\ntype Query { a: Int }",
        "circular reference",
    );
    Schema::build(
        "interface A { a: Int }\ninterface B implements A { a: Int }\ntype Query implements B & A { a: Int }",
    )
    .finish()
    .unwrap();
}

// --- Unions (spec 3.8) ---

#[test]
fn union_members_must_be_unique_objects() {
    assert_error(
        "type Query { a: Int }\nunion U = Query | Query",
        "can only include type \"Query\" once",
    );
    assert_error(
        "type Query { a: Int }\ninterface I { a: Int }\nunion U = I",
        "can only include Object types, it cannot include \"I\"",
    );
    assert_error(
        "type Query { a: Int }\nunion U = Query | Int",
        "cannot include \"Int\"",
    );
}

// --- Enums (spec 3.9) ---

#[test]
fn enum_values_cannot_be_true_false_or_null() {
    assert_error(
        "type Query { a: Int }\nenum E { true }",
        "Enum \"E\" cannot include value: true.",
    );
    assert_error(
        "type Query { a: Int }\nenum E { null }",
        "cannot include value: null",
    );
}

// --- Input objects (spec 3.10) ---

#[test]
fn input_fields_must_be_input_types() {
    assert_error(
        "type Query { a: Int }\ninput I { q: Query }",
        "The type of \"I.q\" must be an input type",
    );
}

#[test]
fn input_objects_cannot_reference_themselves_through_non_null_fields() {
    assert_error(
        "type Query { a: Int }\ninput A { b: B! }\ninput B { a: A! }",
        "Cannot reference Input Object \"A\" within itself through a series of non-null fields: \"b.a\".",
    );
    // A nullable link or a list breaks the chain.
    Schema::build("type Query { a: Int }\ninput A { b: B! }\ninput B { a: A }")
        .finish()
        .unwrap();
    Schema::build("type Query { a: Int }\ninput A { self: [A!]! }")
        .finish()
        .unwrap();
}

#[test]
fn required_input_fields_cannot_be_deprecated() {
    assert_error(
        "type Query { a: Int }\ninput I { x: Int! @deprecated }",
        "Required input field \"I.x\" cannot be deprecated.",
    );
}

#[test]
fn one_of_fields_must_be_nullable_without_defaults() {
    assert_error(
        "type Query { a: Int }\ninput I @oneOf { x: Int! y: Int }",
        "OneOf input field \"I.x\" must be nullable.",
    );
    assert_error(
        "type Query { a: Int }\ninput I @oneOf { x: Int = 1 y: Int }",
        "OneOf input field \"I.x\" cannot have a default value.",
    );
}

#[test]
fn default_values_must_fit_their_types() {
    assert_error(
        "type Query { a(x: Int = \"no\"): Int }",
        "Default value of Query.a(x:) is invalid",
    );
    assert_error(
        "type Query { a(x: Int = 3000000000): Int }",
        "Int cannot represent a non 32-bit signed integer value",
    );
    assert_error(
        "type Query { a(x: E = NOPE): Int }\nenum E { YES }",
        "value NOPE does not exist in enum E",
    );
    assert_error(
        "type Query { a(x: I = {}): Int }\ninput I { r: Int! }",
        "field I.r of required type Int! was not provided",
    );
    assert_error(
        "type Query { a(x: I = {y: 1}): Int }\ninput I { r: Int }",
        "field y is not defined by input object I",
    );
    assert_error(
        "type Query { a(x: O = {p: 1, q: 2}): Int }\ninput O @oneOf { p: Int q: Int }",
        "must specify exactly one field",
    );
    // graphql-parser itself refuses `$v` in an SDL default value (a syntax error).
    assert!(matches!(
        Schema::build("type Query { a(x: Int = $v): Int }").finish(),
        Err(Error::SdlSyntax(_))
    ));
}

// --- Directives (spec 3.13) ---

#[test]
fn applied_directives_are_checked() {
    assert_error(
        "type Query { a: Int @nope }",
        "Unknown directive \"@nope\".",
    );
    assert_error(
        "type Query @deprecated { a: Int }",
        "Directive \"@deprecated\" may not be used on OBJECT.",
    );
    assert_error(
        "type Query { a: Int @deprecated @deprecated }",
        "can only be used once at this location",
    );
    assert_error(
        "scalar D @specifiedBy\ntype Query { a: D }",
        "Argument \"@specifiedBy(url:)\" of type \"String!\" is required",
    );
    assert_error(
        "type Query { a: Int @deprecated(why: \"x\") }",
        "Unknown argument \"why\" on directive \"@deprecated\".",
    );
    assert_error(
        "type Query { a: Int @deprecated(reason: 1) }",
        "Argument \"@deprecated(reason:)\" has an invalid value",
    );
    // Repeatable directives may repeat.
    Schema::build(
        "directive @tag(name: String!) repeatable on FIELD_DEFINITION\ntype Query { a: Int @tag(name: \"x\") @tag(name: \"y\") }",
    )
    .finish()
    .unwrap();
}

#[test]
fn directive_definitions_are_checked() {
    assert_error(
        "directive @skip(if: Boolean!) on FIELD\ntype Query { a: Int }",
        "Directive \"@skip\" is built in and cannot be redefined.",
    );
    assert_error(
        "directive @d on FIELD\ndirective @d on FIELD\ntype Query { a: Int }",
        "There can be only one directive named \"@d\".",
    );
    assert_error(
        "directive @d(q: Query) on FIELD\ntype Query { a: Int }",
        "The type of \"@d(q:)\" must be an input type",
    );
}

// --- Extensions ---

#[test]
fn extensions_must_target_existing_types_of_the_same_kind() {
    assert_error(
        "type Query { a: Int }\nextend type Nope { b: Int }",
        "Cannot extend type \"Nope\" because it is not defined.",
    );
    assert_error(
        "type Query { a: Int }\nenum E { X }\nextend input E { y: Int }",
        "extension is of a different kind",
    );
    let schema = Schema::build(
        "type Query { a: Int }\nenum E { X }\nextend enum E { Y }\nunion U = Query\ntype B { b: Int }\nextend union U = B",
    )
    .finish()
    .unwrap();
    let printed = schema.to_sdl();
    assert!(printed.contains("enum E {\n  X\n  Y\n}"), "{printed}");
    assert!(printed.contains("union U = Query | B"), "{printed}");
}

// --- Registrations ---

#[test]
fn resolvers_attach_to_object_fields_only() {
    let schema = Schema::build("type Query { a: Int b: Int }")
        .resolver("Query", "a", Resolver::sync(|_, _, _| Ok(json!(1))))
        .finish()
        .unwrap();
    let query = schema.type_by_name("Query").unwrap().fields().unwrap();
    assert!(matches!(
        query.get("a").unwrap().resolver(),
        Resolver::Sync(_)
    ));
    assert!(query.get("b").unwrap().resolver().is_default());

    let errors = match Schema::build("type Query { a: Int }\ninterface I { a: Int }")
        .resolver("Query", "zz", Resolver::Default)
        .resolver("Nope", "a", Resolver::Default)
        .resolver("I", "a", Resolver::Default)
        .scalar("Int", ScalarCoercion::any())
        .type_resolver("Query", TypeResolver::default())
        .finish()
    {
        Err(Error::InvalidSchema(errors)) => errors,
        other => panic!("unexpected {other:?}"),
    };
    let text: Vec<_> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(text.len(), 5, "{text:#?}");
    assert!(text[0].contains("has no such field"));
    assert!(text[1].contains("unknown type \"Nope\""));
    assert!(text[2].contains("is not an object type"));
    assert!(text[3].contains("not a custom scalar"));
    assert!(text[4].contains("not an interface or union"));
}

#[test]
fn custom_scalars_parse_their_default_values() {
    let even = ScalarCoercion::any()
        .parse(|v| match v.as_i64() {
            Some(n) if n % 2 == 0 => Ok(json!(n)),
            _ => Err(format!("{v} is not an even number")),
        })
        .serialize(|v| Ok(json!(v.to_string())));
    let ok = Schema::build("scalar Even\ntype Query { a(x: Even = 4): Int }")
        .scalar("Even", even.clone())
        .finish()
        .unwrap();
    let scalar = match ok.type_by_name("Even").unwrap().kind() {
        TypeKind::Scalar(s) => s.clone(),
        other => panic!("unexpected {other:?}"),
    };
    assert!(scalar.builtin().is_none());
    assert_eq!(
        ok.type_by_name("Query")
            .unwrap()
            .fields()
            .unwrap()
            .get("a")
            .unwrap()
            .arg("x")
            .unwrap()
            .default_value(),
        Some(&json!(4))
    );
    // Custom parse runs on SDL defaults: the registration is attached before coercion.
    let err = Schema::build("scalar Even\ntype Query { a(x: Even = 3): Int }")
        .scalar("Even", even)
        .finish();
    assert!(
        matches!(&err, Err(Error::InvalidSchema(e)) if e.iter().any(|e| e.message.contains("3 is not an even number"))),
        "{err:?}"
    );
}

#[test]
fn type_resolvers_default_to_typename() {
    let r = TypeResolver::default();
    assert_eq!(
        r.resolve(&Context::default(), &json!({"__typename": "User"})),
        Some("User".to_owned())
    );
    assert_eq!(r.resolve(&Context::default(), &json!({})), None);
    let custom = TypeResolver::new(|_, v| {
        Some(
            if v.get("bot").is_some() {
                "Bot"
            } else {
                "User"
            }
            .to_owned(),
        )
    });
    assert_eq!(
        custom.resolve(&Context::default(), &json!({"bot": 1})),
        Some("Bot".to_owned())
    );
}

#[test]
fn errors_carry_sdl_locations() {
    match Schema::build("type Query { a: Int }\n\nunion U = Query | Query").finish() {
        Err(Error::InvalidSchema(errors)) => {
            assert_eq!(errors[0].locations[0].line, 3);
            assert!(errors[0].to_string().contains("(at 3:1)"), "{}", errors[0]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Schema>();
    check::<Resolver>();
    check::<Error>();
    check::<Context>();
}
