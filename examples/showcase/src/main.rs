//! The backend-kit showcase: one server, one port, that serves every landed crate's
//! capability together on embedded defaults, with a landing page that links to each.
//!
//! Run with: `cargo run -p showcase`
//!
//! Try:
//!
//! ```text
//! open http://127.0.0.1:8080/                  the landing page: every capability, linked
//! open http://127.0.0.1:8080/auth/             sign up, log in, get a JWT (auth-core)
//! open http://127.0.0.1:8080/oauth-login/      "Log in with" the provider at /oauth
//!                                              (alice / wonderland-rabbit)
//! open http://127.0.0.1:8080/chat/             WebSocket chat, two tabs (ws-core)
//! open http://127.0.0.1:8080/cookies/          signed and private cookies (cookie-jar)
//! open http://127.0.0.1:8080/graphql/          send GraphQL queries (graphql-core)
//! curl -s 'http://127.0.0.1:8080/graphql/graphql?query=%7Bbooks%7Btitle%7D%7D'
//! curl -s http://127.0.0.1:8080/api/openapi.json | head -c 300      (rest-core)
//! curl -i -X POST http://127.0.0.1:8080/api/users -H 'content-type: application/json' \
//!      -d '{"name":"Ada","email":"ada@example.com"}'
//! curl -s http://127.0.0.1:8080/.well-known/oauth-authorization-server/oauth
//! curl -si http://127.0.0.1:8080/proxy/origin/cached          twice: X-Cache: HIT, Age
//! curl -si -H 'Accept-Encoding: br' http://127.0.0.1:8080/proxy/origin/cached -o /dev/null
//! curl -s http://127.0.0.1:8080/proxy/origin/headers          Forwarded, Via (proxy-core)
//! curl -s http://127.0.0.1:8080/proxy/metrics
//! ```
//!
//! # How the examples are mounted
//!
//! Each example under `examples/` is a library plus a thin binary: its `src/lib.rs` exposes
//! an `App` (state, routes, pages) built from a `Settings` value whose `base_path` mounts it
//! under a prefix, and an async `App::handle(request) -> response`; its `src/main.rs` keeps
//! only the server plumbing (address, environment, accept loop, shutdown), so each example
//! still runs, and reads, on its own. This server depends on those libraries and
//! dispatches by path prefix, so no handler is copied here:
//!
//! | prefix | example library | crate shown |
//! |---|---|---|
//! | `/auth/` | `auth-login` | auth-core: argon2id sign-up/login, sessions, CSRF, throttling, JWT API + JWKS |
//! | `/api/` | `rest-api` | rest-core: users/posts CRUD on in-memory SQLite, ETags, `If-Match`, paging, CORS, idempotency, OpenAPI |
//! | `/chat/` | `chat` | ws-core: rooms, presence, direct messages, permessage-deflate |
//! | `/oauth/` | `oauth-provider` | auth-core OAuth 2.0 authorization server (issuer `http://ADDR/oauth`) |
//! | `/oauth-login/` | `oauth-login` | auth-core OAuth client, logging in against `/oauth` on this same server |
//! | `/cookies/` | this crate (`cookies.rs`) | cookie-jar: signed and private cookies, key rotation |
//! | `/graphql/` | `graphql` | graphql-core: a page at `/graphql/`, GraphQL over HTTP and subscriptions (`graphql-transport-ws`) at `/graphql/graphql`, DataLoader |
//! | `/proxy/` | `reverse-proxy` | proxy-core: a pool of this server itself, RFC 9111 cache, compression, rate limits, `Forwarded`/`Via`, metrics at `/proxy/metrics` |
//! | `/origin/` | this crate (`origin.rs`) | the proxy's upstream pages: a cacheable one, a header echo, a rate-limited one |
//!
//! Everything is in memory: sessions, users, SQLite, grants, idempotency keys, the chat hub;
//! signing keys are made at start. Each mounted app has its own session cookie name, since
//! cookies are shared by the whole origin. The provider's RFC 8414 metadata for an issuer
//! with a path lives at `/.well-known/oauth-authorization-server/oauth`, outside its prefix,
//! and is routed to it too. The OAuth client reaches the provider over a loopback HTTP
//! connection to this same server, as it would reach any provider; so does the reverse
//! proxy reach its two pool members (this server by IP and by the name `localhost`), whose
//! routes are `/proxy/api/` and `/proxy/origin/` only, so that no request loops back into
//! `/proxy/`. Its embedded configuration is [`proxy_config`].
//!
//! Environment: `PORT` (default 8080; `0` picks a free port) and `BIND` (default `127.0.0.1`)
//! choose the address; `RUST_LOG` sets the log filter (default `info`); `LOG_FORMAT=json`
//! writes one JSON object per log line. The first line on stdout is always
//! `listening on http://ADDR`, so scripts and tests can find an ephemeral port. The OAuth
//! issuer and the chat's allowed origin are `http://127.0.0.1:PORT` when `BIND` is
//! `0.0.0.0`, so open the pages at that address. Ctrl-C or SIGTERM stops accepting, lets
//! requests in flight finish and closes chat connections with 1001 (up to
//! [`SHUTDOWN_GRACE`]), then exits 0.

