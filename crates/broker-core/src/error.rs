//! The crate's one error type.

use std::time::Duration;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A wire header block could not be parsed; `line` counts from 1.
    #[error("wire headers, line {line}: {reason}")]
    WireHeader {
        /// The line of the header block where parsing failed.
        line: usize,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A header name or value given through the API is not allowed on the wire.
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader {
        /// The offending name (truncated to 64 bytes).
        name: String,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A subject or subject pattern (`a.b.*`, `a.>`) or an MQTT topic cannot be mapped.
    #[error("invalid subject {subject:?}: {reason}")]
    InvalidSubject {
        /// The offending subject or topic (truncated to 200 characters).
        subject: String,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A queue name is empty, too long or has characters a backend cannot carry.
    #[error("invalid queue name {0:?}: use 1 to 200 characters of A-Z a-z 0-9 - _")]
    InvalidQueueName(String),
    /// The queue was not declared with [`Broker::declare`](crate::Broker::declare).
    #[error("queue {0:?} is not declared")]
    UnknownQueue(String),
    /// The queue holds its configured maximum of ready messages: publish later
    /// (backpressure, nothing is dropped).
    #[error("queue {queue:?} is full ({limit} ready messages)")]
    QueueFull {
        /// The queue.
        queue: String,
        /// Its configured `max_ready`.
        limit: usize,
    },
    /// The delivery was already settled, expired, or belongs to another backend.
    #[error("delivery is no longer held (settled, expired or from another broker)")]
    StaleDelivery,
    /// The backend cannot do this; [`Capabilities`](crate::Capabilities) says so too.
    #[error("{backend} does not support {capability}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// The missing capability.
        capability: &'static str,
    },
    /// A payload could not be encoded or decoded by a codec.
    #[error("codec {codec}: {detail}")]
    Codec {
        /// The codec's content type.
        codec: &'static str,
        /// The underlying error.
        detail: String,
    },
    /// A retry policy or queue configuration is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// A broker URL ([`AnyBroker::connect`](crate::AnyBroker::connect)) has no scheme,
    /// an unknown one, or no host.
    #[error("broker URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL without its user information (truncated to 200 characters).
        url: String,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A broker URL names a backend this build leaves out.
    #[error("{scheme}:// needs broker-core's `{feature}` feature (this build has it off)")]
    FeatureDisabled {
        /// The URL's scheme.
        scheme: &'static str,
        /// The cargo feature of broker-core that adds the backend.
        feature: &'static str,
    },
    /// The backend did not answer in time.
    #[error("backend timed out after {0:?}")]
    Timeout(Duration),
    /// The backend's client or server reported an error.
    #[error("{backend} error: {detail}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// The client's error message.
        detail: String,
    },
    /// The TLS files of an `amqps://` or `mqtts://` URL (`cacertfile`, `certfile`,
    /// `keyfile`) could not be read or hold no usable certificate or key. (A handshake
    /// that fails, e.g. on a certificate that does not verify, is [`Error::Backend`].)
    #[error("TLS: {0}")]
    Tls(String),
    /// The embedded broker's journal could not be read or written (see
    /// [`EmbeddedBroker::open`](crate::EmbeddedBroker::open)). After a failed write the
    /// journal accepts nothing more: reopen the broker.
    #[error("journal: {context}: {source}")]
    JournalIo {
        /// What the broker was doing.
        context: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A record of the embedded broker's journal is damaged before the end of the file
    /// (a damaged last record is a torn write and is dropped instead).
    #[error("journal corrupt at byte {offset}: {reason}")]
    JournalCorrupt {
        /// Where the record starts in the file.
        offset: u64,
        /// What was wrong with it.
        reason: &'static str,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
