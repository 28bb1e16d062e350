//! SOAP faults, typed for both versions, and their HTTP statuses.
//!
//! One [`Fault`] value is written as a SOAP 1.1 fault (`faultcode`, `faultstring`,
//! `faultactor`, `detail`) or a SOAP 1.2 fault (`Code` with `Subcode`s, `Reason` with
//! `xml:lang`, `Node`, `Role`, `Detail`), whichever version the request spoke.
//!
//! ```
//! use soap_core::{Fault, FaultCode, SoapVersion};
//!
//! let fault = Fault::new(FaultCode::Sender, "quantity must be positive");
//! let response = fault.to_response(SoapVersion::V12);
//! assert_eq!(response.status(), 400); // SOAP 1.2 part 2 section 7.5.1.2
//! assert_eq!(fault.to_response(SoapVersion::V11).status(), 500); // SOAP 1.1 section 6.2
//! ```

use bytes::Bytes;
use http::{Response, StatusCode, header};
use serde::Serialize;

use crate::envelope::{Envelope, SOAP11_NS, SOAP12_NS, SoapVersion};
use crate::error::{Error, Result};
use crate::xml::{Element, XML_NS};

/// The fault code: the SOAP 1.2 names, written as their SOAP 1.1 equivalents
/// (`Sender` is 1.1 `Client`, `Receiver` is `Server`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultCode {
    /// The envelope namespace is not one we speak.
    VersionMismatch,
    /// A mandatory header block was not understood.
    MustUnderstand,
    /// An `encodingStyle` is not supported (SOAP 1.2 only; 1.1 writes `Client`).
    DataEncodingUnknown,
    /// The message was wrong (1.1: `Client`).
    Sender,
    /// We failed to process a correct message (1.1: `Server`).
    Receiver,
}

impl FaultCode {
    /// The HTTP status under SOAP 1.2 (part 2 section 7.5.1.2).
    pub fn status(&self) -> StatusCode {
        match self {
            FaultCode::Sender => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The local name in the given version's namespace.
    pub fn local_name(&self, version: SoapVersion) -> &'static str {
        match (self, version) {
            (FaultCode::VersionMismatch, _) => "VersionMismatch",
            (FaultCode::MustUnderstand, _) => "MustUnderstand",
            (FaultCode::DataEncodingUnknown, SoapVersion::V12) => "DataEncodingUnknown",
            (FaultCode::Sender, SoapVersion::V12) => "Sender",
            (FaultCode::Receiver, SoapVersion::V12) => "Receiver",
            (FaultCode::DataEncodingUnknown | FaultCode::Sender, SoapVersion::V11) => "Client",
            (FaultCode::Receiver, SoapVersion::V11) => "Server",
        }
    }

    fn from_local_name(name: &str) -> Option<FaultCode> {
        // 1.1 allows dotted refinements ("Client.Authentication"): the part before the dot.
        match name.split('.').next().unwrap_or(name) {
            "VersionMismatch" => Some(FaultCode::VersionMismatch),
            "MustUnderstand" => Some(FaultCode::MustUnderstand),
            "DataEncodingUnknown" => Some(FaultCode::DataEncodingUnknown),
            "Sender" | "Client" => Some(FaultCode::Sender),
            "Receiver" | "Server" => Some(FaultCode::Receiver),
            _ => None,
        }
    }
}

impl std::fmt::Display for FaultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.local_name(SoapVersion::V12))
    }
}

/// A SOAP fault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fault {
    /// The code.
    pub code: FaultCode,
    /// Application subcodes as (namespace, local name), outermost first. SOAP 1.1 has no
    /// subcodes: the first one is written as the `faultcode` instead (the WS-Security
    /// convention, `wsse:FailedAuthentication`).
    pub subcodes: Vec<(String, String)>,
    /// The human-readable reason (1.1 `faultstring`).
    pub reason: String,
    /// The language of the reason (default `en`).
    pub lang: String,
    /// The node that faulted (1.2 `Node`, 1.1 `faultactor`).
    pub node: Option<String>,
    /// The role the node was acting in (1.2 only).
    pub role: Option<String>,
    /// Detail entries, application-defined.
    pub detail: Vec<Element>,
    /// For `MustUnderstand`: the header blocks not understood, as (namespace, local name);
    /// SOAP 1.2 lists them as `NotUnderstood` header blocks.
    pub not_understood: Vec<(String, String)>,
}