mod cookies;
mod origin;

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use auth_core::MemoryStore;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// How long requests in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The landing page: every capability the showcase serves, with a link to try it.
const INDEX_HTML: &str = include_str!("../static/index.html");

/// The one response body type: every mounted app answers with it.
type Body = Full<Bytes>;

/// Mounts with a page at their root: `GET /auth` redirects to `/auth/`, so that the page's
/// relative links resolve below the prefix.
const PAGES: [&str; 6] = [
    "/auth",
    "/chat",
    "/oauth",
    "/oauth-login",
    "/cookies",
    "/graphql",
];

/// Every mounted application.
#[derive(Debug)]
struct Showcase {
    auth: auth_login::App<MemoryStore>,
    api: rest_api::App,
    chat: Arc<chat::App>,
    provider: oauth_provider::App,
    oauth_login: oauth_login::App,
    cookies: cookies::CookieDemo,
    graphql: Arc<graphql::App>,
    proxy: reverse_proxy::App,
    origin: origin::Origin,
}

impl Showcase {
    /// Builds every app for a server reachable at `public` (`origin` is `http://public`);
    /// the proxy's health checks start on the current runtime.
    async fn new(public: SocketAddr) -> Result<Self, String> {
        let origin = &format!("http://{public}");
        let auth = auth_login::App::new(
            MemoryStore::new(),
            auth_login::Settings {
                base_path: "/auth".to_owned(),
                cookie_name: "__Host-auth-session".to_owned(),
                ..auth_login::Settings::new(origin)
            },
        )?;
        let api = rest_api::App::new(&rest_api::Settings {
            base_path: "/api".to_owned(),
            db: None,
            cors_origin: origin.to_owned(),
            cursor_key: None,
        })?;
        let chat = Arc::new(chat::App::new(chat::Settings {
            base_path: "/chat".to_owned(),
            allowed_origins: vec![origin.to_owned(), origin.replace("127.0.0.1", "localhost")],
        }));
        let callback = format!("{origin}/oauth-login/callback");
        let provider = oauth_provider::App::new(oauth_provider::Settings {
            base_path: "/oauth".to_owned(),
            redirect_uris: vec![callback.clone()],
            cookie_name: "__Host-provider-session".to_owned(),
            ..oauth_provider::Settings::new(origin)
        })
        .map_err(|error| {
            format!(
                "the OAuth provider at /oauth: {error}; plain http needs a loopback address: \
                 set BIND to 127.0.0.1 or 0.0.0.0"
            )
        })?;
        let oauth_login = oauth_login::App::new(oauth_login::Settings {
            redirect_uri: callback,
            base_path: "/oauth-login".to_owned(),
            ..oauth_login::Settings::new(&format!("{origin}/oauth"), origin)
        });
        let graphql = Arc::new(graphql::App::new(graphql::Settings {
            base_path: "/graphql".to_owned(),
            allowed_origins: vec![origin.to_owned(), origin.replace("127.0.0.1", "localhost")],
        })?);
        let proxy = reverse_proxy::App::new(&reverse_proxy::Settings {
            base_path: "/proxy".to_owned(),
            config: proxy_config(public),
        })
        .await
        .map_err(|error| format!("the reverse proxy at /proxy: {error}"))?;
        Ok(Self {
            auth,
            api,
            chat,
            provider,
            oauth_login,
            cookies: cookies::CookieDemo::new(),
            graphql,
            proxy,
            origin: origin::Origin::default(),
        })
    }

