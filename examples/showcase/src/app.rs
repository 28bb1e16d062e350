//! The showcase as one [`serve::App`]: every example's `App` mounted under its prefix, from
//! one table, plus the landing page.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use auth_core::{Either, MemoryStore};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;

use crate::shared::{self, Shared};
use crate::{cookies, docs, index, metrics, origin};

/// The landing page: every capability the showcase serves, with a link to try it;
/// `{{origin}}` stands for `http://HOST` in its curl samples, the address the visitor came
/// in on ([`Showcase::origin_of`]).
const INDEX_HTML: &str = include_str!("../static/index.html");

/// The body the showcase's own pages are built with; [`serve::App::handle`] boxes it.
pub(crate) type Body = Full<Bytes>;

/// Mounts with a page at their root: `GET /auth` redirects to `/auth/`, so that the page's
/// relative links resolve below the prefix.
const PAGES: [&str; 11] = [
    "/api",
    "/docs",
    "/proxy",
    "/auth",
    "/chat",
    "/oauth",
    "/oauth-login",
    "/cookies",
    "/graphql",
    "/jobs",
    "/broker",
];

/// Every mounted application, by prefix; the typed handles are for their timers and the
/// shutdown.
pub(crate) struct Showcase {
    /// `(prefix, app)`: a request whose path is the prefix or below it goes to the app,
    /// which sees the full path and strips its own prefix.
    mounts: Vec<(String, Arc<dyn serve::App>)>,
    /// The address the server is reachable at, for requests that name no usable host.
    public: SocketAddr,
    auth: Arc<auth_login::App<auth_login::SessionBackend>>,
    provider: Arc<oauth_provider::App>,
    oauth_login: Arc<oauth_login::App>,
    chat: Arc<chat::App>,
    jobs: Arc<task_queue::App>,
    /// `/broker/`: browsers subscribe and publish over a WebSocket.
    live: Arc<broker_live::App>,
    graphql: Arc<graphql::App>,
    /// Requests by mount, method and status class, for `GET /metrics`.
    metrics: Arc<metrics::HttpMetrics>,
    /// `/api/`: the REST API's operations, rendered once from its OpenAPI document.
    api_index: String,
    /// The landing page's section saying where each piece of state lives.
    engines: String,
}

impl std::fmt::Debug for Showcase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefixes: Vec<&str> = self
            .mounts
            .iter()
            .map(|(prefix, _)| prefix.as_str())
            .collect();
        f.debug_struct("Showcase")
            .field("mounts", &prefixes)
            .finish_non_exhaustive()
    }
}

