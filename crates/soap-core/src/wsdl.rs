//! WSDL 1.1 generation (document/literal wrapped, SOAP 1.1 and 1.2 bindings).
//!
//! The document follows the WS-I Basic Profile 1.1 rules that apply to a generated
//! description: one `parameters` part per message referring to an element (R2204, R2201),
//! `style="document"` and `use="literal"` everywhere (R2705, R2706), no `namespace` on
//! `soap:body` (R2716), the HTTP transport (R2702), all schema inside `wsdl:types` (R2105)
//! and a distinct request element per operation (R2710). `tests/wsdl.rs` checks them.

use crate::service::SoapService;
use crate::xml::escape;

/// `wsdl:` namespace.
pub const WSDL_NS: &str = "http://schemas.xmlsoap.org/wsdl/";
/// SOAP 1.1 binding namespace.
pub const WSDL_SOAP11_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
/// SOAP 1.2 binding namespace.
pub const WSDL_SOAP12_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
/// XML Schema.
pub const XS_NS: &str = "http://www.w3.org/2001/XMLSchema";
/// The SOAP over HTTP transport URI.
pub const HTTP_TRANSPORT: &str = "http://schemas.xmlsoap.org/soap/http";

pub(crate) fn generate(service: &SoapService, address: &str) -> String {
    let parts = service.wsdl_parts();
    let name = escape(parts.name);
    let tns = escape(parts.namespace);
    let address = escape(address);
    let mut w = String::with_capacity(4096);
    w.push_str(&format!(
        r#"<?xml version="1.0" encoding="utf-8"?><wsdl:definitions name="{name}" targetNamespace="{tns}" xmlns:wsdl="{WSDL_NS}" xmlns:soap="{WSDL_SOAP11_NS}" xmlns:soap12="{WSDL_SOAP12_NS}" xmlns:xs="{XS_NS}" xmlns:tns="{tns}">"#
    ));
    w.push_str(&format!(
        r#"<wsdl:types><xs:schema targetNamespace="{tns}" elementFormDefault="qualified">"#
    ));
    let mut fault_elements: Vec<&str> = Vec::new();
    for op in &parts.operations {
        let n = escape(op.name);
        w.push_str(&format!(
            r#"<xs:element name="{n}" type="{}"/><xs:element name="{n}Response" type="{}"/>"#,
            escape(op.input.as_str()),
            escape(op.output.as_str())
        ));
        for (fault, ty) in &op.faults {
            if !fault_elements.contains(fault) {
                fault_elements.push(fault);
                w.push_str(&format!(
                    r#"<xs:element name="{}" type="{}"/>"#,
                    escape(fault),
                    escape(ty.as_str())
                ));
            }
        }
    }
    w.push_str(parts.schema.definitions());
    w.push_str("</xs:schema></wsdl:types>");
    for op in &parts.operations {
        let n = escape(op.name);
        w.push_str(&format!(
            r#"<wsdl:message name="{n}Request"><wsdl:part name="parameters" element="tns:{n}"/></wsdl:message><wsdl:message name="{n}Response"><wsdl:part name="parameters" element="tns:{n}Response"/></wsdl:message>"#
        ));
    }
    for fault in &fault_elements {
        let f = escape(fault);
        w.push_str(&format!(
            r#"<wsdl:message name="{f}Fault"><wsdl:part name="detail" element="tns:{f}"/></wsdl:message>"#
        ));
    }
    w.push_str(&format!(r#"<wsdl:portType name="{name}PortType">"#));
    for op in &parts.operations {
        let n = escape(op.name);
        w.push_str(&format!(
            r#"<wsdl:operation name="{n}"><wsdl:input message="tns:{n}Request"/><wsdl:output message="tns:{n}Response"/>"#
        ));
        for (fault, _) in &op.faults {
            let f = escape(fault);
            w.push_str(&format!(
                r#"<wsdl:fault name="{f}" message="tns:{f}Fault"/>"#
            ));
        }
        w.push_str("</wsdl:operation>");
    }
    w.push_str("</wsdl:portType>");
    for (suffix, p) in [("Soap11", "soap"), ("Soap12", "soap12")] {
        w.push_str(&format!(
            r#"<wsdl:binding name="{name}{suffix}" type="tns:{name}PortType"><{p}:binding style="document" transport="{HTTP_TRANSPORT}"/>"#
        ));
        for op in &parts.operations {
            w.push_str(&format!(
                r#"<wsdl:operation name="{}"><{p}:operation soapAction="{}" style="document"/><wsdl:input><{p}:body use="literal"/></wsdl:input><wsdl:output><{p}:body use="literal"/></wsdl:output>"#,
                escape(op.name),
                escape(&op.action)
            ));
            for (fault, _) in &op.faults {
                let f = escape(fault);
                w.push_str(&format!(
                    r#"<wsdl:fault name="{f}"><{p}:fault name="{f}" use="literal"/></wsdl:fault>"#
                ));
            }
            w.push_str("</wsdl:operation>");
        }
        w.push_str("</wsdl:binding>");
    }
    w.push_str(&format!(
        r#"<wsdl:service name="{name}"><wsdl:port name="{name}Soap11" binding="tns:{name}Soap11"><soap:address location="{address}"/></wsdl:port><wsdl:port name="{name}Soap12" binding="tns:{name}Soap12"><soap12:address location="{address}"/></wsdl:port></wsdl:service></wsdl:definitions>"#
    ));
    w
}
