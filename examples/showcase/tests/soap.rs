//! soap-service mounted at `/soap/`: a SOAP call through the mount, the WSDL's address on the
//! showcase's host, the landing page's curl samples run as written, and the landing page's
//! SOAP row in headless Chromium (`PEER_NODE_MODULES` with playwright-core, `CHROMIUM_PATH`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Command;

use serve::testing::run;
use support::{Chromium, Server, curl_samples, landing_row};

const GET_STOCK_11: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><getStock xmlns="urn:backend-kit:orders"><sku>B-2</sku></getStock></s:Body></s:Envelope>"#;

#[test]
fn soap_call_through_the_mount_answers_in_the_request_version() {
    let server = Server::start();
    let mut client = server.client();
    let reply = client.send(
        "POST",
        "/soap/soap",
        &[
            ("Content-Type", "text/xml; charset=utf-8"),
            ("SOAPAction", r#""urn:backend-kit:orders/getStock""#),
        ],
        GET_STOCK_11.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("http://schemas.xmlsoap.org/soap/envelope/"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("<sku>B-2</sku>"), "{}", reply.body);
    assert!(
        reply.body.contains("<available>3</available>"),
        "{}",
        reply.body
    );

    // An unknown SKU over SOAP 1.2: a Sender fault, 400.
    let reply = client.send(
        "POST",
        "/soap/soap",
        &[("Content-Type", "application/soap+xml; charset=utf-8")],
        br#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><getStock xmlns="urn:backend-kit:orders"><sku>Z-9</sku></getStock></e:Body></e:Envelope>"#,
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("Sender"), "{}", reply.body);
    assert!(
        reply
            .body
            .contains("http://www.w3.org/2003/05/soap-envelope"),
        "{}",
        reply.body
    );

    // Outside the endpoint: a 404 that names where the service is.
    let reply = client.get("/soap/elsewhere");
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("/soap/soap"), "{}", reply.body);
    assert_eq!(client.get("/soap/healthz").status, 200);
}

#[test]
fn the_wsdl_address_is_the_mount_on_the_showcase_host() {
    let server = Server::start();
    let reply = server.client().get("/soap/soap?wsdl");
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/xml"),
        "{:?}",
        reply.headers
    );
    let expected = format!(r#"location="http://{}/soap/soap""#, server.addr);
    // Both bindings (SOAP 1.1 and 1.2) point at the mount.
    assert_eq!(reply.body.matches(&expected).count(), 2, "{}", reply.body);
    assert!(!reply.body.contains(r#"location="http://127.0.0.1:8080"#));
}

#[test]
fn the_landing_page_curl_samples_name_the_host_and_work_as_written() {
    let server = Server::start();
    let page = server.client().get("/");
    let row = landing_row(&page.body, "soap");
    assert!(row.contains(r#"class="status live">live"#), "{row}");
    assert!(row.contains(r#"href="/soap/soap?wsdl""#), "{row}");
    let samples = curl_samples(row);
    assert_eq!(samples.len(), 2, "{row}");
    let start = format!("curl -s http://{}/soap/soap ", server.addr);
    for sample in &samples {
        assert!(sample.starts_with(&start), "{sample}");
    }
    // Run them as a user pasting them into a shell would.
    let run = |sample: &str| run(Command::new("sh").arg("-c").arg(sample));
    let stock = run(&samples[0]);
    assert!(stock.contains("<available>25</available>"), "{stock}");
    let fault = run(&samples[1]);
    assert!(fault.contains("outOfStock"), "{fault}");
    assert!(fault.contains("<available>3</available>"), "{fault}");
}

#[test]
fn chromium_follows_the_soap_row_to_the_wsdl_and_calls_the_service() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let server = Server::start();
    chromium.run("landing_browser.js", &server, &["showcase-soap-row.png"]);
}
