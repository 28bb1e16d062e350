//! The generated WSDL against the WS-I Basic Profile 1.1 assertions that apply to a
//! document/literal description (ids as in the profile; listed in docs/conformance.md).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use soap_core::xml::{self, Element};
use soap_core::{HTTP_TRANSPORT, WSDL_NS, WSDL_SOAP11_NS, WSDL_SOAP12_NS, XS_NS, XmlLimits};

fn wsdl() -> Element {
    let text = support::service().wsdl("http://shop.example/soap");
    xml::parse(text.as_bytes(), &XmlLimits::default()).unwrap()
}

fn all<'a>(el: &'a Element, ns: &str, name: &str, out: &mut Vec<&'a Element>) {
    if el.is(ns, name) {
        out.push(el);
    }
    for c in el.children() {
        all(c, ns, name, out);
    }
}

fn find<'a>(root: &'a Element, ns: &str, name: &str) -> Vec<&'a Element> {
    let mut v = Vec::new();
    all(root, ns, name, &mut v);
    v
}

fn children<'a>(el: &'a Element, ns: &str, name: &str) -> Vec<&'a Element> {
    el.children().iter().filter(|c| c.is(ns, name)).collect()
}

#[test]
fn r2201_r2204_r2205_messages_have_one_part_referring_to_an_element() {
    let root = wsdl();
    let messages = children(&root, WSDL_NS, "message");
    assert_eq!(messages.len(), 5);
    for m in messages {
        let parts = children(m, WSDL_NS, "part");
        assert_eq!(parts.len(), 1);
        assert!(parts[0].attribute(None, "element").is_some());
        assert!(parts[0].attribute(None, "type").is_none());
    }
}

#[test]
fn r2101_r2020_every_qname_reference_resolves() {
    let root = wsdl();
    let schema = &find(&root, XS_NS, "schema")[0];
    let tns = root.attribute(None, "targetNamespace").unwrap();
    let elements: Vec<&str> = children(schema, XS_NS, "element")
        .iter()
        .map(|e| e.attribute(None, "name").unwrap())
        .collect();
    let types: Vec<&str> = schema
        .children()
        .iter()
        .filter(|c| c.is(XS_NS, "complexType") || c.is(XS_NS, "simpleType"))
        .map(|e| e.attribute(None, "name").unwrap())
        .collect();
    for part in find(&root, WSDL_NS, "part") {
        let (ns, local) = part
            .resolve_qname(part.attribute(None, "element").unwrap())
            .unwrap();
        assert_eq!(ns.as_deref(), Some(tns));
        assert!(elements.contains(&local.as_str()), "{local}");
    }
    for el in find(schema, XS_NS, "element") {
        let (ns, local) = el
            .resolve_qname(el.attribute(None, "type").unwrap())
            .unwrap();
        match ns.as_deref() {
            Some(XS_NS) => {}
            Some(n) if n == tns => assert!(types.contains(&local.as_str()), "{local}"),
            other => panic!("unresolved {other:?}"),
        }
    }
    let messages: Vec<&str> = children(&root, WSDL_NS, "message")
        .iter()
        .map(|m| m.attribute(None, "name").unwrap())
        .collect();
    for op in find(
        children(&root, WSDL_NS, "portType")[0],
        WSDL_NS,
        "operation",
    ) {
        for io in op.children() {
            let (_, local) = io
                .resolve_qname(io.attribute(None, "message").unwrap())
                .unwrap();
            assert!(messages.contains(&local.as_str()));
        }
    }
}

#[test]
fn r2105_all_schemas_are_inside_types() {
    let root = wsdl();
    let types = children(&root, WSDL_NS, "types");
    assert_eq!(types.len(), 1);
    assert_eq!(
        find(&root, XS_NS, "schema").len(),
        children(types[0], XS_NS, "schema").len()
    );
}

#[test]
fn r2702_r2705_r2706_r2716_bindings_are_document_literal_over_http() {
    let root = wsdl();
    let bindings = children(&root, WSDL_NS, "binding");
    assert_eq!(bindings.len(), 2);
    for (binding, ns) in bindings.iter().zip([WSDL_SOAP11_NS, WSDL_SOAP12_NS]) {
        let b = &children(binding, ns, "binding")[0];
        assert_eq!(b.attribute(None, "transport"), Some(HTTP_TRANSPORT));
        assert_eq!(b.attribute(None, "style"), Some("document"));
        for op in find(binding, ns, "operation") {
            assert_ne!(op.attribute(None, "style"), Some("rpc"));
            assert!(op.attribute(None, "soapAction").is_some());
        }
        for body in find(binding, ns, "body") {
            assert_eq!(body.attribute(None, "use"), Some("literal"));
            assert!(body.attribute(None, "namespace").is_none());
            assert!(body.attribute(None, "encodingStyle").is_none());
        }
        for fault in find(binding, ns, "fault") {
            assert_eq!(fault.attribute(None, "use"), Some("literal"));
        }
    }
}

#[test]
fn r2710_r2718_operations_have_distinct_wire_signatures_and_match_the_port_type() {
    let root = wsdl();
    let port_ops: Vec<&str> = find(
        children(&root, WSDL_NS, "portType")[0],
        WSDL_NS,
        "operation",
    )
    .iter()
    .map(|o| o.attribute(None, "name").unwrap())
    .collect();
    for binding in children(&root, WSDL_NS, "binding") {
        let ops: Vec<&str> = children(binding, WSDL_NS, "operation")
            .iter()
            .map(|o| o.attribute(None, "name").unwrap())
            .collect();
        assert_eq!(ops, port_ops);
    }
    let schema = &find(&root, XS_NS, "schema")[0];
    let mut inputs: Vec<&str> = port_ops.clone();
    inputs.dedup();
    assert_eq!(inputs.len(), port_ops.len());
    for op in port_ops {
        assert!(
            children(schema, XS_NS, "element")
                .iter()
                .any(|e| e.attribute(None, "name") == Some(op))
        );
    }
}

#[test]
fn r2754_soap_fault_names_match_their_wsdl_fault() {
    let root = wsdl();
    for binding in children(&root, WSDL_NS, "binding") {
        for wf in find(binding, WSDL_NS, "fault") {
            let name = wf.attribute(None, "name").unwrap();
            let inner = &wf.children()[0];
            assert_eq!(inner.attribute(None, "name"), Some(name));
        }
    }
}

#[test]
fn types_cover_arrays_enumerations_optional_nillable_and_datetime() {
    let text = support::service().wsdl("http://shop.example/soap");
    for expected in [
        r#"<xs:element name="line" type="tns:Line" minOccurs="0" maxOccurs="unbounded"/>"#,
        r#"<xs:simpleType name="Status"><xs:restriction base="xs:string"><xs:enumeration value="Pending"/>"#,
        r#"<xs:element name="note" type="xs:string" minOccurs="0"/>"#,
        r#"<xs:element name="tracking" type="xs:string" nillable="true"/>"#,
        r#"<xs:element name="placed" type="xs:dateTime"/>"#,
        r#"<soap12:address location="http://shop.example/soap"/>"#,
    ] {
        assert!(text.contains(expected), "{expected}");
    }
    // Each named type is defined once although two operations use it.
    assert_eq!(
        text.matches(r#"<xs:complexType name="PlaceOrder">"#)
            .count(),
        1
    );
}
