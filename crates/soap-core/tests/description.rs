//! Reading a WSDL on the client side: our own generated WSDL read back into a `Description`
//! and used to call the service over both versions; hostile and broken documents refused
//! with the reason. (Real peers' WSDLs, spyne's and node `soap`'s, are read in `peers.rs`.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::SystemTime;

use soap_core::{Client, Description, Error, FaultCode, LimitKind, SoapVersion, Style, XmlLimits};
use support::*;

fn order(quantity: u32) -> PlaceOrder {
    PlaceOrder {
        customer: "c-1".into(),
        lines: vec![Line {
            sku: "A-1".into(),
            quantity,
        }],
        note: None,
    }
}

fn description() -> Description {
    let wsdl = service().wsdl("http://shop.example/soap");
    Description::parse(wsdl.as_bytes(), &XmlLimits::default()).unwrap()
}

#[test]
fn our_wsdl_reads_back_into_its_ports_and_operations() {
    let d = description();
    assert_eq!(d.target_namespace.as_deref(), Some(NS));
    assert_eq!(d.services.len(), 1);
    assert_eq!(d.services[0].name, "Orders");
    let ports: Vec<(&str, SoapVersion)> = d.ports().map(|p| (p.name.as_str(), p.version)).collect();
    assert_eq!(
        ports,
        [
            ("OrdersSoap11", SoapVersion::V11),
            ("OrdersSoap12", SoapVersion::V12)
        ]
    );
    for port in d.ports() {
        assert_eq!(port.address, "http://shop.example/soap");
        let names: Vec<&str> = port.operations.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["placeOrder", "placeSecureOrder"]);
        let op = port.operation("placeOrder").unwrap();
        assert_eq!(op.action.as_deref(), Some("urn:example:orders/placeOrder"));
        assert_eq!(op.style, Style::Document);
        assert!(op.literal && op.input_qualified);
        let input = op.input.as_ref().unwrap();
        assert_eq!(
            (input.namespace.as_deref(), input.name.as_str()),
            (Some(NS), "placeOrder")
        );
        assert_eq!(op.output.as_ref().unwrap().name, "placeOrderResponse");
        assert_eq!(op.faults.len(), 1);
        assert_eq!(op.faults[0].0, "outOfStock");
        assert_eq!(op.faults[0].1.as_ref().unwrap().name, "outOfStock");
    }
    assert_eq!(d.port_for(SoapVersion::V12).unwrap().name, "OrdersSoap12");
    assert!(matches!(
        d.port("Orders", "Nope"),
        Err(Error::InvalidWsdl(_))
    ));
}

#[test]
fn a_client_from_our_wsdl_calls_the_service_over_both_versions() {
    let s = service();
    let d = description();
    for port in d.ports() {
        let client = Client::from_port(port).unwrap();
        assert_eq!(client.version(), port.version);
        assert_eq!(client.endpoint(), "http://shop.example/soap");
        let request = client.request("placeOrder", &order(2)).unwrap();
        let (parts, body) = request.into_parts();
        let response = s.handle(&parts, &body, SystemTime::now());
        assert_eq!(response.status(), 200, "{}", port.name);
        let out: PlaceOrderResponse = client.response(&response).unwrap();
        assert_eq!(out.lines[0].quantity, 2);

        let request = client.request("placeOrder", &order(1_000)).unwrap();
        let (parts, body) = request.into_parts();
        let response = s.handle(&parts, &body, SystemTime::now());
        let Err(Error::Fault(fault)) = client.response::<PlaceOrderResponse, _>(&response) else {
            panic!("expected a fault");
        };
        assert_eq!(fault.code, FaultCode::Sender);
        let detail: OutOfStock = fault.detail("outOfStock").unwrap().unwrap();
        assert_eq!(detail.sku, "A-1");
    }
}

const TWO_PORTS: &str = r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:http="http://schemas.xmlsoap.org/wsdl/http/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" targetNamespace="urn:t">
  <types><xs:schema targetNamespace="urn:t"><xs:element name="op"/></xs:schema></types>
  <message name="in"><part name="p" element="t:op"/></message>
  <portType name="PT"><operation name="op"><input message="t:in"/></operation></portType>
  <binding name="B" type="t:PT"><soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="op"><soap:operation soapAction=""/></operation></binding>
  <binding name="H" type="t:PT"><http:binding verb="POST"/><operation name="op"/></binding>
  <binding name="R" type="t:PT"><soap:binding style="rpc" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="op"><input><soap:body use="encoded"/></input></operation></binding>
  <service name="S">
    <port name="soap" binding="t:B"><soap:address location="http://h.example/s"/></port>
    <port name="http" binding="t:H"><http:address location="http://h.example/h"/></port>
    <port name="rpc" binding="t:R"><soap:address location="http://h.example/r"/></port>
  </service>
