//! A GraphQL request and response (spec sections 6 and 7).

use serde_json::{Map, Value};

use crate::cache_control::CachePolicy;
use crate::response::GraphQLError;

/// A request: the document text, the operation to run, and variable values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// The document text.
    pub query: String,
    /// Which operation to run when the document has several.
    pub operation_name: Option<String>,
    /// Raw variable values (JSON), coerced before execution (spec 6.1.2).
    pub variables: Map<String, Value>,
    /// The root value: the parent of root fields (default resolvers read it).
    pub root_value: Value,
    /// The request's `extensions` (e.g. `persistedQuery`), as sent.
    pub extensions: Option<Value>,
}

impl Request {
    /// A request for `query` with no operation name and no variables.
    pub fn new(query: impl Into<String>) -> Self {
        Request {
            query: query.into(),
            ..Request::default()
        }
    }

    /// Sets the operation name.
    #[must_use]
    pub fn operation_name(mut self, name: impl Into<String>) -> Self {
        self.operation_name = Some(name.into());
        self
    }

    /// Sets the root value.
    #[must_use]
    pub fn root_value(mut self, value: Value) -> Self {
        self.root_value = value;
        self
    }

    /// Sets the variables.
    #[must_use]
    pub fn variables(mut self, variables: Map<String, Value>) -> Self {
        self.variables = variables;
        self
    }
}

/// The result of a request (spec 7.1).
///
/// `data` is the serialized JSON of the `data` entry, written directly by the executor in
/// field order: `None` when the request failed before execution (a request error), so the
/// response has no `data` entry at all, as the spec requires.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The `data` entry as JSON text (`"null"` when a non-null root field failed).
    pub data: Option<String>,
    /// Request errors or field errors.
    pub errors: Vec<GraphQLError>,
    /// The cache policy (`@cacheControl`): `None` unless the schema has cache hints on
    /// ([`SchemaBuilder::cache_control`](crate::SchemaBuilder::cache_control)); then
    /// [`CachePolicy::NO_STORE`] for responses with errors, mutations and subscriptions.
    pub cache_policy: Option<CachePolicy>,
}

impl Response {
    /// A response for a request error: no `data`, one error.
    pub fn request_error(error: GraphQLError) -> Self {
        Response {
            data: None,
            errors: vec![error],
            cache_policy: None,
        }
    }

    /// Whether execution started (the spec's distinction between request errors, with no
    /// `data` entry, and field errors).
    pub fn has_data(&self) -> bool {
        self.data.is_some()
    }

    /// The response as JSON text: `errors` first when present (spec 7.1.2 suggests it), then
    /// `data`, keeping field order.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.data.as_ref().map_or(64, |d| d.len() + 16));
        out.push('{');
        if !self.errors.is_empty() {
            out.push_str("\"errors\":");
            let errors = Value::Array(self.errors.iter().map(GraphQLError::to_json).collect());
            out.push_str(&errors.to_string());
            if self.data.is_some() {
                out.push(',');
            }
        }
        if let Some(data) = &self.data {
            out.push_str("\"data\":");
            out.push_str(data);
        }
        out.push('}');
        out
    }

    /// The response parsed into a `serde_json::Value` (object key order is serde_json's).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.to_json()).unwrap_or(Value::Null)
    }
}