impl Showcase {
    /// Builds every app for a server reachable at `public` (`origin` is `http://public`,
    /// or `public_origin`);
    /// the apps that count clients or sign login forms get `deployment`. With `shared`
    /// (`REDIS_URL`), every piece of state that instances must share is in Redis. The
    /// proxy's health checks start on the current runtime.
    pub(crate) async fn new(
        public: SocketAddr,
        deployment: &serve::Deployment,
        shared: Option<&Shared>,
        public_origin: Option<&str>,
    ) -> Result<Self, String> {
        let own = format!("http://{public}");
        // Behind a proxy (`PUBLIC_ORIGIN`), the address users see: the issuers, the OAuth
        // redirect URIs and the allowed origins name it, the same on every instance.
        let origin = &public_origin.map_or_else(|| own.clone(), str::to_owned);
        let mut origins = vec![origin.to_owned(), origin.replace("127.0.0.1", "localhost")];
        if own != *origin {
            origins.push(own.replace("127.0.0.1", "localhost"));
            origins.push(own);
        }
        let mut deployment = deployment.clone();
        if let Some(shared) = shared
            && deployment.login_csrf_secret.is_none()
        {
            // A login form shown by one instance is accepted by another.
            deployment.login_csrf_secret = Some(shared.login_csrf.clone());
        }
        let deployment = &deployment;
        let auth = auth_login::App::new(
            match shared {
                Some(shared) => Either::Right(shared.auth_sessions.clone()),
                None => Either::Left(MemoryStore::new()),
            },
            auth_login::Settings {
                base_path: "/auth".to_owned(),
                cookie_name: "__Host-auth-session".to_owned(),
                deployment: deployment.clone(),
                attempt_store: shared.map(|shared| shared.auth_attempts.clone()),
                signing_keys: shared.map(|shared| shared.auth_keys.clone()),
                user_store: shared.map(|shared| shared.auth_users.clone()),
                ..auth_login::Settings::new(origin)
            },
        )?;
        let api = rest_api::App::new(&rest_api::Settings {
            base_path: "/api".to_owned(),
            // PostgreSQL when DATABASE_URL is set (migrated here, at start); else SQLite, in
            // the file API_SQLITE_FILE names (two instances on one host can share it) or in
            // memory.
            db: std::env::var("DATABASE_URL")
                .ok()
                .filter(|url| !url.is_empty())
                .or_else(|| {
                    std::env::var("API_SQLITE_FILE")
                        .ok()
                        .filter(|path| !path.is_empty())
                }),
            cors_origin: origin.to_owned(),
            cursor_key: shared.map(|shared| shared.cursor_key.clone()),
            idempotency: shared.map(|shared| shared.idempotency.clone()),
        })?;
        api.migrate().await?;
        let api_index = index::api_page(api.openapi_json());
        let api_engine = api.database_engine();
        let chat = Arc::new(chat::App::new(chat::Settings {
            base_path: "/chat".to_owned(),
            allowed_origins: origins.clone(),
            // The 32 MiB test echo is for the chat's own conformance tests, never here.
            echo: false,
            scale_out: shared.map(|shared| shared.chat.clone()),
            presence: shared.map(|shared| shared.chat_presence.clone()),
        }));
        let callback = format!("{origin}/oauth-login/callback");
        let provider = oauth_provider::App::new(oauth_provider::Settings {
            base_path: "/oauth".to_owned(),
            redirect_uris: vec![callback.clone()],
            cookie_name: "__Host-provider-session".to_owned(),
            deployment: deployment.clone(),
            shared: shared.map(|shared| shared.provider.clone()),
            signing_keys: shared.map(|shared| shared.provider_keys.clone()),
            id_token_keys: shared.map(|shared| shared.provider_id_keys.clone()),
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
            shared_sessions: shared.map(|shared| shared.oauth_login_sessions.clone()),
            ..oauth_login::Settings::new(&format!("{origin}/oauth"), origin)
        });
        // NATS JetStream for the task queue and NATS core subjects for GraphQL's events
        // (NATS_URL), else Redis (REDIS_URL), else this process.
        let nats = std::env::var("NATS_URL").ok().filter(|url| !url.is_empty());
        let (graphql_events, graphql_engine) =
            shared::graphql_events(shared, nats.as_deref()).await?;
        let graphql = Arc::new(graphql::App::new(graphql::Settings {
            base_path: "/graphql".to_owned(),
            allowed_origins: origins.clone(),
            events: graphql_events,
            ..graphql::Settings::default()
        })?);
        let proxy = reverse_proxy::App::new(&reverse_proxy::Settings {
            base_path: "/proxy".to_owned(),
            config: proxy_config(
                public,
                shared.map(|shared| (shared.url.as_str(), shared.prefix.as_str())),
            ),
        })
        .await
        .map_err(|error| format!("the reverse proxy at /proxy: {error}"))?;
        let soap = soap_service::App::new(soap_service::Settings {
            base_path: "/soap".to_owned(),
            ..soap_service::Settings::default()
        });
        let cookies = cookies::CookieDemo::new(&origins, shared)?;
        // The embedded broker and memory, or NATS JetStream (NATS_URL) or Redis Streams
        // with the records in Redis (REDIS_URL); the workers start with the timers.
        let jobs = task_queue::App::new(shared::jobs_settings(shared, nats.as_deref()))
            .await
            .map_err(|error| format!("the task queue at /jobs: {error}"))?;
        let jobs_engine = shared::jobs_engine(
            jobs.broker_name(),
            jobs.state_name(),
            shared,
            nats.as_deref(),
        );
        let jobs = Arc::new(jobs);
        let auth = Arc::new(auth);
        // Browsers logged in at /auth/ subscribe and publish at /broker/ (its WebSocket
        // reads the /auth/ session cookie), on the same broker choice as the jobs.
        let live = broker_live::App::new(shared::live_settings(
            auth.clone(),
            origins.clone(),
            public,
            shared,
            nats.as_deref(),
        ))
        .await
        .map_err(|error| format!("the message bridge at /broker: {error}"))?;
        let live_engine = shared::live_engine(live.broker_name(), shared, nats.as_deref());
        let live = Arc::new(live);
        let provider = Arc::new(provider);
        let oauth_login = Arc::new(oauth_login);
        let metadata_path = provider.metadata_path().to_owned();
        let mounts: Vec<(String, Arc<dyn serve::App>)> = vec![
            ("/auth".to_owned(), auth.clone()),
            ("/api".to_owned(), Arc::new(api)),
            ("/chat".to_owned(), chat.clone()),
            ("/oauth".to_owned(), provider.clone()),
            // RFC 8414 section 3.1: an issuer with a path has its metadata outside it.
            (metadata_path, provider.clone()),
            ("/oauth-login".to_owned(), oauth_login.clone()),
            ("/cookies".to_owned(), Arc::new(cookies)),
            ("/graphql".to_owned(), graphql.clone()),
            // proxy-core: its upstreams are this server (`/api/`, `/origin/`) over loopback
            // HTTP; its responses stream through as the upstream sends them.
            ("/proxy".to_owned(), Arc::new(proxy)),
            ("/origin".to_owned(), Arc::new(origin::Origin::default())),
            ("/soap".to_owned(), Arc::new(soap)),
            ("/jobs".to_owned(), jobs.clone()),
            ("/broker".to_owned(), live.clone()),
        ];
        let metrics = Arc::new(metrics::HttpMetrics::new(
            mounts.iter().map(|(prefix, _)| prefix.as_str()),
        ));
        Ok(Self {
            mounts,
            public,
            auth,
            provider,
            oauth_login,
            chat,
            jobs,
            live,
            graphql,
            metrics,
            api_index,
            engines: shared::engines_section(
                shared,
                api_engine,
                &jobs_engine,
                &graphql_engine,
                &live_engine,
            ),
        })
    }

