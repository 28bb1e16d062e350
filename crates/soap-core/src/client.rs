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
        }
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

    /// The request for `operation` with the default action.
    pub fn request<T: Serialize>(&self, operation: &str, value: &T) -> Result<Request<Bytes>> {
        let action = format!("{}/{operation}", self.namespace.trim_end_matches('/'));
        self.request_with_action(operation, &action, value, SystemTime::now())
    }

    /// The request for `operation`, sent with `action`, at `now` (for the token's times).
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
        envelope
            .body
            .push(body::to_element(&self.namespace, operation, value)?);
        let content_type = match self.version {
            SoapVersion::V11 => "text/xml; charset=utf-8".to_owned(),
            SoapVersion::V12 => format!(
                "application/soap+xml; charset=utf-8; action=\"{}\"",
                action.replace(['"', '\\'], "")
            ),
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
                HeaderValue::from_str(&format!("\"{}\"", action.replace(['"', '\\'], "")))
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
