#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The full introspection query graphql-js's `getIntrospectionQuery` builds (with every
//! option on: descriptions, specifiedByURL, isRepeatable, schema description, deprecated
//! input values, isOneOf) answers with the shape graphql-js produces.

use graphql_core::{Context, Request, Schema};
use serde_json::{Value, json};

const INTROSPECTION_QUERY: &str = r#"
query IntrospectionQuery {
  __schema {
    description
    queryType { name kind }
    mutationType { name kind }
    subscriptionType { name kind }
    types { ...FullType }
    directives {
      name
      description
      isRepeatable
      locations
      args(includeDeprecated: true) { ...InputValue }
    }
  }
}

fragment FullType on __Type {
  kind
  name
  description
  specifiedByURL
  isOneOf
  fields(includeDeprecated: true) {
    name
    description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated
    deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) {
    name
    description
    isDeprecated
    deprecationReason
  }
  possibleTypes { ...TypeRef }
}

fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
  isDeprecated
  deprecationReason
}

fragment TypeRef on __Type {
  kind
  name
  ofType {
    kind
    name
    ofType {
      kind
      name
      ofType {
        kind
        name
        ofType {
          kind
          name
          ofType {
            kind
            name
            ofType {
              kind
              name
              ofType {
                kind
                name
                ofType {
                  kind
                  name
                  ofType {
                    kind
                    name
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}
"#;

const SDL: &str = r#"
"A date." scalar Date @specifiedBy(url: "https://example.com/date")
interface Node { id: ID! }
type Query implements Node {
  id: ID!
  "Find things."
  search(term: String = "x", old: Int @deprecated(reason: "gone")): [Thing!]!
  kind: Kind
}
union Thing = Query
enum Kind { A B @deprecated }
input By @oneOf { id: ID name: String }
type Mutation { set(by: By!): Date }
directive @tag(name: String!) repeatable on FIELD_DEFINITION
"#;

#[tokio::test]
async fn full_introspection_query_has_graphql_js_shape() {
    let schema = Schema::build(SDL).finish().unwrap();
    // The query passes validation (it is run through `execute`, which validates).
    let response = schema
        .execute(&Request::new(INTROSPECTION_QUERY), &Context::default())
        .await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let v = response.to_value();
    let s = &v["data"]["__schema"];
    assert_eq!(s["queryType"], json!({"name": "Query", "kind": "OBJECT"}));
    assert_eq!(
        s["mutationType"],
        json!({"name": "Mutation", "kind": "OBJECT"})
    );
    assert_eq!(s["subscriptionType"], Value::Null);
    assert_eq!(s["description"], Value::Null);
    let ty = |name: &str| {
        s["types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };

    let query = ty("Query");
    // Every member graphql-js returns for a type, no more, no less.
    let keys: Vec<_> = query.as_object().unwrap().keys().cloned().collect();
    let mut expected = [
        "kind",
        "name",
        "description",
        "specifiedByURL",
        "isOneOf",
        "fields",
        "inputFields",
        "interfaces",
        "enumValues",
        "possibleTypes",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut sorted = keys.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    assert_eq!(query["inputFields"], Value::Null);
    assert_eq!(query["enumValues"], Value::Null);
    assert_eq!(query["possibleTypes"], Value::Null);
    assert_eq!(query["isOneOf"], Value::Null);
    assert_eq!(
        query["interfaces"],
        json!([{"kind": "INTERFACE", "name": "Node", "ofType": null}])
    );
    let search = query["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "search")
        .unwrap();
    assert_eq!(search["description"], "Find things.");
    assert_eq!(
        search["type"],
        json!({"kind": "NON_NULL", "name": null, "ofType": {"kind": "LIST", "name": null, "ofType": {"kind": "NON_NULL", "name": null, "ofType": {"kind": "UNION", "name": "Thing", "ofType": null}}}})
    );
    assert_eq!(
        search["args"],
        json!([
            {"name": "term", "description": null, "type": {"kind": "SCALAR", "name": "String", "ofType": null}, "defaultValue": "\"x\"", "isDeprecated": false, "deprecationReason": null},
            {"name": "old", "description": null, "type": {"kind": "SCALAR", "name": "Int", "ofType": null}, "defaultValue": null, "isDeprecated": true, "deprecationReason": "gone"}
        ])
    );
    assert_eq!(ty("Date")["specifiedByURL"], "https://example.com/date");
    assert_eq!(ty("Date")["description"], "A date.");
    assert_eq!(ty("Date")["fields"], Value::Null);
    assert_eq!(ty("By")["isOneOf"], true);
    assert_eq!(ty("By")["inputFields"].as_array().unwrap().len(), 2);
    assert_eq!(
        ty("Kind")["enumValues"][1],
        json!({"name": "B", "description": null, "isDeprecated": true, "deprecationReason": "No longer supported"})
    );
    assert_eq!(
        ty("Node")["possibleTypes"],
        json!([{"kind": "OBJECT", "name": "Query", "ofType": null}])
    );
    assert_eq!(
        ty("Thing")["possibleTypes"],
        json!([{"kind": "OBJECT", "name": "Query", "ofType": null}])
    );
    assert_eq!(ty("__TypeKind")["kind"], "ENUM");
    let tag = s["directives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "tag")
        .unwrap();
    assert_eq!(tag["isRepeatable"], true);
    assert_eq!(tag["locations"], json!(["FIELD_DEFINITION"]));
    let deprecated = s["directives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "deprecated")
        .unwrap();
    assert_eq!(
        deprecated["args"][0]["defaultValue"],
        "\"No longer supported\""
    );
    assert_eq!(
        deprecated["locations"],
        json!([
            "FIELD_DEFINITION",
            "ARGUMENT_DEFINITION",
            "INPUT_FIELD_DEFINITION",
            "ENUM_VALUE"
        ])
    );
}

#[tokio::test]
async fn introspection_result_is_stable_between_requests() {
    let schema = Schema::build(SDL).finish().unwrap();
    let a = schema
        .execute(&Request::new(INTROSPECTION_QUERY), &Context::default())
        .await
        .to_json();
    let b = schema
        .execute(&Request::new(INTROSPECTION_QUERY), &Context::default())
        .await
        .to_json();
    assert_eq!(a, b);
    assert!(a.len() > 10_000);
}
