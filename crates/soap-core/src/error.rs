//! The one error type of the crate, its HTTP status and the SOAP fault it is answered with.

use http::StatusCode;

use crate::fault::{Fault, FaultCode};
use crate::wsse::SecurityFailure;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which [`XmlLimits`](crate::XmlLimits) limit a document crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// The body size, checked before parsing.
    BodyBytes,
    /// Element nesting.
    Depth,
    /// Attributes on one element.
    Attributes,
    /// One attribute value's size.
    AttributeBytes,
    /// One element's text size.
    TextBytes,
    /// Elements in the document.
    Elements,
    /// Namespace declarations in the document.
    NamespaceDeclarations,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitKind::BodyBytes => "body size in bytes",
            LimitKind::Depth => "element depth",
            LimitKind::Attributes => "attributes per element",
            LimitKind::AttributeBytes => "attribute size in bytes",
            LimitKind::TextBytes => "text size in bytes",
            LimitKind::Elements => "element count",
            LimitKind::NamespaceDeclarations => "namespace declarations",
        })
    }
}

/// Everything soap-core refuses or fails at. [`Error::status`] is the HTTP status of the
/// answer and [`Error::to_fault`] the fault sent in it; neither reveals more than the
/// message's own problem (a handler's internal error is never echoed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The document has a DOCTYPE. SOAP forbids one (SOAP 1.2 part 1 section 5; SOAP 1.1
    /// section 3), and refusing it rules out entity expansion and external entities.
    #[error("a DOCTYPE is not allowed in a SOAP message")]
    DoctypeRefused,
    /// The message has a processing instruction (`<?target ...?>`), which SOAP forbids
    /// (SOAP 1.2 part 1 section 5; SOAP 1.1 section 3). The XML declaration is allowed.
    #[error("a processing instruction is not allowed in a SOAP message (near byte {position})")]
    ProcessingInstructionRefused {
        /// Byte position of the instruction.
        position: u64,
    },
    /// The body is not UTF-8; `offset` is where the first invalid byte is.
    #[error("the body is not valid UTF-8 (at byte {offset})")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// A configured [`XmlLimits`](crate::XmlLimits) limit was crossed; parsing stopped there.
    #[error("the message is over the limit on {limit} ({max})")]
    LimitExceeded {
        /// Which limit.
        limit: LimitKind,
        /// Its value.
        max: usize,
    },
    /// The body is not well-formed XML (namespaces included).
    #[error("malformed XML near byte {position}: {reason}")]
    MalformedXml {
        /// Byte position the reader had reached.
        position: u64,
        /// The reader's message.
        reason: String,
    },
    /// The `Content-Type` is not `text/xml` (SOAP 1.1) or `application/soap+xml` (SOAP 1.2).
    #[error("unsupported content type {found:?}; expected text/xml or application/soap+xml")]
    UnsupportedContentType {
        /// The content type sent, if any.
        found: Option<String>,
    },
    /// The root is not a SOAP envelope of a version we speak, or its version does not
    /// match the content type (a 1.1 envelope sent as `application/soap+xml`).
    #[error("version mismatch: {reason}")]
    VersionMismatch {
        /// What was found.
        reason: String,
    },
    /// The envelope breaks a structural rule (no Body, two Bodies, an element after the
    /// Body, a Header after the Body, ...).
    #[error("invalid envelope: {0}")]
    InvalidEnvelope(String),
    /// A body entry is scoped with an `encodingStyle` this node does not support (every
    /// operation is document/literal): SOAP 1.2 `DataEncodingUnknown`, SOAP 1.1 `Client`.
    #[error("unsupported encodingStyle {encoding:?}; operations are document/literal")]
    DataEncodingUnknown {
        /// The first encoding URI not supported.
        encoding: String,
    },
    /// Header blocks targeted at us with `mustUnderstand` that nothing here processes.
    #[error("header blocks not understood: {}", .0.iter().map(|(ns, n)| format!("{{{ns}}}{n}")).collect::<Vec<_>>().join(", "))]
    MustUnderstand(Vec<(String, String)>),
    /// The body's element names no operation of the service.
    #[error("no operation for body element {{{namespace}}}{name}")]
    UnknownOperation {
        /// The element's namespace.
        namespace: String,
        /// Its local name.
        name: String,
    },
    /// `SOAPAction` or the 1.2 `action` parameter names another operation than the body.
    #[error("the action {action:?} does not match the body element's operation")]
    ActionMismatch {
        /// The action sent.
        action: String,
    },
    /// The body did not decode into the operation's request type.
    #[error("the request body does not match the operation's message: {0}")]
    InvalidBody(String),
    /// An element's `xsi:type` names another type than the schema gives it (or uses an
    /// undeclared prefix): a Sender (1.1 Client) fault naming the element.
    #[error("element {element} declares xsi:type {declared:?}; the schema type is {expected}")]
    XsiTypeMismatch {
        /// The element's local name.
        element: String,
        /// The `xsi:type` value as sent.
        declared: String,
        /// The expected type, as the WSDL writes it (`xs:int`, `tns:Order`).
        expected: String,
    },
    /// A response value could not be serialized (a bug in the service; 500).
    #[error("the response could not be serialized")]
    Serialize(String),
    /// WS-Security refused the message.
    #[error("security: {0}")]
    Security(#[from] SecurityFailure),
    /// A fault, returned by a handler or read from a peer's response.
    #[error("fault {}: {}", .0.code, .0.reason)]
    Fault(Box<Fault>),
    /// A handler failed in a way the client must not see the details of; answered as a
    /// Receiver/Server fault with a generic reason.
    #[error("internal error")]
    Internal(String),
    /// Client side: the peer's HTTP response carried neither a SOAP envelope nor a fault.
    #[error("unexpected response (status {status}): {reason}")]
    UnexpectedResponse {
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// Client side: a WSDL document that cannot be read into a
    /// [`Description`](crate::Description) (a missing reference, a wrong root, an unknown
    /// style, ...).
    #[error("invalid WSDL: {0}")]
    InvalidWsdl(String),
    /// A service or client description refused at build time.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// The HTTP status of the answer under SOAP 1.2 (part 2 section 7.5.1.2: Sender 400,
    /// Receiver/MustUnderstand/VersionMismatch 500; 413 and 415 before any envelope is
    /// read). The SOAP 1.1 binding answers every fault with 500 except 413 and 415.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::LimitExceeded {
                limit: LimitKind::BodyBytes,
                ..
            } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedContentType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Fault(f) => f.code.status(),
            Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            other => other.fault_code().status(),
        }
    }

    fn fault_code(&self) -> FaultCode {
        match self {
            Error::VersionMismatch { .. } => FaultCode::VersionMismatch,
            Error::MustUnderstand(_) => FaultCode::MustUnderstand,
            Error::DataEncodingUnknown { .. } => FaultCode::DataEncodingUnknown,
            Error::Serialize(_)
            | Error::Internal(_)
            | Error::Config(_)
            | Error::InvalidWsdl(_)
            | Error::UnexpectedResponse { .. } => FaultCode::Receiver,
            Error::Fault(f) => f.code.clone(),
            _ => FaultCode::Sender,
        }
    }

    /// The fault this error is answered with. Internal errors get a generic reason.
    pub fn to_fault(&self) -> Fault {
        match self {
            Error::Fault(f) => (**f).clone(),
            Error::Security(s) => s.to_fault(),
            Error::MustUnderstand(blocks) => {
                let mut fault = Fault::new(
                    FaultCode::MustUnderstand,
                    "One or more mandatory header blocks were not understood",
                );
                fault.not_understood = blocks.clone();
                fault
            }
            Error::Internal(_) | Error::Serialize(_) | Error::Config(_) => {
                Fault::new(FaultCode::Receiver, "Internal error")
            }
            other => Fault::new(other.fault_code(), other.to_string()),
        }
    }
}

impl From<Fault> for Error {
    fn from(fault: Fault) -> Self {
        Error::Fault(Box::new(fault))
    }
}
