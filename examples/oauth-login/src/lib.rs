//! oauth-login as a library: an application with "Log in with backend-kit provider", using
//! auth-core's OAuth client (authorization code + PKCE S256, `state` and `iss` checks,
//! refresh and revocation) against an OAuth 2.0 provider.
//!
//! [`App`] holds the state and answers requests (it implements [`serve::App`]); it opens no
//! listening socket and spawns no task of its own (it does connect to the provider).
//! `src/main.rs` serves it (`cargo run -p oauth-login`), and `examples/showcase` mounts
//! the same [`App`] under `/oauth-login` with [`Settings::base_path`], logging in against
//! the showcase's own provider.
//!
//! When the provider publishes OpenID Connect discovery (`/.well-known/openid-configuration`
//! below its issuer) the login is OpenID Connect: `scope=openid profile email` with a
//! `nonce`, the ID token checked against the provider's JWK Set, UserInfo asked for the same
//! `sub`, and the user's name and email shown. Otherwise it is plain OAuth 2.0 with RFC 8414
//! metadata and [`Settings::userinfo`].
//!
//! This example's HTTP client speaks plain `http` only, which is enough for providers on
//! loopback; against a real provider send the same `http::Request` values with an HTTPS
//! client (reqwest, hyper-rustls).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::oauth::client::{
    ClientAuth, OAuthClient, PendingAuthorization, ServerMetadata, TokenResponse,
    parse_token_response,
};
use auth_core::{
    Either, MemoryStore, RedisStore, Session, SessionConfig, SessionCookie, Sessions,
    session_csrf_token, verify_session_csrf,
};
use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use serve::ResponseFuture;
use serve::page::{self, escape, text};
use tokio::net::TcpStream;
use tokio::sync::RwLock;

mod openid;

/// The body the pages are built with; [`serve::App::handle`] boxes it.
type Body = Full<Bytes>;

const MAX_FORM_BYTES: usize = 16 * 1024;
/// The largest response read from the provider.
const MAX_PROVIDER_BYTES: usize = 64 * 1024;
const PENDING_KEY: &str = "oauth_pending";
const TOKENS_KEY: &str = "oauth_tokens";
const REFRESHES_KEY: &str = "oauth_refreshes";
const IDENTITY_KEY: &str = "openid_identity";

/// Which provider to use, who this client is, and where it is served.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The provider's issuer URL; it must serve RFC 8414 metadata.
    pub provider: String,
    /// This application's `client_id` at the provider.
    pub client_id: String,
    /// Makes this a confidential `client_secret_basic` client.
    pub client_secret: Option<String>,
    /// Answers who logged in (`sub`) for an access token.
    pub userinfo: String,
    /// Where the provider sends the browser back: `{origin}{base_path}/callback`.
    pub redirect_uri: String,
    /// The path prefix: empty at the root, or `/oauth-login` (no trailing slash).
    pub base_path: String,
    /// The session cookie's name. Applications sharing one origin need different names.
    pub cookie_name: String,
    /// Where the sessions live (with the pending login's `state`, PKCE verifier and nonce,
    /// and the tokens): `None`, in this process; a [`RedisStore`], shared by every instance
    /// on that Redis and prefix, so that the provider's redirect back to `/callback` may
    /// land on another instance than the one that sent the browser there.
    pub shared_sessions: Option<RedisStore>,
}

impl Settings {
    /// The public client `demo-app` of `provider`, served at the root of `origin`.
    pub fn new(provider: &str, origin: &str) -> Self {
        let provider = provider.trim_end_matches('/').to_owned();
        Self {
            userinfo: format!("{provider}/api/me"),
            provider,
            client_id: "demo-app".to_owned(),
            client_secret: None,
            redirect_uri: format!("{origin}/callback"),
            base_path: String::new(),
            // Cookies are not isolated by port: a provider on the same host uses
            // `__Host-session`, so this application uses another name.
            cookie_name: "__Host-app-session".to_owned(),
            shared_sessions: None,
        }
    }
}

/// The application: sessions, and the OAuth client once the provider's metadata is read.
#[derive(Debug)]
pub struct App {
    settings: Settings,
    /// Built from the provider's metadata on first use (the provider may start later).
    client: RwLock<Option<Arc<OAuthClient>>>,
    sessions: Sessions<Either<MemoryStore, RedisStore>>,
    cookie: SessionCookie,
}

