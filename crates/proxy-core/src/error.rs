//! The crate's one error type.

/// Why an input could not be parsed or a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `Forwarded` header (RFC 7239 section 4) is malformed at the given byte offset.
    #[error("malformed Forwarded header at byte {0}")]
    Forwarded(usize),
    /// An `X-Forwarded-For` entry is not an IP address.
    #[error("malformed X-Forwarded-For entry {0:?}")]
    XForwardedFor(String),
    /// A CIDR block in a trusted-proxy list is malformed.
    #[error("invalid CIDR block {0:?}")]
    Cidr(String),
    /// A configuration value is out of range; the string names it.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A request head was refused by the smuggling checks; the detail says why.
    #[error("request head refused: {0}")]
    Smuggling(#[from] crate::SmugglingError),
    /// A compressor could not start or failed; the string says why.
    #[error("compression failed: {0}")]
    Compression(String),
}

impl Error {
    /// The HTTP status to answer with when this error escapes a handler: `400` for a
    /// malformed forwarding header, the smuggling check's own status (`400` or `431`), and
    /// `500` for a configuration the server itself got wrong.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::Forwarded(_) | Self::XForwardedFor(_) => http::StatusCode::BAD_REQUEST,
            Self::Smuggling(error) => error.status(),
            Self::Cidr(_) | Self::Config(_) | Self::Compression(_) => {
                http::StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
