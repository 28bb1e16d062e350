//! auth-login: sign-up, login and logout with server-side sessions, a CSRF-protected form,
//! and a JSON API protected by JWTs, all from auth-core.
//!
//! Run with: `cargo run -p auth-login`
//! (sessions live in memory; set `REDIS_URL=redis://127.0.0.1:6379` to keep them, the
//! accounts, the login throttling counts and the API tokens' signing key in Redis, shared
//! by instances, under the key prefix `REDIS_PREFIX`, default `auth-login:`)
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
//! Without Redis the signing key is made at start, so API tokens end with the process. `PORT`, `BIND`,
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

use auth_core::{Algorithm, Key, KeySet, MemoryStore, RedisAttemptStore, RedisStore};
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
        let redis_error = |error: auth_core::Error| format!("REDIS_URL: {error}");
        // Every key starts with REDIS_PREFIX (default `auth-login:`).
        let prefix = std::env::var("REDIS_PREFIX")
            .ok()
            .filter(|prefix| !prefix.is_empty())
            .unwrap_or_else(|| "auth-login:".to_owned());
        let store = RedisStore::connect(&url, &prefix)
            .await
            .map_err(redis_error)?;
        // The first instance's key, for every instance (SET if absent).
        let keys = auth_core::shared_secret(&url, &format!("{prefix}jwt-keys"), || {
            Key::generate_config("auth-login-1", Algorithm::EdDSA)
        })
        .await
        .map_err(redis_error)?;
        let settings = Settings {
            attempt_store: Some(
                RedisAttemptStore::connect(&url, &format!("{prefix}throttle:"))
                    .await
                    .map_err(redis_error)?,
            ),
            signing_keys: Some(KeySet::from_config(&keys).map_err(redis_error)?),
            user_store: Some(
                auth_login::RedisUsers::connect(&url, &format!("{prefix}users"))
                    .await
                    .map_err(|error| format!("REDIS_URL: {error}"))?,
            ),
            ..settings
        };
        tracing::info!("sessions, login throttling and signing keys in Redis");
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
