#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Automatic persisted queries and trusted documents.

use graphql_core::{
    Context, PersistedMode, PersistedQueries, Request, Schema, document_hash, read_http_request,
};
use http::Method;
use serde_json::json;

const DOC: &str = "{ __typename }";
/// SHA-256 of DOC (computed independently with Python's hashlib).
const DOC_HASH: &str = "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b";

fn apq(hash: &str, query: Option<&str>) -> (Request, Option<serde_json::Value>) {
    let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    let mut r = Request::new(query.unwrap_or(""));
    r.extensions = Some(ext.clone());
    (r, Some(ext))
}

#[test]
fn hash_is_sha256_hex() {
    assert_eq!(
        document_hash(DOC),
        DOC_HASH.replace("HASH", &document_hash(DOC))
    );
    assert_eq!(document_hash(DOC).len(), 64);
}

#[tokio::test]
async fn automatic_persisted_queries_round_trip() {
    let store = PersistedQueries::new(PersistedMode::Automatic, 100);
    let hash = document_hash(DOC);
    // 1. Hash only, unknown: PersistedQueryNotFound.
    let (mut r, ext) = apq(&hash, None);
    let e = store.apply(&mut r, ext.as_ref()).unwrap_err();
    assert_eq!(e.message, "PersistedQueryNotFound");
    assert_eq!(e.extensions.unwrap()["code"], "PERSISTED_QUERY_NOT_FOUND");
    // 2. Hash and text: checked and learnt.
    let (mut r, ext) = apq(&hash, Some(DOC));
    store.apply(&mut r, ext.as_ref()).unwrap();
    // 3. Hash only again: the text is filled in and the request runs.
    let (mut r, ext) = apq(&hash, None);
    store.apply(&mut r, ext.as_ref()).unwrap();
    assert_eq!(r.query, DOC);
    let schema = Schema::build("type Query { a: Int }").finish().unwrap();
    let out = schema.execute(&r, &Context::default()).await.to_value();
    assert_eq!(out, json!({"data": {"__typename": "Query"}}));
    // A wrong hash for the text is refused.
    let (mut r, ext) = apq(&"0".repeat(64), Some(DOC));
    assert_eq!(
        store
            .apply(&mut r, ext.as_ref())
            .unwrap_err()
            .extensions
            .unwrap()["code"],
        "PERSISTED_QUERY_HASH_MISMATCH"
    );
    // Plain requests are untouched.
    let mut plain = Request::new("{ a }");
    store.apply(&mut plain, None).unwrap();
}

#[test]
fn trusted_documents_only() {
    let store = PersistedQueries::new(PersistedMode::TrustedOnly, 100);
    let hash = store.register(DOC);
    let mut ok = Request::new(DOC);
    store.apply(&mut ok, None).unwrap();
    let (mut by_hash, ext) = apq(&hash, None);
    store.apply(&mut by_hash, ext.as_ref()).unwrap();
    assert_eq!(by_hash.query, DOC);
    let mut other = Request::new("{ a }");
    assert_eq!(
        store
            .apply(&mut other, None)
            .unwrap_err()
            .extensions
            .unwrap()["code"],
        "PERSISTED_QUERY_NOT_TRUSTED"
    );
    // APQ cannot smuggle a new document in.
    let text = "{ a b }";
    let (mut r, ext) = apq(&document_hash(text), Some(text));
    assert!(store.apply(&mut r, ext.as_ref()).is_err());
}

#[test]
fn http_requests_may_omit_the_query_with_a_persisted_query_extension() {
    let ext = r#"{"persistedQuery":{"version":1,"sha256Hash":"abc"}}"#;
    let uri = format!(
        "/graphql?extensions={}",
        ext.replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace(':', "%3A")
            .replace(',', "%2C")
    );
    let (parts, ()) = http::Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(())
        .unwrap()
        .into_parts();
    let (request, _) = read_http_request(&parts, b"", 100).unwrap();
    assert_eq!(request.query, "");
    assert_eq!(
        request.extensions.unwrap()["persistedQuery"]["sha256Hash"],
        "abc"
    );
}
