//! Hostile XML: each input gets the right fault and status, and the refusal comes from the
//! limit or rule that stops the reader early (bounded work), never a panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use soap_core::{Error, FaultCode, LimitKind, SoapVersion, XmlLimits, xml};
use support::*;

fn sender_400(reply: &Reply) {
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.code(), FaultCode::Sender, "{}", reply.body);
}

fn limit(body: &[u8]) -> LimitKind {
    match xml::parse(body, &XmlLimits::default()) {
        Err(Error::LimitExceeded { limit, .. }) => limit,
        other => panic!("expected a limit, got {other:?}"),
    }
}

#[test]
fn billion_laughs_is_refused_at_the_doctype() {
    let body = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><x>&lol3;</x></s:Body></s:Envelope>"#;
    assert_eq!(
        xml::parse(body, &XmlLimits::default()),
        Err(Error::DoctypeRefused)
    );
    let reply = post(&service(), V12, None, body);
    sender_400(&reply);
    assert!(reply.fault().reason.contains("DOCTYPE"));
}

#[test]
fn quadratic_blowup_is_refused_at_the_doctype() {
    let big = "a".repeat(50_000);
    let refs = "&a;".repeat(50_000);
    let body = format!(r#"<!DOCTYPE s [<!ENTITY a "{big}">]><s>{refs}</s>"#);
    assert_eq!(
        xml::parse(body.as_bytes(), &XmlLimits::default()),
        Err(Error::DoctypeRefused)
    );
    sender_400(&post(&service(), V12, None, body.as_bytes()));
}

#[test]
fn external_entities_file_and_http_are_refused() {
    for system in ["file:///etc/passwd", "http://127.0.0.1:1/evil.dtd"] {
        let body = format!(
            r#"<!DOCTYPE s [<!ENTITY xxe SYSTEM "{system}">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><placeOrder xmlns="urn:example:orders"><customer>&xxe;</customer></placeOrder></s:Body></s:Envelope>"#
        );
        let reply = post(&service(), V11, None, body.as_bytes());
        assert_eq!(reply.status, 500); // SOAP 1.1: every fault is a 500
        assert_eq!(reply.code(), FaultCode::Sender); // written as soap:Client
        assert!(reply.body.contains("soap:Client"));
        assert!(!reply.body.contains("root:"));
    }
}

#[test]
fn parameter_entities_are_refused() {
    let body = br#"<!DOCTYPE s [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p.dtd"> %p;]><s/>"#;
    assert_eq!(
        xml::parse(body, &XmlLimits::default()),
        Err(Error::DoctypeRefused)
    );
    sender_400(&post(&service(), V12, None, body));
}

#[test]
fn an_undeclared_entity_without_a_dtd_is_malformed() {
    let body = envelope(SoapVersion::V12, "", "<x>&ghost;</x>");
    let reply = post(&service(), V12, None, body.as_bytes());
    sender_400(&reply);
    assert!(reply.fault().reason.contains("undeclared entity"));
}

#[test]
fn deep_nesting_stops_at_the_depth_limit() {
    let body = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
    assert_eq!(limit(body.as_bytes()), LimitKind::Depth);
    // Self-closing at the bottom too.
    let body = format!("{}<a/>{}", "<a>".repeat(100), "</a>".repeat(100));
    assert_eq!(limit(body.as_bytes()), LimitKind::Depth);
    sender_400(&post(
        &service(),
        V12,
        None,
        format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000)).as_bytes(),
    ));
}

#[test]
fn a_hundred_thousand_attributes_stop_at_the_attribute_limit() {
    let attrs: String = (0..100_000).map(|i| format!(" a{i}=\"x\"")).collect();
    let body = format!("<a{attrs}/>");
    assert_eq!(limit(body.as_bytes()), LimitKind::Attributes);
    sender_400(&post(&service(), V12, None, body.as_bytes()));
}

#[test]
fn a_one_megabyte_attribute_is_refused() {
    let body = format!("<a b=\"{}\"/>", "x".repeat(1 << 20));
    assert_eq!(limit(body.as_bytes()), LimitKind::AttributeBytes);
    sender_400(&post(&service(), V12, None, body.as_bytes()));
}

#[test]
fn a_hundred_thousand_namespace_declarations_stop_at_the_limit() {
    // Spread over elements so the per-element attribute limit is not what stops it.
    let el: String = (0..100_000)
        .map(|i| format!("<e xmlns:p{i}=\"urn:{i}\"/>"))
        .collect();
    let body = format!("<a>{el}</a>");
    assert_eq!(limit(body.as_bytes()), LimitKind::NamespaceDeclarations);
    sender_400(&post(&service(), V12, None, body.as_bytes()));
}

#[test]
fn too_many_elements_stop_at_the_element_limit() {
    let body = format!("<a>{}</a>", "<b/>".repeat(100_000));
    assert_eq!(limit(body.as_bytes()), LimitKind::Elements);
}

#[test]
fn large_text_is_refused_at_the_text_limit() {
    let limits = XmlLimits::default().max_text_bytes(1000);
    let body = format!("<a>{}&amp;{}</a>", "x".repeat(600), "y".repeat(600));
    assert!(matches!(
        xml::parse(body.as_bytes(), &limits),
        Err(Error::LimitExceeded {
            limit: LimitKind::TextBytes,
            max: 1000
        })
    ));
}

#[test]
fn a_hundred_megabyte_body_is_refused_before_parsing() {
    let body = vec![b'<'; 100 << 20];
    // Not even well-formed: the size check comes first.
    assert_eq!(limit(&body), LimitKind::BodyBytes);
    let reply = post(&service(), V12, None, &body);
    assert_eq!(reply.status, 413);
    assert_eq!(reply.code(), FaultCode::Sender);
}

#[test]
fn invalid_utf8_is_refused() {
    let mut body = envelope(SoapVersion::V12, "", ORDER).into_bytes();
    body.insert(60, 0xff);
    assert!(matches!(
        xml::parse(&body, &XmlLimits::default()),
        Err(Error::InvalidUtf8 { offset: 60 })
    ));
    sender_400(&post(&service(), V12, None, &body));
}

#[test]
fn a_wrong_content_type_is_415() {
    let body = envelope(SoapVersion::V11, "", ORDER);
    for ct in [
        "application/json",
        "text/plain",
        "text/xml; charset=iso-8859-1",
    ] {
        let reply = post(&service(), ct, None, body.as_bytes());
        assert_eq!(reply.status, 415, "{ct}");
        assert_eq!(reply.code(), FaultCode::Sender);
    }
}

#[test]
fn limits_are_configurable() {
    let service = service_with(XmlLimits::default().max_depth(3));
    let reply = post(
        &service,
        V12,
        None,
        envelope(SoapVersion::V12, "", ORDER).as_bytes(),
    );
    sender_400(&reply);
    assert!(reply.fault().reason.contains("element depth"));
}
