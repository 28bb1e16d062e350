//! Uploaded files (the GraphQL multipart request specification): what a resolver gets for
//! an argument of the `Upload` scalar.
//!
//! [`read_multipart_request`](crate::read_multipart_request) (feature `upload`) reads the
//! files and puts, at each place the request's `map` names, a small JSON value that stands
//! for the file (`{"$upload": 0}`); the `Upload` scalar
//! ([`ScalarCoercion::upload`](crate::ScalarCoercion::upload)) accepts only those, and a
//! resolver exchanges one for the file with [`Context::upload`](crate::Context::upload).
//!
//! ```
//! use graphql_core::{Context, UploadedFile};
//! use serde_json::json;
//!
//! let file = UploadedFile::new("a.txt", Some("a.txt".into()), Some("text/plain".into()), "hi".into());
//! let ctx = Context::default().with_uploads(vec![file]);
//! let got = ctx.upload(&json!({"$upload": 0})).unwrap();
//! assert_eq!(&got.bytes[..], b"hi");
//! assert!(ctx.upload(&json!({"$upload": 1})).is_none());
//! ```

use bytes::Bytes;
use serde_json::Value;

/// The key of the JSON object that stands for an uploaded file in variables.
pub const UPLOAD_KEY: &str = "$upload";

/// A file of a multipart request, held in memory (bounded by the request's limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// The name of its part in the multipart body (the key of the `map` entry).
    pub field: String,
    /// The file name the client gave, if any.
    pub filename: Option<String>,
    /// The media type the client gave, if any (not checked: treat as a claim).
    pub content_type: Option<String>,
    /// The content.
    pub bytes: Bytes,
}

impl UploadedFile {
    /// A file (for tests and for transports of your own).
    pub fn new(
        field: impl Into<String>,
        filename: Option<String>,
        content_type: Option<String>,
        bytes: Bytes,
    ) -> Self {
        UploadedFile {
            field: field.into(),
            filename,
            content_type,
            bytes,
        }
    }
}

/// The JSON value that stands for the `index`th uploaded file.
pub fn upload_placeholder(index: usize) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(UPLOAD_KEY.to_owned(), Value::from(index));
    Value::Object(map)
}

/// The file index a placeholder stands for, if `value` is one.
pub(crate) fn placeholder_index(value: &Value) -> Option<usize> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.get(UPLOAD_KEY)?
        .as_u64()
        .and_then(|i| usize::try_from(i).ok())
}
