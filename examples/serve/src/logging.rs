//! Tracing to stderr, as text or JSON lines.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber: to stderr (stdout carries only the announce
/// line), filtered by `RUST_LOG` (default `info`), one JSON object per line when
/// `LOG_FORMAT=json`, otherwise text, coloured only when stderr is a terminal. Does nothing
/// if a subscriber is already installed.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("LOG_FORMAT").is_ok_and(|format| format == "json") {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// How a request is logged: see [`level_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Routine traffic nobody reads line by line: health checks.
    Debug,
    /// An ordinary request.
    Info,
    /// A refusal worth a warning line, with what it means.
    Refusal(&'static str),
}

/// The level of a request's log line, from its path and the response's status: health checks
/// at debug level, refusals (authentication, CSRF and permission, size and rate limits) as
/// warnings naming what happened, the rest at info.
///
/// ```
/// use serve::logging::{level_for, Level};
/// use http::StatusCode;
///
/// assert_eq!(level_for("/healthz", StatusCode::OK), Level::Debug);
/// assert_eq!(level_for("/api/users", StatusCode::OK), Level::Info);
/// assert_eq!(
///     level_for("/auth/login", StatusCode::TOO_MANY_REQUESTS),
///     Level::Refusal("too many requests (throttled or rate limited)")
/// );
/// ```
pub fn level_for(path: &str, status: http::StatusCode) -> Level {
    use http::StatusCode;
    if path == "/healthz" || path.ends_with("/healthz") {
        // A failing health check is news; a passing one every few seconds is not.
        return if status.is_success() {
            Level::Debug
        } else {
            Level::Refusal("health check failed")
        };
    }
    match status {
        StatusCode::UNAUTHORIZED => Level::Refusal("not authenticated"),
        StatusCode::FORBIDDEN => Level::Refusal("forbidden (CSRF check, origin or permission)"),
        StatusCode::PAYLOAD_TOO_LARGE => Level::Refusal("body over the size limit"),
        StatusCode::TOO_MANY_REQUESTS => {
            Level::Refusal("too many requests (throttled or rate limited)")
        }
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Level::Refusal("headers over the limit"),
        _ => Level::Info,
    }
}

/// A duration written for people: `850 µs`, `12.3 ms`, `1.50 s`.
///
/// ```
/// use std::time::Duration;
/// use serve::logging::Took;
///
/// assert_eq!(Took(Duration::from_micros(850)).to_string(), "850 µs");
/// assert_eq!(Took(Duration::from_micros(12_345)).to_string(), "12.3 ms");
/// assert_eq!(Took(Duration::from_millis(1_500)).to_string(), "1.50 s");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Took(pub std::time::Duration);

impl std::fmt::Display for Took {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.as_micros();
        if micros < 1_000 {
            write!(f, "{micros} µs")
        } else if micros < 1_000_000 {
            write!(f, "{:.1} ms", self.0.as_secs_f64() * 1_000.0)
        } else {
            write!(f, "{:.2} s", self.0.as_secs_f64())
        }
    }
}
