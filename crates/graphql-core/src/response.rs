//! Errors as they appear in a GraphQL response (spec section 7.1.2).

use std::fmt;

use serde_json::{Map, Value};

use crate::error::Location;

/// One step of a response path: a field's response name or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A response key (alias or field name).
    Key(String),
    /// An index in a list.
    Index(usize),
}

/// An error of a GraphQL request: a request error (syntax, validation, coercion) or a field
/// error raised while executing.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphQLError {
    /// What went wrong, for people.
    pub message: String,
    /// Where in the document.
    pub locations: Vec<Location>,
    /// For field errors: the response path of the field.
    pub path: Option<Vec<PathSegment>>,
    /// Machine-readable details.
    pub extensions: Option<Map<String, Value>>,
}

impl GraphQLError {
    /// An error with a message and the given locations.
    pub fn new(message: impl Into<String>, locations: Vec<Location>) -> Self {
        GraphQLError {
            message: message.into(),
            locations,
            path: None,
            extensions: None,
        }
    }

    /// The error as the response's JSON.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("message".to_owned(), Value::String(self.message.clone()));
        if !self.locations.is_empty() {
            obj.insert(
                "locations".to_owned(),
                Value::Array(
                    self.locations
                        .iter()
                        .map(|l| serde_json::json!({"line": l.line, "column": l.column}))
                        .collect(),
                ),
            );
        }
        if let Some(path) = &self.path {
            obj.insert(
                "path".to_owned(),
                Value::Array(
                    path.iter()
                        .map(|p| match p {
                            PathSegment::Key(k) => Value::String(k.clone()),
                            PathSegment::Index(i) => Value::from(*i),
                        })
                        .collect(),
                ),
            );
        }
        if let Some(ext) = &self.extensions {
            obj.insert("extensions".to_owned(), Value::Object(ext.clone()));
        }
        Value::Object(obj)
    }
}

impl fmt::Display for GraphQLError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(l) = self.locations.first() {
            write!(f, " (at {l})")?;
        }
        Ok(())
    }
}

impl std::error::Error for GraphQLError {}
