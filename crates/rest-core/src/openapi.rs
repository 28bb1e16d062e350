//! An OpenAPI 3.1 document model, built from route metadata, with JSON Schemas generated
//! from Rust types by `schemars` (JSON Schema 2020-12, the dialect OpenAPI 3.1 uses).
//! Error responses are documented as `application/problem+json` with the
//! [`ProblemDetails`](crate::ProblemDetails) schema.
//!
//! ```
//! use http::Method;
//! use rest_core::{OpenApiBuilder, Operation};
//!
//! #[derive(serde::Serialize, schemars::JsonSchema)]
//! struct User { id: u64, name: String }
//!
//! let mut api = OpenApiBuilder::new("Users", "1.0.0");
//! let user = api.schema::<User>();
//! api.operation(
//!     &Method::GET,
//!     "/users/{id}",
//!     Operation::new("getUser")
//!         .path_param("id", serde_json::json!({"type": "integer", "minimum": 1}))
//!         .response(200, "The user", Some(user))
//!         .problem(404, "No such user"),
//! )?;
//! let doc = api.build();
//! assert_eq!(doc.openapi, "3.1.0");
//! assert!(doc.paths["/users/{id}"]["get"].responses.contains_key("404"));
//! # Ok::<(), rest_core::Error>(())
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;
use http::Method;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Error, PROBLEM_JSON, ProblemDetails, Result};

/// The root document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenApi {
    /// The OpenAPI version, `3.1.0`.
    pub openapi: String,
    /// Title, version and description of the API.
    pub info: Info,
    /// Path template -> lowercase method -> operation.
    pub paths: BTreeMap<String, BTreeMap<String, Operation>>,
    /// Reusable schemas.
    pub components: Components,
}

impl OpenApi {
    /// The document as JSON bytes.
    #[must_use]
    pub fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The `info` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// The API's title.
    pub title: String,
    /// The document's version.
    pub version: String,
    /// A description (CommonMark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The `components` object (schemas only).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Components {
    /// Schema name -> JSON Schema.
    pub schemas: BTreeMap<String, Value>,
}

/// One operation (method on a path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// A unique id (`getUser`).
    pub operation_id: String,
    /// A one-line summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Grouping tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Path, query and header parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    /// The request body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<RequestBody>,
    /// Status code -> response.
    pub responses: BTreeMap<String, ApiResponse>,
}

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParameterIn {
    /// In the path template.
    Path,
    /// In the query string.
    Query,
    /// In a request header.
    Header,
}

/// A parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    /// Its name.
    pub name: String,
    /// Where it is.
    #[serde(rename = "in")]
    pub location: ParameterIn,
    /// Whether it must be present (always true for path parameters).
    pub required: bool,
    /// Its JSON Schema.
    pub schema: Value,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestBody {
    /// Whether it must be present.
    pub required: bool,
    /// Media type -> schema.
    pub content: BTreeMap<String, MediaType>,
}

/// A media type object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaType {
    /// The schema of the body.
    pub schema: Value,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiResponse {
    /// Its description (required by OpenAPI).
    pub description: String,
    /// Header name -> header object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderObject>,
    /// Media type -> schema; empty for a body-less response.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub content: BTreeMap<String, MediaType>,
    /// Link name -> OpenAPI link object (how this response's values feed other operations).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, Value>,
}

/// A response header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeaderObject {
    /// Whether it is always sent.
    pub required: bool,
    /// Its schema.
    pub schema: Value,
}

impl Operation {
    /// An operation with an id and no responses yet.
    #[must_use]
    pub fn new(operation_id: impl Into<String>) -> Self {
        Self {
            operation_id: operation_id.into(),
            summary: None,
            tags: Vec::new(),
            parameters: Vec::new(),
            request_body: None,
            responses: BTreeMap::new(),
        }
    }

    /// Sets the summary.
    #[must_use]
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds a parameter.
    #[must_use]
    pub fn parameter(mut self, parameter: Parameter) -> Self {
        self.parameters.push(parameter);
        self
    }

