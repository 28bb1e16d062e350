//! oauth-login: an application with "Log in with backend-kit provider", using auth-core's
//! OAuth client (authorization code + PKCE S256, `state` and `iss` checks, refresh and
//! revocation) against an OAuth 2.0 provider.
//!
//! Run with (two terminals):
//!
//! ```text
//! cargo run -p oauth-provider                                     # on 127.0.0.1:8090
//! cargo run -p oauth-login -- --provider http://127.0.0.1:8090    # on 127.0.0.1:8091
//! ```
//!
//! Try: open http://127.0.0.1:8091/, press "Log in with backend-kit provider", log in as
//! `alice` / `wonderland-rabbit`, allow, and come back logged in; then "Refresh the token"
//! and "Log out" (which revokes the grant at the provider).
//!
//! The provider is `--provider URL` or `PROVIDER_URL` (default `http://127.0.0.1:8090`); it
//! must serve OpenID Connect discovery (then the login is OpenID Connect: ID token and
//! UserInfo checked, name and email shown) or RFC 8414 metadata. `CLIENT_ID` (default `demo-app`, a public client) and
//! `CLIENT_SECRET` (makes it a confidential `client_secret_basic` client) identify this app;
//! `USERINFO_URL` (default `<provider>/api/me`) answers who logged in (`sub`). The redirect
//! URI is `http://127.0.0.1:<port>/callback` (`PORT`, default 8091). Logging and shutdown are
//! the `serve` crate's.
//!
//! This example's HTTP client speaks plain `http` only, which is enough for providers on
//! loopback; against a real provider send the same `http::Request` values with an HTTPS
//! client (reqwest, hyper-rustls).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oauth_login::{App, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(run().await)
}

async fn run() -> Result<(), serve::Error> {
    let provider = provider_url()?;
    let server = serve::Server::bind(8091).await?;
    let origin = format!("http://127.0.0.1:{}", server.local_addr().port());
    let mut settings = Settings::new(&provider, &origin);
    if let Ok(userinfo) = std::env::var("USERINFO_URL") {
        settings.userinfo = userinfo;
    }
    if let Ok(client_id) = std::env::var("CLIENT_ID") {
        settings.client_id = client_id;
    }
    settings.client_secret = std::env::var("CLIENT_SECRET").ok();
    let app = Arc::new(App::new(settings));
    let sweeper = Arc::clone(&app);
    serve::every(Duration::from_secs(60), move || {
        sweeper.sweep(SystemTime::now())
    });
    server.serve(app).await
}

/// `--provider URL`, else `PROVIDER_URL`, else the provider example's default address.
fn provider_url() -> Result<String, serve::Error> {
    let mut args = std::env::args().skip(1);
    let mut provider = std::env::var("PROVIDER_URL").ok();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--provider" => {
                let url = args.next();
                provider = Some(url.ok_or(serve::Error::usage("--provider needs a URL"))?);
            }
            other => {
                let message = format!("unknown argument {other:?} (try --provider URL)");
                return Err(serve::Error::usage(message));
            }
        }
    }
    let provider = provider.unwrap_or_else(|| "http://127.0.0.1:8090".to_owned());
    Ok(provider.trim_end_matches('/').to_owned())
}
