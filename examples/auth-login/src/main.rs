//! auth-login: sign-up, login and logout with server-side sessions, a CSRF-protected form,
//! and a JSON API protected by JWTs, all from auth-core.
//!
//! Run with: `cargo run -p auth-login`
//! (sessions live in memory; set `REDIS_URL=redis://127.0.0.1:6379` to keep them in Redis)
//!
//! Try:
//!
//! ```text
//! open http://127.0.0.1:8080/        sign up, log in, press "Get an API token"
//! curl -s http://127.0.0.1:8080/.well-known/jwks.json
//! curl -si http://127.0.0.1:8080/api/me                        # 401 with a Bearer challenge
//! curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/api/me
//! ```
//!
//! The signing key is made at start, so API tokens end with the process. `PORT`, `BIND`,
//! `RUST_LOG`, `LOG_FORMAT` and the shutdown are the `serve` crate's (examples/serve).
//!
//! Behind a reverse proxy, set `TRUSTED_PROXIES` to its addresses or networks
//! (`10.0.0.0/8,192.0.2.7`) so that login throttling counts the client address it forwards
//! in `X-Forwarded-For` (`CLIENT_ADDRESS_HEADER=forwarded` for RFC 7239 `Forwarded`);
//! unset, nobody is trusted and the TCP peer is counted. Several instances share form
//! tokens with the same `LOGIN_CSRF_SECRET` (32+ bytes as hex or base64: `openssl rand -hex
//! 32`); unset, a random one is made at start.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{MemoryStore, RedisStore};
use auth_login::{App, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(run().await)
}

async fn run() -> Result<(), serve::Error> {
    let server = serve::Server::bind(8080).await?;
    let settings = Settings {
        deployment: serve::Deployment::from_env()?,
        ..Settings::new(format!("http://{}", server.local_addr()))
    };
    if let Ok(url) = std::env::var("REDIS_URL") {
        let store = RedisStore::connect(&url, "auth-login:")
            .await
            .map_err(|error| format!("REDIS_URL: {error}"))?;
        tracing::info!("sessions in Redis");
        server.serve(Arc::new(App::new(store, settings)?)).await
    } else {
        tracing::info!("sessions in memory");
        let app = Arc::new(App::new(MemoryStore::new(), settings)?);
        let sweeper = Arc::clone(&app);
        serve::every(Duration::from_secs(60), move || {
            sweeper.sweep(SystemTime::now())
        });
        server.serve(app).await
    }
}
