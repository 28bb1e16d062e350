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
