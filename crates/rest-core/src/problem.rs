//! RFC 9457 problem details: the body of every error response.
//!
//! ```
//! use rest_core::ProblemDetails;
//! use http::StatusCode;
//!
//! let problem = ProblemDetails::new(StatusCode::CONFLICT)
//!     .with_detail("the e-mail address is taken")
//!     .with_extension("field", "email".into());
//! let response = problem.to_response::<bytes::Bytes>();
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! ```

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The media type of a problem body (RFC 9457 section 3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details object: the standard members plus extension members.
///
/// Extension members are serialized beside the standard ones (section 3.2); names of the
/// standard members are refused as extension names so that they cannot be shadowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Problem", description = "RFC 9457 problem details")]
pub struct ProblemDetails {
    /// A URI reference identifying the problem type; `about:blank` when the status says it all.
    #[serde(rename = "type", default = "about_blank")]
    pub problem_type: String,
    /// A short, human-readable summary of the problem type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The HTTP status code of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A human-readable explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A URI reference identifying this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension members (section 3.2).
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

fn about_blank() -> String {
    "about:blank".to_owned()
}

const STANDARD_MEMBERS: [&str; 5] = ["type", "title", "status", "detail", "instance"];

impl ProblemDetails {
    /// A problem of type `about:blank` whose title is the status's reason phrase (section 4.2.1).
    #[must_use]
    pub fn new(status: StatusCode) -> Self {
        Self {
            problem_type: about_blank(),
            title: status.canonical_reason().map(str::to_owned),
            status: Some(status.as_u16()),
            detail: None,
            instance: None,
            extensions: Map::new(),
        }
    }

    /// Sets the problem type URI and its title.
    #[must_use]
    pub fn with_type(mut self, uri: impl Into<String>, title: impl Into<String>) -> Self {
        self.problem_type = uri.into();
        self.title = Some(title.into());
        self
    }

    /// Sets the occurrence-specific explanation.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the occurrence URI.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Adds an extension member; a standard member's name is ignored (it would shadow it).
    #[must_use]
    pub fn with_extension(mut self, name: impl Into<String>, value: Value) -> Self {
        let name = name.into();
        if !STANDARD_MEMBERS.contains(&name.as_str()) {
            self.extensions.insert(name, value);
        }
        self
    }

    /// The status as a `StatusCode` (500 when absent or out of range).
    #[must_use]
    pub fn status_code(&self) -> StatusCode {
        self.status
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The JSON bytes of this problem.
    #[must_use]
    pub fn to_json(&self) -> Bytes {
        // Serializing strings, numbers and a `Map<String, Value>` cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// A response with this problem's status, `Content-Type: application/problem+json` and
    /// `Cache-Control: no-store` (errors describe one occurrence).
    #[must_use]
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut response = Response::new(B::from(self.to_json()));
        *response.status_mut() = self.status_code();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_members_sit_beside_standard_ones_and_cannot_shadow_them() {
        let problem = ProblemDetails::new(StatusCode::UNPROCESSABLE_ENTITY)
            .with_extension("pointer", "/name".into())
            .with_extension("status", 200.into());
        let json: Value = serde_json::from_slice(&problem.to_json()).unwrap();
        assert_eq!(json["pointer"], "/name");
        assert_eq!(json["status"], 422);
        assert_eq!(json["type"], "about:blank");
        assert_eq!(json["title"], "Unprocessable Entity");
        let back: ProblemDetails = serde_json::from_value(json).unwrap();
        assert_eq!(back, problem);
    }

    #[test]
    fn a_response_carries_the_status_and_media_type() {
        let response: Response<Bytes> = ProblemDetails::new(StatusCode::NOT_FOUND).to_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