    fn sweep(&self, now: SystemTime) {
        self.auth.sweep(now);
        self.provider.sweep(now);
        self.oauth_login.sweep(now);
    }
}

/// The embedded configuration of the proxy at `/proxy/`: one pool whose two members are
/// this server itself (by IP and, on loopback, by the name `localhost`), round-robin and
/// health-checked at `/healthz`; `/proxy/api/` (rest-api) and `/proxy/origin/` (the small
/// origin in `origin.rs`) through the RFC 9111 cache; `/proxy/origin/limited` with a rate
/// limit of 5 requests a minute per client; br/zstd/gzip above 256 bytes; metrics at
/// `/proxy/metrics`. No route reaches `/proxy/` itself, so a request cannot loop.
fn proxy_config(public: SocketAddr) -> String {
    let mut members = format!(r#"{{ address = "{public}" }}"#);
    if public.ip().is_loopback() {
        members.push_str(&format!(
            r#", {{ address = "localhost:{}" }}"#,
            public.port()
        ));
    }
    format!(
        r#"
[server]
listen = "127.0.0.1:0" # unused: the showcase owns the socket
pseudonym = "showcase-proxy"
trusted_proxies = []
max_head_bytes = 32768
max_headers = 100
metrics_path = "/metrics"
access_log = false

[cache]
max_bytes = 8388608
max_object_bytes = 1048576

[compression]
min_length = 256

[[pools]]
name = "showcase"
algorithm = "round-robin"
upstreams = [{members}]
connect_timeout_ms = 1000
request_timeout_ms = 10000
idle_timeout_ms = 30000
max_retries = 1
retry_statuses = [502, 503]
panic_threshold = 0.5
[pools.health]
path = "/healthz"
interval_ms = 5000
timeout_ms = 2000
healthy_threshold = 2
unhealthy_threshold = 2

[[routes]]
prefix = "/api/"
pool = "showcase"
cache = true

[[routes]]
prefix = "/origin/"
pool = "showcase"
cache = true

[[routes]]
prefix = "/origin/limited"
pool = "showcase"
rate_limit = {{ rate = 5, period_ms = 60000, burst = 5, key = "client" }}
"#
    )
}

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.json_logs);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config.addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What the environment asks of the server.
#[derive(Debug)]
struct Config {
    addr: SocketAddr,
    json_logs: bool,
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let ip = match std::env::var("BIND") {
            Ok(bind) => bind
                .parse::<IpAddr>()
                .map_err(|_| format!("BIND={bind:?} is not an IP address (try 127.0.0.1)"))?,
            Err(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let port = match std::env::var("PORT") {
            Ok(port) => port
                .parse::<u16>()
                .map_err(|_| format!("PORT={port:?} is not a port number (0 to 65535)"))?,
            Err(_) => 8080,
        };
        let json_logs = std::env::var("LOG_FORMAT").is_ok_and(|format| format == "json");
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            json_logs,
        })
    }
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "cannot listen on {addr}: address already in use; \
                 set PORT to a free port (PORT=0 picks one)"
            )
        } else {
            format!("cannot listen on {addr}: {error}")
        }
    })?;
    let local = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    // The address pages, tokens and redirects name: a wildcard bind is reached on loopback.
    let public = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), local.port())
        }
        _ => local,
    };
    let app = Arc::new(Showcase::new(public).await?);
    tokio::spawn(app.chat.clone().run_timers());
    let sweeper = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            sweeper.sweep(SystemTime::now());
        }
    });
    announce(local);
    tracing::info!(%local, "showcase listening");

    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let app = app.clone();
                let service = service_fn(move |request| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(handle(&app, peer, request).await) }
                });
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            name = &mut signal => {
                tracing::info!(signal = name, "shutting down: no new connections");
                break;
            }
        }
    }
    drop(listener);
    // Upgraded chat sockets are no longer hyper connections: close them through the hub.
    app.chat.shutdown();
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    let chat_drained = async {
        while !app.chat.is_drained() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        ((), ()) = async { tokio::join!(graceful.shutdown(), chat_drained) } => {
            tracing::info!("all connections closed");
        }
        () = tokio::time::sleep_until(deadline.into()) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period");
        }
    }
    Ok(())
}

