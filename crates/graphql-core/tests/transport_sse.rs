#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! GraphQL over SSE (the graphql-sse protocol): request classification, the operation id,
//! and the single-connection reservations with their errors, limits and expiry, on a fake
//! clock.

use std::time::{Duration, Instant};

use graphql_core::{
    SseEvent, SseLimits, SseRequest, SseStreams, accepts_event_stream, event_stream_token,
    operation_id, read_sse_request, sse_request,
};
use http::StatusCode;
use serde_json::json;

fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(()).unwrap().into_parts().0
}

const SSE: (&str, &str) = ("accept", "text/event-stream");

#[test]
fn requests_are_classified_per_the_protocol() {
    let classify =
        |method, uri, headers: &[(&str, &str)]| sse_request(&parts(method, uri, headers));
    // Plain GraphQL over HTTP is left alone.
    assert_eq!(classify("GET", "/graphql?query={a}", &[]), None);
    assert_eq!(
        classify("POST", "/graphql", &[("accept", "application/json")]),
        None
    );
    assert_eq!(classify("OPTIONS", "/graphql", &[SSE]), None);
    assert_eq!(
        classify("PUT", "/graphql", &[]),
        Some(Ok(SseRequest::Reserve { token: None }))
    );
    assert_eq!(
        classify("POST", "/graphql", &[SSE]),
        Some(Ok(SseRequest::Distinct))
    );
    assert_eq!(
        classify("GET", "/graphql?token=abc", &[SSE]),
        Some(Ok(SseRequest::OpenStream {
            token: "abc".into()
        }))
    );
    // The header wins over the query parameter.
    assert_eq!(
        classify(
            "POST",
            "/graphql?token=q",
            &[("x-graphql-event-stream-token", "h")]
        ),
        Some(Ok(SseRequest::Operation { token: "h".into() }))
    );
    assert_eq!(
        classify(
            "DELETE",
            "/graphql?operationId=7",
            &[("x-graphql-event-stream-token", "t")]
        ),
        Some(Ok(SseRequest::Stop {
            token: "t".into(),
            operation_id: "7".into()
        }))
    );
    let status =
        |r: Option<Result<SseRequest, graphql_core::HttpRejection>>| r.unwrap().unwrap_err().status;
    // DELETE without a token: no stream to stop anything on.
    assert_eq!(
        status(classify("DELETE", "/graphql?operationId=7", &[])),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(classify(
            "DELETE",
            "/graphql",
            &[("x-graphql-event-stream-token", "t")]
        )),
        StatusCode::BAD_REQUEST
    );
    // q=0 refuses the event stream.
    assert!(!accepts_event_stream(&parts(
        "GET",
        "/",
        &[("accept", "text/event-stream;q=0, application/json")]
    )));
    assert!(accepts_event_stream(&parts(
        "GET",
        "/",
        &[("accept", "application/json, Text/Event-Stream")]
    )));
    assert_eq!(event_stream_token(&parts("GET", "/?token=", &[])), None);
}