    /// Runs the chat's heartbeats and the task queue's workers and, every minute, drops
    /// expired sessions and grants.
    pub(crate) fn spawn_timers(self: &Arc<Self>) {
        tokio::spawn(Arc::clone(&self.chat).run_timers());
        tokio::spawn(Arc::clone(&self.graphql).run_events());
        self.jobs.spawn_workers();
        tokio::spawn(Arc::clone(&self.live).run());
        let this = Arc::clone(self);
        serve::every(std::time::Duration::from_secs(60), move || {
            let now = SystemTime::now();
            this.auth.sweep(now);
            this.provider.sweep(now);
            this.oauth_login.sweep(now);
        });
    }
}

impl serve::App for Showcase {
    /// Hands the request to the app mounted at its path; every HTML page that comes back,
    /// whichever app wrote it, gets the frame and content policies
    /// ([`serve::page::protect_html`]).
    fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        let observation = self.metrics.start(request.method(), request.uri().path());
        let response = self.dispatch(peer, request);
        Box::pin(async move {
            let mut response = response.await;
            serve::page::protect_html(response.headers_mut());
            observation.finish(response)
        })
    }

    fn shutdown(&self) {
        // Upgraded chat sockets are no longer hyper connections: close them through the hub.
        self.chat.shutdown();
        // The same for GraphQL's subscription sockets (1001), and its event streams end.
        serve::App::shutdown(&*self.graphql);
        // The task queue's workers settle their batch and stop.
        serve::App::shutdown(&*self.jobs);
        // The message bridge's sockets get 1001 and it stops fetching.
        self.live.shutdown();
    }

    fn is_drained(&self) -> bool {
        self.chat.is_drained()
            && serve::App::is_drained(&*self.jobs)
            && serve::App::is_drained(&*self.graphql)
            && self.live.is_drained()
    }
}

impl Showcase {
    /// The app mounted at the request's path answers it; the showcase's own pages otherwise.
    fn dispatch(
        self: Arc<Self>,
        peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        let path = request.uri().path();
        // The index pages of `/api/` and `/proxy/`, whose apps have none.
        if path == "/api/" || path == "/proxy/" {
            return ready(self.route(&request));
        }
        if let Some(prefix) = PAGES.iter().find(|prefix| path == **prefix) {
            let mut location = format!("{prefix}/");
            if let Some(query) = request.uri().query() {
                location.push('?');
                location.push_str(query);
            }
            return ready(serve::page::redirect(
                StatusCode::PERMANENT_REDIRECT,
                &location,
            ));
        }
        let mounted = self
            .mounts
            .iter()
            .find(|(prefix, _)| serve::local_path(prefix, path).is_some())
            .map(|(_, app)| Arc::clone(app));
        match mounted {
            Some(app) => app.handle(peer, request),
            None => ready(self.route(&request)),
        }
    }
}

impl serve::App for cookies::CookieDemo {
    fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let rest = path.strip_prefix("/cookies").unwrap_or(&path);
            cookies::CookieDemo::handle(&self, rest, request)
                .await
                .map(serve::boxed)
        })
    }
}

impl serve::App for origin::Origin {
    fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        let response = origin::Origin::handle(&self, request.uri().path(), &request);
        ready(response)
    }
}

/// A response that is ready now.
fn ready(response: Response<Body>) -> serve::ResponseFuture {
    Box::pin(std::future::ready(response.map(serve::boxed)))
}

