#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Public-API checks: the types can cross threads.

use proxy_core::{
    CacheControl, CircuitBreaker, HealthChecker, MemoryLimiter, OutlierDetector, Pool, RetryBudget,
    RetryPolicy, TrustedProxies,
};

fn send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Pool>();
    send_sync::<HealthChecker<u64>>();
    send_sync::<OutlierDetector<u64>>();
    send_sync::<CircuitBreaker>();
    send_sync::<RetryBudget>();
    send_sync::<RetryPolicy>();
    send_sync::<MemoryLimiter>();
    send_sync::<TrustedProxies>();
    send_sync::<proxy_core::ClientAddressHeader>();
    send_sync::<CacheControl>();
    send_sync::<proxy_core::Error>();
    send_sync::<proxy_core::SmugglingError>();
}