impl App {
    /// An application with no provider contact yet: the metadata is fetched on first use,
    /// so the provider may start later.
    pub fn new(settings: Settings) -> Self {
        Self {
            cookie: SessionCookie::new().name(settings.cookie_name.clone()),
            client: RwLock::new(None),
            sessions: Sessions::new(
                match settings.shared_sessions.clone() {
                    Some(redis) => Either::Right(redis),
                    None => Either::Left(MemoryStore::new()),
                },
                SessionConfig::default(),
            ),
            settings,
        }
    }

    /// Drops expired sessions kept in memory (Redis expires its own); call it now and then
    /// (the binary does every minute).
    pub fn sweep(&self, now: SystemTime) {
        if let Some(memory) = self.sessions.store().left() {
            memory.sweep(now);
        }
    }
}

impl serve::App for App {
    /// Answers one request.
    fn handle(self: Arc<Self>, _peer: SocketAddr, request: Request<serve::Body>) -> ResponseFuture {
        Box::pin(async move { handle(&self, request).await.map(serve::boxed) })
    }
}

/// What the session keeps of the provider's tokens.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredTokens {
    access_token: String,
    refresh_token: Option<String>,
    scope: Option<Vec<String>>,
    expires_in: Option<u64>,
}

impl From<TokenResponse> for StoredTokens {
    fn from(tokens: TokenResponse) -> Self {
        Self {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            scope: tokens.scope,
            expires_in: tokens.expires_in.map(|ttl| ttl.as_secs()),
        }
    }
}

async fn handle(app: &App, request: Request<serve::Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let Some(path) =
        serve::local_path(&app.settings.base_path, parts.uri.path()).map(str::to_owned)
    else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    if parts.method == Method::GET && path == "/healthz" {
        return page::json(StatusCode::OK, r#"{"status":"ok"}"#);
    }
    if parts.method == Method::GET
        && let Some(location) = on_the_callback_host(&app.settings.redirect_uri, &parts)
    {
        return page::redirect(StatusCode::TEMPORARY_REDIRECT, &location);
    }
    let response = pages(app, &parts, body, &path)
        .await
        .unwrap_or_else(|refusal| refusal);
    let heading = if response.status() == StatusCode::FORBIDDEN && path != "/callback" {
        // The forms' CSRF check.
        "Form refused"
    } else {
        refusal_heading(&path)
    };
    // A failed login (consent denied, a stale callback, an unreachable provider) is read by
    // a person: in the page, with the way back to start again.
    page::explain(
        response,
        heading,
        &format!("{}/", app.settings.base_path),
        "Back to the start page",
    )
    .await
}

/// The heading of a page route's refusal: what did not happen.
fn refusal_heading(path: &str) -> &'static str {
    match path {
        "/login" => "Could not start the login",
        "/callback" => "Login with the provider failed",
        "/refresh" => "Token refresh failed",
        "/logout" => "Logout failed",
        _ => "Page not available",
    }
}

/// Where a page must be opened for the login to work, if not where it was. The provider sends
/// the browser back to the redirect URI's host, and a session cookie set for `localhost` is
/// not sent to `127.0.0.1` (or the other way round), so a login started on the other name
/// would end with "no login in progress". When the request names another loopback name for
/// the redirect URI's loopback host and port, the answer is the same path on the redirect
/// URI's origin (taken from the settings, never from the request). Anything else is left
/// alone: a public redirect URI behind a proxy that rewrites `Host` must not loop.
fn on_the_callback_host(redirect_uri: &str, parts: &http::request::Parts) -> Option<String> {
    fn loopback(host: &str) -> bool {
        host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "[::1]"
    }
    let callback: http::Uri = redirect_uri.parse().ok()?;
    let expected = callback.authority()?;
    let scheme = callback.scheme_str()?;
    let asked: http::uri::Authority = parts.headers.get(HOST)?.to_str().ok()?.parse().ok()?;
    let same_port = asked.port_u16() == expected.port_u16();
    let other_name = !asked.host().eq_ignore_ascii_case(expected.host());
    if !(same_port && other_name && loopback(asked.host()) && loopback(expected.host())) {
        return None;
    }
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    Some(format!("{scheme}://{expected}{target}"))
}