</definitions>"#;

#[derive(serde::Serialize)]
struct Op {
    a: String,
}

#[test]
fn non_soap_ports_are_left_out_and_rpc_encoded_is_refused_when_called() {
    let d = Description::parse(TWO_PORTS.as_bytes(), &XmlLimits::default()).unwrap();
    let names: Vec<&str> = d.ports().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["soap", "rpc"]);

    // Document/literal, no soapAction, a schema without elementFormDefault (unqualified).
    let port = d.port("S", "soap").unwrap();
    let op = port.operation("op").unwrap();
    assert_eq!(op.action, None);
    assert!(!op.input_qualified);
    let client = Client::from_port(port).unwrap();
    let request = client.request("op", &Op { a: "x".into() }).unwrap();
    assert_eq!(request.headers()["soapaction"], "\"\"");
    let body = std::str::from_utf8(request.body()).unwrap();
    assert!(
        body.contains(r#"<op xmlns="urn:t"><a xmlns="">x</a></op>"#),
        "{body}"
    );

    let rpc = d.port("S", "rpc").unwrap();
    assert_eq!(rpc.operations[0].style, Style::Rpc);
    assert!(!rpc.operations[0].literal);
    let client = Client::from_port(rpc).unwrap();
    assert!(matches!(
        client.request("op", &Op { a: "x".into() }),
        Err(Error::Config(_))
    ));
}

#[test]
fn broken_references_are_named() {
    for (doc, needle) in [
        (r#"<x xmlns="urn:not-wsdl"/>"#, "not wsdl:definitions"),
        (
            r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:t="urn:t" targetNamespace="urn:t">
              <service name="S"><port name="p" binding="t:Missing"/></service></definitions>"#,
            "binding {urn:t}Missing",
        ),
        (
            r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" targetNamespace="urn:t">
              <service name="S"><port name="p" binding="u:B"/></service></definitions>"#,
            "not a resolvable QName",
        ),
        (
            r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:t="urn:t"
                 xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" targetNamespace="urn:t">
              <binding name="B" type="t:PT"><soap:binding transport="http://schemas.xmlsoap.org/soap/http"/></binding>
              <service name="S"><port name="p" binding="t:B"/></service></definitions>"#,
            "no soap:address",
        ),
        (
            r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:t="urn:t"
                 xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" targetNamespace="urn:t">
              <binding name="B" type="t:PT"><soap:binding transport="http://schemas.xmlsoap.org/soap/http"/></binding>
              <service name="S"><port name="p" binding="t:B"><soap:address location="http://x/"/></port></service></definitions>"#,
            "portType {urn:t}PT",
        ),
        (
            r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"><message/></definitions>"#,
            "without the \"name\" attribute",
        ),
    ] {
        let err = Description::parse(doc.as_bytes(), &XmlLimits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidWsdl(r) if r.contains(needle)),
            "{needle}: {err:?}"
        );
    }
}

#[test]
fn hostile_documents_are_refused_by_the_hardened_reader() {
    let limits = XmlLimits::default();
    let lol = br#"<!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><definitions xmlns="http://schemas.xmlsoap.org/wsdl/" name="&b;"/>"#;
    assert!(matches!(
        Description::parse(lol, &limits),
        Err(Error::DoctypeRefused)
    ));
    let xxe = br#"<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><definitions xmlns="http://schemas.xmlsoap.org/wsdl/">&x;</definitions>"#;
    assert!(matches!(
        Description::parse(xxe, &limits),
        Err(Error::DoctypeRefused)
    ));
    let deep = format!(
        "<definitions xmlns=\"http://schemas.xmlsoap.org/wsdl/\">{}{}</definitions>",
        "<documentation>".repeat(10_000),
        "</documentation>".repeat(10_000)
    );
    assert!(matches!(
        Description::parse(deep.as_bytes(), &limits),
        Err(Error::LimitExceeded {
            limit: LimitKind::Depth,
            ..
        })
    ));
    let small = XmlLimits::default().max_body_bytes(100);
    let wsdl = service().wsdl("http://shop.example/soap");
    assert!(matches!(
        Description::parse(wsdl.as_bytes(), &small),
        Err(Error::LimitExceeded {
            limit: LimitKind::BodyBytes,
            ..
        })
    ));
    // Processing instructions are harmless in a WSDL and skipped (a SOAP message refuses them).
    let pi = format!(
        "<?xml version=\"1.0\"?><?xml-stylesheet href=\"w.xsl\"?>{}",
        wsdl.trim_start_matches(r#"<?xml version="1.0" encoding="utf-8"?>"#)
    );
    assert_eq!(
        Description::parse(pi.as_bytes(), &limits).unwrap(),
        description()
    );
}