impl Fault {
    /// A fault with a code and a reason.
    pub fn new(code: FaultCode, reason: impl Into<String>) -> Self {
        Fault {
            code,
            subcodes: Vec::new(),
            reason: reason.into(),
            lang: "en".into(),
            node: None,
            role: None,
            detail: Vec::new(),
            not_understood: Vec::new(),
        }
    }

    /// A `Sender` (1.1 `Client`) fault: the message was wrong.
    pub fn sender(reason: impl Into<String>) -> Self {
        Fault::new(FaultCode::Sender, reason)
    }

    /// A `Receiver` (1.1 `Server`) fault.
    pub fn receiver(reason: impl Into<String>) -> Self {
        Fault::new(FaultCode::Receiver, reason)
    }

    /// Adds a subcode (builder style).
    pub fn with_subcode(mut self, namespace: &str, name: &str) -> Self {
        self.subcodes.push((namespace.to_owned(), name.to_owned()));
        self
    }

    /// Adds a typed detail entry: `value` serialized as element `name` in `namespace`.
    pub fn with_detail<T: Serialize>(
        mut self,
        namespace: &str,
        name: &str,
        value: &T,
    ) -> Result<Self> {
        self.detail
            .push(crate::body::to_element(namespace, name, value)?);
        Ok(self)
    }

    /// The HTTP status of this fault's response in `version`.
    pub fn status(&self, version: SoapVersion) -> StatusCode {
        match version {
            SoapVersion::V11 => StatusCode::INTERNAL_SERVER_ERROR,
            SoapVersion::V12 => self.code.status(),
        }
    }

    /// The `Fault` element in `version`.
    pub fn to_element(&self, version: SoapVersion) -> Element {
        let env = version.namespace();
        match version {
            SoapVersion::V11 => {
                let mut fault = Element::new(Some(env), "Fault");
                let code = match self.subcodes.first() {
                    Some((ns, name)) => Element::new(None, "faultcode")
                        .with_prefix("c", ns)
                        .with_text(format!("c:{name}")),
                    None => Element::new(None, "faultcode")
                        .with_prefix("soap", SOAP11_NS)
                        .with_text(format!("soap:{}", self.code.local_name(version))),
                };
                fault.push_child(code);
                fault.push_child(Element::new(None, "faultstring").with_text(self.reason.clone()));
                if let Some(node) = &self.node {
                    fault.push_child(Element::new(None, "faultactor").with_text(node.clone()));
                }
                if !self.detail.is_empty() {
                    let mut detail = Element::new(None, "detail");
                    for d in &self.detail {
                        detail.push_child(d.clone());
                    }
                    fault.push_child(detail);
                }
                fault
            }
            SoapVersion::V12 => {
                let mut code = Element::new(Some(env), "Code").with_child(
                    Element::new(Some(env), "Value")
                        .with_prefix("env", SOAP12_NS)
                        .with_text(format!("env:{}", self.code.local_name(version))),
                );
                // Subcodes nest: Code/Subcode/Subcode..., innermost last.
                let mut sub: Option<Element> = None;
                for (i, (ns, name)) in self.subcodes.iter().enumerate().rev() {
                    let prefix = format!("s{i}");
                    let mut el = Element::new(Some(env), "Subcode").with_child(
                        Element::new(Some(env), "Value")
                            .with_prefix(&prefix, ns)
                            .with_text(format!("{prefix}:{name}")),
                    );
                    if let Some(inner) = sub.take() {
                        el.push_child(inner);
                    }
                    sub = Some(el);
                }
                if let Some(sub) = sub {
                    code.push_child(sub);
                }
                let mut fault = Element::new(Some(env), "Fault")
                    .with_child(code)
                    .with_child(
                        Element::new(Some(env), "Reason").with_child(
                            Element::new(Some(env), "Text")
                                .with_attribute(Some(XML_NS), "lang", &self.lang)
                                .with_text(self.reason.clone()),
                        ),
                    );
                if let Some(node) = &self.node {
                    fault.push_child(Element::new(Some(env), "Node").with_text(node.clone()));
                }
                if let Some(role) = &self.role {
                    fault.push_child(Element::new(Some(env), "Role").with_text(role.clone()));
                }
                if !self.detail.is_empty() {
                    let mut detail = Element::new(Some(env), "Detail");
                    for d in &self.detail {
                        detail.push_child(d.clone());
                    }
                    fault.push_child(detail);
                }
                fault
            }
        }
    }

