//! A SOAP service: typed document/literal operations, dispatch, header processing,
//! WS-Security, and `GET ?wsdl`.
//!
//! [`SoapService::handle`] takes the request's parts, its body bytes and the current time
//! and returns the whole response; it performs no IO.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use soap_core::{Operation, Schema, SoapService, TypeRef, XsdType};
//!
//! #[derive(Deserialize)]
//! struct Echo { text: String }
//! #[derive(Serialize)]
//! struct EchoResponse { text: String }
//! impl XsdType for Echo {
//!     fn xsd(s: &mut Schema) -> TypeRef { s.complex_type("Echo", |t| t.field::<String>("text")) }
//! }
//! impl XsdType for EchoResponse {
//!     fn xsd(s: &mut Schema) -> TypeRef { s.complex_type("EchoResponse", |t| t.field::<String>("text")) }
//! }
//!
//! let service = SoapService::new("Echo", "urn:echo")
//!     .operation(Operation::new("echo", |req: Echo, _ctx| Ok(EchoResponse { text: req.text })));
//! let request = http::Request::post("/soap")
//!     .header("content-type", "application/soap+xml; charset=utf-8")
//!     .body(())?;
//! let body = br#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body>
//!   <echo xmlns="urn:echo"><text>hi</text></echo></e:Body></e:Envelope>"#;
//! let response = service.handle(&request.into_parts().0, body, std::time::SystemTime::now());
//! assert_eq!(response.status(), 200);
//! assert!(std::str::from_utf8(response.body())?.contains("<text>hi</text>"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::any::Any;
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::body;
use crate::decode::{self, DResult, EventSource};
use crate::envelope::{
    self, Envelope, MessageInfo, SOAP12_ENCODING_NONE, SoapVersion, block_target,
    header_booleans_are_valid, must_understand_value, targets_us_value,
};
use crate::error::{Error, Result};
use crate::schema::{Schema, TypeRef, XsdType};
use crate::wsse::{Security, WSSE_NS};
use crate::xml::{self, Element, Events, Item, Tag, XmlLimits};

/// What a handler knows about the request besides its body.
#[derive(Debug)]
#[non_exhaustive]
pub struct Context<'a> {
    /// The request's SOAP version.
    pub version: SoapVersion,
    /// The action sent, if any.
    pub action: Option<&'a str>,
    /// The WS-Security user, when a UsernameToken was verified.
    pub user: Option<&'a str>,
    headers: Headers<'a>,
}

impl Context<'_> {
    /// All header blocks. On the common request path they are read into trees only when a
    /// handler asks for them (most never do), from the same bytes and with the same limits.
    pub fn headers(&self) -> &[Element] {
        match &self.headers {
            Headers::Read(headers) => headers,
            Headers::Lazy {
                info,
                body,
                limits,
                read,
            } => read.get_or_init(|| {
                // The document has been read once already with these limits, so this
                // succeeds; an error would leave the handler with no blocks, not a panic.
                Envelope::parse_request(info, body, limits)
                    .map(|envelope| envelope.headers)
                    .unwrap_or_default()
            }),
        }
    }
}

/// Where [`Context::headers`] come from.
#[derive(Debug)]
enum Headers<'a> {
    /// Already read into trees (the tree path).
    Read(&'a [Element]),
    /// Read from the request when first asked for (the one-pass path).
    Lazy {
        info: &'a MessageInfo,
        body: &'a [u8],
        limits: &'a XmlLimits,
        read: OnceLock<Vec<Element>>,
    },
}