/// The pages: the session from its cookie, then the route; on the way out the session is
/// saved and its cookie set.
async fn pages(
    app: &App,
    parts: &http::request::Parts,
    body: serve::Body,
    path: &str,
) -> Result<Response<Body>, Response<Body>> {
    let now = SystemTime::now();
    let base = app.settings.base_path.as_str();
    let mut session = (app.cookie)
        .load(&app.sessions, &parts.headers, now)
        .await
        .map_err(|error| error.to_response())?;
    let mut response = match (&parts.method, path) {
        (&Method::GET, "/") => home(base, &app.settings.provider, &mut session),
        (&Method::GET, "/login") => start_login(app, &mut session).await,
        (&Method::GET, "/callback") => {
            callback(app, &mut session, parts.uri.query().unwrap_or("")).await
        }
        (&Method::POST, "/refresh" | "/logout") => {
            // Every form is a logged-in user's: the session holds the token.
            let form = serve::read_form(body, MAX_FORM_BYTES).await?;
            let presented = form.get("csrf").map(String::as_str);
            if let Err(error) = verify_session_csrf(&session, presented) {
                return Err(text(
                    error.status(),
                    "Nothing was done: the form's security token was missing or out of date, or another site sent the form (CSRF protection). Open the page again and send the form from there.",
                ));
            }
            match path {
                "/refresh" => refresh(app, &mut session).await,
                _ => logout(app, &mut session).await,
            }
        }
        (_, "/" | "/login" | "/callback" | "/refresh" | "/logout") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    (app.cookie)
        .finish(&app.sessions, &mut session, response.headers_mut(), now)
        .await
        .map_err(|error| error.to_response())?;
    Ok(response)
}

fn home(base: &str, provider: &str, session: &mut Session) -> Response<Body> {
    let Some(user) = session.user().map(str::to_owned) else {
        return html(
            StatusCode::OK,
            &format!(
                r#"<p>This application has no passwords of its own: it sends you to the OAuth 2.0 provider at <code>{provider}</code>, which asks you to log in and to allow access, and sends you back with a code. The code is exchanged for tokens with PKCE (S256); <code>state</code> and the issuer are checked.</p>
<p><a class=button id=start href="{base}/login">Log in with backend-kit provider</a></p>
<p class=muted>The demo provider's user is <code>alice</code> with the password <code>wonderland-rabbit</code>.</p>"#,
                provider = escape(provider),
            ),
        );
    };
    let csrf = match session_csrf_token(session) {
        Ok(csrf) => csrf,
        Err(error) => return text(error.status(), "could not make a form token"),
    };
    let tokens = session.get::<StoredTokens>(TOKENS_KEY);
    let scope = tokens
        .as_ref()
        .and_then(|tokens| tokens.scope.as_ref())
        .map(|scope| scope.join(" "))
        .unwrap_or_default();
    let refreshes = session.get::<u32>(REFRESHES_KEY).unwrap_or(0);
    let identity = session
        .get::<openid::Identity>(IDENTITY_KEY)
        .map(|identity| {
            let mut who = identity.name.as_deref().map(escape).unwrap_or_default();
            if let Some(email) = &identity.email {
                who.push_str(&format!(" &lt;{}&gt;", escape(email)));
            }
            format!(
                r#"<p id=identity>OpenID Connect: you are <b>{who}</b> (subject <code>{sub}</code> at <code>{iss}</code>). The ID token's signature, issuer, audience, expiry, nonce and access-token hash were checked, and UserInfo named the same subject.</p>"#,
                sub = escape(&identity.id_token.sub),
                iss = escape(&identity.id_token.iss),
            )
        })
        .unwrap_or_default();
    html(
        StatusCode::OK,
        &format!(
            r#"<p class=ok>Logged in as <b>{user}</b> via backend-kit provider (scope: <code>{scope}</code>, refreshed {refreshes} times).</p>
{identity}
<form method="post" action="{base}/refresh"><input type="hidden" name="csrf" value="{csrf}"><button>Refresh the token</button></form>
<form method="post" action="{base}/logout"><input type="hidden" name="csrf" value="{csrf}"><button class=secondary>Log out</button></form>"#,
            user = escape(&user),
            scope = escape(&scope),
        ),
    )
}

/// The client, built from the provider's metadata on first use.
async fn client(app: &App) -> Result<Arc<OAuthClient>, String> {
    if let Some(client) = app.client.read().await.as_ref() {
        return Ok(client.clone());
    }
    let settings = &app.settings;
    let metadata = match openid::discover(&settings.provider).await {
        Some(metadata) => metadata,
        None => {
            let request = ServerMetadata::request(&settings.provider).map_err(|e| e.to_string())?;
            let (status, body) = send(request).await?;
            if status != StatusCode::OK {
                return Err(format!("the provider's metadata answered {status}"));
            }
            ServerMetadata::parse(&body, &settings.provider).map_err(|e| e.to_string())?
        }
    };
    let mut client = OAuthClient::new(metadata, &settings.client_id, &settings.redirect_uri);
    if let Some(secret) = &settings.client_secret {
        client = client.with_auth(ClientAuth::Basic(secret.clone()));
    }
    let client = Arc::new(client);
    *app.client.write().await = Some(client.clone());
    Ok(client)
}

async fn start_login(app: &App, session: &mut Session) -> Response<Body> {
    let client = match client(app).await {
        Ok(client) => client,
        Err(error) => return text(StatusCode::BAD_GATEWAY, &error),
    };
    let scope = if client.metadata().is_openid_provider() {
        openid::scopes(client.metadata())
    } else {
        vec!["profile"]
    };
    let (url, pending) = match client.authorization_url(&scope) {
        Ok(started) => started,
        Err(error) => return text(error.status(), &error.to_string()),
    };
    if session.insert(PENDING_KEY, &pending).is_err() {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot keep the login state",
        );
    }
    see_other(&url)
}

