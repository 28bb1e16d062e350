//! Envelopes, versions, header processing, body rules, faults and dispatch.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use soap_core::{Error, FaultCode, SOAP11_NS, SOAP12_NS, SoapVersion, body};
use support::*;

const ACTION: &str = "\"urn:example:orders/placeOrder\"";

fn v12_action(action: &str) -> String {
    format!("{V12}; action=\"{action}\"")
}

#[test]
fn soap11_and_soap12_answer_in_the_request_version() {
    let reply = post(
        &service(),
        V11,
        Some(ACTION),
        envelope(SoapVersion::V11, "", ORDER).as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let env = reply.envelope.unwrap();
    assert_eq!(env.version, SoapVersion::V11);
    let out: PlaceOrderResponse = body::from_element(&env.body[0]).unwrap();
    assert_eq!(out.id, "o-1");
    assert_eq!(out.status, Status::Pending);
    assert_eq!(out.tracking, None);
    assert_eq!(
        out.lines,
        vec![Line {
            sku: "A-1".into(),
            quantity: 2
        }]
    );
    // The nillable field is written with xsi:nil.
    assert!(
        reply.body.contains(
            r#"<tracking xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>"#
        ),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("<placed>2026-12-04T01:00:00Z</placed>"),
        "{}",
        reply.body
    );

    let reply = post(
        &service(),
        &v12_action("urn:example:orders/placeOrder"),
        None,
        envelope(SoapVersion::V12, "", ORDER).as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.envelope.unwrap().version, SoapVersion::V12);
}

#[test]
fn elements_are_matched_by_namespace_not_prefix() {
    let body = format!(
        r#"<weird:Envelope xmlns:weird="{SOAP11_NS}"><weird:Body><o:placeOrder xmlns:o="urn:example:orders"><o:customer>c</o:customer></o:placeOrder></weird:Body></weird:Envelope>"#
    );
    assert_eq!(post(&service(), V11, None, body.as_bytes()).status, 200);
    // The usual prefix bound to another namespace is not an envelope.
    let body = r#"<soap:Envelope xmlns:soap="urn:not-soap"><soap:Body/></soap:Envelope>"#;
    let reply = post(&service(), V11, None, body.as_bytes());
    assert_eq!(reply.code(), FaultCode::VersionMismatch);
}

#[test]
fn an_unknown_envelope_namespace_is_version_mismatch_with_upgrade() {
    let body = r#"<s:Envelope xmlns:s="http://example.com/soap-2.0"><s:Body/></s:Envelope>"#;
    let reply = post(&service(), V12, None, body.as_bytes());
    assert_eq!(reply.status, 500);
    assert_eq!(reply.code(), FaultCode::VersionMismatch);
    let upgrade = &reply.envelope.as_ref().unwrap().headers[0];
    assert!(upgrade.is(SOAP12_NS, "Upgrade"));
    assert_eq!(upgrade.children().len(), 2);
}

#[test]
fn a_soap11_envelope_with_the_soap12_content_type_is_version_mismatch() {
    let reply = post(
        &service(),
        V12,
        None,
        envelope(SoapVersion::V11, "", ORDER).as_bytes(),
    );
    assert_eq!(reply.status, 500);
    assert_eq!(reply.code(), FaultCode::VersionMismatch);
    // And the reverse, answered as 1.1.
    let reply = post(
        &service(),
        V11,
        None,
        envelope(SoapVersion::V12, "", ORDER).as_bytes(),
    );
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("soap:VersionMismatch"));
}

