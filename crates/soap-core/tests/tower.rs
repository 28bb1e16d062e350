//! The tower adapter, and the compile-time Send + Sync check of the public types.

#![cfg(feature = "tower")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::Arc;

use bytes::Bytes;
use soap_core::SoapTowerService;
use tower::ServiceExt as _;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<soap_core::SoapService>();
    assert_send_sync::<soap_core::Client>();
    assert_send_sync::<soap_core::Security>();
    assert_send_sync::<soap_core::Envelope>();
    assert_send_sync::<soap_core::Fault>();
    assert_send_sync::<soap_core::Error>();
    assert_send_sync::<soap_core::XmlLimits>();
    assert_send_sync::<SoapTowerService>();
}

#[tokio::test]
async fn the_tower_service_serves_envelopes_and_wsdl() {
    let svc = SoapTowerService::new(Arc::new(support::service()));
    let body = support::envelope(soap_core::SoapVersion::V12, "", support::ORDER);
    let request = http::Request::post("/soap")
        .header("content-type", support::V12)
        .body(Bytes::from(body))
        .unwrap();
    let response = svc.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let request = http::Request::get("/soap?wsdl")
        .header("host", "localhost")
        .body(Bytes::new())
        .unwrap();
    let response = svc.oneshot(request).await.unwrap();
    assert!(
        std::str::from_utf8(response.body())
            .unwrap()
            .contains("wsdl:definitions")
    );
}
