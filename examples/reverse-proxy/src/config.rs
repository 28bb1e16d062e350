//! The TOML configuration and its validation; [`ServerConfig`] is its public face.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use proxy_core::{Algorithm, HashKey, TrustedProxies};
use serde::Deserialize;

/// A parsed configuration file for the standalone server.
#[derive(Debug)]
pub struct ServerConfig(pub(crate) Config);

impl ServerConfig {
    /// Parses the TOML configuration; the error names the field at fault.
    ///
    /// # Errors
    ///
    /// A message when the text is not valid TOML or a field is missing or out of range.
    pub fn parse(text: &str) -> Result<Self, String> {
        Config::parse(text).map(Self)
    }

    /// The address to listen on (`server.listen`).
    #[must_use]
    pub fn listen(&self) -> SocketAddr {
        self.0.server.listen
    }

    /// The number of worker threads: `server.workers`, else one per CPU (1 to 256).
    #[must_use]
    pub fn workers(&self) -> usize {
        self.0
            .server
            .workers
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            })
            .clamp(1, 256)
    }

    /// How long connections in flight may take to finish after Ctrl-C or SIGTERM
    /// (`server.shutdown_grace_ms`, default 10 000).
    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        ms(self.0.server.shutdown_grace_ms)
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) server: Server,
    #[serde(default)]
    pub(crate) pools: Vec<PoolConfig>,
    #[serde(default)]
    pub(crate) routes: Vec<RouteConfig>,
    pub(crate) cache: Option<CacheConfig>,
    pub(crate) compression: Option<CompressionConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompressionConfig {
    /// Responses of known length below this are sent as they are.
    #[serde(default = "default_min_length")]
    pub(crate) min_length: u64,
}

