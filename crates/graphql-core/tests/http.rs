#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! GraphQL over HTTP, sans IO: methods, media types and status codes.

use graphql_core::{Context, ResponseFormat, Schema, read_http_request, write_http_response};
use http::{Method, StatusCode, header};
use serde_json::{Value, json};

fn schema() -> Schema {
    Schema::build("type Query { a: Int b: Int! } type Mutation { m: Int }")
        .finish()
        .unwrap()
}

fn parts(method: Method, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

async fn roundtrip(p: &http::request::Parts, body: &[u8]) -> http::Response<Vec<u8>> {
    let schema = schema();
    match read_http_request(p, body, 1024) {
        Ok((request, format)) => {
            let response = schema.execute(&request, &Context::default()).await;
            write_http_response(&response, format)
        }
        Err(rejection) => rejection.into_response(),
    }
}

fn body(r: &http::Response<Vec<u8>>) -> Value {
    serde_json::from_slice(r.body()).unwrap()
}

fn content_type(r: &http::Response<Vec<u8>>) -> &str {
    r.headers()[header::CONTENT_TYPE].to_str().unwrap()
}

const GQL: (&str, &str) = ("accept", "application/graphql-response+json");
const JSON_CT: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn get_and_post_run_queries() {
    let r = roundtrip(
        &parts(Method::GET, "/graphql?query=%7B__typename%7D", &[GQL]),
        b"",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        content_type(&r),
        "application/graphql-response+json; charset=utf-8"
    );
    assert_eq!(body(&r), json!({"data": {"__typename": "Query"}}));

    let r = roundtrip(
        &parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
        br#"{"query": "query Q($x: Boolean!) { __typename @include(if: $x) }", "operationName": "Q", "variables": {"x": true}, "extensions": {}}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(&r), json!({"data": {"__typename": "Query"}}));
}

#[tokio::test]
async fn request_errors_are_400_with_graphql_response_json_and_200_with_json() {
    let r = roundtrip(
        &parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
        br#"{"query": "{ nope }"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body(&r).get("data").is_none());
    let r = roundtrip(
        &parts(
            Method::POST,
            "/graphql",
            &[("accept", "application/json"), JSON_CT],
        ),
        br#"{"query": "{ nope }"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(content_type(&r), "application/json; charset=utf-8");
    // No Accept header: application/json.
    let r = roundtrip(
        &parts(Method::POST, "/graphql", &[JSON_CT]),
        br#"{"query": "{ nope }"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(content_type(&r), "application/json; charset=utf-8");
}

#[tokio::test]
async fn field_errors_with_data_are_200() {
    // b is Int! and resolves to null: data is null, but the request executed.
    let r = roundtrip(
        &parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
        br#"{"query": "{ b }"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(&r)["data"], Value::Null);
}

#[tokio::test]
async fn mutations_are_refused_over_get() {
    let r = roundtrip(
        &parts(Method::GET, "/graphql?query=mutation%7Bm%7D", &[GQL]),
        b"",
    )
    .await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()[header::ALLOW], "POST");
    // The same mutation over POST runs.
    let r = roundtrip(
        &parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
        br#"{"query": "mutation { m }"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // A GET naming the query operation of a document that also has a mutation is fine.
    let r = roundtrip(
        &parts(
            Method::GET,
            "/graphql?query=query%20Q%7Ba%7D%20mutation%20M%7Bm%7D&operationName=Q",
            &[GQL],
        ),
        b"",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn subscriptions_are_a_request_error_that_points_to_the_websocket() {
    let subscription = br#"{"query": "subscription { a }"}"#;
    // application/graphql-response+json: 400 (a request error, spec 6.4), no data.
    let r = roundtrip(
        &parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
        subscription,
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        content_type(&r),
        "application/graphql-response+json; charset=utf-8"
    );
    let answer = body(&r);
    assert!(answer.get("data").is_none(), "{answer}");
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert_eq!(message, graphql_core::SUBSCRIPTION_OVER_HTTP);
    assert!(message.contains("WebSocket") && message.contains("graphql-transport-ws"));
    // application/json: 200 with the same error.
    let r = roundtrip(&parts(Method::POST, "/graphql", &[JSON_CT]), subscription).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        body(&r)["errors"][0]["message"],
        graphql_core::SUBSCRIPTION_OVER_HTTP
    );
    // Over GET too; the operation named decides, as for mutations.
    let r = roundtrip(
        &parts(
            Method::GET,
            "/graphql?query=subscription%20S%7Ba%7D",
            &[GQL],
        ),
        b"",
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The operation named decides: the query of a document that also has a subscription is
    // handed over (this schema then refuses the document in validation).
    let named = read_http_request(
        &parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
        br#"{"query": "subscription S { a } query Q { a }", "operationName": "Q"}"#,
        1024,
    );
    assert!(named.is_ok(), "{named:?}");
    // A query that merely mentions the word (a string, an alias) runs.
    let r = roundtrip(
        &parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
        br#"{"query": "{ subscription: a }"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", body(&r));
}

#[tokio::test]
async fn malformed_requests_get_the_statuses_the_spec_asks() {
    let cases: Vec<(http::request::Parts, &[u8], StatusCode)> = vec![
        (
            parts(Method::PUT, "/graphql", &[GQL]),
            b"",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            parts(
                Method::POST,
                "/graphql",
                &[GQL, ("content-type", "text/plain")],
            ),
            b"{}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            parts(
                Method::POST,
                "/graphql",
                &[GQL, ("content-type", "application/json; charset=latin1")],
            ),
            b"{}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            parts(
                Method::POST,
                "/graphql",
                &[("accept", "text/html"), JSON_CT],
            ),
            b"{}",
            StatusCode::NOT_ACCEPTABLE,
        ),
        (
            parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
            b"{not json",
            StatusCode::BAD_REQUEST,
        ),
        (
            parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
            b"[]",
            StatusCode::BAD_REQUEST,
        ),
        (
            parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
            br#"{"query": 1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
            br#"{}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
            br#"{"query": "{a}", "variables": "x"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
            br#"{"query": "{a}", "operationName": 3}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
            br#"{"query": "{a}", "extensions": []}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            parts(Method::GET, "/graphql?query=%7Ba%7D&variables=nope", &[GQL]),
            b"",
            StatusCode::BAD_REQUEST,
        ),
        (
            parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
            &[b' '; 2000],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (p, b, status) in cases {
        let r = roundtrip(&p, b).await;
        assert_eq!(
            r.status(),
            status,
            "{} {:?} {}",
            p.method,
            p.headers,
            String::from_utf8_lossy(b)
        );
        assert!(body(&r)["errors"][0]["message"].is_string());
    }
}

#[test]
fn accept_negotiation() {
    let format = |accept: &str| {
        read_http_request(
            &parts(Method::GET, "/?query=%7Ba%7D", &[("accept", accept)]),
            b"",
            10,
        )
        .map(|(_, f)| f)
    };
    assert_eq!(
        format("application/json, application/graphql-response+json").unwrap(),
        ResponseFormat::GraphQLResponseJson
    );
    assert_eq!(
        format("application/graphql-response+json;q=0, application/json").unwrap(),
        ResponseFormat::Json
    );
    assert_eq!(format("*/*").unwrap(), ResponseFormat::Json);
    assert_eq!(
        format("application/graphql-response+json, */*").unwrap(),
        ResponseFormat::GraphQLResponseJson
    );
    assert_eq!(
        format("text/html").unwrap_err().status,
        StatusCode::NOT_ACCEPTABLE
    );
}

#[tokio::test]
async fn invalid_utf8_bodies_are_400() {
    let r = roundtrip(
        &parts(Method::POST, "/graphql", &[GQL, JSON_CT]),
        b"{\"query\": \"{ a \xff }\"}",
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = roundtrip(
        &parts(Method::GET, "/graphql?query=%7Ba%FF%7D", &[GQL]),
        b"",
    )
    .await;
    // Percent-decoding replaces invalid UTF-8; the document then fails to parse: 400.
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
