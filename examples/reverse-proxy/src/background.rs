//! The proxy's background work, on the runtime that built it: each pool's active health
//! checks (proxy-core's sans-IO [`HealthChecker`] driven by probes sent through the pool's
//! upstream connections), the reaping of idle upstream connections, and the sweep of the
//! memory rate limiters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use proxy_core::{HealthChecker, UpstreamId};

use crate::rate_limit;
use crate::state::{PoolState, State};
use crate::upstream::SendBody;

/// Starts the active health checks of every pool that has them, the reaping of idle upstream
/// connections and the rate limiters' sweeper, on the current runtime.
pub(crate) fn spawn(state: &Arc<State>) {
    for pool in &state.pools {
        if pool.health.is_some() {
            tokio::spawn(health_loop(pool.clone()));
        }
        let upstreams = pool.upstreams.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                upstreams.reap();
            }
        });
    }
    let sweeper = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            rate_limit::sweep(&sweeper);
        }
    });
}

/// Probes the pool's members as the health checker asks, following membership changes, and
/// marks members healthy or unhealthy in the balancer.
async fn health_loop(pool: Arc<PoolState>) {
    let Some(config) = pool.health.clone() else {
        return;
    };
    let mut checker = HealthChecker::new(config);
    let mut addresses = HashMap::new();
    let start = Instant::now();
    if let Ok(p) = pool.pool.lock() {
        for m in p.members(start) {
            checker.add(m.id, start);
            addresses.insert(m.id, m.address);
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(UpstreamId, bool)>();
    loop {
        let now = Instant::now();
        // Follow membership changes made through the admin API.
        if let Ok(p) = pool.pool.lock() {
            let members = p.members(now);
            for m in &members {
                if let std::collections::hash_map::Entry::Vacant(slot) = addresses.entry(m.id) {
                    checker.add(m.id, now);
                    slot.insert(m.address.clone());
                }
            }
            addresses.retain(|id, _| {
                let keep = members.iter().any(|m| m.id == *id);
                if !keep {
                    checker.remove(id);
                }
                keep
            });
        }
        while let Some(probe) = checker.poll_check(now) {
            let Some(address) = addresses.get(&probe.target).cloned() else {
                continue;
            };
            let upstreams = pool.upstreams.clone();
            let tx = tx.clone();
            let wait = probe.deadline.saturating_duration_since(now);
            tokio::spawn(async move {
                // An origin-form target only: a path without its leading `/` fails the
                // probe, as it did when it was appended to `http://ADDRESS`.
                let target = if probe.path.starts_with('/') {
                    probe.path.parse::<http::Uri>().ok()
                } else {
                    None
                };
                let ok = match target {
                    Some(uri) => {
                        let mut req = Request::new(SendBody::Bytes(Bytes::new()));
                        *req.uri_mut() = uri;
                        matches!(
                            tokio::time::timeout(wait, upstreams.send(probe.target, &address, &mut req, false, false)).await,
                            Ok(Ok(r)) if r.status().is_success() || r.status().is_redirection()
                        )
                    }
                    None => false,
                };
                let _ = tx.send((probe.target, ok));
            });
        }
        for (id, healthy) in checker.handle_timeouts(now) {
            set_health(&pool, id, healthy, &addresses);
        }
        let wake = checker
            .poll_timeout()
            .unwrap_or(now + Duration::from_secs(1));
        tokio::select! {
            Some((id, ok)) = rx.recv() => {
                if let Some(healthy) = checker.handle_result(id, ok, Instant::now()) {
                    set_health(&pool, id, healthy, &addresses);
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

fn set_health(
    pool: &PoolState,
    id: UpstreamId,
    healthy: bool,
    addresses: &HashMap<UpstreamId, String>,
) {
    tracing::warn!(pool = %pool.name, upstream = ?addresses.get(&id), healthy, "health changed");
    if let Ok(mut p) = pool.pool.lock() {
        p.set_healthy(id, healthy);
    }
}
