//! The proxy mounted in another server: [`App`] answers requests its host's hyper server
//! already parsed, under a path prefix ([`Settings::base_path`]).
//!
//! The host owns the socket, so `[server] listen`, `tls` and `workers` are unused, and the
//! raw-byte smuggling checks of the standalone server do not run; the checks on the parsed
//! head ([`proxy_core::check_parsed_request`]) still do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::UPGRADE;
use http::{Request, Response, StatusCode};

use crate::config::Config;
use crate::routing::{Caller, route_request};
use crate::state::State;
use crate::tunnel::ClientUpgrade;
use crate::{ProxyBody, background, plain};

/// How a mounted proxy is built.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The path prefix the proxy is mounted at (`/proxy`), or empty for `/`. It is stripped
    /// before routing: route prefixes, the metrics path and the admin path are relative to
    /// it, and upstreams see the path without it.
    pub base_path: String,
    /// The configuration, in the TOML of the standalone server (`proxy.toml`).
    pub config: String,
}

/// A reverse proxy to mount in another server: the pools, routes, cache, compression, rate
/// limits and metrics of one configuration, without a listener of its own.
pub struct App {
    state: Arc<State>,
    base_path: String,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("base_path", &self.base_path)
            .field("routes", &self.state.routes.len())
            .field("pools", &self.state.pools.len())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Builds the proxy from `settings.config`, and starts its health checks and rate
    /// limiter sweeps on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// A message naming the field when the configuration is invalid, or when Redis (for a
    /// `store = "redis"` rate limit) cannot be reached.
    pub async fn new(settings: &Settings) -> Result<Self, String> {
        let config = Config::parse(&settings.config)?;
        let state = Arc::new(State::build(&config, 1).await?);
        background::spawn(&state);
        Ok(Self {
            state,
            base_path: settings.base_path.trim_end_matches('/').to_owned(),
        })
    }

    /// Answers one request whose path is under the base path, from `peer`: checks the
    /// parsed head, serves the metrics and admin paths, applies the route's rate limit,
    /// cache and compression, and forwards to a pool member with `Forwarded` and `Via`.
    /// The request body streams upstream and the response body back, as they come.
    pub async fn respond(
        &self,
        peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> Response<ProxyBody> {
        let mut request = request.map(crate::request_body);
        let started = Instant::now();
        let client_upgrade = request
            .headers()
            .contains_key(UPGRADE)
            .then(|| ClientUpgrade::Hyper(hyper::upgrade::on(&mut request)));
        let (mut parts, body) = request.into_parts();
        let Some(rest) = parts.uri.path().strip_prefix(self.base_path.as_str()) else {
            return plain(StatusCode::NOT_FOUND, "not found", false);
        };
        if !(rest.is_empty() || rest.starts_with('/')) {
            return plain(StatusCode::NOT_FOUND, "not found", false);
        }
        let mut target = if rest.is_empty() {
            "/".to_owned()
        } else {
            rest.to_owned()
        };
        if let Some(query) = parts.uri.query() {
            target.push('?');
            target.push_str(query);
        }
        match target.parse::<http::Uri>() {
            Ok(uri) => parts.uri = uri,
            Err(_) => return plain(StatusCode::BAD_REQUEST, "bad request target", false),
        }
        let response = route_request(
            &self.state,
            peer,
            // The host server's scheme is not known here (as before: `http`).
            "http",
            Request::from_parts(parts, body),
            client_upgrade,
            None,
            Caller::Hyper,
        )
        .await;
        self.state
            .metrics
            .record(response.status().as_u16(), started.elapsed());
        response
    }
}

impl serve::App for App {
    fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        Box::pin(async move { self.respond(peer, request).await.map(serve::boxed) })
    }
}