type Handler = Box<dyn Fn(&Element, &Context<'_>) -> Result<Reply> + Send + Sync>;
/// Decodes a request straight from the reader (see [`SoapService::direct_reply`]).
type Decoder = Box<
    dyn for<'r, 'a, 'l> Fn(EventSource<'r, 'a, 'l>, Tag<'a>) -> DResult<Box<dyn Any>> + Send + Sync,
>;
/// Runs the handler on a request [`Decoder`] decoded.
type Call = Box<dyn Fn(Box<dyn Any>, &str, &Context<'_>) -> Result<Reply> + Send + Sync>;

/// A handler's response element: as text from our own serializer, spliced into the response
/// envelope as it is (no reading back into a tree), or as a tree when it could not be.
enum Reply {
    /// The whole response envelope, written around the entry (at `entry`) in one buffer.
    Envelope {
        xml: String,
        entry: Range<usize>,
    },
    Element(Element),
}

impl Reply {
    fn into_element(self, namespace: &str) -> Result<Element> {
        match self {
            Reply::Envelope { xml, entry } => {
                body::from_qualified_xml(namespace, xml.get(entry).unwrap_or(""))
            }
            Reply::Element(element) => Ok(element),
        }
    }
}
type SchemaFn = fn(&mut Schema) -> (TypeRef, TypeRef);
type TypeFn = fn(&mut Schema) -> TypeRef;

/// One document/literal wrapped operation: the request element is named after the
/// operation, the response element `<name>Response`, both in the service namespace.
pub struct Operation {
    name: String,
    action: Option<String>,
    secured: bool,
    faults: Vec<(String, TypeFn)>,
    schema: SchemaFn,
    handler: Handler,
    decoder: Decoder,
    call: Call,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("action", &self.action)
            .field("secured", &self.secured)
            .finish_non_exhaustive()
    }
}

impl Operation {
    /// An operation whose handler takes the decoded request and returns the response or an
    /// error: an [`Error::Fault`] is sent as it is, any other error as a generic fault.
    pub fn new<Req, Resp, F>(name: &str, handler: F) -> Self
    where
        Req: DeserializeOwned + XsdType + 'static,
        Resp: Serialize + XsdType + 'static,
        F: Fn(Req, &Context<'_>) -> Result<Resp> + Send + Sync + 'static,
    {
        let response_name = format!("{name}Response");
        // The request type's schema, for checking `xsi:type` in requests.
        let mut request_schema = Schema::default();
        let request_type = Req::xsd(&mut request_schema);
        let respond = Arc::new(move |request: Req, ns: &str, ctx: &Context<'_>| {
            let response = handler(request, ctx)?;
            // The envelope around the entry is written into the same buffer (sized for a
            // typical body), so the entry is not copied into the envelope afterwards.
            let mut xml = String::with_capacity(body::TYPICAL_BODY_BYTES + 256);
            envelope::write_response_head(&mut xml, ctx.version);
            let start = xml.len();
            if body::write_qualified_xml(&mut xml, ns, &response_name, &response)? {
                let entry = start..xml.len();
                envelope::write_response_tail(&mut xml, ctx.version);
                Ok(Reply::Envelope { xml, entry })
            } else {
                body::to_element(ns, &response_name, &response).map(Reply::Element)
            }
        });
        let call_respond = Arc::clone(&respond);
        Operation {
            name: name.to_owned(),
            action: None,
            secured: false,
            faults: Vec::new(),
            schema: |s| (Req::xsd(s), Resp::xsd(s)),
            handler: Box::new(move |el, ctx| {
                let ns = el.namespace().unwrap_or("");
                request_schema.check_xsi_types(el, &request_type, ns)?;
                let request: Req = body::from_element(el)?;
                respond(request, ns, ctx)
            }),
            decoder: Box::new(decode_request::<Req>),
            call: Box::new(
                move |request: Box<dyn Any>, ns: &str, ctx: &Context<'_>| match request
                    .downcast::<Req>()
                {
                    Ok(request) => call_respond(*request, ns, ctx),
                    Err(_) => Err(Error::Config("request of another operation".into())),
                },
            ),
        }
    }

    /// Sets the action (default: `<namespace>/<name>`).
    pub fn action(mut self, action: &str) -> Self {
        self.action = Some(action.to_owned());
        self
    }

    /// Requires a verified WS-Security UsernameToken.
    pub fn secured(mut self) -> Self {
        self.secured = true;
        self
    }

    /// Declares a fault with a detail element `element` of type `T` (WSDL `wsdl:fault`).
    pub fn fault<T: XsdType>(mut self, element: &str) -> Self {
        self.faults.push((element.to_owned(), T::xsd));
        self
    }
}

/// A SOAP service over both SOAP versions on one endpoint.
#[derive(Debug)]
pub struct SoapService {
    name: String,
    namespace: String,
    operations: Vec<Operation>,
    limits: XmlLimits,
    understood: Vec<(String, String)>,
    roles: Vec<String>,
    security: Option<Security>,
}

impl SoapService {
    /// A service named `name` (used in the WSDL) whose messages live in `namespace`.
    pub fn new(name: &str, namespace: &str) -> Self {
        SoapService {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            operations: Vec::new(),
            limits: XmlLimits::default(),
            understood: Vec::new(),
            roles: Vec::new(),
            security: None,
        }
    }

    /// Adds an operation.
    pub fn operation(mut self, op: Operation) -> Self {
        self.operations.push(op);
        self
    }

    /// Replaces the XML limits.
    pub fn limits(mut self, limits: XmlLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Declares a header block this service processes (so `mustUnderstand` passes).
    pub fn understands(mut self, namespace: &str, name: &str) -> Self {
        self.understood
            .push((namespace.to_owned(), name.to_owned()));
        self
    }

    /// Adds a role (1.2) or actor (1.1) URI this node plays besides next/ultimateReceiver.
    pub fn role(mut self, uri: &str) -> Self {
        self.roles.push(uri.to_owned());
        self
    }

    /// Turns on WS-Security: `wsse:Security` is understood and checked when present, and
    /// required for [`Operation::secured`] operations.
    pub fn security(mut self, security: Security) -> Self {
        self.security = Some(security);
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The action of an operation.
    pub fn action_of(&self, operation: &str) -> Option<String> {
        self.operations
            .iter()
            .find(|o| o.name == operation)
            .map(|o| self.action(o))
    }

    /// Whether `action` is the action of `op` ([`SoapService::action`] without building it).
    fn is_action_of(&self, action: &str, op: &Operation) -> bool {
        match &op.action {
            Some(own) => own == action,
            None => action
                .strip_suffix(op.name.as_str())
                .and_then(|rest| rest.strip_suffix('/'))
                .is_some_and(|rest| rest == self.namespace.trim_end_matches('/')),
        }
    }

    fn action(&self, op: &Operation) -> String {
        op.action
            .clone()
            .unwrap_or_else(|| format!("{}/{}", self.namespace.trim_end_matches('/'), op.name))
    }

    /// Handles one request: `POST` with an envelope, or `GET ?wsdl`.
    pub fn handle(&self, parts: &Parts, body: &[u8], now: SystemTime) -> Response<Bytes> {
        if parts.method == Method::GET || parts.method == Method::HEAD {
            return match wants_wsdl(parts) {
                true => match request_address(parts) {
                    Some(address) => {
                        let mut r = Response::new(Bytes::from(self.wsdl(&address)));
                        r.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/xml; charset=utf-8"),
                        );
                        r
                    }
                    None => plain(StatusCode::BAD_REQUEST, "bad Host header"),
                },
                false => plain(StatusCode::NOT_FOUND, "GET serves only ?wsdl"),
            };
        }
        if parts.method != Method::POST {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use POST");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
            return r;
        }
        let info = match MessageInfo::from_headers(&parts.headers) {
            Ok(info) => info,
            Err(e) => return error_response(SoapVersion::V11, &e),
        };
        match self.process_reply(&info, body, now) {
            Ok(reply) => {
                let xml = match reply {
                    Reply::Envelope { xml, .. } => xml,
                    Reply::Element(element) => {
                        let mut envelope = Envelope::new(info.version);
                        envelope.body.push(element);
                        envelope.to_xml()
                    }
                };
                let mut r = Response::new(Bytes::from(xml));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(info.version.content_type()),
                );
                r
            }
            Err(e) => error_response(info.version, &e),
        }
    }

    /// The envelope-level part of [`SoapService::handle`]: parse, check headers, dispatch.
    pub fn process(&self, info: &MessageInfo, body: &[u8], now: SystemTime) -> Result<Envelope> {
        let response = self
            .process_reply(info, body, now)?
            .into_element(&self.namespace)?;
        let mut out = Envelope::new(info.version);
        out.body.push(response);
        Ok(out)
    }

    /// [`SoapService::process`] up to the handler's reply, which `handle` splices into the
    /// response envelope without reading it back into a tree.
    fn process_reply(&self, info: &MessageInfo, body: &[u8], now: SystemTime) -> Result<Reply> {
        match self.direct_reply(info, body, now) {
            Some(reply) => reply,
            None => self.tree_reply(info, body, now),
        }
    }

    /// The common request in one pass of the hardened reader: the header blocks are judged
    /// by their start tags (only a WS-Security block this service checks is read into a
    /// tree; [`Context::headers`] reads the others when a handler asks), the body entry is
    /// decoded straight from the reader into the operation's request type. `None` when the request is not the common case (attributes on the
    /// envelope's elements or namespaced ones in the body, a shape the direct decoder leaves
    /// to quick-xml, or any error): then [`SoapService::tree_reply`] reads it again, with the
    /// same limits, and answers it, errors included. Nothing with an effect (WS-Security's
    /// nonce cache, the handler) runs before the whole document has been read and decoded.
    fn direct_reply(
        &self,
        info: &MessageInfo,
        body: &[u8],
        now: SystemTime,
    ) -> Option<Result<Reply>> {
        let version = info.version;
        let ns = version.namespace();
        let mut events = Events::new(body, &self.limits, false).ok()?;
        let envelope = next_tag(&mut events)??;
        if !(envelope.namespace.as_deref() == Some(ns)
            && envelope.name == "Envelope"
            && envelope.attributes.is_empty())
        {
            return None;
        }
        let mut tag = next_tag(&mut events)??;
        // Header blocks are judged by their start tags (booleans, mustUnderstand, target)
        // and not read into trees, except WS-Security's when it is checked here: a block
        // that would be refused sends the request down the tree path, which words the fault.
        let mut security_header = None;
        if tag.namespace.as_deref() == Some(ns) && tag.name == "Header" {
            if !tag.attributes.is_empty() {
                return None;
            }
            while let Some(block) = next_tag(&mut events)? {
                let attribute = |name: &str| tag_attribute(&block, ns, name);
                if !header_booleans_are_valid(version, attribute)
                    || (must_understand_value(attribute("mustUnderstand"))
                        && targets_us_value(version, block_target(version, attribute), &self.roles)
                        && !self.is_understood(block.namespace.as_deref(), block.name))
                {
                    return None;
                }
                if self.security.is_some()
                    && block.name == "Security"
                    && block.namespace.as_deref() == Some(WSSE_NS)
                {
                    // A second Security block is the tree path's to answer.
                    if security_header.is_some() {
                        return None;
                    }
                    security_header = Some(xml::read_element(&mut events, block).ok()?);
                } else {
                    skip_element(&mut events)?;
                }
            }
            tag = next_tag(&mut events)??;
        }
        if !(tag.namespace.as_deref() == Some(ns)
            && tag.name == "Body"
            && tag.attributes.is_empty())
        {
            return None;
        }
        let entry = next_tag(&mut events)??;
        if entry.attributes.iter().any(|a| a.namespace.is_some())
            || entry.namespace.as_deref() != Some(self.namespace.as_str())
        {
            return None;
        }
        let op = self.operations.iter().find(|o| o.name == entry.name)?;
        if info
            .action
            .as_deref()
            .is_some_and(|action| !self.is_action_of(action, op))
        {
            return None;
        }
        let request = (op.decoder)(
            EventSource {
                events: &mut events,
            },
            entry,
        )
        .ok()?;
        // The end of Body, of Envelope, and of the document: a second body entry or
        // anything else is the tree's to answer.
        if next_tag(&mut events)?.is_some() || next_tag(&mut events)?.is_some() {
            return None;
        }
        loop {
            match events.next().ok()? {
                Item::Eof => break,
                // Whitespace after the root (the reader refuses anything else).
                Item::Text(_) => {}
                Item::Start(_) | Item::End => return None,
            }
        }
        let user = match (&self.security, &security_header) {
            (Some(security), Some(header)) => match security.verify(header, now) {
                Ok(user) => Some(user),
                Err(e) => return Some(Err(e.into())),
            },
            (_, None) | (None, _) if op.secured => return None,
            _ => None,
        };
        let ctx = Context {
            version,
            action: info.action.as_deref(),
            user: user.as_deref(),
            headers: Headers::Lazy {
                info,
                body,
                limits: &self.limits,
                read: OnceLock::new(),
            },
        };
        Some((op.call)(request, &self.namespace, &ctx))
    }

    /// [`SoapService::process_reply`] through the envelope's tree.
    fn tree_reply(&self, info: &MessageInfo, body: &[u8], now: SystemTime) -> Result<Reply> {
        let envelope = Envelope::parse_request(info, body, &self.limits)?;
        let version = envelope.version;
        let not_understood: Vec<(String, String)> = envelope
            .mandatory_headers(&self.roles)
            .filter(|h| !self.is_understood(h.namespace(), h.name()))
            .map(|h| (h.namespace().unwrap_or("").to_owned(), h.name().to_owned()))
            .collect();
        if !not_understood.is_empty() {
            return Err(Error::MustUnderstand(not_understood));
        }
        // Document/literal: exactly one body entry (WS-I BP R2201).
        let entry = match envelope.body.as_slice() {
            [entry] => entry,
            [] => return Err(Error::InvalidEnvelope("Body is empty".into())),
            _ => {
                return Err(Error::InvalidEnvelope(
                    "Body has more than one element; one is expected".into(),
                ));
            }
        };
        // Document/literal bodies carry no SOAP encoding: any other encodingStyle than
        // none is DataEncodingUnknown (SOAP 1.2 part 1 section 5.4.7; 1.1 writes Client).
        if let Some(styles) = entry.attribute(Some(version.namespace()), "encodingStyle")
            && let Some(unknown) = styles
                .split_ascii_whitespace()
                .find(|s| *s != SOAP12_ENCODING_NONE)
        {
            return Err(Error::DataEncodingUnknown {
                encoding: unknown.to_owned(),
            });
        }
        let op = self
            .operations
            .iter()
            .find(|o| entry.is(&self.namespace, &o.name))
            .ok_or_else(|| Error::UnknownOperation {
                namespace: entry.namespace().unwrap_or("").to_owned(),
                name: entry.name().to_owned(),
            })?;
        if let Some(action) = info.action.as_deref()
            && !self.is_action_of(action, op)
        {
            return Err(Error::ActionMismatch {
                action: action.to_owned(),
            });
        }
        let security_header = envelope.headers.iter().find(|h| h.is(WSSE_NS, "Security"));
        let user = match (&self.security, security_header) {
            (Some(security), Some(header)) => Some(security.verify(header, now)?),
            (_, None) if op.secured => {
                return Err(crate::wsse::SecurityFailure::InvalidSecurity(
                    "no Security header".into(),
                )
                .into());
            }
            (None, _) if op.secured => {
                return Err(Error::Config("secured operation without Security".into()));
            }
            _ => None,
        };
        let ctx = Context {
            version,
            action: info.action.as_deref(),
            user: user.as_deref(),
            headers: Headers::Read(&envelope.headers),
        };
        (op.handler)(entry, &ctx)
    }

    fn is_understood(&self, namespace: Option<&str>, name: &str) -> bool {
        (self.security.is_some() && namespace == Some(WSSE_NS) && name == "Security")
            || self
                .understood
                .iter()
                .any(|(ns, n)| namespace == Some(ns.as_str()) && name == n)
    }

    /// The WSDL 1.1 document with SOAP 1.1 and 1.2 bindings, served at `address`.
    pub fn wsdl(&self, address: &str) -> String {
        crate::wsdl::generate(self, address)
    }

    pub(crate) fn wsdl_parts(&self) -> WsdlParts<'_> {
        let mut schema = Schema::default();
        let mut ops = Vec::new();
        for op in &self.operations {
            let (input, output) = (op.schema)(&mut schema);
            let faults = op
                .faults
                .iter()
                .map(|(name, f)| (name.as_str(), f(&mut schema)))
                .collect();
            ops.push(WsdlOperation {
                name: &op.name,
                action: self.action(op),
                input,
                output,
                faults,
            });
        }
        WsdlParts {
            name: &self.name,
            namespace: &self.namespace,
            schema,
            operations: ops,
        }
    }
}

