//! Why a server could not start, and the exit code that says so.

use std::fmt;
use std::process::ExitCode;

/// Why a server could not start: the message says what to change (`PORT="abc" is not a port
/// number`, `address already in use; set PORT to a free port`).
///
/// A message rather than an enum: the examples' `main` only prints it, through [`exit`].
/// A usage error (a bad setting) exits with 2, any other failure with 1.
pub struct Error {
    message: String,
    usage: bool,
}

impl Error {
    /// A bad setting or argument: exits with status 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            usage: true,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Any other failure (a taken port, an app that cannot start): exits with status 1.
impl From<String> for Error {
    fn from(message: String) -> Self {
        Self {
            message,
            usage: false,
        }
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::from(message.to_owned())
    }
}

/// The configuration a server binary was started with (`PROGRAM --config FILE`), read and
/// given to `parse`. A missing argument, an unreadable file and a configuration `parse`
/// refuses are usage errors (exit status 2 through [`exit`]) naming the file.
///
/// # Errors
/// As above; the message says which.
pub fn config_from_args<T>(
    program: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, Error> {
    let mut args = std::env::args().skip(1);
    let path = match (args.next().as_deref(), args.next()) {
        (Some("--config"), Some(path)) => path,
        _ => return Err(Error::usage(format!("usage: {program} --config FILE"))),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::usage(format!("cannot read {path}: {e}")))?;
    parse(&text).map_err(|e| Error::usage(format!("{path}: {e}")))
}

/// The end of an example's `main`: success is 0; an error is written to stderr as
/// `error: MESSAGE` and exits with 2 for a usage error, 1 otherwise.
pub fn exit(result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            if error.usage {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
