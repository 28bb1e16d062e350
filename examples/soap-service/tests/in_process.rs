//! The service called in process (no socket), as mounted under a prefix and standalone:
//! a call over SOAP 1.1 and 1.2, the WSDL's address from the request, the routes outside
//! the endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serve::testing::{call, get, post, request};
use soap_service::{App, Settings};

fn mounted() -> Arc<App> {
    Arc::new(App::new(Settings {
        base_path: "/soap".to_owned(),
        ..Settings::default()
    }))
}

const GET_STOCK_12: &str = r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><getStock xmlns="urn:backend-kit:orders"><sku>A-1</sku></getStock></e:Body></e:Envelope>"#;

#[tokio::test]
async fn a_call_under_the_prefix_answers_in_the_request_version() {
    let app = mounted();
    let reply = post(
        &app,
        "/soap/soap",
        "application/soap+xml; charset=utf-8",
        GET_STOCK_12,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/soap+xml")
    );
    assert!(
        reply
            .body
            .contains("http://www.w3.org/2003/05/soap-envelope")
    );
    assert!(
        reply.body.contains("<available>25</available>"),
        "{}",
        reply.body
    );

    // The same request at the standalone path is not the mounted service's.
    let reply = post(&app, "/soap", "application/soap+xml", GET_STOCK_12).await;
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("/soap/soap"), "{}", reply.body);
}

#[tokio::test]
async fn the_wsdl_address_is_the_url_the_request_came_to() {
    let app = mounted();
    let reply = call(
        &app,
        request(
            Method::GET,
            "/soap/soap?wsdl",
            &[("host", "example.test:8443")],
            Bytes::new(),
        ),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply
            .body
            .matches(r#"location="http://example.test:8443/soap/soap""#)
            .count(),
        2,
        "{}",
        reply.body
    );

    let standalone = Arc::new(App::new(Settings::default()));
    let reply = get(&standalone, "/soap?wsdl").await;
    assert!(
        reply.body.contains(r#"location="http://localhost/soap""#),
        "{}",
        reply.body
    );
    assert_eq!(get(&standalone, "/healthz").await.body, "ok\n");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_parsing() {
    let app = mounted();
    let big = vec![b'x'; soap_service::MAX_BODY + 1];
    let reply = post(&app, "/soap/soap", "text/xml", big).await;
    assert_eq!(reply.status, 413);
}
