//! Why a server could not start.

use std::fmt;

/// Why a server could not start: the message says what to change (`PORT=abc is not a port
/// number`, `address already in use; set PORT to a free port`).
///
/// A message rather than an enum: the examples' `main` only prints it. `Debug` prints the
/// message too, so that `fn main() -> Result<(), serve::Error>` reports it readably.
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}
