#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Public-API checks: thread safety of every public type.

use rest_core::*;

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Router<Box<dyn Fn() + Send + Sync>>>();
    send_sync::<PathParams<'static, 'static>>();
    send_sync::<RouteMatch<'static, 'static, u8>>();
    send_sync::<Error>();
    send_sync::<ProblemDetails>();
    send_sync::<EntityTag>();
    send_sync::<Precondition>();
    send_sync::<CorsPolicy>();
    send_sync::<CorsBuilder>();
    send_sync::<CursorCodec>();
    send_sync::<PageRequest>();
    send_sync::<Link>();
    send_sync::<IdempotencyKey>();
    send_sync::<Fingerprint>();
    send_sync::<StoredResponse>();
    send_sync::<Reservation>();
    send_sync::<MemoryIdempotencyStore>();
    #[cfg(feature = "redis")]
    send_sync::<RedisIdempotencyStore>();
    send_sync::<OpenApi>();
    // schemars' generator holds `dyn GenTransform + Send`: the builder moves, it is not shared.
    send::<OpenApiBuilder>();
    send_sync::<Operation>();
    send_sync::<Weighted>();
    send_sync::<JsonLimits>();
    send_sync::<QueryLimits>();
    send_sync::<TrailingSlash>();
}

#[test]
fn every_error_maps_to_a_problem_with_its_status() {
    let errors = [
        Error::NotFound,
        Error::PreconditionFailed,
        Error::PreconditionRequired,
        Error::InvalidCursor,
        Error::UnsupportedMediaType {
            found: None,
            expected: "application/json",
        },
        Error::MalformedJson {
            line: 1,
            column: 2,
            reason: "x".into(),
        },
        Error::InvalidJson {
            pointer: "/a".into(),
            reason: "x".into(),
        },
        Error::Config("secret detail".into()),
    ];
    for error in errors {
        let response = error.to_response::<Vec<u8>>();
        assert_eq!(response.status(), error.status());
        assert_eq!(response.headers()["content-type"], PROBLEM_JSON);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["status"], error.status().as_u16());
        assert!(!body.to_string().contains("secret detail"));
    }
}
