//! The client side: an `http::Request` for an operation, and the `http::Response` read back
//! into the typed result or a typed fault. Use it with any HTTP client.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use soap_core::{Client, SoapVersion};
//!
//! #[derive(Serialize)]
//! struct Echo { text: String }
//! #[derive(Deserialize)]
//! struct EchoResponse { text: String }
//!
//! let client = Client::new("http://127.0.0.1:8080/soap".parse()?, "urn:echo", SoapVersion::V11);
//! let request = client.request("echo", &Echo { text: "hi".into() })?;
//! assert_eq!(request.headers()["soapaction"], "\"urn:echo/echo\"");
//!
//! let reply = http::Response::builder()
//!     .header("content-type", "text/xml; charset=utf-8")
//!     .body(r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
//!         <echoResponse xmlns="urn:echo"><text>hi</text></echoResponse></s:Body></s:Envelope>"#)?;
//! let result: EchoResponse = client.response(&reply)?;
//! assert_eq!(result.text, "hi");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, Uri, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::body;
use crate::description::{OperationDescription, Port, Style};
use crate::envelope::{Envelope, SoapVersion};
use crate::error::{Error, Result};
use crate::fault::Fault;
use crate::wsse::UsernameToken;
use crate::xml::XmlLimits;

/// Builds requests to one endpoint and reads its responses.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Uri,
    namespace: String,
    version: SoapVersion,
    limits: XmlLimits,
    token: Option<UsernameToken>,
    /// From a WSDL port; empty for [`Client::new`], which derives names and actions.
    operations: Vec<OperationDescription>,
}

impl Client {
    /// A client for `endpoint`, whose messages are in `namespace`. Actions default to
    /// `<namespace>/<operation>`, as [`SoapService`](crate::SoapService) does.
    pub fn new(endpoint: Uri, namespace: &str, version: SoapVersion) -> Self {
        Client {
            endpoint,
            namespace: namespace.to_owned(),
            version,
            limits: XmlLimits::default(),
            token: None,
            operations: Vec::new(),
        }
    }

    /// A client for a port read from a WSDL ([`Description`](crate::Description)): its
    /// address, SOAP version, and for each operation the request element (its namespace
    /// and `elementFormDefault`) and the binding's `soapAction`.
    pub fn from_port(port: &Port) -> Result<Self> {
        let endpoint = port
            .address
            .parse::<Uri>()
            .map_err(|e| Error::InvalidWsdl(format!("port address {:?}: {e}", port.address)))?;
        let namespace = port
            .operations
            .iter()
            .find_map(|o| o.input.as_ref()?.namespace.clone())
            .unwrap_or_default();
        Ok(Client {
            endpoint,
            namespace,
            version: port.version,
            limits: XmlLimits::default(),
            token: None,
            operations: port.operations.clone(),
        })
    }

    /// The SOAP version requests are sent in.
    pub fn version(&self) -> SoapVersion {
        self.version
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &Uri {
        &self.endpoint
    }

    /// Adds a WS-Security UsernameToken (fresh nonce and time on each request).
    pub fn username_token(mut self, token: UsernameToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Replaces the limits applied to responses.
    pub fn limits(mut self, limits: XmlLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The request for `operation` with its action: the WSDL binding's `soapAction` for a
    /// client built with [`Client::from_port`], else `<namespace>/<operation>`.
    pub fn request<T: Serialize>(&self, operation: &str, value: &T) -> Result<Request<Bytes>> {
        let action = if self.operations.is_empty() {
            format!("{}/{operation}", self.namespace.trim_end_matches('/'))
        } else {
            self.described(operation)?
                .action
                .clone()
                .unwrap_or_default()
        };
        self.request_with_action(operation, &action, value, SystemTime::now())
    }

    fn described(&self, operation: &str) -> Result<&OperationDescription> {
        let op = self
            .operations
            .iter()
            .find(|o| o.name == operation)
            .ok_or_else(|| Error::UnknownOperation {
                namespace: self.namespace.clone(),
                name: operation.to_owned(),
            })?;
        if op.style != Style::Document || !op.literal {
            return Err(Error::Config(format!(
                "operation {operation:?} is not document/literal"
            )));
        }
        Ok(op)
    }

    /// The request for `operation`, sent with `action` (empty: none), at `now` (for the
    /// token's times).
    pub fn request_with_action<T: Serialize>(
        &self,
        operation: &str,
        action: &str,
        value: &T,
        now: SystemTime,
    ) -> Result<Request<Bytes>> {
        let mut envelope = Envelope::new(self.version);
        if let Some(token) = &self.token {
            envelope.headers.push(token.to_header(now)?);
        }
        let entry = if self.operations.is_empty() {
            body::to_element(&self.namespace, operation, value)?
        } else {
            let op = self.described(operation)?;
            let element = op.input.as_ref().ok_or_else(|| {
                Error::Config(format!("operation {operation:?} has no input element"))
            })?;
            let namespace = element.namespace.as_deref().unwrap_or("");
            if op.input_qualified {
                body::to_element(namespace, &element.name, value)?
            } else {
                body::to_element_unqualified(namespace, &element.name, value)?
            }
        };
        envelope.body.push(entry);
        let action = action.replace(['"', '\\'], "");
        let content_type = match self.version {
            SoapVersion::V11 => "text/xml; charset=utf-8".to_owned(),
            // RFC 3902: the action parameter is optional; an empty one says nothing.
            SoapVersion::V12 if action.is_empty() => {
                "application/soap+xml; charset=utf-8".to_owned()
            }
            SoapVersion::V12 => {
                format!("application/soap+xml; charset=utf-8; action=\"{action}\"")
            }
        };
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&content_type).map_err(|e| Error::Config(e.to_string()))?,
            );
        if self.version == SoapVersion::V11 {
            builder = builder.header(
                "soapaction",
                HeaderValue::from_str(&format!("\"{action}\""))
                    .map_err(|e| Error::Config(e.to_string()))?,
            );
        }
        builder
            .body(Bytes::from(envelope.to_xml()))
            .map_err(|e| Error::Config(e.to_string()))
    }

    /// Reads a response: the body entry as `T`, or [`Error::Fault`] with the peer's fault.
    pub fn response<T: DeserializeOwned, B: AsRef<[u8]>>(
        &self,
        response: &Response<B>,
    ) -> Result<T> {
        let status = response.status().as_u16();
        let envelope = Envelope::parse(response.body().as_ref(), &self.limits).map_err(|e| {
            Error::UnexpectedResponse {
                status,
                reason: e.to_string(),
            }
        })?;
        let entry = envelope.body.first().ok_or(Error::UnexpectedResponse {
            status,
            reason: "empty Body".into(),
        })?;
        if entry.is(envelope.version.namespace(), "Fault") {
            return Err(Fault::from_element(envelope.version, entry)?.into());
        }
        if !response.status().is_success() {
            return Err(Error::UnexpectedResponse {
                status,
                reason: "error status without a fault".into(),
            });
        }
        body::from_element(entry)
    }
}
