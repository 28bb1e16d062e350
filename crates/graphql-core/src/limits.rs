//! The limits configuration: what a request may cost (document size, tokens, depth,
//! aliases, complexity) and the caps the executor enforces while it runs (result values,
//! leaf bytes, time). The checks before execution are in `validation/limits.rs`; the
//! executor reads the caps.

use std::time::Duration;

use serde_json::Map;

use crate::response::GraphQLError;

/// Limits on a request. The defaults suit a public API; raise them for trusted clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest document, in bytes (checked before parsing).
    pub max_document_bytes: usize,
    /// Most lexical tokens in a document (checked before parsing).
    pub max_tokens: usize,
    /// Deepest field nesting of an operation, fragments followed (root fields are depth 1).
    pub max_depth: usize,
    /// Most aliased fields in an operation, counting each fragment spread.
    pub max_aliases: usize,
    /// Highest complexity: each field costs its cost (1 unless `SchemaBuilder::cost` says
    /// otherwise) plus its sub-selection's cost times the integer value of its `first`,
    /// `last` or `limit` argument (given, from a variable after its default applies, or the
    /// argument's default), or, for a list field without one, times its assumed size.
    pub max_complexity: usize,
    /// How many items a list field without a `first`/`last`/`limit` argument is assumed to
    /// return in the complexity count, unless `SchemaBuilder::list_size` sets it for the
    /// field. Fields of the introspection types count 1 (the schema bounds them).
    pub assumed_list_size: usize,
    /// Most values the executor produces for one result (every field and every list item
    /// counts one); past it the rest of the response is cut off with a `LIMIT_EXCEEDED`
    /// field error (the data produced so far is kept).
    pub max_result_values: usize,
    /// Most bytes of leaf values (scalars and enums, as JSON text) in one result; past it
    /// the response is cut off like [`Limits::max_result_values`].
    pub max_result_bytes: usize,
    /// Longest an execution may run; checked between values, so past it the response is
    /// cut off like [`Limits::max_result_values`]. An async resolver that does not return
    /// is not interrupted: the server's own timeout covers that. `None`: no limit.
    pub max_execution_time: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_bytes: 64 * 1024,
            max_tokens: 10_000,
            max_depth: 24,
            max_aliases: 64,
            max_complexity: 10_000,
            assumed_list_size: 10,
            max_result_values: 200_000,
            max_result_bytes: 16 << 20,
            max_execution_time: Some(Duration::from_secs(10)),
        }
    }
}

/// A request or field error with the extension code `LIMIT_EXCEEDED`.
pub(crate) fn limit_error(message: String) -> GraphQLError {
    let mut e = GraphQLError::new(message, vec![]);
    let mut ext = Map::new();
    ext.insert("code".to_owned(), "LIMIT_EXCEEDED".into());
    e.extensions = Some(ext);
    e
}

impl Limits {
    /// No limits at all (for trusted, internal use).
    pub fn unlimited() -> Self {
        Limits {
            max_document_bytes: usize::MAX,
            max_tokens: usize::MAX,
            max_depth: usize::MAX,
            max_aliases: usize::MAX,
            max_complexity: usize::MAX,
            assumed_list_size: 1,
            max_result_values: usize::MAX,
            max_result_bytes: usize::MAX,
            max_execution_time: None,
        }
    }
}
