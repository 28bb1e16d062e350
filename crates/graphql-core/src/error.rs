//! The one error type of graphql-core.

use std::fmt;

/// A position in a GraphQL document (SDL or query), one-based like the spec's `locations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Location {
    /// One-based line.
    pub line: u32,
    /// One-based column.
    pub column: u32,
}

impl Location {
    pub(crate) fn from_pos(pos: graphql_parser::Pos) -> Self {
        Location {
            line: u32::try_from(pos.line).unwrap_or(u32::MAX),
            column: u32::try_from(pos.column).unwrap_or(u32::MAX),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem found in a schema definition (SDL), with the places it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// What is wrong, naming the types and fields involved.
    pub message: String,
    /// Where in the SDL (may be empty for problems of the schema as a whole).
    pub locations: Vec<Location>,
}

impl SchemaError {
    pub(crate) fn new(message: impl Into<String>, locations: Vec<Location>) -> Self {
        SchemaError {
            message: message.into(),
            locations,
        }
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for (i, loc) in self.locations.iter().enumerate() {
            f.write_str(if i == 0 { " (at " } else { ", " })?;
            write!(f, "{loc}")?;
        }
        if !self.locations.is_empty() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in graphql-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SDL text is not syntactically valid GraphQL (graphql-parser's message).
    #[error("SDL syntax error: {0}")]
    SdlSyntax(String),
    /// The SDL parsed but describes an invalid schema, or a resolver or scalar was registered
    /// for something the SDL does not define. Every problem found is listed.
    #[error("invalid schema: {}", join(.0))]
    InvalidSchema(Vec<SchemaError>),
}

impl Error {
    /// The HTTP status to answer with when this error escapes a handler: always
    /// `500 Internal Server Error`, since every variant is a fault of the server's own schema.
    /// Errors in a client's request are GraphQL responses, whose status
    /// [`crate::write_http_response`] chooses.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        http::StatusCode::INTERNAL_SERVER_ERROR
    }
}

fn join(errors: &[SchemaError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&e.to_string());
    }
    out
}

/// The result type of graphql-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
