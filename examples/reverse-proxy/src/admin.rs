//! The proxy's own paths, answered before routing: Prometheus metrics at `metrics_path`, and
//! at `admin_path` (loopback clients only) the API that lists, adds and drains pool members.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Response, StatusCode};
use proxy_core::UpstreamId;

use crate::state::State;
use crate::{ProxyBody, full, plain};

/// The answer when `parts` is for the metrics or the admin path, else `None`.
pub(crate) fn own_path(
    app: &State,
    peer: SocketAddr,
    parts: &http::request::Parts,
) -> Option<Response<ProxyBody>> {
    if let Some(admin) = app.admin_path.as_deref()
        && let Some(rest) = parts.uri.path().strip_prefix(admin)
    {
        if !peer.ip().is_loopback() {
            return Some(plain(
                StatusCode::FORBIDDEN,
                "the admin API answers loopback clients only",
                false,
            ));
        }
        return Some(admin_request(
            app,
            &parts.method,
            rest,
            parts.uri.query().unwrap_or(""),
        ));
    }
    (parts.uri.path() == app.metrics_path).then(|| metrics(app))
}

/// The metrics page: the counters, each member's health and in-flight requests, the cache's
/// size.
fn metrics(app: &State) -> Response<ProxyBody> {
    let now = Instant::now();
    let mut upstreams = Vec::new();
    for pool in &app.pools {
        if let Ok(p) = pool.pool.lock() {
            for m in p.members(now) {
                upstreams.push((
                    pool.name.clone(),
                    m.address,
                    m.healthy && !m.ejected,
                    m.in_flight,
                ));
            }
        }
    }
    let mut text = app.metrics.render(&upstreams);
    if let Some(cache) = &app.cache {
        text.push_str(&format!(
            "# HELP proxy_cache_bytes Bytes held by the response cache.\n# TYPE proxy_cache_bytes gauge\nproxy_cache_bytes {}\n",
            cache.weight()
        ));
    }
    let mut r = Response::new(full(text));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// `POST {admin}/pools/NAME/upstreams?address=HOST:PORT[&weight=N]` adds a member;
/// `DELETE` with `address` drains it (no new requests; it leaves when its in-flight ones
/// end); `GET {admin}/pools/NAME` lists members.
fn admin_request(app: &State, method: &Method, rest: &str, query: &str) -> Response<ProxyBody> {
    let mut segments = rest.trim_matches('/').split('/');
    let (Some("pools"), Some(name)) = (segments.next(), segments.next()) else {
        return plain(StatusCode::NOT_FOUND, "use /pools/NAME[/upstreams]", false);
    };
    let Some(pool) = app.pools.iter().find(|p| p.name == name) else {
        return plain(StatusCode::NOT_FOUND, "unknown pool", false);
    };
    let upstreams = segments.next() == Some("upstreams");
    let params: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let now = Instant::now();
    let Ok(mut p) = pool.pool.lock() else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "pool lock poisoned",
            false,
        );
    };
    match (method, upstreams, params.get("address")) {
        (&Method::GET, false, _) => {
            let text: String = p
                .members(now)
                .iter()
                .map(|m| {
                    format!(
                        "{} weight={} state={:?} in_flight={} healthy={} ejected={}\n",
                        m.address, m.weight, m.state, m.in_flight, m.healthy, m.ejected
                    )
                })
                .collect();
            Response::new(full(text))
        }
        (&Method::POST, true, Some(address)) => {
            if address.parse::<http::uri::Authority>().is_err() || !address.contains(':') {
                return plain(StatusCode::BAD_REQUEST, "address must be HOST:PORT", false);
            }
            let weight = params
                .get("weight")
                .and_then(|w| w.parse().ok())
                .unwrap_or(1);
            let id = p.add(*address, weight);
            if let Some(mut o) = pool.outlier.as_ref().and_then(|o| o.lock().ok()) {
                o.add(id);
            }
            tracing::info!(pool = %pool.name, upstream = %address, "member added");
            plain(StatusCode::CREATED, "added", false)
        }
        (&Method::DELETE, true, Some(address)) => {
            let ids: Vec<UpstreamId> = p
                .members(now)
                .iter()
                .filter(|m| m.address == *address && m.state == proxy_core::MemberState::Active)
                .map(|m| m.id)
                .collect();
            if ids.is_empty() {
                return plain(StatusCode::NOT_FOUND, "no such active member", false);
            }
            for id in ids {
                p.remove(id);
            }
            tracing::info!(pool = %pool.name, upstream = %address, "member draining");
            plain(StatusCode::ACCEPTED, "draining", false)
        }
        _ => plain(
            StatusCode::BAD_REQUEST,
            "use GET /pools/NAME, POST or DELETE /pools/NAME/upstreams?address=HOST:PORT",
            false,
        ),
    }
}