/// The embedded configuration of the proxy at `/proxy/`: one pool whose two members are
/// this server itself (by IP and, on loopback, by the name `localhost`), round-robin and
/// health-checked at `/healthz`; `/proxy/api/` (rest-api) and `/proxy/origin/` (the small
/// origin in `origin.rs`) through the RFC 9111 cache; `/proxy/origin/limited` with a rate
/// limit of 5 requests a minute per client; br/zstd/gzip above 256 bytes; metrics at
/// `/proxy/metrics`. No route reaches `/proxy/` itself, so a request cannot loop. With
/// `redis` (its URL and the showcase's key prefix, `REDIS_PREFIX`) the rate limit is
/// counted in Redis under `{prefix}proxy:rl:`, across every instance that shares the
/// prefix (a Redis outage lets requests through, with a warning: the proxy fails open).
fn proxy_config(public: SocketAddr, redis: Option<(&str, &str)>) -> String {
    let (redis, store) = match redis {
        Some((url, prefix)) => (
            format!(
                "redis_url = \"{}\"\nredis_prefix = \"{}proxy:rl:\"\n",
                url.replace(['\\', '"'], ""),
                prefix.replace(['\\', '"'], "")
            ),
            ", store = \"redis\"",
        ),
        None => (String::new(), ""),
    };
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
{redis}
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
rate_limit = {{ rate = 5, period_ms = 60000, burst = 5, key = "client"{store} }}
"#
    )
}

impl Showcase {
    /// The landing page, the index pages of `/api/` and `/proxy/`, the icon, `/healthz`,
    /// and 404 for everything no app is mounted at.
    fn route<B>(&self, request: &Request<B>) -> Response<Body> {
        let method = request.method();
        match request.uri().path() {
            "/" => {
                let origin = serve::page::escape(&self.origin_of(request));
                let index = INDEX_HTML
                    .replace("{{origin}}", &origin)
                    .replace("{{engines}}", &self.engines);
                serve::page::get_or_head(method, "text/html; charset=utf-8", index)
            }
            "/api/" => {
                serve::page::get_or_head(method, "text/html; charset=utf-8", self.api_index.clone())
            }
            "/proxy/" => {
                serve::page::get_or_head(method, "text/html; charset=utf-8", index::proxy_page())
            }
            "/favicon.ico" => serve::page::get_or_head(method, "image/svg+xml", index::FAVICON_SVG),
            "/healthz" => {
                serve::page::get_or_head(method, "application/json", r#"{"status":"ok"}"#)
            }
            "/metrics" => serve::page::get_or_head(method, metrics::CONTENT_TYPE, self.scrape()),
            "/docs/" => {
                serve::page::get_or_head(method, "text/html; charset=utf-8", docs::index_page())
            }
            path => match path.strip_prefix("/docs/").and_then(docs::crate_page) {
                Some(page) => serve::page::get_or_head(method, "text/html; charset=utf-8", page),
                None => serve::page::not_found(),
            },
        }
    }

    /// The Prometheus exposition of `GET /metrics`: the request metrics and what the apps
    /// tell now.
    fn scrape(&self) -> String {
        let (chat_connections, chat_rooms) = self.chat.occupancy();
        let logins = self.auth.login_counts();
        let jobs = self.jobs.job_counts();
        let count = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        self.metrics.render(&metrics::AppGauges {
            chat_connections: Some(chat_connections),
            chat_rooms: Some(chat_rooms),
            graphql_ws_operations: Some(self.graphql.websocket_operations()),
            jobs: ["queued", "running", "retrying", "succeeded", "dead"]
                .into_iter()
                .map(|state| (state, jobs.get(state).copied().unwrap_or(0)))
                .collect(),
            auth_sessions: self.auth.memory_session_count(),
            auth_logins: vec![
                ("success", count(&logins.succeeded)),
                ("failure", count(&logins.failed)),
                ("throttled", count(&logins.throttled)),
            ],
        })
    }

    /// `http://` and the host the request was sent to (its `Host` header, or the authority
    /// of an HTTP/2 request), so that the samples a visitor copies reach the server the
    /// way they reached it (`localhost`, a LAN address, a name); this server's own address
    /// when the request names none or something that is not a plain `host[:port]`.
    fn origin_of<B>(&self, request: &Request<B>) -> String {
        let named = request
            .uri()
            .authority()
            .map(|authority| authority.as_str().to_owned())
            .or_else(|| {
                request
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|host| host.to_str().ok())
                    .map(str::to_owned)
            });
        let plain = |host: &str| {
            !host.is_empty()
                && host.len() <= 255
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                && host.parse::<http::uri::Authority>().is_ok()
        };
        match named {
            Some(host) if plain(&host) => format!("http://{host}"),
            _ => format!("http://{}", self.public),
        }
    }
}
