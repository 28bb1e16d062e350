#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache_control;
mod coerce;
mod dataloader;
mod document;
mod document_cache;
mod error;
mod execution;
mod federation;
mod lexer;
mod limits;
mod literal;
#[cfg(feature = "upload")]
mod multipart;
mod names;
mod over_http;
mod parser;
mod persisted;
mod resolver;
mod response;
mod schema;
mod sdl_directives;
mod subscription;
mod transport_sse;
mod transport_ws;
mod typed_object;
mod types;
mod upload;
mod validation;

/// Hooks for the fuzz targets in `fuzz/`, present only in builds made by `cargo fuzz`
/// (which passes `--cfg fuzzing`); not part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Whether the fast reader in front of graphql-parser read `source` (`Ok(true)`), left
    /// it to graphql-parser (`Ok(false)`), or read it differently from graphql-parser
    /// (`Err` with both readings).
    ///
    /// # Errors
    /// The disagreement, described.
    pub fn fast_reader_agrees(source: &str) -> Result<bool, String> {
        let Some(ours) = crate::parser::parse(source) else {
            return Ok(false);
        };
        match graphql_parser::parse_query::<&str>(source) {
            Ok(theirs) if theirs == ours => Ok(true),
            Ok(theirs) => Err(format!(
                "{source:?}: the fast reader built\n{ours:?}\ngraphql-parser built\n{theirs:?}"
            )),
            Err(error) => Err(format!(
                "{source:?}: the fast reader accepted it, graphql-parser refused it: {error}"
            )),
        }
    }
}

pub use cache_control::{CACHE_CONTROL_SDL, CacheHint, CachePolicy, CacheScope};
pub use dataloader::DataLoader;
pub use document::{Ast, Document};
pub use error::{Error, Location, Result, SchemaError};
pub use execution::{IncrementalFormat, IncrementalPayload, IncrementalStream, Request, Response};
pub use federation::Federation;
pub use limits::Limits;
#[cfg(feature = "upload")]
pub use multipart::{MultipartRequest, UploadLimits, is_multipart, read_multipart_request};
pub use over_http::{
    GRAPHQL_RESPONSE_JSON, HttpRejection, MULTIPART_MIXED, MULTIPART_MIXED_DEFER_20220824,
    ResponseFormat, SUBSCRIPTION_OVER_HTTP, accepts_multipart, incremental_format, multipart_part,
    operation_type, read_http_request, write_http_incremental, write_http_response,
};
pub use persisted::{PersistedMode, PersistedQueries, document_hash};
pub use resolver::{
    Args, Context, EventStream, FieldError, FieldFuture, FieldResult, ItemResult, ListFuture,
    ListResult, Resolver, ResolverInput, ScalarCoercion, SubscriptionSource, TypeResolver,
    TypedList,
};
pub use response::{GraphQLError, PathSegment};
pub use schema::{Schema, SchemaBuilder};
pub use sdl_directives::validate_sdl_directives;
pub use subscription::ResponseStream;
pub use transport_sse::{
    EVENT_STREAM_TOKEN, SseClosed, SseEvent, SseLimits, SseRequest, SseStreams, TEXT_EVENT_STREAM,
    accepts_event_stream, event_stream_token, operation_id, read_sse_request, sse_request,
};
pub use transport_ws::{GRAPHQL_TRANSPORT_WS, WsAction, WsSession, close_code};
pub use typed_object::{FieldValue, TypedObject};
pub use types::{
    BuiltinScalar, DirectiveDef, DirectiveLocation, EnumValueDef, FieldDef, FieldTable,
    InputValueDef, ScalarDef, TypeDef, TypeId, TypeKind, TypeRef,
};
pub use upload::{UPLOAD_KEY, UploadedFile, upload_placeholder};
pub use validation::{Rule, validate, validate_with};
