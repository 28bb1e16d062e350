//! oauth-provider: an OAuth 2.0 authorization server with login and consent pages, built on
//! auth-core (`oauth` feature, sessions, passwords, CSRF, login throttling).
//!
//! Run with: `cargo run -p oauth-provider`
//!
//! Try:
//!
//! ```text
//! curl -s http://127.0.0.1:8090/.well-known/oauth-authorization-server
//! curl -s http://127.0.0.1:8090/.well-known/openid-configuration   # OpenID Connect
//! cargo run -p oauth-login          # then open http://127.0.0.1:8091/ and "Log in with ..."
//! curl -s -u demo-web:demo-web-secret-change-me -d grant_type=client_credentials -d scope=api \
//!      http://127.0.0.1:8090/token
//! curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8090/api/me
//! ```
//!
//! Registered clients: `demo-app` (public, PKCE) and `demo-web` (confidential,
//! `client_secret_basic`, secret `DEMO_CLIENT_SECRET`, default `demo-web-secret-change-me`),
//! both with the redirect URI `http://127.0.0.1/callback` (any port: RFC 8252 loopback rule)
//! unless `DEMO_REDIRECT_URIS` (comma-separated) says otherwise. One user: `alice`, password
//! `DEMO_PASSWORD` (default `wonderland-rabbit`).
//!
//! The address (`PORT`, default 8090; `BIND`) is the issuer. Access tokens are RFC 9068 JWTs
//! signed with a key made at start; with `REDIS_URL` set, the key is the one in Redis
//! (created by the first instance) and sessions, login throttling, codes, grants and
//! refresh-token families live there too, under `oauth-provider:`, shared by instances. It
//! is an OpenID Connect provider too: `scope=openid` gets an RS256 ID token, `/userinfo`
//! answers for the access token, and `prompt=none`, `prompt=login` and `max_age` are
//! honoured. Logging and shutdown are the `serve` crate's.
//!
//! Behind a reverse proxy, set `TRUSTED_PROXIES` to its addresses or networks
//! (`10.0.0.0/8,192.0.2.7`) so that login throttling counts the client address it forwards
//! in `X-Forwarded-For` (`CLIENT_ADDRESS_HEADER=forwarded` for RFC 7239 `Forwarded`);
//! unset, nobody is trusted and the TCP peer is counted. Several instances share login form
//! tokens with the same `LOGIN_CSRF_SECRET` (32+ bytes as hex or base64: `openssl rand -hex
//! 32`); unset, a random one is made at start.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oauth_provider::{App, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(run().await)
}

async fn run() -> Result<(), serve::Error> {
    let server = serve::Server::bind(8090).await?;
    let mut settings = Settings {
        deployment: serve::Deployment::from_env()?,
        ..Settings::new(format!("http://{}", server.local_addr()))
    };
    if let Ok(uris) = std::env::var("DEMO_REDIRECT_URIS") {
        settings.redirect_uris = uris
            .split(',')
            .map(|uri| uri.trim().to_owned())
            .filter(|uri| !uri.is_empty())
            .collect();
    }
    if let Ok(secret) = std::env::var("DEMO_CLIENT_SECRET") {
        settings.client_secret = secret;
    }
    if let Ok(password) = std::env::var("DEMO_PASSWORD") {
        settings.demo_password = password;
    }
    if let Ok(url) = std::env::var("REDIS_URL")
        && !url.is_empty()
    {
        let redis = |error: auth_core::Error| format!("REDIS_URL: {error}");
        let keys = auth_core::shared_secret(&url, "oauth-provider:jwt-keys", || {
            auth_core::Key::generate_config("oauth-provider-1", auth_core::Algorithm::ES256)
        })
        .await
        .map_err(redis)?;
        settings.signing_keys = Some(auth_core::KeySet::from_config(&keys).map_err(redis)?);
        settings.shared = Some(oauth_provider::SharedStores {
            sessions: auth_core::RedisStore::connect(&url, "oauth-provider:")
                .await
                .map_err(redis)?,
            attempts: auth_core::RedisAttemptStore::connect(&url, "oauth-provider:throttle:")
                .await
                .map_err(redis)?,
            grants: auth_core::oauth::server::RedisGrantStore::connect(
                &url,
                "oauth-provider:grants:",
            )
            .await
            .map_err(redis)?,
            refresh: auth_core::RedisRefreshStore::connect(&url, "oauth-provider:refresh:")
                .await
                .map_err(redis)?,
        });
    }
    let app = Arc::new(App::new(settings)?);
    let sweeper = Arc::clone(&app);
    serve::every(Duration::from_secs(60), move || {
        sweeper.sweep(SystemTime::now())
    });
    server.serve(app).await
}