#[test]
fn sse_requests_allow_subscriptions_and_need_an_operation_id() {
    let body =
        json!({"query": "subscription { s }", "extensions": {"operationId": "op-1"}}).to_string();
    let p = parts(
        "POST",
        "/graphql",
        &[SSE, ("content-type", "application/json")],
    );
    let request = read_sse_request(&p, body.as_bytes(), 1000).unwrap();
    assert_eq!(request.query, "subscription { s }");
    assert_eq!(operation_id(&request).unwrap(), "op-1");
    // A number is taken as its text, as graphql-sse's server does.
    let mut numbered = request.clone();
    numbered.extensions = Some(json!({"operationId": 12}));
    assert_eq!(operation_id(&numbered).unwrap(), "12");
    for extensions in [
        None,
        Some(json!({})),
        Some(json!({"operationId": ""})),
        Some(json!({"operationId": [1]})),
    ] {
        let mut r = request.clone();
        r.extensions = extensions;
        assert_eq!(
            operation_id(&r).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
    // Mutations still may not use GET, and the body size is bounded.
    let get = parts("GET", "/graphql?query=mutation%7Ba%7D", &[SSE]);
    assert_eq!(
        read_sse_request(&get, b"", 1000).unwrap_err().status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        read_sse_request(&p, body.as_bytes(), 10)
            .unwrap_err()
            .status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

fn limits() -> SseLimits {
    SseLimits {
        max_streams: 2,
        max_operations: 2,
        reservation_ttl: Duration::from_secs(30),
    }
}

#[test]
fn wrong_token_double_stream_and_unknown_operation() {
    let now = Instant::now();
    let mut streams: SseStreams<u8, u32> = SseStreams::new(limits());
    let token = streams.reserve([1; 16], None, 7, now).unwrap();
    assert_eq!(token, "01".repeat(16));
    // A PUT that carries a registered token is a conflict.
    assert_eq!(
        streams
            .reserve([2; 16], Some(&token), 8, now)
            .unwrap_err()
            .status,
        StatusCode::CONFLICT
    );

    // Wrong token: 404 everywhere.
    assert_eq!(
        streams.open("nope", now).unwrap_err().status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        streams
            .start_operation("nope", "a", 1, now)
            .unwrap_err()
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        streams.stop_operation("nope", "a", now).unwrap_err().status,
        StatusCode::NOT_FOUND
    );

    // Operations may come before the stream is open; their results wait for it.
    assert_eq!(*streams.start_operation(&token, "a", 1, now).unwrap(), 7);
    assert_eq!(*streams.open(&token, now).unwrap(), 7);
    // Only one connection per reservation.
    let second = streams.open(&token, now).unwrap_err();
    assert_eq!(second.status, StatusCode::CONFLICT);
    let body: serde_json::Value = serde_json::from_slice(second.into_response().body()).unwrap();
    assert_eq!(
        body,
        json!({"errors": [{"message": "Stream already open."}]})
    );

    // The same operation id twice: 409; a third operation past the limit of 2: 429.
    assert_eq!(
        streams
            .start_operation(&token, "a", 2, now)
            .unwrap_err()
            .status,
        StatusCode::CONFLICT
    );
    streams.start_operation(&token, "b", 3, now).unwrap();
    assert_eq!(
        streams
            .start_operation(&token, "c", 4, now)
            .unwrap_err()
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(streams.operations(&token), 2);

    // Stopping: the value comes back once; then the id is unknown.
    assert_eq!(streams.stop_operation(&token, "a", now).unwrap(), 1);
    assert_eq!(
        streams.stop_operation(&token, "a", now).unwrap_err().status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        streams
            .stop_operation(&token, "never", now)
            .unwrap_err()
            .status,
        StatusCode::NOT_FOUND
    );
    // An operation that ends by itself is forgotten too.
    assert_eq!(streams.finish_operation(&token, "b"), Some(3));
    assert_eq!(streams.finish_operation(&token, "b"), None);

    // The connection ends: the stream goes with its operations.
    streams.start_operation(&token, "d", 5, now).unwrap();
    assert_eq!(streams.close(&token), Some((7, vec![5])));
    assert!(streams.is_empty());
    assert_eq!(
        streams.open(&token, now).unwrap_err().status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn too_many_reservations_and_expiry() {
    let start = Instant::now();
    let mut streams: SseStreams<u8, u32> = SseStreams::new(limits());
    let first = streams.reserve([1; 16], None, 1, start).unwrap();
    let second = streams.reserve([2; 16], None, 2, start).unwrap();
    let refused = streams.reserve([3; 16], None, 3, start).unwrap_err();
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(streams.len(), 2);

    // The first is opened and stays; the second is never opened and expires.
    streams.open(&first, start).unwrap();
    streams.start_operation(&second, "x", 9, start).unwrap();
    assert_eq!(
        streams.poll_timeout(),
        Some(start + Duration::from_secs(30))
    );
    let later = start + Duration::from_secs(29);
    assert!(streams.expire(later).is_empty());
    let expired_at = start + Duration::from_secs(30);
    // Expired is gone for every request even before `expire` runs.
    assert_eq!(
        streams.open(&second, expired_at).unwrap_err().status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(streams.expire(expired_at), vec![(2, vec![9])]);
    assert_eq!(streams.poll_timeout(), None);
    assert_eq!(streams.len(), 1);
    // Room again.
    streams.reserve([4; 16], None, 4, expired_at).unwrap();
    assert_eq!(
        streams
            .reserve([5; 16], None, 5, expired_at)
            .unwrap_err()
            .status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[test]
fn events_in_both_modes() {
    assert_eq!(
        SseEvent::Next {
            id: None,
            payload: r#"{"data":{"a":1}}"#
        }
        .encode(),
        b"event: next\ndata: {\"data\":{\"a\":1}}\n\n"
    );
    assert_eq!(
        SseEvent::Complete { id: Some("7") }.encode(),
        b"event: complete\ndata: {\"id\":\"7\"}\n\n"
    );
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SseStreams<String, u32>>();
    check::<SseRequest>();
    check::<SseLimits>();
}