pub(crate) struct WsdlParts<'a> {
    pub(crate) name: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) schema: Schema,
    pub(crate) operations: Vec<WsdlOperation<'a>>,
}

pub(crate) struct WsdlOperation<'a> {
    pub(crate) name: &'a str,
    pub(crate) action: String,
    pub(crate) input: TypeRef,
    pub(crate) output: TypeRef,
    pub(crate) faults: Vec<(&'a str, TypeRef)>,
}

/// The response for an error in `version`: the fault, with 413/415 for size and media type
/// and otherwise the version's fault status.
pub fn error_response(version: SoapVersion, error: &Error) -> Response<Bytes> {
    let mut response = error.to_fault().to_response(version);
    let status = error.status();
    if matches!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE
    ) || version == SoapVersion::V12
    {
        *response.status_mut() = status;
    }
    response
}

/// A [`Decoder`] for `Req`.
fn decode_request<'a, Req: DeserializeOwned + 'static>(
    source: EventSource<'_, 'a, '_>,
    tag: Tag<'a>,
) -> DResult<Box<dyn Any>> {
    decode::decode::<Req, _>(source, tag).map(|r| Box::new(r) as Box<dyn Any>)
}

/// The value of the attribute `name` in the namespace `ns` of a start tag.
fn tag_attribute<'t>(tag: &'t Tag<'_>, ns: &str, name: &str) -> Option<&'t str> {
    tag.attributes
        .iter()
        .find(|a| a.name == name && a.namespace.as_deref() == Some(ns))
        .map(|a| a.value.as_ref())
}