    /// Adds parameters (e.g. from [`OpenApiBuilder::query_parameters`]).
    #[must_use]
    pub fn parameters(mut self, parameters: impl IntoIterator<Item = Parameter>) -> Self {
        self.parameters.extend(parameters);
        self
    }

    /// Adds a (required) path parameter.
    #[must_use]
    pub fn path_param(self, name: impl Into<String>, schema: Value) -> Self {
        self.parameter(Parameter {
            name: name.into(),
            location: ParameterIn::Path,
            required: true,
            schema,
            description: None,
        })
    }

    /// Adds a header parameter.
    #[must_use]
    pub fn header_param(self, name: impl Into<String>, required: bool, schema: Value) -> Self {
        self.parameter(Parameter {
            name: name.into(),
            location: ParameterIn::Header,
            required,
            schema,
            description: None,
        })
    }

    /// Sets a required `application/json` body.
    #[must_use]
    pub fn json_body(mut self, schema: Value) -> Self {
        self.request_body = Some(RequestBody {
            required: true,
            content: BTreeMap::from([("application/json".to_owned(), MediaType { schema })]),
        });
        self
    }

    /// Adds a response; with a schema its body is `application/json`.
    #[must_use]
    pub fn response(mut self, status: u16, description: &str, schema: Option<Value>) -> Self {
        let content = schema
            .map(|schema| BTreeMap::from([("application/json".to_owned(), MediaType { schema })]))
            .unwrap_or_default();
        self.responses.insert(
            status.to_string(),
            ApiResponse {
                description: description.to_owned(),
                headers: BTreeMap::new(),
                content,
                links: BTreeMap::new(),
            },
        );
        self
    }

    /// Adds a header to a response already added (ignored otherwise).
    #[must_use]
    pub fn response_header(
        mut self,
        status: u16,
        name: &str,
        required: bool,
        schema: Value,
    ) -> Self {
        if let Some(response) = self.responses.get_mut(&status.to_string()) {
            response
                .headers
                .insert(name.to_owned(), HeaderObject { required, schema });
        }
        self
    }

    /// Adds an error response whose body is an RFC 9457 problem.
    #[must_use]
    pub fn problem(mut self, status: u16, description: &str) -> Self {
        self.responses.insert(
            status.to_string(),
            ApiResponse {
                description: description.to_owned(),
                headers: BTreeMap::new(),
                content: BTreeMap::from([(
                    PROBLEM_JSON.to_owned(),
                    MediaType {
                        schema: json!({ "$ref": "#/components/schemas/ProblemDetails" }),
                    },
                )]),
                links: BTreeMap::new(),
            },
        );
        self
    }

    /// Adds a link to a response already added (ignored otherwise), e.g.
    /// `{"operationId": "getUser", "parameters": {"id": "$response.body#/id"}}`.
    #[must_use]
    pub fn response_link(mut self, status: u16, name: &str, link: Value) -> Self {
        if let Some(response) = self.responses.get_mut(&status.to_string()) {
            response.links.insert(name.to_owned(), link);
        }
        self
    }
}

/// An optional query parameter is absent, never `null`: drop `null` from an `Option`'s
/// `type` list (a query string cannot carry a JSON null).
fn without_null(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(kind) = schema.get_mut("type")
        && let Some(types) = kind.as_array_mut()
    {
        types.retain(|t| t != "null");
        if let [single] = types.as_slice() {
            *kind = single.clone();
        }
    }
    schema
}

/// Builds an [`OpenApi`] document: one generator collects every schema into
/// `components/schemas`.
#[derive(Debug)]
pub struct OpenApiBuilder {
    doc: OpenApi,
    generator: SchemaGenerator,
}

fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|settings| {
        settings.definitions_path = "/components/schemas".into();
        settings.meta_schema = None;
    })
}