async fn callback(app: &App, session: &mut Session, query: &str) -> Response<Body> {
    // One use per login: a replayed callback finds nothing.
    let Some(pending) = session.get::<PendingAuthorization>(PENDING_KEY) else {
        return text(
            StatusCode::BAD_REQUEST,
            "no login in progress (or this callback was already used): start again at /",
        );
    };
    session.remove(PENDING_KEY);
    let client = match client(app).await {
        Ok(client) => client,
        Err(error) => return text(StatusCode::BAD_GATEWAY, &error),
    };
    let code = match client.callback(&pending, query) {
        Ok(code) => code,
        Err(auth_core::Error::OAuthServer { error, .. }) if error == "access_denied" => {
            return text(
                StatusCode::FORBIDDEN,
                "You did not allow this application to use your account at the provider, so \
                 you are not logged in (the provider answered access_denied). Start again to \
                 choose differently.",
            );
        }
        Err(error) => return text(error.status(), &format!("login failed: {error}")),
    };
    let tokens = match exchange(client.token_request(&code, &pending)).await {
        Ok(tokens) => tokens,
        Err(response) => return response,
    };
    let identity = if pending.nonce().is_some() {
        match openid::identify(&client, &tokens, &pending).await {
            Ok(identity) => Some(identity),
            Err((status, error)) => return text(status, &format!("login failed: {error}")),
        }
    } else {
        None
    };
    let user = match &identity {
        Some(identity) => identity.id_token.sub.clone(),
        None => match whoami(app, &tokens.access_token).await {
            Ok(user) => user,
            Err(error) => return text(StatusCode::BAD_GATEWAY, &error),
        },
    };
    if let Err(error) = session.login(&user) {
        return text(error.status(), &error.to_string());
    }
    if let Some(identity) = &identity {
        let _ = session.insert(IDENTITY_KEY, identity);
    }
    let _ = session.insert(TOKENS_KEY, &StoredTokens::from(tokens));
    see_other(&format!("{}/", app.settings.base_path))
}

async fn refresh(app: &App, session: &mut Session) -> Response<Body> {
    let Some(mut stored) = session.get::<StoredTokens>(TOKENS_KEY) else {
        return text(StatusCode::UNAUTHORIZED, "log in first");
    };
    let Some(refresh_token) = stored.refresh_token.clone() else {
        return text(StatusCode::CONFLICT, "the provider gave no refresh token");
    };
    let client = match client(app).await {
        Ok(client) => client,
        Err(error) => return text(StatusCode::BAD_GATEWAY, &error),
    };
    let tokens = match exchange(client.refresh_request(&refresh_token, None)).await {
        Ok(tokens) => tokens,
        Err(response) => return response,
    };
    if let Some(mut identity) = session.get::<openid::Identity>(IDENTITY_KEY) {
        if let Err((status, error)) = openid::refreshed(&client, &tokens, &mut identity).await {
            return text(status, &error);
        }
        let _ = session.insert(IDENTITY_KEY, &identity);
    }
    let scope = stored.scope.take();
    let mut renewed = StoredTokens::from(tokens);
    // RFC 6749 section 6: the refresh token may stay the same, and an omitted scope is
    // unchanged.
    renewed.refresh_token = renewed.refresh_token.or(Some(refresh_token));
    renewed.scope = renewed.scope.or(scope);
    let _ = session.insert(TOKENS_KEY, &renewed);
    let refreshes = session.get::<u32>(REFRESHES_KEY).unwrap_or(0);
    let _ = session.insert(REFRESHES_KEY, &refreshes.saturating_add(1));
    see_other(&format!("{}/", app.settings.base_path))
}