/// Reads through the end of the element whose start tag was just handed out; `None` on an
/// error.
fn skip_element(events: &mut Events<'_, '_>) -> Option<()> {
    let mut depth = 0usize;
    loop {
        match events.next().ok()? {
            Item::Start(_) => depth += 1,
            Item::End if depth == 0 => return Some(()),
            Item::End => depth -= 1,
            Item::Text(_) => {}
            Item::Eof => return None,
        }
    }
}

/// The next start tag (`Some(Some(tag))`) or end tag (`Some(None)`) after blank text;
/// `None` at other text, the end of the document or an error.
fn next_tag<'a>(events: &mut Events<'a, '_>) -> Option<Option<Tag<'a>>> {
    loop {
        match events.next().ok()? {
            Item::Start(tag) => return Some(Some(tag)),
            Item::End => return Some(None),
            Item::Text(text) if xml::is_whitespace(&text) => {}
            Item::Text(_) | Item::Eof => return None,
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from_static(text.as_bytes()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn wants_wsdl(parts: &Parts) -> bool {
    parts.uri.query().is_some_and(|q| {
        q.split('&').any(|p| {
            p.split('=')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("wsdl"))
        })
    })
}

/// `http://host/path` from the request: the URI's own authority, else a valid `Host`.
fn request_address(parts: &Parts) -> Option<String> {
    let scheme = parts.uri.scheme_str().unwrap_or("http");
    let authority = match parts.uri.authority() {
        Some(a) => a.clone(),
        None => parts
            .headers
            .get(header::HOST)?
            .to_str()
            .ok()?
            .parse::<http::uri::Authority>()
            .ok()?,
    };
    if authority.as_str().contains('@') {
        return None;
    }
    Some(format!("{scheme}://{authority}{}", parts.uri.path()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_handler_reads_the_header_blocks_the_one_pass_path_skipped() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Echo {
            text: String,
        }
        impl XsdType for Echo {
            fn xsd(s: &mut Schema) -> TypeRef {
                s.complex_type("Echo", |t| t.field::<String>("text"))
            }
        }
        let service = SoapService::new("S", "urn:x").operation(Operation::new(
            "echo",
            |_: Echo, ctx: &Context<'_>| {
                let names: Vec<String> = ctx
                    .headers()
                    .iter()
                    .map(|h| format!("{}={}", h.name(), h.text()))
                    .collect();
                Ok(Echo {
                    text: names.join(","),
                })
            },
        ));
        let info = MessageInfo {
            version: SoapVersion::V11,
            action: None,
        };
        let body = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>
            <t:trace xmlns:t="urn:t">abc</t:trace><t:span xmlns:t="urn:t"/></s:Header>
            <s:Body><echo xmlns="urn:x"><text>hi</text></echo></s:Body></s:Envelope>"#;
        // The one-pass path answers this request (nothing sends it down the tree path).
        let reply = service
            .direct_reply(&info, body, SystemTime::UNIX_EPOCH)
            .unwrap()
            .unwrap();
        let response = reply.into_element("urn:x").unwrap();
        assert_eq!(
            response.child("urn:x", "text").map(Element::text),
            Some("trace=abc,span=")
        );
    }

    #[test]
    fn an_action_matches_exactly_when_it_is_the_built_one() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Empty {}
        impl XsdType for Empty {
            fn xsd(s: &mut Schema) -> TypeRef {
                s.complex_type("Empty", |t| t)
            }
        }
        for namespace in ["urn:x", "http://x/", "http://x//", ""] {
            let service = SoapService::new("S", namespace)
                .operation(Operation::new("op", |_: Empty, _| Ok(Empty {})))
                .operation(Operation::new("other", |_: Empty, _| Ok(Empty {})).action("urn:a"));
            for op in &service.operations {
                let built = service.action(op);
                for action in [
                    built.clone(),
                    format!("{built}/"),
                    format!("/{built}"),
                    built.replace('/', "//"),
                    "urn:a".to_owned(),
                    "op".to_owned(),
                    "/op".to_owned(),
                    String::new(),
                ] {
                    assert_eq!(
                        service.is_action_of(&action, op),
                        action == built,
                        "{namespace:?} {action:?}"
                    );
                }
            }
        }
    }
}
