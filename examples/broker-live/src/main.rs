//! broker-live: messages in the browser over a WebSocket bridge (ws-core) to a broker
//! (broker-core), for users logged in with auth-core sessions (auth-login, served beside
//! it at `/auth/`). See `src/lib.rs`.
//!
//! Run with: `cargo run -p broker-live` (the embedded broker), or on a shared broker so
//! that several instances see each other's messages:
//! `BROKER_URL=redis://127.0.0.1:6379 cargo run -p broker-live --features redis`,
//! `BROKER_URL=nats://127.0.0.1:4222 cargo run -p broker-live --features nats`
//! (with `PORT` and `INSTANCE` different for each instance).
//!
//! Try:
//!
//! ```text
//! open http://127.0.0.1:8080/auth/     sign up (user name, 15+ character password)
//! open http://127.0.0.1:8080/          subscribe to demo.>, publish on demo.hello
//!                                      (a second tab sees it arrive); publishing on
//!                                      admin.x is refused with a readable error
//! curl -i http://127.0.0.1:8080/me      401 without the session cookie
//! ```
//!
//! Environment: `BROKER_URL` (unset: embedded), `BROKER_PREFIX` (default `broker-live`),
//! `INSTANCE` (default `main`: this instance's queue; give each instance on one broker its
//! own), `ALLOWED_ORIGINS` (comma-separated; default the server's own address). `PORT`,
//! `BIND`, logging and the shutdown (connections closed with 1001) are the `serve`
//! crate's (examples/serve).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use auth_core::MemoryStore;
use broker_live::{App, Settings};
use http::Request;

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(run().await)
}

/// auth-login at `/auth`, the bridge everywhere else.
#[derive(Debug)]
struct Site {
    auth: Arc<auth_login::App<MemoryStore>>,
    live: Arc<App>,
}

impl serve::App for Site {
    fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        let path = request.uri().path();
        if path == "/auth" {
            let redirect = serve::page::redirect::<http_body_util::Full<bytes::Bytes>>(
                http::StatusCode::PERMANENT_REDIRECT,
                "/auth/",
            );
            return Box::pin(std::future::ready(redirect.map(serve::boxed)));
        }
        if serve::local_path("/auth", path).is_some() {
            Arc::clone(&self.auth).handle(peer, request)
        } else {
            Arc::clone(&self.live).handle(peer, request)
        }
    }

    fn shutdown(&self) {
        self.live.shutdown();
    }

    fn is_drained(&self) -> bool {
        self.live.is_drained()
    }
}

fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

async fn run() -> Result<(), serve::Error> {
    let server = serve::Server::bind(8080).await?;
    let local = server.public_addr();
    let origin = format!("http://{local}");
    let allowed_origins = match env_text("ALLOWED_ORIGINS") {
        Some(list) => list.split(',').map(|o| o.trim().to_owned()).collect(),
        None => vec![origin.clone(), format!("http://localhost:{}", local.port())],
    };
    let auth = Arc::new(auth_login::App::new(
        MemoryStore::new(),
        auth_login::Settings {
            base_path: "/auth".to_owned(),
            cookie_name: "__Host-auth-session".to_owned(),
            ..auth_login::Settings::new(&origin)
        },
    )?);
    let mut settings = Settings::new(auth.clone());
    settings.allowed_origins = allowed_origins;
    settings.broker_url = env_text("BROKER_URL");
    if let Some(prefix) = env_text("BROKER_PREFIX") {
        settings.prefix = prefix;
    }
    if let Some(instance) = env_text("INSTANCE") {
        settings.instance = instance;
    }
    let live = Arc::new(App::new(settings).await?);
    tokio::spawn(Arc::clone(&live).run());
    server.serve(Arc::new(Site { auth, live })).await
}
