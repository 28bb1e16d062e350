#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod balance;
mod breaker;
mod cache;
mod cache_control;
mod encode;
mod error;
mod forwarded;
mod grpc;
mod hash;
mod health;
mod http_date;
mod negotiate;
mod ratelimit;
#[cfg(feature = "redis")]
mod redis_limiter;
mod retry;
mod smuggling;

pub use balance::{
    Algorithm, HashKey, MemberInfo, MemberState, Pick, PickContext, Pool, UpstreamId, cookie_value,
};
pub use breaker::{BreakerState, CircuitBreaker};
pub use cache::{
    CacheEntry, CacheOptions, CachePolicy, CacheStore, Coalescer, Joined, Lead, Lookup,
    MemoryStore, NotStorable, StaleUse, Wait, cache_key, invalidated_keys,
};
pub use cache_control::CacheControl;
#[cfg(any(feature = "gzip", feature = "brotli", feature = "zstd"))]
pub use encode::Encoder;
pub use encode::{available_codings, prepare_compression};
pub use error::{Error, Result};
pub use forwarded::{
    Cidr, ClientAddressHeader, ForwardContext, ForwardHeaders, ForwardedElement, HOP_BY_HOP,
    TrustedProxies, UNTRUSTED_FORWARDING_HEADERS, apply_forwarding, client_address, node_ip,
    parse_forwarded, parse_x_forwarded_for, remove_hop_by_hop,
};
pub use grpc::{
    GrpcCode, encode_grpc_message, encode_grpc_timeout, grpc_status_fields, grpc_timeout,
    grpc_trailers_only, is_grpc,
};
pub use hash::{SplitMix64, mix64, stable_hash};
pub use health::{
    HealthCheckConfig, HealthChecker, Outcome, OutlierConfig, OutlierDetector, Probe,
};
pub use http_date::{format_http_date, parse_http_date};
pub use negotiate::{Coding, negotiate_encoding, parse_accept_encoding, should_compress};
pub use ratelimit::{Decision, Gcra, MemoryLimiter, client_network};
#[cfg(feature = "redis")]
pub use redis_limiter::RedisLimiter;
pub use retry::{Failure, RetryBudget, RetryPolicy, is_replayable};
pub use smuggling::{
    CheckedHead, Framing, HeadLimits, SmugglingError, canonicalize_content_length,
    check_parsed_request, check_request_head, find_head_end, is_valid_host,
};
