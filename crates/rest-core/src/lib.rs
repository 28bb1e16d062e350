#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod conditional;
mod cors;
mod error;
mod extract;
mod idempotency;
mod negotiate;
mod openapi;
mod pagination;
mod path_tree;
mod problem;
#[cfg(feature = "redis")]
mod redis_idempotency;
mod router;
#[cfg(feature = "tower")]
mod tower_layers;

pub use conditional::{
    EntityTag, Precondition, Validators, check_precondition_syntax, evaluate_preconditions,
    format_http_date, require_precondition,
};
pub use cors::{CorsBuilder, CorsPolicy};
pub use error::{Error, Result};
pub use extract::{
    JsonLimits, QueryLimits, check_content_length, json_body, json_from_slice, json_object_body,
    query, require_json_content_type,
};
pub use idempotency::{
    Fingerprint, IDEMPOTENCY_KEY, IdempotencyKey, IdempotencyStore, MemoryIdempotencyStore,
    Reservation, StoredResponse,
};
pub use negotiate::{Quality, Weighted, negotiate_language, negotiate_media_type, parse_weighted};
pub use openapi::{
    ApiResponse, Components, HeaderObject, Info, MediaType, OpenApi, OpenApiBuilder, Operation,
    Parameter, ParameterIn, RequestBody,
};
pub use pagination::{CursorCodec, Link, MAX_CURSOR_LEN, PageRequest, format_links, parse_links};
pub use problem::{PROBLEM_JSON, ProblemDetails};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_idempotency::{DEFAULT_LEASE, RedisIdempotencyStore};
pub use router::{PathParams, RouteMatch, RouteTemplate, Router, TrailingSlash};
#[cfg(feature = "tower")]
pub use tower_layers::{CorsLayer, CorsService, ProblemLayer, ProblemService};
