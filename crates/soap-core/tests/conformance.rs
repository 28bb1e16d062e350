//! SOAP 1.2 Part 1 (and the SOAP 1.1 counterparts) message-level rules a receiving node can
//! be checked on without IO: each test names the section it follows. The W3C SOAP 1.2 test
//! collection's server-side assertions were used as test ideas (no text taken from it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use soap_core::{Error, FaultCode, SOAP11_NS, SOAP12_NS, SoapVersion, XmlLimits};
use support::*;

const ACTION: &str = "\"urn:example:orders/placeOrder\"";

fn v12(header: &str, body: &str) -> Reply {
    post(
        &service(),
        V12,
        None,
        envelope(SoapVersion::V12, header, body).as_bytes(),
    )
}

fn v11(header: &str, body: &str) -> Reply {
    post(
        &service(),
        V11,
        Some(ACTION),
        envelope(SoapVersion::V11, header, body).as_bytes(),
    )
}

/// Part 1 section 5.4.7 and section 5.4.7's Upgrade header: an envelope in another
/// namespace gets VersionMismatch, with the envelopes we support listed in `Upgrade`.
#[test]
fn p1_5_4_7_version_mismatch_lists_the_supported_envelopes() {
    let reply = post(
        &service(),
        V12,
        None,
        br#"<e:Envelope xmlns:e="urn:soap:next"><e:Body/></e:Envelope>"#,
    );
    assert_eq!(reply.code(), FaultCode::VersionMismatch);
    assert_eq!(reply.status, 500);
    let env = reply.envelope.as_ref().unwrap();
    let upgrade = env
        .headers
        .iter()
        .find(|h| h.is(SOAP12_NS, "Upgrade"))
        .unwrap();
    let qnames: Vec<_> = upgrade
        .children()
        .iter()
        .filter(|c| c.is(SOAP12_NS, "SupportedEnvelope"))
        .map(|c| {
            c.resolve_qname(c.attribute(None, "qname").unwrap())
                .unwrap()
        })
        .collect();
    assert!(qnames.contains(&(Some(SOAP12_NS.into()), "Envelope".into())));
    assert!(qnames.contains(&(Some(SOAP11_NS.into()), "Envelope".into())));
    // A root that is not Envelope, even in the right namespace, is not a SOAP envelope.
    let reply = post(
        &service(),
        V12,
        None,
        format!(r#"<e:Body xmlns:e="{SOAP12_NS}"/>"#).as_bytes(),
    );
    assert_eq!(reply.code(), FaultCode::VersionMismatch);
}

/// Part 1 section 5.2.3: mustUnderstand is an xs:boolean; `true`, `1`, `false`, `0` (with
/// surrounding whitespace) are its only values. Anything else is a Sender fault, not a
/// silently optional block. SOAP 1.1 section 4.2.3 likewise (`0`/`1`).
#[test]
fn p1_5_2_3_must_understand_must_be_a_boolean() {
    let block = |v: &str| {
        format!(
            r#"<x:trace xmlns:x="urn:example:trace" e:mustUnderstand="{v}" xmlns:e="{SOAP12_NS}"/>"#
        )
    };
    for ok in ["true", "1", "false", "0", " true "] {
        let reply = v12(&block(ok), ORDER);
        assert_eq!(reply.status, 200, "{ok:?}: {}", reply.body);
    }
    for bad in ["yes", "TRUE", "2", ""] {
        let reply = v12(&block(bad), ORDER);
        assert_eq!(reply.status, 400, "{bad:?}: {}", reply.body);
        assert_eq!(reply.code(), FaultCode::Sender, "{bad:?}");
        assert!(reply.fault().reason.contains("not a boolean"), "{bad:?}");
    }
    let block11 =
        format!(r#"<x:audit xmlns:x="urn:audit" s:mustUnderstand="maybe" xmlns:s="{SOAP11_NS}"/>"#);
    let reply = v11(&block11, ORDER);
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("soap:Client"), "{}", reply.body);
    // `relay` (section 5.2.4) is a boolean too.
    let relay = format!(
        r#"<x:trace xmlns:x="urn:example:trace" e:relay="sometimes" xmlns:e="{SOAP12_NS}"/>"#
    );
    assert_eq!(v12(&relay, ORDER).code(), FaultCode::Sender);
}

/// Part 1 sections 2.4 and 5.4.8: an unknown mandatory block aimed at us is MustUnderstand
/// with one NotUnderstood block per block; a block with mustUnderstand false, or aimed at
/// the `none` role, or at a role we do not play, is not processed and causes no fault.
#[test]
fn p1_2_4_must_understand_faults_name_every_block() {
    let a = format!(r#"<x:a xmlns:x="urn:a" e:mustUnderstand="true" xmlns:e="{SOAP12_NS}"/>"#);
    let b = format!(r#"<y:b xmlns:y="urn:b" e:mustUnderstand="1" xmlns:e="{SOAP12_NS}"/>"#);
    let reply = v12(&format!("{a}{b}"), ORDER);
    assert_eq!(reply.status, 500);
    assert_eq!(reply.code(), FaultCode::MustUnderstand);
    let env = reply.envelope.as_ref().unwrap();
    let named: Vec<_> = env
        .headers
        .iter()
        .filter(|h| h.is(SOAP12_NS, "NotUnderstood"))
        .map(|h| {
            h.resolve_qname(h.attribute(None, "qname").unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(
        named,
        [
            (Some("urn:a".to_owned()), "a".to_owned()),
            (Some("urn:b".to_owned()), "b".to_owned())
        ]
    );
    for ignored in [
        format!(r#"<x:a xmlns:x="urn:a" e:mustUnderstand="false" xmlns:e="{SOAP12_NS}"/>"#),
        format!(
            r#"<x:a xmlns:x="urn:a" e:mustUnderstand="true" e:role="http://www.w3.org/2003/05/soap-envelope/role/none" xmlns:e="{SOAP12_NS}"/>"#
        ),
        format!(
            r#"<x:a xmlns:x="urn:a" e:mustUnderstand="true" e:role="urn:someone-else" xmlns:e="{SOAP12_NS}"/>"#
        ),
    ] {
        assert_eq!(v12(&ignored, ORDER).status, 200, "{ignored}");
    }
    // ultimateReceiver and next are us.
    for role in [
        "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver",
        "http://www.w3.org/2003/05/soap-envelope/role/next",
    ] {
        let block = format!(
            r#"<x:a xmlns:x="urn:a" e:mustUnderstand="true" e:role="{role}" xmlns:e="{SOAP12_NS}"/>"#
        );
        assert_eq!(
            v12(&block, ORDER).code(),
            FaultCode::MustUnderstand,
            "{role}"
        );
    }
}

/// Part 1 section 5.4.6 and part 2 section 7.5.1.2: Sender faults are 400, the others 500;
/// Code/Value is one of the five defined codes; Reason/Text carries xml:lang.
#[test]
fn p1_5_4_fault_codes_reasons_and_statuses() {
    let unknown = r#"<dropTable xmlns="urn:example:orders"/>"#;
    let reply = v12("", unknown);
    assert_eq!(reply.status, 400);
    let env = reply.envelope.as_ref().unwrap();
    let fault = &env.body[0];
    let code = fault.child(SOAP12_NS, "Code").unwrap();
    let value = code.child(SOAP12_NS, "Value").unwrap();
    assert_eq!(
        value.resolve_qname(value.text()),
        Some((Some(SOAP12_NS.to_owned()), "Sender".to_owned()))
    );
    let text = fault
        .child(SOAP12_NS, "Reason")
        .and_then(|r| r.child(SOAP12_NS, "Text"))
        .unwrap();
    assert_eq!(
        text.attribute(Some("http://www.w3.org/XML/1998/namespace"), "lang"),
        Some("en")
    );
    // A subcode round-trips: section 5.4.6.2 (Subcode/Value is a QName).
    let f = soap_core::Fault::sender("no").with_subcode("urn:app", "Quota");
    let written = f.to_element(SoapVersion::V12).to_xml();
    let el = soap_core::xml::parse(written.as_bytes(), &XmlLimits::default()).unwrap();
    let back = soap_core::Fault::from_element(SoapVersion::V12, &el).unwrap();
    assert_eq!(back.subcodes, [("urn:app".to_owned(), "Quota".to_owned())]);
    // SOAP 1.1 (section 6.2): every fault is 500, dotted codes keep their refinement.
    let reply = v11("", unknown);
    assert_eq!(reply.status, 500);
    let dotted = format!(
        r#"<s:Fault xmlns:s="{SOAP11_NS}"><faultcode>s:Client.Quota</faultcode><faultstring>x</faultstring></s:Fault>"#
    );
    let el = soap_core::xml::parse(dotted.as_bytes(), &XmlLimits::default()).unwrap();
    let read = soap_core::Fault::from_element(SoapVersion::V11, &el).unwrap();
    assert_eq!(read.code, FaultCode::Sender);
    assert_eq!(
        read.subcodes,
        [(SOAP11_NS.to_owned(), "Client.Quota".to_owned())]
    );
}

/// Part 1 section 5.1.1: encodingStyle may not appear on Envelope, Header or Body; on a body
/// entry, an encoding we do not support is DataEncodingUnknown (section 5.4.7's table,
/// 500). The `none` encoding is no claim and is accepted. SOAP 1.1 (section 4.1.1) allows it
/// on Envelope and Body, where it scopes the entries, and answers Client.
#[test]
fn p1_5_1_1_encoding_style() {
    let ns = SOAP12_NS;
    for (what, doc) in [
        (
            "Envelope",
            format!(
                r#"<e:Envelope xmlns:e="{ns}" e:encodingStyle="urn:enc"><e:Body>{ORDER}</e:Body></e:Envelope>"#
            ),
        ),
        (
            "Header",
            format!(
                r#"<e:Envelope xmlns:e="{ns}"><e:Header e:encodingStyle="urn:enc"/><e:Body>{ORDER}</e:Body></e:Envelope>"#
            ),
        ),
        (
            "Body",
            format!(
                r#"<e:Envelope xmlns:e="{ns}"><e:Body e:encodingStyle="urn:enc">{ORDER}</e:Body></e:Envelope>"#
            ),
        ),
    ] {
        let reply = post(&service(), V12, None, doc.as_bytes());
        assert_eq!(reply.status, 400, "{what}");
        assert!(
            reply.fault().reason.contains(what),
            "{what}: {}",
            reply.body
        );
    }
    let encoded = format!(
        r#"<placeOrder xmlns="urn:example:orders" xmlns:e="{ns}" e:encodingStyle="http://www.w3.org/2003/05/soap-encoding"><customer>c</customer><line><sku>A-1</sku><quantity>1</quantity></line></placeOrder>"#
    );
    let reply = v12("", &encoded);
    assert_eq!(reply.code(), FaultCode::DataEncodingUnknown);
    assert_eq!(reply.status, 500);
    let none = encoded.replace(
        "http://www.w3.org/2003/05/soap-encoding",
        "http://www.w3.org/2003/05/soap-envelope/encoding/none",
    );
    assert_eq!(v12("", &none).status, 200);

    let doc11 = format!(
        r#"<s:Envelope xmlns:s="{SOAP11_NS}" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>{ORDER}</s:Body></s:Envelope>"#
    );
    let reply = post(&service(), V11, Some(ACTION), doc11.as_bytes());
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("soap:Client"), "{}", reply.body);
    assert!(reply.body.contains("encodingStyle"), "{}", reply.body);
}

/// Part 1 section 5: a SOAP message has no DTD and no processing instructions; the XML
/// declaration is allowed. Both are Sender faults, refused before any element is built.
#[test]
fn p1_5_no_dtd_and_no_processing_instructions() {
    let ok = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>{}"#,
        envelope(SoapVersion::V12, "", ORDER)
    );
    assert_eq!(post(&service(), V12, None, ok.as_bytes()).status, 200);
    for doc in [
        format!(
            r#"<?xml-stylesheet href="x.xsl"?>{}"#,
            envelope(SoapVersion::V12, "", ORDER)
        ),
        envelope(
            SoapVersion::V12,
            "",
            &format!("<?app do-something?>{ORDER}"),
        ),
        format!(
            r#"<!DOCTYPE e:Envelope>{}"#,
            envelope(SoapVersion::V12, "", ORDER)
        ),
    ] {
        let reply = post(&service(), V12, None, doc.as_bytes());
        assert_eq!(reply.status, 400, "{doc}");
        assert_eq!(reply.code(), FaultCode::Sender, "{doc}");
    }
    let pi = soap_core::Envelope::parse(
        format!("<?pi x?>{}", envelope(SoapVersion::V11, "", ORDER)).as_bytes(),
        &XmlLimits::default(),
    );
    assert!(matches!(
        pi,
        Err(Error::ProcessingInstructionRefused { position: 0 })
    ));
}

/// Part 1 section 5.3 / XML Schema part 1 section 2.6.1: `xsi:type` naming the declared
/// type is accepted on a body field; another type is refused (`tests/xsi_type.rs`).
#[test]
fn xsi_type_naming_the_declared_type_is_accepted() {
    let typed = r#"<placeOrder xmlns="urn:example:orders" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema"><customer xsi:type="xs:string">c-1</customer><line><sku>A-1</sku><quantity xsi:type="xs:unsignedInt">2</quantity></line></placeOrder>"#;
    let reply = v12("", typed);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("<quantity>2</quantity>"),
        "{}",
        reply.body
    );
}

/// Part 1 section 5.1: after Body, nothing; Header at most once and first.
#[test]
fn p1_5_1_envelope_children_order() {
    let ns = SOAP12_NS;
    for doc in [
        format!(r#"<e:Envelope xmlns:e="{ns}"><e:Body>{ORDER}</e:Body><e:Header/></e:Envelope>"#),
        format!(
            r#"<e:Envelope xmlns:e="{ns}"><e:Header/><e:Header/><e:Body>{ORDER}</e:Body></e:Envelope>"#
        ),
        format!(
            r#"<e:Envelope xmlns:e="{ns}"><e:Body>{ORDER}</e:Body><x xmlns="urn:x"/></e:Envelope>"#
        ),
    ] {
        let reply = post(&service(), V12, None, doc.as_bytes());
        assert_eq!(reply.code(), FaultCode::Sender, "{doc}");
    }
}