async fn logout(app: &App, session: &mut Session) -> Response<Body> {
    if let Some(stored) = session.get::<StoredTokens>(TOKENS_KEY)
        && let Ok(client) = client(app).await
    {
        // Revoke the grant at the provider; the local logout happens either way.
        let token = stored
            .refresh_token
            .as_deref()
            .unwrap_or(&stored.access_token);
        let hint = if stored.refresh_token.is_some() {
            "refresh_token"
        } else {
            "access_token"
        };
        if let Ok(request) = client.revocation_request(token, Some(hint))
            && let Err(error) = send(request).await
        {
            tracing::warn!("revocation failed: {error}");
        }
    }
    session.logout();
    see_other(&format!("{}/", app.settings.base_path))
}

/// Sends a token request and reads the response; errors become a page.
async fn exchange(
    request: auth_core::Result<Request<Vec<u8>>>,
) -> Result<TokenResponse, Response<Body>> {
    let request = request.map_err(|error| text(error.status(), &error.to_string()))?;
    let (status, body) = send(request)
        .await
        .map_err(|error| text(StatusCode::BAD_GATEWAY, &error))?;
    parse_token_response(status, &body)
        .map_err(|error| text(error.status(), &format!("login failed: {error}")))
}

async fn whoami(app: &App, access_token: &str) -> Result<String, String> {
    let request = Request::get(&app.settings.userinfo)
        .header(AUTHORIZATION, format!("Bearer {access_token}"))
        .body(Vec::new())
        .map_err(|error| error.to_string())?;
    let (status, body) = send(request).await?;
    if status != StatusCode::OK {
        return Err(format!("the user info endpoint answered {status}"));
    }
    let info: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| "the user info is not JSON".to_owned())?;
    info.get("sub")
        .and_then(serde_json::Value::as_str)
        .filter(|sub| !sub.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "the user info has no sub".to_owned())
}

/// Sends one request over a fresh HTTP/1.1 connection (plain http only, see the top).
async fn send(request: Request<Vec<u8>>) -> Result<(StatusCode, Bytes), String> {
    send_with_headers(request)
        .await
        .map(|(status, _, body)| (status, body))
}

/// [`send`], keeping the response headers.
async fn send_with_headers(
    request: Request<Vec<u8>>,
) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
    let uri = request.uri().clone();
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{uri}: this example's client speaks plain http only"
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{uri} has no host"))?
        .clone();
    let address = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&address))
        .await
        .map_err(|_| format!("{address}: connect timed out"))?
        .map_err(|error| format!("{address}: {error}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| error.to_string())?;
    tokio::spawn(connection);
    let (mut parts, body) = request.into_parts();
    parts.uri = uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .parse()
        .map_err(|_| "bad request target".to_owned())?;
    parts.headers.insert(
        HOST,
        HeaderValue::from_str(authority.as_str()).map_err(|error| error.to_string())?,
    );
    let request = Request::from_parts(parts, Full::new(Bytes::from(body)));
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .map_err(|_| format!("{uri}: timed out"))?
        .map_err(|error| format!("{uri}: {error}"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = Limited::new(response.into_body(), MAX_PROVIDER_BYTES)
        .collect()
        .await
        .map_err(|_| format!("{uri}: response too large or cut"))?
        .to_bytes();
    Ok((status, headers, body))
}

fn html(status: StatusCode, body: &str) -> Response<Body> {
    // The feature, not the crate.
    page::html(
        status,
        page::document("Log in with an OAuth 2.0 provider", body),
    )
}

fn see_other(location: &str) -> Response<Body> {
    page::redirect(StatusCode::SEE_OTHER, location)
}
