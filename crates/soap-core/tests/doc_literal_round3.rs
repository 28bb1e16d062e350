//! Document/literal echo operations in the manner of the SOAPBuilders interoperability
//! round 3 doc/literal suite: `echoString`, `echoStringArray`, `echoStruct` and `echoVoid`,
//! several operations sharing one `SOAPAction` (dispatch is by the body element), a nil
//! string and an empty array. The suite's facts and ideas only: the service, values and
//! messages here are our own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde::{Deserialize, Serialize};
use soap_core::{
    Element, FaultCode, Operation, Schema, SoapService, SoapVersion, TypeRef, XsdType, body,
    xml::XSI_NS,
};
use support::{V11, V12, envelope, post};

const NS: &str = "urn:example:interop-doclit";
/// One action for every operation.
const ACTION: &str = "urn:example:interop-doclit:echo";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EchoString {
    #[serde(default, with = "soap_core::body::nillable")]
    param0: Option<String>,
}
impl XsdType for EchoString {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("echoString", |t| t.nillable::<String>("param0"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EchoStringResponse {
    #[serde(rename = "return", default, with = "soap_core::body::nillable")]
    value: Option<String>,
}
impl XsdType for EchoStringResponse {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("echoStringResponse", |t| t.nillable::<String>("return"))
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct ArrayOfString {
    #[serde(default)]
    string: Vec<String>,
}
impl XsdType for ArrayOfString {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("ArrayOfString", |t| t.field::<Vec<String>>("string"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EchoStringArray {
    param0: ArrayOfString,
}
impl XsdType for EchoStringArray {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("echoStringArray", |t| t.field::<ArrayOfString>("param0"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EchoStringArrayResponse {
    #[serde(rename = "return")]
    value: ArrayOfString,
}
impl XsdType for EchoStringArrayResponse {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("echoStringArrayResponse", |t| {
            t.field::<ArrayOfString>("return")
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SoapStruct {
    var_string: String,
    var_int: i32,
    var_float: f32,
}
impl XsdType for SoapStruct {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("SOAPStruct", |t| {
            t.field::<String>("varString")
                .field::<i32>("varInt")
                .field::<f32>("varFloat")
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EchoStruct {
    param0: SoapStruct,
}
impl XsdType for EchoStruct {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("echoStruct", |t| t.field::<SoapStruct>("param0"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EchoStructResponse {
    #[serde(rename = "return")]
    value: SoapStruct,
}
impl XsdType for EchoStructResponse {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("echoStructResponse", |t| t.field::<SoapStruct>("return"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EchoVoid {}
impl XsdType for EchoVoid {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("echoVoid", |t| t)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EchoVoidResponse {}
impl XsdType for EchoVoidResponse {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("echoVoidResponse", |t| t)
    }
}

fn interop() -> SoapService {
    SoapService::new("InteropDocLit", NS)
        .operation(
            Operation::new("echoString", |r: EchoString, _| {
                Ok(EchoStringResponse { value: r.param0 })
            })
            .action(ACTION),
        )
        .operation(
            Operation::new("echoStringArray", |r: EchoStringArray, _| {
                Ok(EchoStringArrayResponse { value: r.param0 })
            })
            .action(ACTION),
        )
        .operation(
            Operation::new("echoStruct", |r: EchoStruct, _| {
                Ok(EchoStructResponse { value: r.param0 })
            })
            .action(ACTION),
        )
        .operation(
            Operation::new("echoVoid", |_: EchoVoid, _| Ok(EchoVoidResponse {})).action(ACTION),
        )
}

/// Sends `body` (the operation element) in `version` and returns the response's body entry.
fn call(version: SoapVersion, body: &str) -> Element {
    let reply = match version {
        SoapVersion::V11 => post(
            &interop(),
            V11,
            Some(&format!("\"{ACTION}\"")),
            envelope(version, "", body).as_bytes(),
        ),
        SoapVersion::V12 => post(
            &interop(),
            &format!("{V12}; action=\"{ACTION}\""),
            None,
            envelope(version, "", body).as_bytes(),
        ),
    };
    assert_eq!(reply.status, 200, "{}", reply.body);
    let envelope = reply.envelope.expect("a response envelope");
    assert_eq!(envelope.version, version);
    assert_eq!(envelope.body.len(), 1);
    envelope.body.into_iter().next().unwrap()
}

const VERSIONS: [SoapVersion; 2] = [SoapVersion::V11, SoapVersion::V12];

#[test]
fn echo_string_returns_the_string_with_markup_and_non_ascii_intact() {
    for version in VERSIONS {
        let entry = call(
            version,
            &format!(
                r#"<m:echoString xmlns:m="{NS}"><m:param0>  a &lt;b&gt; &amp; "c" — ü  </m:param0></m:echoString>"#
            ),
        );
        assert!(entry.is(NS, "echoStringResponse"), "{entry:?}");
        let out: EchoStringResponse = body::from_element(&entry).unwrap();
        assert_eq!(out.value.as_deref(), Some("  a <b> & \"c\" — ü  "));
    }
}

#[test]
fn echo_string_of_nil_answers_nil() {
    for version in VERSIONS {
        let entry = call(
            version,
            &format!(
                r#"<m:echoString xmlns:m="{NS}" xmlns:xsi="{XSI_NS}"><m:param0 xsi:nil="true"/></m:echoString>"#
            ),
        );
        let value = entry.child(NS, "return").expect("return is always written");
        assert!(value.is_nil(), "{entry:?}");
        let out: EchoStringResponse = body::from_element(&entry).unwrap();
        assert_eq!(out.value, None);
    }
}

#[test]
fn echo_string_of_the_empty_string_is_not_nil() {
    let entry = call(
        SoapVersion::V11,
        &format!(r#"<echoString xmlns="{NS}"><param0/></echoString>"#),
    );
    let value = entry.child(NS, "return").expect("return");
    assert!(!value.is_nil());
    let out: EchoStringResponse = body::from_element(&entry).unwrap();
    assert_eq!(out.value.as_deref(), Some(""));
}

#[test]
fn echo_string_array_keeps_order_and_empty_items() {
    for version in VERSIONS {
        let entry = call(
            version,
            &format!(
                r#"<echoStringArray xmlns="{NS}"><param0><string>one</string><string/><string>three</string></param0></echoStringArray>"#
            ),
        );
        let out: EchoStringArrayResponse = body::from_element(&entry).unwrap();
        assert_eq!(out.value.string, ["one", "", "three"]);
        let items = entry.child(NS, "return").unwrap().children();
        assert!(items.iter().all(|i| i.is(NS, "string")), "{items:?}");
    }
}

#[test]
fn echo_string_array_of_no_items_answers_an_empty_array() {
    for version in VERSIONS {
        let entry = call(
            version,
            &format!(r#"<echoStringArray xmlns="{NS}"><param0/></echoStringArray>"#),
        );
        let value = entry.child(NS, "return").expect("an empty return element");
        assert!(value.children().is_empty(), "{entry:?}");
        assert!(!value.is_nil());
        let out: EchoStringArrayResponse = body::from_element(&entry).unwrap();
        assert!(out.value.string.is_empty());
    }
}

#[test]
fn echo_struct_returns_each_member() {
    for version in VERSIONS {
        let entry = call(
            version,
            &format!(
                r#"<s:echoStruct xmlns:s="{NS}"><s:param0><s:varString>x &amp; y</s:varString><s:varInt>-42</s:varInt><s:varFloat>3.25</s:varFloat></s:param0></s:echoStruct>"#
            ),
        );
        let out: EchoStructResponse = body::from_element(&entry).unwrap();
        assert_eq!(
            out.value,
            SoapStruct {
                var_string: "x & y".into(),
                var_int: -42,
                var_float: 3.25
            }
        );
        let members: Vec<&str> = entry
            .child(NS, "return")
            .unwrap()
            .children()
            .iter()
            .map(Element::name)
            .collect();
        assert_eq!(members, ["varString", "varInt", "varFloat"]);
    }
}

#[test]
fn echo_struct_with_a_member_that_is_not_an_int_is_a_sender_fault() {
    let body = format!(
        r#"<echoStruct xmlns="{NS}"><param0><varString>x</varString><varInt>forty-two</varInt><varFloat>1</varFloat></param0></echoStruct>"#
    );
    let reply = post(
        &interop(),
        &format!("{V12}; action=\"{ACTION}\""),
        None,
        envelope(SoapVersion::V12, "", &body).as_bytes(),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.code(), FaultCode::Sender);
}

#[test]
fn echo_void_answers_an_empty_response_element() {
    for version in VERSIONS {
        let entry = call(version, &format!(r#"<echoVoid xmlns="{NS}"/>"#));
        assert!(entry.is(NS, "echoVoidResponse"), "{entry:?}");
        assert!(entry.children().is_empty() && entry.text().is_empty());
    }
}

#[test]
fn the_wsdl_declares_the_nillable_string_and_the_array() {
    let wsdl = interop().wsdl("http://interop.example/soap");
    assert!(
        wsdl.contains(r#"<xs:element name="param0" type="xs:string" nillable="true"/>"#),
        "{wsdl}"
    );
    assert!(
        wsdl.contains(
            r#"<xs:element name="string" type="xs:string" minOccurs="0" maxOccurs="unbounded"/>"#
        ),
        "{wsdl}"
    );
    for op in ["echoString", "echoStringArray", "echoStruct", "echoVoid"] {
        assert!(
            wsdl.contains(&format!(r#"<wsdl:operation name="{op}">"#)),
            "{op}"
        );
    }
}

#[test]
fn typed_parameters_as_toolkits_of_that_round_send_them_are_accepted() {
    let xsd = "http://www.w3.org/2001/XMLSchema";
    let enc = "http://schemas.xmlsoap.org/soap/encoding/";
    let entry = call(
        SoapVersion::V11,
        &format!(
            r#"<m:echoStruct xmlns:m="{NS}" xmlns:xsi="{XSI_NS}" xmlns:xsd="{xsd}" xmlns:enc="{enc}"><m:param0 xsi:type="m:SOAPStruct"><m:varString xsi:type="enc:string">s</m:varString><m:varInt xsi:type="xsd:int">7</m:varInt><m:varFloat xsi:type="xsd:float">0.5</m:varFloat></m:param0></m:echoStruct>"#
        ),
    );
    let out: EchoStructResponse = body::from_element(&entry).unwrap();
    assert_eq!(out.value.var_int, 7);
    // A struct member typed as another built-in is refused, naming the member.
    let body = format!(
        r#"<m:echoStruct xmlns:m="{NS}" xmlns:xsi="{XSI_NS}" xmlns:xsd="{xsd}"><m:param0><m:varString>s</m:varString><m:varInt xsi:type="xsd:float">7</m:varInt><m:varFloat>0.5</m:varFloat></m:param0></m:echoStruct>"#
    );
    let reply = post(
        &interop(),
        V11,
        Some(&format!("\"{ACTION}\"")),
        envelope(SoapVersion::V11, "", &body).as_bytes(),
    );
    assert_eq!(reply.status, 500);
    let fault = reply.fault();
    assert_eq!(fault.code, FaultCode::Sender);
    assert!(fault.reason.contains("element varInt "), "{}", fault.reason);
}
