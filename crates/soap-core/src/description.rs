//! Reading a WSDL 1.1 document on the client side: its services, SOAP ports (version,
//! address, binding) and each operation's `soapAction`, style and message elements, enough
//! to build a [`Client`](crate::Client) for a port. No code is generated and no schema type
//! is interpreted beyond `elementFormDefault`.
//!
//! The document goes through the same hardened reader as SOAP messages (no DOCTYPE, so no
//! entities; the [`XmlLimits`] apply), except that processing instructions are skipped
//! rather than refused. `wsdl:import` and `xs:import` are not followed: a reference to
//! something that is not in the document is an [`Error::InvalidWsdl`] naming it.
//!
//! ```
//! use soap_core::{Client, Description, SoapVersion, XmlLimits};
//!
//! let wsdl = br#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"
//!     xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" xmlns:tns="urn:echo"
//!     targetNamespace="urn:echo">
//!   <message name="in"><part name="parameters" element="tns:echo"/></message>
//!   <message name="out"><part name="parameters" element="tns:echoResponse"/></message>
//!   <portType name="EchoPortType">
//!     <operation name="echo"><input message="tns:in"/><output message="tns:out"/></operation>
//!   </portType>
//!   <binding name="EchoSoap12" type="tns:EchoPortType">
//!     <soap12:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
//!     <operation name="echo"><soap12:operation soapAction="urn:echo#echo"/></operation>
//!   </binding>
//!   <service name="Echo"><port name="EchoSoap12" binding="tns:EchoSoap12">
//!     <soap12:address location="http://127.0.0.1:8080/echo"/></port></service>
//! </definitions>"#;
//! let description = Description::parse(wsdl, &XmlLimits::default())?;
//! let port = description.port("Echo", "EchoSoap12")?;
//! assert_eq!(port.version, SoapVersion::V12);
//! assert_eq!(port.operation("echo").and_then(|o| o.action.as_deref()), Some("urn:echo#echo"));
//!
//! let client = Client::from_port(port)?;
//! # #[derive(serde::Serialize)] struct Echo { text: String }
//! let request = client.request("echo", &Echo { text: "hi".into() })?;
//! assert_eq!(request.uri(), "http://127.0.0.1:8080/echo");
//! # Ok::<(), soap_core::Error>(())
//! ```

use crate::envelope::SoapVersion;
use crate::error::{Error, Result};
use crate::wsdl::{HTTP_TRANSPORT, WSDL_NS, WSDL_SOAP11_NS, WSDL_SOAP12_NS, XS_NS};
use crate::xml::{self, Element, XmlLimits};

/// A namespace-qualified name read from the document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QName {
    /// The namespace name, if the name is qualified.
    pub namespace: Option<String>,
    /// The local name.
    pub name: String,
}

impl QName {
    fn matches(&self, namespace: Option<&str>, name: &str) -> bool {
        self.namespace.as_deref() == namespace && self.name == name
    }
}

impl std::fmt::Display for QName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{{}}}{}",
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }
}

/// A binding operation's style (WSDL 1.1 section 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `style="document"` (the default): the body holds the part's element.
    Document,
    /// `style="rpc"`: a wrapper named after the operation; [`Client`](crate::Client) does
    /// not build these.
    Rpc,
}

/// An operation as one SOAP binding describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OperationDescription {
    /// The operation name.
    pub name: String,
    /// `soapAction` of the binding operation; `None` when absent or empty.
    pub action: Option<String>,
    /// The operation's style (operation, else binding, else document).
    pub style: Style,
    /// Whether both `soap:body` elements say `use="literal"` (or nothing).
    pub literal: bool,
    /// The request element (the input message's `element` part), if it has one.
    pub input: Option<QName>,
    /// The response element, if the operation has an output with an `element` part.
    pub output: Option<QName>,
    /// Fault names with their detail elements.
    pub faults: Vec<(String, Option<QName>)>,
    /// Whether child elements of the request element are namespace-qualified: the
    /// `elementFormDefault` of the schema in `wsdl:types` that declares the input element
    /// (qualified if that schema is not in the document).
    pub input_qualified: bool,
}

/// A SOAP port: a binding at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Port {
    /// The port name.
    pub name: String,
    /// The binding's name.
    pub binding: QName,
    /// From the binding's `soap:binding` (1.1) or `soap12:binding` (1.2).
    pub version: SoapVersion,
    /// `location` of the port's `soap:address`.
    pub address: String,
    /// The operations of the binding, in document order.
    pub operations: Vec<OperationDescription>,
}

impl Port {
    /// The operation with this name.
    pub fn operation(&self, name: &str) -> Option<&OperationDescription> {
        self.operations.iter().find(|o| o.name == name)
    }
}

/// A `wsdl:service` and its SOAP-over-HTTP ports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceDescription {
    /// The service name.
    pub name: String,
    /// Its ports with a SOAP 1.1 or 1.2 binding over HTTP; other ports are left out.
    pub ports: Vec<Port>,
}