fn default_min_length() -> u64 {
    256
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheConfig {
    /// The store's bound, in bytes (bodies plus headers).
    #[serde(default = "default_cache_bytes")]
    pub(crate) max_bytes: u64,
    /// Larger responses are not stored (one of unknown length is read up to this size,
    /// then streamed through unstored).
    #[serde(default = "default_object_bytes")]
    pub(crate) max_object_bytes: u64,
    /// Store responses that carry `Set-Cookie` (RFC 9111 section 3.1 keeps the field with
    /// them). Off by default: they pass through unstored, so a cookie minted for one user is
    /// never replayed to another.
    #[serde(default)]
    pub(crate) store_set_cookie: bool,
}

fn default_cache_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_object_bytes() -> u64 {
    8 * 1024 * 1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Server {
    /// `IP:PORT`; port 0 picks a free one.
    pub(crate) listen: SocketAddr,
    #[serde(default = "default_pseudonym")]
    pub(crate) pseudonym: String,
    #[serde(default)]
    pub(crate) trusted_proxies: Vec<String>,
    /// The header the trusted proxies write the client's address to: `x-forwarded-for`
    /// (default) or `forwarded`. Only that one is read.
    pub(crate) client_address_header: Option<String>,
    /// Headers removed from the requests of peers that are not trusted proxies; default:
    /// `proxy_core::UNTRUSTED_FORWARDING_HEADERS` (`x-real-ip`, `x-forwarded-prefix`,
    /// `x-original-url`, ...).
    pub(crate) untrusted_headers: Option<Vec<String>>,
    /// The forwarding headers written for each request (`forwarded`, `x-forwarded-for`,
    /// `x-forwarded-proto`, `x-forwarded-host`, `via`); default: all five.
    pub(crate) forwarding_headers: Option<Vec<String>>,
    #[serde(default = "default_head_bytes")]
    pub(crate) max_head_bytes: usize,
    #[serde(default = "default_headers")]
    pub(crate) max_headers: usize,
    /// Served by the proxy itself, never forwarded.
    #[serde(default = "default_metrics_path")]
    pub(crate) metrics_path: String,
    #[serde(default = "default_true")]
    pub(crate) access_log: bool,
    /// For rate limits with `store = "redis"` (needs the `redis` feature).
    pub(crate) redis_url: Option<String>,
    /// The start of every rate-limit key in that Redis (default `reverse-proxy:rl:`), so
    /// that several deployments (or test runs) can share one Redis without sharing budgets.
    #[serde(default = "default_redis_prefix")]
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) redis_prefix: String,
    /// Terminate TLS on the listener.
    pub(crate) tls: Option<TlsConfig>,
    /// HTTP/2 towards clients: ALPN on TLS, h2c with prior knowledge, and its limits.
    #[serde(default)]
    pub(crate) http2: Http2Config,
    /// Worker threads (each a current-thread runtime); default: the number of CPUs.
    pub(crate) workers: Option<usize>,
    /// Enables the membership API under this path, for loopback clients only.
    pub(crate) admin_path: Option<String>,
    /// After Ctrl-C or SIGTERM: how long requests in flight may take to finish.
    #[serde(default = "default_shutdown_grace_ms")]
    pub(crate) shutdown_grace_ms: u64,
    /// An HTTP/1 connection with no request in progress (idle between requests, or a
    /// request head still arriving) is closed after at most this long, and not before
    /// half of it.
    #[serde(default = "default_head_timeout_ms")]
    pub(crate) head_timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsConfig {
    /// PEM certificate chain; with `key`. Without both, a development certificate is made
    /// at start for `dev_names`.
    pub(crate) cert: Option<String>,
    /// PEM private key.
    pub(crate) key: Option<String>,
    #[serde(default = "default_dev_names")]
    pub(crate) dev_names: Vec<String>,
    /// Where to write the development certificate (PEM) so clients can trust it.
    pub(crate) dev_cert_out: Option<String>,
}

/// `[server.http2]`: every limit of an HTTP/2 connection from a client, set explicitly (the
/// `h2` crate's own defaults are a 16 MiB header list and unbounded streams). The header
/// list is bounded by `server.max_head_bytes` (decoded, 32 octets counted per field, RFC 9113
/// section 6.5.2) and `server.max_headers`, the same budget as an HTTP/1 head.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Http2Config {
    /// Offer `h2` (before `http/1.1`) in TLS ALPN.
    pub(crate) alpn: bool,
    /// Serve HTTP/2 with prior knowledge (RFC 9113 section 3.3) on a cleartext listener: a
    /// connection that starts with the HTTP/2 preface. Off by default.
    pub(crate) h2c: bool,
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub(crate) max_concurrent_streams: u32,
    /// Streams the client resets before they are served, at once; more is a rapid reset
    /// (CVE-2023-44487): GOAWAY `ENHANCE_YOUR_CALM`.
    pub(crate) max_pending_accept_reset_streams: usize,
    /// Streams the proxy resets because of the client's protocol errors, over the
    /// connection's life; more is a MadeYouReset (CVE-2025-8671): GOAWAY `ENHANCE_YOUR_CALM`.
    pub(crate) max_local_error_reset_streams: usize,
    /// SETTINGS_MAX_FRAME_SIZE, 16 384 to 16 777 215.
    pub(crate) max_frame_size: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: what a client may send on a stream unread.
    pub(crate) initial_stream_window: u32,
    /// The connection's receive window.
    pub(crate) initial_connection_window: u32,
    /// Response bytes buffered per stream while the client's window is closed.
    pub(crate) max_send_buf_bytes: usize,
    /// A PING after this long without frames from the client.
    pub(crate) keepalive_interval_ms: u64,
    /// ...which closes the connection when unanswered for this long.
    pub(crate) keepalive_timeout_ms: u64,
    /// The connection preface, and every header block once begun (HEADERS without
    /// END_HEADERS), must arrive within this.
    pub(crate) header_read_timeout_ms: u64,
    /// A response the client reads nothing of (its window stays closed, or it stops
    /// reading the socket) for this long ends the connection with GOAWAY `ENHANCE_YOUR_CALM`.
    pub(crate) send_timeout_ms: u64,
    /// SETTINGS, PING, PRIORITY, empty DATA and CONTINUATION, and unknown frames from the
    /// client, per second (the burst is the same number); more is a flood: GOAWAY
    /// `ENHANCE_YOUR_CALM`.
    pub(crate) max_control_frames_per_second: u32,
    /// RST_STREAM frames from the client per second (burst the same); more: GOAWAY
    /// `ENHANCE_YOUR_CALM`.
    pub(crate) max_resets_per_second: u32,
    /// Requests the proxy refuses (bad head, too many fields) per connection before it
    /// ends the connection with GOAWAY `ENHANCE_YOUR_CALM`.
    pub(crate) max_refused_requests: u32,
    /// Offer SETTINGS_ENABLE_CONNECT_PROTOCOL: WebSockets over HTTP/2 (RFC 8441 extended
    /// CONNECT), each carried to an `http1` pool as an HTTP/1.1 upgrade.
    pub(crate) websocket: bool,
}

impl Default for Http2Config {
    fn default() -> Self {
        Self {
            alpn: true,
            h2c: false,
            max_concurrent_streams: 100,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 100,
            max_frame_size: 16_384,
            initial_stream_window: 256 * 1024,
            initial_connection_window: 1024 * 1024,
            max_send_buf_bytes: 256 * 1024,
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 10_000,
            header_read_timeout_ms: 30_000,
            send_timeout_ms: 60_000,
            max_control_frames_per_second: 100,
            max_resets_per_second: 100,
            max_refused_requests: 20,
            websocket: true,
        }
    }
}

impl Http2Config {
    /// The ranges RFC 9113 allows, and no zero where zero would mean unbounded or stuck.
    fn validate(&self, max_head_bytes: usize) -> Result<(), String> {
        const MAX_WINDOW: u32 = (1 << 31) - 1;
        let at = "server.http2";
        if !(16_384..=16_777_215).contains(&self.max_frame_size) {
            return Err(format!(
                "{at}.max_frame_size must be within 16384..=16777215 (RFC 9113 section 6.5.2)"
            ));
        }
        for (name, value) in [
            ("initial_stream_window", self.initial_stream_window),
            ("initial_connection_window", self.initial_connection_window),
        ] {
            if !(1024..=MAX_WINDOW).contains(&value) {
                return Err(format!("{at}.{name} must be within 1024..=2147483647"));
            }
        }
        for (name, value) in [
            (
                "max_concurrent_streams",
                u64::from(self.max_concurrent_streams),
            ),
            (
                "max_pending_accept_reset_streams",
                self.max_pending_accept_reset_streams as u64,
            ),
            (
                "max_local_error_reset_streams",
                self.max_local_error_reset_streams as u64,
            ),
            ("max_send_buf_bytes", self.max_send_buf_bytes as u64),
            ("keepalive_interval_ms", self.keepalive_interval_ms),
            ("keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("send_timeout_ms", self.send_timeout_ms),
            (
                "max_control_frames_per_second",
                u64::from(self.max_control_frames_per_second),
            ),
            (
                "max_resets_per_second",
                u64::from(self.max_resets_per_second),
            ),
            ("max_refused_requests", u64::from(self.max_refused_requests)),
        ] {
            if value == 0 {
                return Err(format!("{at}.{name} must be at least 1"));
            }
        }
        if u32::try_from(max_head_bytes).is_err() {
            return Err("server.max_head_bytes must fit in 32 bits for HTTP/2".to_owned());
        }
        Ok(())
    }
}

impl Server {
    /// The headers `forwarding_headers` names (all when it is absent).
    /// The trusted proxies, the client address header and the untrusted-header list.
    pub(crate) fn trusted(&self) -> Result<TrustedProxies, String> {
        let mut trusted = TrustedProxies::parse(self.trusted_proxies.iter().map(String::as_str))
            .map_err(|e| format!("server.trusted_proxies: {e}"))?;
        if let Some(name) = &self.client_address_header {
            trusted = trusted.with_client_header(
                proxy_core::ClientAddressHeader::from_name(name)
                    .map_err(|e| format!("server.client_address_header: {e}"))?,
            );
        }
        if let Some(names) = &self.untrusted_headers {
            trusted = trusted
                .with_untrusted_headers(names.iter().map(String::as_str))
                .map_err(|e| format!("server.untrusted_headers: {e}"))?;
        }
        Ok(trusted)
    }

    pub(crate) fn forward_headers(&self) -> Result<proxy_core::ForwardHeaders, String> {
        match &self.forwarding_headers {
            None => Ok(proxy_core::ForwardHeaders::ALL),
            Some(names) => proxy_core::ForwardHeaders::from_names(names.iter().map(String::as_str))
                .map_err(|e| format!("server.forwarding_headers: {e}")),
        }
    }
}

fn default_dev_names() -> Vec<String> {
    vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
}

fn default_pseudonym() -> String {
    "reverse-proxy".to_owned()
}
fn default_head_bytes() -> usize {
    32 * 1024
}
fn default_headers() -> usize {
    100
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}
fn default_head_timeout_ms() -> u64 {
    30_000
}
fn default_metrics_path() -> String {
    "/__proxy/metrics".to_owned()
}
fn default_redis_prefix() -> String {
    "reverse-proxy:rl:".to_owned()
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Upstream {
    pub(crate) address: String,
    #[serde(default = "default_weight")]
    pub(crate) weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// Ten minutes: longer than the ping interval of common WebSocket clients and servers.
fn default_tunnel_idle_ms() -> u64 {
    600_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolConfig {
    pub(crate) name: String,
    #[serde(default = "default_algorithm")]
    pub(crate) algorithm: String,
    /// `header:NAME`, `cookie:NAME` or `client`, for ring-hash and maglev.
    pub(crate) hash_key: Option<String>,
    /// Cookie name for sticky sessions.
    pub(crate) sticky_cookie: Option<String>,
    pub(crate) upstreams: Vec<Upstream>,
    #[serde(default = "default_connect_ms")]
    pub(crate) connect_timeout_ms: u64,
    #[serde(default = "default_request_ms")]
    pub(crate) request_timeout_ms: u64,
    #[serde(default = "default_idle_ms")]
    pub(crate) idle_timeout_ms: u64,
    /// An upgraded connection (WebSocket over HTTP/1.1 or HTTP/2) through which no byte
    /// moved either way for this long is closed on both sides; 0 keeps it open for as long
    /// as both ends do.
    #[serde(default = "default_tunnel_idle_ms")]
    pub(crate) tunnel_idle_timeout_ms: u64,
    #[serde(default = "default_retries")]
    pub(crate) max_retries: u32,
    /// Whether a timed-out idempotent request is tried on another upstream. Off by default:
    /// a timeout then answers 504 within `request_timeout_ms`.
    #[serde(default)]
    pub(crate) retry_timeouts: bool,
    #[serde(default = "default_retry_statuses")]
    pub(crate) retry_statuses: Vec<u16>,
    #[serde(default)]
    pub(crate) panic_threshold: f64,
    pub(crate) health: Option<HealthConfig>,
    pub(crate) outlier: Option<OutlierConfigToml>,
    pub(crate) breaker: Option<BreakerConfig>,
    /// What the proxy speaks to the members: `http1` (default), `h2c` (HTTP/2 with prior
    /// knowledge over cleartext, for gRPC backends) or `h2` (HTTP/2 over TLS, agreed by ALPN;
    /// needs `[pools.tls]`).
    #[serde(default)]
    pub(crate) protocol: UpstreamProtocol,
    /// `[pools.http2]`: the HTTP/2 client's limits, for `protocol = "h2c"` or `"h2"`.
    #[serde(default)]
    pub(crate) http2: UpstreamHttp2Config,
    /// `[pools.tls]`: TLS towards the members (HTTP/1.1 or, with `protocol = "h2"`, HTTP/2).
    pub(crate) tls: Option<UpstreamTlsConfig>,
}

/// `[pools.tls]`: how the proxy speaks TLS to a pool's members. Their certificates are
/// always verified: there is no switch to skip it; give the members' CA in `ca` instead.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamTlsConfig {
    /// PEM file of the certificate authorities the members' certificates must chain to;
    /// without it, the system's roots.
    pub(crate) ca: Option<String>,
    /// The name sent in SNI and checked against each member's certificate; without it, the
    /// host of the member's address (a DNS name, or an IP address the certificate must
    /// list).
    pub(crate) server_name: Option<String>,
    /// PEM client certificate chain, for members that ask for one (mutual TLS); with `key`.
    pub(crate) cert: Option<String>,
    /// PEM private key of `cert`.
    pub(crate) key: Option<String>,
}

/// A pool's protocol towards its members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UpstreamProtocol {
    /// HTTP/1.1 keep-alive connections, one request at a time each.
    #[default]
    Http1,
    /// HTTP/2 over cleartext TCP with prior knowledge (RFC 9113 section 3.3).
    H2c,
    /// HTTP/2 over TLS, agreed by ALPN (RFC 9113 section 3.2); needs `[pools.tls]`.
    H2,
}

/// `[pools.http2]`: every limit of the HTTP/2 client towards a pool's members, set
/// explicitly (the `h2` crate would otherwise assume 100 streams before the server's
/// SETTINGS, and accept a 16 MiB header list).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct UpstreamHttp2Config {
    /// Streams in flight on one connection at most; also what the client assumes before
    /// the server's SETTINGS_MAX_CONCURRENT_STREAMS arrives. A lower server limit wins.
    pub(crate) max_streams_per_connection: u32,
    /// Connections per member and worker thread; when all are full, a request waits for a
    /// stream (within its timeout).
    pub(crate) max_connections: usize,
    /// SETTINGS_MAX_FRAME_SIZE the client accepts, 16 384 to 16 777 215.
    pub(crate) max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: a response head (or trailers) larger than this,
    /// decoded with 32 octets counted per field, resets the stream.
    pub(crate) max_header_list_size: u32,
    /// SETTINGS_HEADER_TABLE_SIZE: the HPACK dynamic table the server may use.
    pub(crate) header_table_size: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: response bytes a stream may receive unread.
    pub(crate) initial_stream_window: u32,
    /// The connection's receive window.
    pub(crate) initial_connection_window: u32,
    /// Request bytes buffered per stream while the server's window is closed.
    pub(crate) max_send_buf_bytes: usize,
    /// Streams reset locally (a client went away) remembered at once.
    pub(crate) max_concurrent_reset_streams: usize,
    /// ...and for how long.
    pub(crate) reset_stream_ms: u64,
    /// Streams the server resets before they were answered, at once; more ends the
    /// connection (rapid reset by a misbehaving backend).
    pub(crate) max_pending_accept_reset_streams: usize,
    /// Streams the client resets for the server's protocol errors, over the connection's
    /// life; more ends the connection.
    pub(crate) max_local_error_reset_streams: usize,
    /// A PING after this long without frames from the server, while streams are open.
    pub(crate) keepalive_interval_ms: u64,
    /// ...which closes the connection when unanswered for this long.
    pub(crate) keepalive_timeout_ms: u64,
}

impl Default for UpstreamHttp2Config {
    fn default() -> Self {
        Self {
            max_streams_per_connection: 100,
            max_connections: 4,
            max_frame_size: 16_384,
            max_header_list_size: 64 * 1024,
            header_table_size: 4096,
            initial_stream_window: 1024 * 1024,
            initial_connection_window: 4 * 1024 * 1024,
            max_send_buf_bytes: 256 * 1024,
            max_concurrent_reset_streams: 100,
            reset_stream_ms: 10_000,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 100,
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 10_000,
        }
    }
}

impl UpstreamHttp2Config {
    fn validate(&self, at: &str) -> Result<(), String> {
        const MAX_WINDOW: u32 = (1 << 31) - 1;
        let at = format!("{at}: http2");
        if !(16_384..=16_777_215).contains(&self.max_frame_size) {
            return Err(format!(
                "{at}.max_frame_size must be within 16384..=16777215 (RFC 9113 section 6.5.2)"
            ));
        }
        for (name, value) in [
            ("initial_stream_window", self.initial_stream_window),
            ("initial_connection_window", self.initial_connection_window),
        ] {
            if !(1024..=MAX_WINDOW).contains(&value) {
                return Err(format!("{at}.{name} must be within 1024..=2147483647"));
            }
        }
        if !(1..=10_000).contains(&self.max_streams_per_connection) {
            return Err(format!(
                "{at}.max_streams_per_connection must be within 1..=10000"
            ));
        }
        if !(1..=1024).contains(&self.max_connections) {
            return Err(format!("{at}.max_connections must be within 1..=1024"));
        }
        for (name, value) in [
            ("max_header_list_size", u64::from(self.max_header_list_size)),
            ("max_send_buf_bytes", self.max_send_buf_bytes as u64),
            (
                "max_concurrent_reset_streams",
                self.max_concurrent_reset_streams as u64,
            ),
            ("reset_stream_ms", self.reset_stream_ms),
            (
                "max_pending_accept_reset_streams",
                self.max_pending_accept_reset_streams as u64,
            ),
            (
                "max_local_error_reset_streams",
                self.max_local_error_reset_streams as u64,
            ),
            ("keepalive_interval_ms", self.keepalive_interval_ms),
            ("keepalive_timeout_ms", self.keepalive_timeout_ms),
        ] {
            if value == 0 {
                return Err(format!("{at}.{name} must be at least 1"));
            }
        }
        Ok(())
    }
}

fn default_algorithm() -> String {
    "round-robin".to_owned()
}
fn default_connect_ms() -> u64 {
    1000
}
fn default_request_ms() -> u64 {
    30_000
}
fn default_idle_ms() -> u64 {
    60_000
}
fn default_retries() -> u32 {
    2
}
fn default_retry_statuses() -> Vec<u16> {
    vec![502, 503]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthConfig {
    #[serde(default = "default_health_path")]
    pub(crate) path: String,
    #[serde(default = "default_interval_ms")]
    pub(crate) interval_ms: u64,
    #[serde(default = "default_health_timeout_ms")]
    pub(crate) timeout_ms: u64,
    #[serde(default = "default_threshold")]
    pub(crate) healthy_threshold: u32,
    #[serde(default = "default_threshold")]
    pub(crate) unhealthy_threshold: u32,
}

fn default_health_path() -> String {
    "/healthz".to_owned()
}
fn default_interval_ms() -> u64 {
    5000
}
fn default_health_timeout_ms() -> u64 {
    2000
}
fn default_threshold() -> u32 {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutlierConfigToml {
    #[serde(default = "default_consecutive_errors")]
    pub(crate) consecutive_errors: u32,
    #[serde(default = "default_consecutive_5xx")]
    pub(crate) consecutive_5xx: u32,
    #[serde(default = "default_base_ejection_ms")]
    pub(crate) base_ejection_ms: u64,
    #[serde(default = "default_max_ejected_share")]
    pub(crate) max_ejected_share: f64,
}

fn default_consecutive_errors() -> u32 {
    3
}
fn default_consecutive_5xx() -> u32 {
    5
}
fn default_base_ejection_ms() -> u64 {
    10_000
}
fn default_max_ejected_share() -> f64 {
    0.5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BreakerConfig {
    #[serde(default = "default_breaker_failures")]
    pub(crate) failures: u32,
    #[serde(default = "default_breaker_open_ms")]
    pub(crate) open_ms: u64,
}

fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_open_ms() -> u64 {
    5000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteConfig {
    #[serde(default = "default_prefix")]
    pub(crate) prefix: String,
    pub(crate) host: Option<String>,
    pub(crate) pool: String,
    pub(crate) rate_limit: Option<RateLimitConfig>,
    /// Cache responses of this route (needs a `[cache]` section).
    #[serde(default)]
    pub(crate) cache: bool,
}

fn default_prefix() -> String {
    "/".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitConfig {
    pub(crate) rate: u32,
    #[serde(default = "default_period_ms")]
    pub(crate) period_ms: u64,
    pub(crate) burst: Option<u32>,
    /// `client`, `header:NAME` or `route`.
    #[serde(default = "default_rl_key")]
    pub(crate) key: String,
    /// `memory` (this process) or `redis` (shared through `server.redis_url`).
    #[serde(default = "default_rl_store")]
    pub(crate) store: String,
}

fn default_rl_store() -> String {
    "memory".to_owned()
}

fn default_period_ms() -> u64 {
    1000
}
fn default_rl_key() -> String {
    "client".to_owned()
}

/// Where a rate limit's key comes from.
#[derive(Debug, Clone)]
pub(crate) enum LimitKey {
    Client,
    Header(http::HeaderName),
    Route,
}

pub(crate) fn parse_limit_key(s: &str) -> Result<LimitKey, String> {
    match s {
        "client" => Ok(LimitKey::Client),
        "route" => Ok(LimitKey::Route),
        _ => match s.strip_prefix("header:") {
            Some(h) => http::HeaderName::from_bytes(h.as_bytes())
                .map(LimitKey::Header)
                .map_err(|_| format!("rate_limit.key: {h:?} is not a header name")),
            None => Err(format!(
                "rate_limit.key: {s:?} is not `client`, `route` or `header:NAME`"
            )),
        },
    }
}

pub(crate) fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Ok(match s {
        "round-robin" => Algorithm::RoundRobin,
        "weighted-round-robin" => Algorithm::WeightedRoundRobin,
        "least-connections" => Algorithm::LeastConnections,
        "peak-ewma" => Algorithm::PeakEwma,
        "random" => Algorithm::Random,
        "ring-hash" => Algorithm::RingHash { vnodes: 160 },
        "maglev" => Algorithm::Maglev { table_size: 65537 },
        other => {
            return Err(format!(
                "unknown algorithm {other:?}; use round-robin, weighted-round-robin, \
                 least-connections, peak-ewma, random, ring-hash or maglev"
            ));
        }
    })
}

pub(crate) fn parse_hash_key(s: &str) -> Result<HashKey, String> {
    if s == "client" {
        return Ok(HashKey::ClientAddress);
    }
    if let Some(c) = s.strip_prefix("cookie:") {
        return Ok(HashKey::Cookie(c.to_owned()));
    }
    if let Some(h) = s.strip_prefix("header:") {
        return http::HeaderName::from_bytes(h.as_bytes())
            .map(HashKey::Header)
            .map_err(|_| format!("hash_key: {h:?} is not a header name"));
    }
    Err(format!(
        "hash_key {s:?}: use `client`, `cookie:NAME` or `header:NAME`"
    ))
}

impl Config {
    /// Parses and checks a file's text; errors name the field.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        config.server.trusted()?;
        config.server.forward_headers()?;
        config.server.http2.validate(config.server.max_head_bytes)?;
        if config.server.http2.h2c && config.server.tls.is_some() {
            return Err(
                "server.http2.h2c is for cleartext listeners; with [server.tls], HTTP/2 is offered by ALPN"
                    .to_owned(),
            );
        }
        let mut names = HashSet::new();
        for pool in &config.pools {
            let at = format!("pool {:?}", pool.name);
            if !names.insert(pool.name.as_str()) {
                return Err(format!("{at}: defined twice"));
            }
            if pool.upstreams.is_empty() {
                return Err(format!("{at}: no upstreams"));
            }
            let algorithm = parse_algorithm(&pool.algorithm).map_err(|e| format!("{at}: {e}"))?;
            match (&algorithm, &pool.hash_key) {
                (Algorithm::RingHash { .. } | Algorithm::Maglev { .. }, None) => {
                    return Err(format!("{at}: {} needs hash_key", pool.algorithm));
                }
                (_, Some(key)) => {
                    parse_hash_key(key).map_err(|e| format!("{at}: {e}"))?;
                }
                _ => {}
            }
            for u in &pool.upstreams {
                if u.address.parse::<http::uri::Authority>().is_err() || !u.address.contains(':') {
                    return Err(format!(
                        "{at}: upstream address {:?} is not HOST:PORT",
                        u.address
                    ));
                }
            }
            match (pool.protocol, &pool.tls) {
                (UpstreamProtocol::H2, None) => {
                    return Err(format!(
                        "{at}: protocol = \"h2\" is HTTP/2 over TLS and needs [pools.tls]; \
                         use \"h2c\" for HTTP/2 with prior knowledge over cleartext"
                    ));
                }
                (UpstreamProtocol::H2c, Some(_)) => {
                    return Err(format!(
                        "{at}: protocol = \"h2c\" is cleartext; with [pools.tls], HTTP/2 is \
                         protocol = \"h2\""
                    ));
                }
                (_, Some(tls)) if tls.cert.is_some() != tls.key.is_some() => {
                    return Err(format!(
                        "{at}: tls.cert and tls.key go together (a client certificate and its key)"
                    ));
                }
                (
                    _,
                    Some(UpstreamTlsConfig {
                        server_name: Some(name),
                        ..
                    }),
                ) if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() => {
                    return Err(format!(
                        "{at}: tls.server_name {name:?} is neither a DNS name nor an IP address"
                    ));
                }
                _ => {}
            }
            pool.http2.validate(&at)?;
            if !(0.0..=1.0).contains(&pool.panic_threshold) {
                return Err(format!("{at}: panic_threshold must be within 0..=1"));
            }
        }
        for (i, route) in config.routes.iter().enumerate() {
            if !names.contains(route.pool.as_str()) {
                return Err(format!("route {i}: unknown pool {:?}", route.pool));
            }
            if !route.prefix.starts_with('/') {
                return Err(format!("route {i}: prefix must start with '/'"));
            }
            if let Some(rl) = &route.rate_limit {
                parse_limit_key(&rl.key).map_err(|e| format!("route {i}: {e}"))?;
                match rl.store.as_str() {
                    "memory" => {}
                    "redis" if !cfg!(feature = "redis") => {
                        return Err(format!(
                            "route {i}: rate_limit.store = \"redis\" needs a build with the `redis` feature"
                        ));
                    }
                    "redis" if config.server.redis_url.is_none() => {
                        return Err(format!(
                            "route {i}: rate_limit.store = \"redis\" needs server.redis_url"
                        ));
                    }
                    "redis" => {}
                    other => {
                        return Err(format!(
                            "route {i}: rate_limit.store {other:?} is not `memory` or `redis`"
                        ));
                    }
                }
                if rl.rate == 0 {
                    return Err(format!("route {i}: rate_limit.rate must be at least 1"));
                }
            }
        }
        if config.routes.iter().any(|r| r.cache) && config.cache.is_none() {
            return Err("a route sets cache = true but there is no [cache] section".to_owned());
        }
        if config.routes.is_empty() {
            return Err("no [[routes]]: nothing to proxy".to_owned());
        }
        Ok(config)
    }
}

pub(crate) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}
