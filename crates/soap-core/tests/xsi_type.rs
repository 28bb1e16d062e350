//! `xsi:type` in requests: the declared type must be the schema's type for the element,
//! compared as namespace-resolved QNames; a mismatch is a Client/Sender fault naming the
//! element.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use soap_core::{Error, FaultCode, SoapVersion, xml::XSI_NS};
use support::*;

const XS: &str = "http://www.w3.org/2001/XMLSchema";

/// A `placeOrder` whose `customer`, wrapper and first line carry the given attributes.
fn order(
    customer_attrs: &str,
    wrapper_attrs: &str,
    line_attrs: &str,
    quantity_attrs: &str,
) -> String {
    format!(
        r#"<o:placeOrder xmlns:o="{NS}" xmlns:xsi="{XSI_NS}" xmlns:xs="{XS}" {wrapper_attrs}><o:customer {customer_attrs}>c-1</o:customer><o:line {line_attrs}><o:sku>A-1</o:sku><o:quantity {quantity_attrs}>2</o:quantity></o:line></o:placeOrder>"#
    )
}

fn send(version: SoapVersion, body: &str) -> Reply {
    let ct = match version {
        SoapVersion::V11 => V11,
        SoapVersion::V12 => V12,
    };
    post(&service(), ct, None, envelope(version, "", body).as_bytes())
}

#[test]
fn the_expected_types_are_accepted_under_any_prefix() {
    for body in [
        order(r#"xsi:type="xs:string""#, "", "", ""),
        order(
            r#"xsi:type="q:string" xmlns:q="http://www.w3.org/2001/XMLSchema""#,
            "",
            "",
            "",
        ),
        order(
            "",
            r#"xsi:type="o:PlaceOrder""#,
            r#"xsi:type="o:Line""#,
            r#"xsi:type="xs:unsignedInt""#,
        ),
        // The default namespace resolves an unprefixed type name.
        format!(
            r#"<placeOrder xmlns="{NS}" xmlns:xsi="{XSI_NS}" xsi:type="PlaceOrder"><customer>c-1</customer><line xsi:type="Line"><sku>A-1</sku><quantity>2</quantity></line></placeOrder>"#
        ),
    ] {
        for version in [SoapVersion::V11, SoapVersion::V12] {
            let reply = send(version, &body);
            assert_eq!(reply.status, 200, "{body}\n{}", reply.body);
        }
    }
}

#[test]
fn built_in_types_may_be_named_in_the_soap_encoding_and_draft_schema_namespaces() {
    for ns in [
        "http://schemas.xmlsoap.org/soap/encoding/",
        "http://www.w3.org/1999/XMLSchema",
        "http://www.w3.org/2000/10/XMLSchema",
    ] {
        let body = order(
            &format!(r#"xsi:type="e:string" xmlns:e="{ns}""#),
            "",
            "",
            "",
        );
        let reply = send(SoapVersion::V11, &body);
        assert_eq!(reply.status, 200, "{ns}\n{}", reply.body);
    }
    // Not for a type of the service's own namespace.
    let body = order(
        "",
        "",
        r#"xsi:type="e:Line" xmlns:e="http://schemas.xmlsoap.org/soap/encoding/""#,
        "",
    );
    assert_eq!(send(SoapVersion::V12, &body).code(), FaultCode::Sender);
}

#[test]
fn a_mismatch_is_a_sender_fault_naming_the_element() {
    for (body, element) in [
        (order(r#"xsi:type="xs:int""#, "", "", ""), "customer"),
        (order("", "", "", r#"xsi:type="xs:int""#), "quantity"),
        (order("", "", r#"xsi:type="o:PlaceOrder""#, ""), "line"),
        (order("", r#"xsi:type="o:Line""#, "", ""), "placeOrder"),
        // Same local name, other namespace.
        (order(r#"xsi:type="o:string""#, "", "", ""), "customer"),
        // An undeclared prefix resolves to nothing.
        (order(r#"xsi:type="nope:string""#, "", "", ""), "customer"),
    ] {
        let reply = send(SoapVersion::V12, &body);
        assert_eq!(reply.status, 400, "{body}\n{}", reply.body);
        let fault = reply.fault();
        assert_eq!(fault.code, FaultCode::Sender);
        assert!(
            fault.reason.contains(&format!("element {element} ")),
            "{element}: {}",
            fault.reason
        );
        let reply = send(SoapVersion::V11, &body);
        assert_eq!(reply.status, 500);
        assert_eq!(reply.code(), FaultCode::Sender, "1.1 Client");
    }
}

#[test]
fn the_error_value_says_what_was_declared_and_expected() {
    let service = service();
    let info = soap_core::MessageInfo {
        version: SoapVersion::V11,
        action: None,
    };
    let body = envelope(
        SoapVersion::V11,
        "",
        &order("", "", "", r#"xsi:type="xs:string""#),
    );
    let err = service
        .process(&info, body.as_bytes(), std::time::SystemTime::now())
        .unwrap_err();
    assert_eq!(
        err,
        Error::XsiTypeMismatch {
            element: "quantity".into(),
            declared: "xs:string".into(),
            expected: "xs:unsignedInt".into(),
        }
    );
}