/// What a WSDL 1.1 document says a client needs: services, ports and operations.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Description {
    /// `targetNamespace` of `wsdl:definitions`.
    pub target_namespace: Option<String>,
    /// The services, in document order.
    pub services: Vec<ServiceDescription>,
}

struct PortTypeOperation<'a> {
    name: &'a str,
    input: Option<QName>,
    output: Option<QName>,
    faults: Vec<(&'a str, Option<QName>)>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidWsdl(reason.into())
}

fn children<'a>(el: &'a Element, ns: &'a str, name: &'a str) -> impl Iterator<Item = &'a Element> {
    el.children().iter().filter(move |c| c.is(ns, name))
}

fn required<'a>(el: &'a Element, attribute: &str) -> Result<&'a str> {
    el.attribute(None, attribute).ok_or_else(|| {
        invalid(format!(
            "wsdl:{} without the {attribute:?} attribute",
            el.name()
        ))
    })
}

fn qname_attribute(el: &Element, attribute: &str) -> Result<QName> {
    let raw = required(el, attribute)?;
    let (namespace, name) = el
        .resolve_qname(raw)
        .filter(|(_, local)| !local.is_empty() && !local.contains(':'))
        .ok_or_else(|| invalid(format!("{attribute}={raw:?} is not a resolvable QName")))?;
    Ok(QName { namespace, name })
}

impl Description {
    /// Reads a WSDL 1.1 document with the hardened reader and `limits`.
    pub fn parse(document: &[u8], limits: &XmlLimits) -> Result<Description> {
        let root = xml::parse_document(document, limits)?;
        Description::from_element(&root)
    }

