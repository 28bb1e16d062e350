//! The crate's one error type: handshake rejections map to HTTP statuses, protocol
//! violations to WebSocket close codes (RFC 6455 section 7.4.1).

use http::StatusCode;
use tungstenite::protocol::frame::coding::CloseCode;

/// What went wrong, with the HTTP status or close code a peer should see.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The upgrade request did not use `GET` (RFC 6455 section 4.2.1, item 1).
    #[error("a WebSocket upgrade must use GET, not {0}")]
    MethodNotGet(String),
    /// The request is older than HTTP/1.1 (RFC 6455 section 4.2.1, item 1).
    #[error("a WebSocket upgrade needs HTTP/1.1 or later")]
    HttpVersion,
    /// `Upgrade: websocket` is missing (RFC 6455 section 4.2.1, item 3).
    #[error("the Upgrade header does not name websocket")]
    MissingUpgrade,
    /// `Connection: Upgrade` is missing (RFC 6455 section 4.2.1, item 4).
    #[error("the Connection header does not contain the Upgrade token")]
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` is missing or not 16 bytes in base64 (RFC 6455 section 4.2.1, item 5).
    #[error("Sec-WebSocket-Key is missing or is not 16 bytes in base64")]
    BadKey,
    /// `Sec-WebSocket-Version` is not 13 (RFC 6455 section 4.2.2 answers 426 with the version).
    #[error("unsupported Sec-WebSocket-Version (only 13 is supported)")]
    UnsupportedVersion,
    /// The `Origin` is not on the allow-list (cross-site WebSocket hijacking defense).
    #[error("origin {0:?} is not allowed")]
    OriginNotAllowed(String),
    /// The client offered none of the subprotocols the server requires.
    #[error("none of the offered subprotocols is supported")]
    NoCommonSubprotocol,
    /// A `Sec-WebSocket-Extensions` or `Sec-WebSocket-Protocol` header is malformed.
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    /// The authentication hook found no valid credentials (401).
    #[error("authentication required")]
    Unauthorized {
        /// The `WWW-Authenticate` challenge to send, if any.
        challenge: Option<String>,
    },
    /// The authentication hook refused the authenticated client (403).
    #[error("forbidden: {0}")]
    Forbidden(String),

    /// The peer broke the framing rules (close code 1002).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A text message or close reason was not UTF-8 (close code 1007).
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A compressed message could not be inflated (close code 1007).
    #[error("invalid permessage-deflate data: {0}")]
    Inflate(String),
    /// A frame was larger than the configured limit (close code 1009).
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The announced payload length.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message (after inflation) was larger than the configured limit (close code 1009).
    #[error("message exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The send buffer is full: the peer is not reading fast enough.
    #[error("send buffer full ({queued} bytes queued, limit {limit})")]
    SendBufferFull {
        /// Bytes already waiting to be written.
        queued: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The connection is closing or closed; nothing more can be sent.
    #[error("the connection is closed")]
    Closed,
    /// Compressing an outgoing message failed.
    #[error("deflate failed: {0}")]
    Deflate(String),
    /// The hub does not know this client (it disconnected).
    #[error("unknown client")]
    UnknownClient,
    /// A client asked to join more rooms than [`HubConfig::max_rooms_per_client`](crate::HubConfig::max_rooms_per_client).
    #[error("a client may be in at most {limit} rooms")]
    TooManyRooms {
        /// The configured limit.
        limit: usize,
    },
    /// The hub is shutting down and accepts no new clients.
    #[error("the hub is shutting down")]
    ShuttingDown,
    /// An IO error from the transport.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// An error from the scale-out backend.
    #[error("scale-out backend: {0}")]
    Backend(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status to answer with when this error escapes a handler: a handshake
    /// rejection's own status, and `500 Internal Server Error` for the errors of an open
    /// connection or a backend (those end a connection with [`Error::close_code`] instead).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotGet(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::HttpVersion
            | Self::MissingUpgrade
            | Self::MissingConnectionUpgrade
            | Self::BadKey
            | Self::NoCommonSubprotocol
            | Self::MalformedHeader(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            Self::OriginNotAllowed(_) | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The close code to send when this error ends an open connection (RFC 6455 section
    /// 7.4.1), `None` when no close frame should be sent.
    pub fn close_code(&self) -> Option<CloseCode> {
        Some(match self {
            Self::Protocol(_) => CloseCode::Protocol,
            Self::InvalidUtf8 | Self::Inflate(_) => CloseCode::Invalid,
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::Size,
            Self::SendBufferFull { .. } => CloseCode::Again,
            Self::Deflate(_) => CloseCode::Error,
            _ => return None,
        })
    }
}
