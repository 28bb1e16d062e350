//! The crate's one error type.

use http::StatusCode;

/// Why a cookie could not be built, signed, or a store could not be loaded.
///
/// Server-side variants are programming errors of the application (it asked for a cookie a
/// browser would drop or that would corrupt the header), so they map to
/// `500 Internal Server Error`; [`Error::Persistence`] comes from stored data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The cookie name is empty or not an RFC 9110 token (RFC 6265bis section 4.1.1).
    #[error("invalid cookie name {0:?}: it must be a non-empty token")]
    InvalidName(String),
    /// The value holds a byte outside `cookie-octet` (RFC 6265bis section 4.1.1), such as `;`,
    /// `,`, a space, a quote, a backslash or a control character: it would inject attributes.
    #[error("invalid value for cookie {name:?}: byte {byte:#04x} is not a cookie-octet")]
    InvalidValue {
        /// The cookie's name.
        name: String,
        /// The first offending byte.
        byte: u8,
    },
    /// An attribute value (`Path`, `Domain`) holds `;` or a control character.
    #[error("invalid {attribute} attribute {value:?}: `;` and control characters are not allowed")]
    InvalidAttribute {
        /// The attribute's name.
        attribute: &'static str,
        /// The offending value.
        value: String,
    },
    /// Name and value together exceed 4096 bytes (RFC 6265bis section 5.6, step 4).
    #[error("cookie {name:?} is {len} bytes; name and value may hold at most 4096")]
    CookieTooLarge {
        /// The cookie's name.
        name: String,
        /// Length of name plus value.
        len: usize,
    },
    /// An attribute value exceeds 1024 bytes (RFC 6265bis section 5.6, step 7).
    #[error("{attribute} attribute is {len} bytes; at most 1024 are allowed")]
    AttributeTooLarge {
        /// The attribute's name.
        attribute: &'static str,
        /// Its length.
        len: usize,
    },
    /// A `__Secure-` or `__Host-` cookie breaks its prefix's rules (RFC 6265bis section 4.1.3).
    #[error("cookie {name:?} breaks the rules of its prefix: {rule}")]
    Prefix {
        /// The cookie's name.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// `SameSite=None` without `Secure`: browsers drop it (RFC 6265bis section 5.7, step 15).
    #[error("cookie {0:?} has SameSite=None without Secure; browsers reject it")]
    SameSiteNoneInsecure(String),
    /// A key for signing or encryption is shorter than 64 bytes.
    #[error("key is {0} bytes; signed and private cookies need at least 64")]
    KeyTooShort(usize),
    /// A key ring's configuration text is not a list of base64 keys.
    #[error("key ring configuration: {0}")]
    KeyConfig(String),
    /// A persisted store could not be read or written.
    #[cfg(feature = "client")]
    #[error("cookie store persistence: {0}")]
    Persistence(#[from] serde_json::Error),
}

impl Error {
    /// The HTTP status a server should answer with when this error escapes a handler.
    ///
    /// Every variant is a server-side fault: the application built a cookie it may not send,
    /// or its configuration or stored data is broken.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