    /// Reads an already parsed `wsdl:definitions` element.
    pub fn from_element(root: &Element) -> Result<Description> {
        if !root.is(WSDL_NS, "definitions") {
            return Err(invalid(format!(
                "the root element is {{{}}}{}, not wsdl:definitions",
                root.namespace().unwrap_or(""),
                root.name()
            )));
        }
        let tns = root.attribute(None, "targetNamespace");
        let in_tns = |el: &Element, what: &str| -> Result<QName> {
            Ok(QName {
                namespace: tns.map(str::to_owned),
                name: required(el, what)?.to_owned(),
            })
        };

        // Messages: name -> the element of their single `element` part (document/literal;
        // a message without one maps to None).
        let mut messages: Vec<(QName, Option<QName>)> = Vec::new();
        for m in children(root, WSDL_NS, "message") {
            let element = children(m, WSDL_NS, "part")
                .find(|p| p.attribute(None, "element").is_some())
                .map(|p| qname_attribute(p, "element"))
                .transpose()?;
            messages.push((in_tns(m, "name")?, element));
        }
        let message_element = |el: &Element| -> Result<Option<QName>> {
            let reference = qname_attribute(el, "message")?;
            messages
                .iter()
                .find(|(name, _)| *name == reference)
                .map(|(_, element)| element.clone())
                .ok_or_else(|| invalid(format!("message {reference} is not in the document")))
        };

        let mut port_types: Vec<(QName, Vec<PortTypeOperation<'_>>)> = Vec::new();
        for pt in children(root, WSDL_NS, "portType") {
            let mut operations = Vec::new();
            for op in children(pt, WSDL_NS, "operation") {
                let input = children(op, WSDL_NS, "input").next();
                let output = children(op, WSDL_NS, "output").next();
                let mut faults = Vec::new();
                for f in children(op, WSDL_NS, "fault") {
                    faults.push((required(f, "name")?, message_element(f)?));
                }
                operations.push(PortTypeOperation {
                    name: required(op, "name")?,
                    input: input.map(&message_element).transpose()?.flatten(),
                    output: output.map(&message_element).transpose()?.flatten(),
                    faults,
                });
            }
            port_types.push((in_tns(pt, "name")?, operations));
        }

        let schemas: Vec<&Element> = children(root, WSDL_NS, "types")
            .flat_map(|t| children(t, XS_NS, "schema"))
            .collect();

        let mut services = Vec::new();
        for s in children(root, WSDL_NS, "service") {
            let mut ports = Vec::new();
            for p in children(s, WSDL_NS, "port") {
                let binding_name = qname_attribute(p, "binding")?;
                let binding = children(root, WSDL_NS, "binding")
                    .find(|b| {
                        b.attribute(None, "name")
                            .is_some_and(|n| binding_name.matches(tns, n))
                    })
                    .ok_or_else(|| {
                        invalid(format!("binding {binding_name} is not in the document"))
                    })?;
                let Some((version, soap_ns, soap_binding)) = soap_binding(binding) else {
                    continue; // an HTTP or other non-SOAP binding
                };
                if soap_binding.attribute(None, "transport") != Some(HTTP_TRANSPORT) {
                    continue; // SOAP over something else than HTTP
                }
                let Some(address) = children(p, soap_ns, "address").next() else {
                    return Err(invalid(format!(
                        "port {:?} has no soap:address",
                        required(p, "name")?
                    )));
                };
                let port_type_name = qname_attribute(binding, "type")?;
                let port_type = port_types
                    .iter()
                    .find(|(name, _)| *name == port_type_name)
                    .map(|(_, ops)| ops)
                    .ok_or_else(|| {
                        invalid(format!("portType {port_type_name} is not in the document"))
                    })?;
                let binding_style = style(soap_binding.attribute(None, "style"))?;
                let mut operations = Vec::new();
                for op in children(binding, WSDL_NS, "operation") {
                    let name = required(op, "name")?;
                    let abstract_op =
                        port_type.iter().find(|o| o.name == name).ok_or_else(|| {
                            invalid(format!(
                                "binding operation {name:?} is not in portType {port_type_name}"
                            ))
                        })?;
                    let soap_op = children(op, soap_ns, "operation").next();
                    let literal = ["input", "output"].iter().all(|dir| {
                        children(op, WSDL_NS, dir)
                            .flat_map(|d| children(d, soap_ns, "body"))
                            .all(|b| b.attribute(None, "use").is_none_or(|u| u == "literal"))
                    });
                    let input_qualified = abstract_op
                        .input
                        .as_ref()
                        .is_none_or(|input| element_form_qualified(&schemas, input));
                    operations.push(OperationDescription {
                        name: name.to_owned(),
                        action: soap_op
                            .and_then(|o| o.attribute(None, "soapAction"))
                            .filter(|a| !a.is_empty())
                            .map(str::to_owned),
                        style: match soap_op.and_then(|o| o.attribute(None, "style")) {
                            Some(s) => style(Some(s))?,
                            None => binding_style,
                        },
                        literal,
                        input: abstract_op.input.clone(),
                        output: abstract_op.output.clone(),
                        faults: abstract_op
                            .faults
                            .iter()
                            .map(|(n, e)| ((*n).to_owned(), e.clone()))
                            .collect(),
                        input_qualified,
                    });
                }
                ports.push(Port {
                    name: required(p, "name")?.to_owned(),
                    binding: binding_name,
                    version,
                    address: required(address, "location")?.to_owned(),
                    operations,
                });
            }
            services.push(ServiceDescription {
                name: required(s, "name")?.to_owned(),
                ports,
            });
        }
        Ok(Description {
            target_namespace: tns.map(str::to_owned),
            services,
        })
    }

    /// The SOAP port `port` of service `service`.
    pub fn port(&self, service: &str, port: &str) -> Result<&Port> {
        self.services
            .iter()
            .filter(|s| s.name == service)
            .flat_map(|s| &s.ports)
            .find(|p| p.name == port)
            .ok_or_else(|| invalid(format!("no SOAP port {port:?} in service {service:?}")))
    }

    /// Every SOAP port of every service.
    pub fn ports(&self) -> impl Iterator<Item = &Port> {
        self.services.iter().flat_map(|s| &s.ports)
    }

    /// The first port of the given SOAP version.
    pub fn port_for(&self, version: SoapVersion) -> Option<&Port> {
        self.ports().find(|p| p.version == version)
    }
}

fn soap_binding(binding: &Element) -> Option<(SoapVersion, &'static str, &Element)> {
    [
        (SoapVersion::V11, WSDL_SOAP11_NS),
        (SoapVersion::V12, WSDL_SOAP12_NS),
    ]
    .into_iter()
    .find_map(|(v, ns)| children(binding, ns, "binding").next().map(|b| (v, ns, b)))
}

fn style(raw: Option<&str>) -> Result<Style> {
    match raw {
        None | Some("document") => Ok(Style::Document),
        Some("rpc") => Ok(Style::Rpc),
        Some(other) => Err(invalid(format!("unknown binding style {other:?}"))),
    }
}

/// `elementFormDefault` of the schema that declares `element` (XML Schema part 1 section
/// 3.15.2: `unqualified` when absent); qualified when the schema is not in the document.
fn element_form_qualified(schemas: &[&Element], element: &QName) -> bool {
    schemas
        .iter()
        .find(|s| s.attribute(None, "targetNamespace") == element.namespace.as_deref())
        .is_none_or(|s| s.attribute(None, "elementFormDefault") == Some("qualified"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_missing_message_is_named() {
        let doc = br#"<d:definitions xmlns:d="http://schemas.xmlsoap.org/wsdl/" xmlns:t="urn:t" targetNamespace="urn:t">
            <d:portType name="P"><d:operation name="o"><d:input message="t:nope"/></d:operation></d:portType></d:definitions>"#;
        let err = Description::parse(doc, &XmlLimits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidWsdl(r) if r.contains("{urn:t}nope")),
            "{err:?}"
        );
    }

    #[test]
    fn element_form_defaults_to_unqualified_when_the_schema_says_nothing() {
        let schema =
            Element::new(Some(XS_NS), "schema").with_attribute(None, "targetNamespace", "urn:a");
        let a = QName {
            namespace: Some("urn:a".into()),
            name: "x".into(),
        };
        let b = QName {
            namespace: Some("urn:b".into()),
            name: "x".into(),
        };
        assert!(!element_form_qualified(&[&schema], &a));
        assert!(element_form_qualified(&[&schema], &b));
    }
}
