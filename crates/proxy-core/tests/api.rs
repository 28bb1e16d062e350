#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Public-API checks: the types can cross threads.

use proxy_core::{
    CacheControl, CircuitBreaker, HealthChecker, MemoryLimiter, OutlierDetector, Pool, RetryBudget,
    RetryPolicy, TrustedProxies,
};

fn send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Pool>();
    send_sync::<HealthChecker<u64>>();
    send_sync::<OutlierDetector<u64>>();
    send_sync::<CircuitBreaker>();
    send_sync::<RetryBudget>();
    send_sync::<RetryPolicy>();
    send_sync::<MemoryLimiter>();
    send_sync::<TrustedProxies>();
    send_sync::<proxy_core::ClientAddressHeader>();
    send_sync::<CacheControl>();
    send_sync::<proxy_core::Error>();
    send_sync::<proxy_core::SmugglingError>();
    send_sync::<proxy_core::CachePolicy>();
    send_sync::<proxy_core::CacheEntry>();
    send_sync::<proxy_core::Lookup>();
    send_sync::<proxy_core::MemoryStore>();
    send_sync::<proxy_core::Coalescer>();
    send_sync::<proxy_core::Lead>();
    send_sync::<proxy_core::Wait>();
    // A store is used behind a trait object by servers that pick one at start.
    send_sync::<Box<dyn proxy_core::CacheStore>>();
}

#[test]
fn errors_map_to_statuses() {
    use http::StatusCode;
    use proxy_core::{Error, HeadLimits, SmugglingError, check_request_head};

    let clte =
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    let refused: Error = check_request_head(clte, &HeadLimits::default())
        .unwrap_err()
        .into();
    assert_eq!(refused, Error::Smuggling(SmugglingError::LengthAndChunked));
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        Error::Smuggling(SmugglingError::HeadTooLarge(1)).status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(Error::Forwarded(3).status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        Error::Config("x".into()).status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}