    /// The whole envelope, with `NotUnderstood` header blocks (1.2) or an `Upgrade` block
    /// (1.2 `VersionMismatch`, part 1 section 5.4.7) where they apply.
    pub fn to_envelope(&self, version: SoapVersion) -> Envelope {
        let mut envelope = Envelope::new(version);
        if version == SoapVersion::V12 {
            for (ns, name) in &self.not_understood {
                envelope.headers.push(
                    Element::new(Some(SOAP12_NS), "NotUnderstood")
                        .with_prefix("q", ns)
                        .with_attribute(None, "qname", &format!("q:{name}")),
                );
            }
            if self.code == FaultCode::VersionMismatch {
                let mut upgrade = Element::new(Some(SOAP12_NS), "Upgrade");
                for (p, ns) in [("v12", SOAP12_NS), ("v11", SOAP11_NS)] {
                    upgrade.push_child(
                        Element::new(Some(SOAP12_NS), "SupportedEnvelope")
                            .with_prefix(p, ns)
                            .with_attribute(None, "qname", &format!("{p}:Envelope")),
                    );
                }
                envelope.headers.push(upgrade);
            }
        }
        envelope.body.push(self.to_element(version));
        envelope
    }

    /// The HTTP response carrying this fault in `version`.
    pub fn to_response(&self, version: SoapVersion) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from(self.to_envelope(version).to_xml()));
        *response.status_mut() = self.status(version);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static(version.content_type()),
        );
        response
    }

    /// Reads a `Fault` element of `version` (client side).
    pub fn from_element(version: SoapVersion, el: &Element) -> Result<Fault> {
        let env = version.namespace();
        let bad = |what: &str| Error::UnexpectedResponse {
            status: 0,
            reason: format!("malformed fault: {what}"),
        };
        match version {
            SoapVersion::V11 => {
                let code_el = el
                    .children()
                    .iter()
                    .find(|c| c.name() == "faultcode")
                    .ok_or_else(|| bad("no faultcode"))?;
                let (ns, name) = code_el
                    .resolve_qname(code_el.text())
                    .ok_or_else(|| bad("faultcode prefix not declared"))?;
                // SOAP 1.1 section 4.4.1: a dot makes a code more specific
                // (`Client.Authentication`); the whole dotted name is kept as the subcode, so
                // that writing the fault as 1.1 again gives the same faultcode.
                let mut fault = match (ns.as_deref(), FaultCode::from_local_name(&name)) {
                    (Some(SOAP11_NS), Some(code)) if name.contains('.') => {
                        Fault::new(code, "").with_subcode(SOAP11_NS, &name)
                    }
                    (Some(SOAP11_NS), Some(code)) => Fault::new(code, ""),
                    _ => Fault::new(FaultCode::Sender, "")
                        .with_subcode(ns.as_deref().unwrap_or(""), &name),
                };
                for c in el.children() {
                    match c.name() {
                        "faultstring" => fault.reason = c.text().to_owned(),
                        "faultactor" => fault.node = Some(c.text().to_owned()),
                        "detail" => fault.detail = c.children().to_vec(),
                        _ => {}
                    }
                }
                Ok(fault)
            }
            SoapVersion::V12 => {
                let code = el.child(env, "Code").ok_or_else(|| bad("no Code"))?;
                let value = code
                    .child(env, "Value")
                    .ok_or_else(|| bad("no Code/Value"))?;
                let (_, name) = value
                    .resolve_qname(value.text())
                    .ok_or_else(|| bad("Value prefix not declared"))?;
                let code_value =
                    FaultCode::from_local_name(&name).ok_or_else(|| bad("unknown Code"))?;
                let mut fault = Fault::new(code_value, "");
                let mut sub = code.child(env, "Subcode");
                while let Some(s) = sub {
                    if let Some(v) = s.child(env, "Value")
                        && let Some((ns, name)) = v.resolve_qname(v.text())
                    {
                        fault.subcodes.push((ns.unwrap_or_default(), name));
                    }
                    sub = s.child(env, "Subcode");
                }
                if let Some(text) = el.child(env, "Reason").and_then(|r| r.child(env, "Text")) {
                    fault.reason = text.text().to_owned();
                    if let Some(lang) = text.attribute(Some(XML_NS), "lang") {
                        fault.lang = lang.to_owned();
                    }
                }
                fault.node = el.child(env, "Node").map(|n| n.text().to_owned());
                fault.role = el.child(env, "Role").map(|n| n.text().to_owned());
                if let Some(d) = el.child(env, "Detail") {
                    fault.detail = d.children().to_vec();
                }
                Ok(fault)
            }
        }
    }

    /// Decodes the first detail entry named `name` into `T`.
    pub fn detail<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<Result<T>> {
        self.detail
            .iter()
            .find(|d| d.name() == name)
            .map(crate::body::from_element)
    }
}