#[test]
fn envelope_structure_rules() {
    let ns = SOAP12_NS;
    let cases = [
        (
            "no Body",
            format!(r#"<s:Envelope xmlns:s="{ns}"><s:Header/></s:Envelope>"#),
        ),
        (
            "two Bodies",
            format!(r#"<s:Envelope xmlns:s="{ns}"><s:Body/><s:Body/></s:Envelope>"#),
        ),
        (
            "Header after Body",
            format!(r#"<s:Envelope xmlns:s="{ns}"><s:Body/><s:Header/></s:Envelope>"#),
        ),
        (
            "element after Body",
            format!(r#"<s:Envelope xmlns:s="{ns}"><s:Body/><x/></s:Envelope>"#),
        ),
        (
            "two children",
            format!(r#"<s:Envelope xmlns:s="{ns}"><s:Body>{ORDER}{ORDER}</s:Body></s:Envelope>"#),
        ),
        (
            "empty Body",
            format!(r#"<s:Envelope xmlns:s="{ns}"><s:Body/></s:Envelope>"#),
        ),
        (
            "text in Body",
            format!(r#"<s:Envelope xmlns:s="{ns}"><s:Body>hello{ORDER}</s:Body></s:Envelope>"#),
        ),
        (
            "two roots",
            format!(r#"<s:Envelope xmlns:s="{ns}"><s:Body>{ORDER}</s:Body></s:Envelope><x/>"#),
        ),
    ];
    for (what, body) in cases {
        let reply = post(&service(), V12, None, body.as_bytes());
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
        assert_eq!(reply.code(), FaultCode::Sender, "{what}");
    }
}

#[test]
fn an_unknown_must_understand_header_is_a_must_understand_fault() {
    let header = r#"<x:audit xmlns:x="urn:audit" s:mustUnderstand="true" xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>"#;
    let reply = post(
        &service(),
        V12,
        None,
        envelope(SoapVersion::V12, header, ORDER).as_bytes(),
    );
    assert_eq!(reply.status, 500);
    assert_eq!(reply.code(), FaultCode::MustUnderstand);
    let nu = &reply.envelope.as_ref().unwrap().headers[0];
    assert!(nu.is(SOAP12_NS, "NotUnderstood"));
    assert_eq!(
        nu.resolve_qname(nu.attribute(None, "qname").unwrap()),
        Some((Some("urn:audit".into()), "audit".into()))
    );

    let header = r#"<x:audit xmlns:x="urn:audit" s:mustUnderstand="1" xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>"#;
    let reply = post(
        &service(),
        V11,
        None,
        envelope(SoapVersion::V11, header, ORDER).as_bytes(),
    );
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("soap:MustUnderstand"));
}

#[test]
fn must_understand_honours_targeting_and_declared_headers() {
    let v12 = |h: &str| {
        post(
            &service(),
            V12,
            None,
            envelope(SoapVersion::V12, h, ORDER).as_bytes(),
        )
        .status
    };
    // Aimed at another role, or at none: not ours to understand.
    assert_eq!(
        v12(
            r#"<x:a xmlns:x="urn:a" s:mustUnderstand="true" s:role="urn:other" xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>"#
        ),
        200
    );
    assert_eq!(
        v12(
            r#"<x:a xmlns:x="urn:a" s:mustUnderstand="true" s:role="http://www.w3.org/2003/05/soap-envelope/role/none" xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>"#
        ),
        200
    );
    // Aimed at next: ours.
    assert_eq!(
        v12(
            r#"<x:a xmlns:x="urn:a" s:mustUnderstand="true" s:role="http://www.w3.org/2003/05/soap-envelope/role/next" xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>"#
        ),
        500
    );
    // mustUnderstand false, or a header the service declared: fine.
    assert_eq!(
        v12(
            r#"<x:a xmlns:x="urn:a" s:mustUnderstand="false" xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>"#
        ),
        200
    );
    assert_eq!(
        v12(
            r#"<t:trace xmlns:t="urn:example:trace" s:mustUnderstand="true" xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>"#
        ),
        200
    );
    // SOAP 1.1 actor.
    let v11 = |h: &str| {
        post(
            &service(),
            V11,
            None,
            envelope(SoapVersion::V11, h, ORDER).as_bytes(),
        )
        .status
    };
    assert_eq!(
        v11(
            r#"<x:a xmlns:x="urn:a" s:mustUnderstand="1" s:actor="urn:other" xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>"#
        ),
        200
    );
    assert_eq!(
        v11(
            r#"<x:a xmlns:x="urn:a" s:mustUnderstand="1" s:actor="http://schemas.xmlsoap.org/soap/actor/next" xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>"#
        ),
        500
    );
}

#[test]
fn an_unknown_operation_is_a_sender_fault() {
    let body = envelope(
        SoapVersion::V12,
        "",
        r#"<cancelOrder xmlns="urn:example:orders"/>"#,
    );
    let reply = post(&service(), V12, None, body.as_bytes());
    assert_eq!(reply.status, 400);
    assert_eq!(reply.code(), FaultCode::Sender);
    // The right local name in another namespace is not the operation.
    let body = envelope(
        SoapVersion::V12,
        "",
        r#"<placeOrder xmlns="urn:elsewhere"/>"#,
    );
    assert_eq!(post(&service(), V12, None, body.as_bytes()).status, 400);
}

#[test]
fn the_action_must_agree_with_the_body() {
    let body = envelope(SoapVersion::V11, "", ORDER);
    let reply = post(
        &service(),
        V11,
        Some("\"urn:example:orders/placeSecureOrder\""),
        body.as_bytes(),
    );
    assert_eq!(reply.status, 500);
    assert_eq!(reply.code(), FaultCode::Sender);
    assert!(reply.fault().reason.contains("does not match"));
    let body = envelope(SoapVersion::V12, "", ORDER);
    let reply = post(&service(), &v12_action("urn:nope"), None, body.as_bytes());
    assert_eq!(reply.status, 400);
    // An empty SOAPAction ("") means no action: dispatch by the body.
    assert_eq!(
        post(
            &service(),
            V11,
            Some("\"\""),
            envelope(SoapVersion::V11, "", ORDER).as_bytes()
        )
        .status,
        200
    );
}

#[test]
fn a_handler_fault_carries_its_typed_detail() {
    let order = r#"<placeOrder xmlns="urn:example:orders"><customer>c</customer><line><sku>B-2</sku><quantity>50</quantity></line></placeOrder>"#;
    for version in [SoapVersion::V11, SoapVersion::V12] {
        let ct = if version == SoapVersion::V11 {
            V11
        } else {
            V12
        };
        let reply = post(
            &service(),
            ct,
            None,
            envelope(version, "", order).as_bytes(),
        );
        assert_eq!(
            reply.status,
            if version == SoapVersion::V11 {
                500
            } else {
                400
            }
        );
        let fault = reply.fault();
        assert_eq!(fault.code, FaultCode::Sender);
        assert_eq!(fault.reason, "out of stock");
        let detail: OutOfStock = fault.detail("outOfStock").unwrap().unwrap();
        assert_eq!(
            detail,
            OutOfStock {
                sku: "B-2".into(),
                available: 10
            }
        );
    }
}

#[test]
fn a_handler_error_does_not_leak_internals() {
    let order = r#"<placeOrder xmlns="urn:example:orders"><customer>crash</customer></placeOrder>"#;
    let reply = post(
        &service(),
        V12,
        None,
        envelope(SoapVersion::V12, "", order).as_bytes(),
    );
    assert_eq!(reply.status, 500);
    assert_eq!(reply.code(), FaultCode::Receiver);
    assert_eq!(reply.fault().reason, "Internal error");
    assert!(!reply.body.contains("hunter2"));
}

#[test]
fn a_body_that_does_not_fit_the_message_is_a_sender_fault() {
    let order = r#"<placeOrder xmlns="urn:example:orders"><line><sku>A</sku><quantity>lots</quantity></line></placeOrder>"#;
    let reply = post(
        &service(),
        V12,
        None,
        envelope(SoapVersion::V12, "", order).as_bytes(),
    );
    assert_eq!(reply.status, 400);
    assert_eq!(reply.code(), FaultCode::Sender);
}

#[test]
fn fault_12_round_trips_subcodes_node_role_and_lang() {
    let mut fault = soap_core::Fault::sender("nope")
        .with_subcode("urn:app", "Quota")
        .with_subcode("urn:app", "Daily");
    fault.node = Some("http://shop.example/soap".into());
    fault.role = Some(soap_core::SOAP12_ROLE_ULTIMATE.into());
    fault.lang = "fr".into();
    let el = fault.to_element(SoapVersion::V12);
    let xml = soap_core::Envelope {
        version: SoapVersion::V12,
        headers: vec![],
        body: vec![el],
    }
    .to_xml();
    let env = soap_core::Envelope::parse(xml.as_bytes(), &Default::default()).unwrap();
    let back = soap_core::Fault::from_element(SoapVersion::V12, &env.body[0]).unwrap();
    assert_eq!(back, fault);
    assert!(xml.contains(r#"xml:lang="fr""#));
}

#[test]
fn wsdl_is_served_on_get_with_the_request_address() {
    let s = service();
    let get = |uri: &str, host: &str| {
        let (parts, ()) = http::Request::get(uri)
            .header("host", host)
            .body(())
            .unwrap()
            .into_parts();
        s.handle(&parts, b"", std::time::SystemTime::now())
    };
    let r = get("/soap/orders?wsdl", "shop.example:8080");
    assert_eq!(r.status(), 200);
    let wsdl = std::str::from_utf8(r.body()).unwrap();
    assert!(wsdl.contains(r#"<soap:address location="http://shop.example:8080/soap/orders"/>"#));
    assert!(wsdl.contains(r#"<soap12:address location="http://shop.example:8080/soap/orders"/>"#));
    assert_eq!(get("/soap/orders?WSDL", "shop.example").status(), 200);
    assert_eq!(get("/soap/orders", "shop.example").status(), 404);
    // A Host that is not an authority is not written into the document.
    assert_eq!(get("/soap?wsdl", "evil\"><x").status(), 400);
    let (parts, ()) = http::Request::put("/soap").body(()).unwrap().into_parts();
    assert_eq!(
        s.handle(&parts, b"", std::time::SystemTime::now()).status(),
        405
    );
}

#[test]
fn errors_map_to_statuses() {
    assert_eq!(Error::DoctypeRefused.status(), 400);
    assert_eq!(Error::MustUnderstand(vec![]).status(), 500);
    assert_eq!(
        Error::VersionMismatch {
            reason: String::new()
        }
        .status(),
        500
    );
    assert_eq!(Error::Internal("x".into()).status(), 500);
    assert_eq!(Error::UnsupportedContentType { found: None }.status(), 415);
}

#[test]
#[ignore = "prints sample messages"]
fn print_samples() {
    let reply = post(
        &service(),
        V11,
        Some(ACTION),
        envelope(SoapVersion::V11, "", ORDER).as_bytes(),
    );
    println!("{}", reply.body);
    let order = r#"<placeOrder xmlns="urn:example:orders"><customer>c</customer><line><sku>B-2</sku><quantity>50</quantity></line></placeOrder>"#;
    println!(
        "{}",
        post(
            &service(),
            V12,
            None,
            envelope(SoapVersion::V12, "", order).as_bytes()
        )
        .body
    );
    println!(
        "{}",
        post(
            &service(),
            V11,
            None,
            envelope(SoapVersion::V11, "", order).as_bytes()
        )
        .body
    );
    println!("{}", service().wsdl("http://x/soap"));
}
