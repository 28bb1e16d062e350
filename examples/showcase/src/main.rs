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
//! curl -s http://127.0.0.1:8080/metrics                  the whole showcase, Prometheus text
//! open http://127.0.0.1:8080/docs/            every crate: types, features, usage, README
//! open http://127.0.0.1:8080/jobs/             enqueue jobs, watch retries and dead letters
//! open http://127.0.0.1:8080/broker/           publish, subscribe, watch deliveries (log in at /auth/ first)
//! curl -s http://127.0.0.1:8080/jobs/jobs -H 'content-type: application/json' \
//!      -d '{"kind":"flaky","payload":{"fail_times":2}}'          (broker-core)
//! curl -s 'http://127.0.0.1:8080/soap/soap?wsdl'              the WSDL (soap-core)
//! curl -s http://127.0.0.1:8080/soap/soap -H 'content-type: text/xml; charset=utf-8' \
//!      -H 'SOAPAction: "urn:backend-kit:orders/getStock"' \
//!      -d '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><getStock xmlns="urn:backend-kit:orders"><sku>A-1</sku></getStock></s:Body></s:Envelope>'
//! ```
//!
//! # How the examples are mounted
//!
//! Each example under `examples/` is a library plus a short binary: its `src/lib.rs` exposes
//! an `App` (state, routes, pages) built from a `Settings` value whose `base_path` mounts it
//! under a prefix, and implements `serve::App` (peer address and request in, a streaming
//! response out); its `src/main.rs` serves it with the `serve` crate, so each example still
//! runs, and reads, on its own. This server depends on those libraries and dispatches
//! through one table of `(prefix, app)` (`src/app.rs`), so no handler is copied here and no
//! response is buffered (the proxy's bodies and GraphQL's `@defer`/`@stream` parts stream
//! through):
//!
//! | prefix | example library | crate shown |
//! |---|---|---|
//! | `/auth/` | `auth-login` | auth-core: argon2id sign-up/login, sessions, CSRF, throttling, JWT API + JWKS |
//! | `/api/` | `rest-api` | rest-core: users/posts CRUD on in-memory SQLite (PostgreSQL with `DATABASE_URL`), ETags, `If-Match`, paging, CORS, idempotency, OpenAPI |
//! | `/chat/` | `chat` | ws-core: rooms, presence, direct messages, permessage-deflate |
//! | `/oauth/` | `oauth-provider` | auth-core OAuth 2.0 authorization server (issuer `http://ADDR/oauth`) |
//! | `/oauth-login/` | `oauth-login` | auth-core OAuth client, logging in against `/oauth` on this same server |
//! | `/cookies/` | this crate (`cookies.rs`) | cookie-jar: signed and private cookies, key rotation |
//! | `/graphql/` | `graphql` | graphql-core: a page at `/graphql/`, GraphQL over HTTP and subscriptions (`graphql-transport-ws`) at `/graphql/graphql`, DataLoader |
//! | `/proxy/` | `reverse-proxy` | proxy-core: a pool of this server itself, RFC 9111 cache, compression, rate limits, `Forwarded`/`Via`, metrics at `/proxy/metrics` |
//! | `/soap/` | `soap-service` | soap-core: orders and inventory over SOAP 1.1 and 1.2 at `/soap/soap`, its WSDL at `/soap/soap?wsdl`, typed faults, WS-Security UsernameToken |
//! | `/jobs/` | `task-queue` | broker-core: a job queue on the embedded broker (Redis Streams with `REDIS_URL`, NATS JetStream with `NATS_URL`), retries with backoff, dead letters and re-drive, `Idempotency-Key`, an idempotent inbox; its page at `/jobs/`, the API at `/jobs/jobs` |
//! | `/broker/` | `broker-live` | broker-core with ws-core and auth-core: messages in the browser for users logged in at `/auth/`; subscribe to subject patterns and publish over a WebSocket at `/broker/ws`, a per-user allow-list checked on every frame, slow browsers closed by the slow-consumer policy; a job through its retries to the dead letters and back (through `/jobs/jobs`); across instances on NATS JetStream (`NATS_URL`) or Redis Streams (`REDIS_URL`) |
//! | `/origin/` | this crate (`origin.rs`) | the proxy's upstream pages: a cacheable one, a header echo, a rate-limited one |
//! | `/docs/` | this crate (`docs.rs`) | every crate under `crates/`: what it does, main types, features, a usage snippet and links to docs.rs; `/docs/CRATE` is its README as HTML (pulldown-cmark, raw HTML shown as text), all read at build time |
//! | `/metrics` | this crate (`metrics.rs`) | Prometheus text format 0.0.4 for the whole server: `showcase_http_requests_total`, `showcase_http_request_duration_seconds` (histogram) and `showcase_http_requests_in_flight` by mount (`app`), method and status class; chat connections and rooms, GraphQL WebSocket operations, jobs by state, auth sessions and login outcomes, `process_*` from `/proc/self`, `showcase_build_info`. Atomics only on the request path; why no metrics crate: `src/metrics.rs` |
//!
//! Every HTML page that comes back, whichever app wrote it, is sent with a Content Security
//! Policy (same-origin only, no framing: `frame-ancestors 'none'`) and `X-Frame-Options:
//! DENY` (`serve::page::protect_html`); the landing page's curl samples name the host the
//! browser came in on. The chat's 32 MiB test echo (`/chat/echo`) is not mounted here.
//!
//! By default everything is in memory: sessions, users, SQLite, grants, idempotency keys,
//! the chat hub, the task queue's broker and inbox; signing keys are made at start. With
//! `REDIS_URL` (`redis://127.0.0.1:6379`) set, the state that instances must share moves
//! to that Redis, under the key prefix `REDIS_PREFIX` (default `showcase:`): sessions, login
//! throttling, OAuth codes, grants and refresh-token families, `Idempotency-Key`
//! responses, chat room fan-out, the proxy's rate limit, the task queue (Redis Streams, its
//! job records, keys and inbox; its broker is NATS JetStream when `NATS_URL` is set), and
//! the JWT key sets, cookie key
//! ring and form secrets, which the first instance creates and every other one loads (see
//! `src/shared.rs` and the README's "Where the state lives"). An unreachable Redis stops
//! the start with a message; a Redis that goes away later makes the requests that need it
//! answer 503. `PUBLIC_ORIGIN` (`http://HOST:PORT`, the proxy in front of several instances) is the
//! origin the JWT and OAuth issuers, the OAuth redirect URIs and the allowed origins name,
//! the same on every instance (default `http://ADDR`). `API_SQLITE_FILE` puts the REST API's rows in a SQLite file (instances on
//! one host may share it) instead of memory. Each mounted app has its own session cookie name, since
//! cookies are shared by the whole origin. The provider's RFC 8414 metadata for an issuer
//! with a path lives at `/.well-known/oauth-authorization-server/oauth`, outside its prefix,
//! and is routed to it too. The OAuth client reaches the provider over a loopback HTTP
//! connection to this same server, as it would reach any provider; so does the reverse
//! proxy reach its two pool members (this server by IP and by the name `localhost`), whose
//! routes are `/proxy/api/` and `/proxy/origin/` only, so that no request loops back into
//! `/proxy/`. Its embedded configuration is `proxy_config` in `src/app.rs`.
//!
//! Environment: `PORT` (default 8080; `0` picks a free port) and `BIND` (default `127.0.0.1`)
//! choose the address; `RUST_LOG` sets the log filter (default `info`); `LOG_FORMAT=json`
//! writes one JSON object per log line. The first line on stdout is always
//! `listening on http://ADDR`, so scripts and tests can find an ephemeral port. The OAuth
//! issuer and the chat's allowed origin are `http://127.0.0.1:PORT` when `BIND` is
//! `0.0.0.0`, so open the pages at that address. Ctrl-C or SIGTERM stops accepting, lets
//! requests in flight finish and closes chat connections with 1001 (up to 10 seconds),
//! then exits 0. All of that is the `serve` crate's (examples/serve).
//!
//! Behind a reverse proxy (several instances behind examples/reverse-proxy), set
//! `TRUSTED_PROXIES` to the proxy's addresses or networks so that login throttling at
//! `/auth/` and `/oauth/` counts the client address it forwards in `X-Forwarded-For`
//! (`CLIENT_ADDRESS_HEADER=forwarded` for `Forwarded`), and the same `LOGIN_CSRF_SECRET`
//! (32+ bytes, hex or base64) on every instance so that a login form shown by one is
//! accepted by another. Unset, nobody is trusted and each process makes its own secret.

mod app;
mod cookies;
mod docs;
mod index;
mod metrics;
mod origin;
mod shared;

use std::process::ExitCode;
use std::sync::Arc;

use app::Showcase;

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(run().await)
}

async fn run() -> Result<(), serve::Error> {
    let server = serve::Server::bind(8080).await?;
    let deployment = serve::Deployment::from_env()?;
    let shared = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let prefix = std::env::var("REDIS_PREFIX")
                .ok()
                .filter(|prefix| !prefix.is_empty())
                .unwrap_or_else(|| shared::DEFAULT_PREFIX.to_owned());
            let shared = shared::Shared::connect(&url, &prefix).await?;
            tracing::info!(redis = %shared.place, %prefix, "shared state in Redis");
            Some(shared)
        }
        _ => None,
    };
    let public_origin = std::env::var("PUBLIC_ORIGIN")
        .ok()
        .filter(|origin| !origin.is_empty());
    let showcase = Showcase::new(
        server.public_addr(),
        &deployment,
        shared.as_ref(),
        public_origin.as_deref(),
    )
    .await?;
    let showcase = Arc::new(showcase);
    showcase.spawn_timers();
    server.serve(showcase).await
}