/// Writes the bound address as the first stdout line (the contract scripts rely on).
fn announce(local: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not stop the server: the address is in the logs too.
    let _ = writeln!(stdout, "listening on http://{local}");
    let _ = stdout.flush();
}

/// Resolves with the signal's name on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate => "SIGTERM",
    }
}

async fn handle(app: &Showcase, peer: SocketAddr, request: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = dispatch(app, peer, &path, request).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// Whether `path` is `prefix` itself or below it (`/oauth` is not below `/oauth-login`).
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Hands the request to the app mounted at its path; the apps see the full path and strip
/// their own prefix.
async fn dispatch(
    app: &Showcase,
    peer: SocketAddr,
    path: &str,
    request: Request<Incoming>,
) -> Response<Body> {
    if let Some(prefix) = PAGES.iter().find(|prefix| path == **prefix) {
        let mut location = format!("{prefix}/");
        if let Some(query) = request.uri().query() {
            location.push('?');
            location.push_str(query);
        }
        return permanent_redirect(&location);
    }
    if under(path, "/auth") {
        app.auth.handle(peer.ip(), request).await
    } else if under(path, "/api") {
        app.api.handle(request).await
    } else if under(path, "/chat") {
        app.chat.handle(request).await
    } else if under(path, "/oauth") || path == app.provider.metadata_path() {
        app.provider.handle(peer.ip(), request).await
    } else if under(path, "/oauth-login") {
        app.oauth_login.handle(request).await
    } else if let Some(rest) = path.strip_prefix("/cookies")
        && rest.starts_with('/')
    {
        app.cookies.handle(rest, request).await
    } else if under(path, "/graphql") {
        // The page at `/graphql/`, GraphQL over HTTP and its WebSocket at `/graphql/graphql`.
        app.graphql.handle(request).await
    } else if under(path, "/proxy") {
        // proxy-core: routes, cache, compression, rate limits and metrics below `/proxy/`;
        // its upstreams are this server (`/api/`, `/origin/`) over loopback HTTP.
        buffered(app.proxy.handle(peer, request).await).await
    } else if under(path, "/origin") {
        app.origin.handle(path, &request)
    } else {
        route(request.method(), path)
    }
}

/// The proxy's streamed response, read whole into the showcase's one body type (its
/// bodies here are small pages; a 101 keeps its upgrade, which lives in the request).
async fn buffered(response: Response<reverse_proxy::ProxyBody>) -> Response<Body> {
    let (head, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => Response::from_parts(head, Full::new(collected.to_bytes())),
        Err(error) => {
            tracing::warn!(%error, "proxied body failed");
            text(
                StatusCode::BAD_GATEWAY,
                "text/plain; charset=utf-8",
                "upstream body failed\n",
            )
        }
    }
}

fn permanent_redirect(location: &str) -> Response<Body> {
    let mut response = text(
        StatusCode::PERMANENT_REDIRECT,
        "text/plain; charset=utf-8",
        "",
    );
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn route(method: &Method, path: &str) -> Response<Body> {
    let Some((content_type, body)) = page(path) else {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        );
    };
    if method == Method::HEAD {
        // HEAD announces the length GET would send (RFC 9110 section 9.3.2).
        let mut response = text(StatusCode::OK, content_type, "");
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        return response;
    }
    if method != Method::GET {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    text(StatusCode::OK, content_type, body)
}

/// The static pages: content type and body by path.
fn page(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/" => Some(("text/html; charset=utf-8", INDEX_HTML)),
        "/healthz" => Some(("application/json", r#"{"status":"ok"}"#)),
        _ => None,
    }
}

fn text(status: StatusCode, content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