impl OpenApiBuilder {
    /// A document with a title and version.
    #[must_use]
    pub fn new(title: &str, version: &str) -> Self {
        Self {
            doc: OpenApi {
                openapi: "3.1.0".to_owned(),
                info: Info {
                    title: title.to_owned(),
                    version: version.to_owned(),
                    description: None,
                },
                paths: BTreeMap::new(),
                components: Components::default(),
            },
            generator: settings().into_generator(),
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: &str) -> Self {
        self.doc.info.description = Some(description.to_owned());
        self
    }

    /// The schema of `T`: a `$ref` into `components/schemas` for named types.
    pub fn schema<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    /// One query parameter per field of `T` (a struct), with the field's schema inlined and
    /// `required` from the schema. Repeated keys are described by an array field.
    #[must_use]
    pub fn query_parameters<T: JsonSchema>(&self) -> Vec<Parameter> {
        let schema = settings()
            .with(|settings| settings.inline_subschemas = true)
            .into_generator()
            .into_root_schema_for::<T>();
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| {
                properties
                    .iter()
                    .map(|(name, schema)| Parameter {
                        name: name.clone(),
                        location: ParameterIn::Query,
                        required: required.contains(&name.as_str()),
                        schema: without_null(schema),
                        description: schema
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Adds an operation on a route template (`matchit` catch-alls `{*rest}` become `{rest}`).
    ///
    /// # Errors
    ///
    /// [`Error::RouteConflict`] when the path already has an operation for this method or
    /// the operation id is taken.
    pub fn operation(
        &mut self,
        method: &Method,
        template: &str,
        operation: Operation,
    ) -> Result<()> {
        let path = template.replace("{*", "{");
        let id_taken = self
            .doc
            .paths
            .values()
            .flat_map(BTreeMap::values)
            .any(|existing| existing.operation_id == operation.operation_id);
        if id_taken {
            return Err(Error::RouteConflict {
                route: template.to_owned(),
                reason: format!("operationId {} is taken", operation.operation_id),
            });
        }
        let item = self.doc.paths.entry(path).or_default();
        let key = method.as_str().to_ascii_lowercase();
        if item.contains_key(&key) {
            return Err(Error::RouteConflict {
                route: template.to_owned(),
                reason: format!("{method} is already documented"),
            });
        }
        item.insert(key, operation);
        Ok(())
    }

    /// The finished document, with every schema used and `ProblemDetails`.
    #[must_use]
    pub fn build(mut self) -> OpenApi {
        let _ = self.generator.subschema_for::<ProblemDetails>();
        self.doc.components.schemas = self.generator.take_definitions(true).into_iter().collect();
        self.doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct ListQuery {
        /// Opaque cursor.
        cursor: Option<String>,
        tag: Vec<String>,
    }

    #[derive(serde::Serialize, schemars::JsonSchema)]
    struct User {
        id: u64,
    }

    #[test]
    fn documents_problems_schemas_and_query_parameters() {
        let mut api = OpenApiBuilder::new("t", "1");
        let user = api.schema::<User>();
        assert_eq!(user["$ref"], "#/components/schemas/User");
        let params = api.query_parameters::<ListQuery>();
        assert_eq!(params.len(), 2);
        assert!(params.iter().any(|p| p.name == "tag" && p.required));
        assert!(params.iter().any(|p| p.name == "cursor" && !p.required));
        let cursor = params.iter().find(|p| p.name == "cursor").unwrap();
        assert_eq!(
            cursor.schema["type"], "string",
            "no null in a query parameter"
        );
        api.operation(
            &Method::GET,
            "/users",
            Operation::new("list")
                .parameters(params)
                .response(200, "ok", Some(user))
                .problem(400, "bad"),
        )
        .unwrap();
        assert!(
            api.operation(&Method::GET, "/users", Operation::new("again"))
                .is_err()
        );
        assert!(
            api.operation(&Method::POST, "/users", Operation::new("list"))
                .is_err()
        );
        let doc = api.build();
        let json: Value = serde_json::from_slice(&doc.to_json()).unwrap();
        assert!(json["components"]["schemas"]["User"].is_object());
        assert!(json["components"]["schemas"]["ProblemDetails"].is_object());
        assert_eq!(
            json["paths"]["/users"]["get"]["responses"]["400"]["content"][PROBLEM_JSON]["schema"]["$ref"],
            "#/components/schemas/ProblemDetails"
        );
    }
}
