//! auth-login as a library: sign-up, login and logout with server-side sessions, a
//! CSRF-protected form, and a JSON API protected by JWTs, all from auth-core.
//!
//! [`App`] holds the state and answers requests (it implements [`serve::App`]); it opens no
//! socket and spawns no task. `src/main.rs` serves it (`cargo run -p auth-login`), and
//! `examples/showcase` mounts the same [`App`] under `/auth` by setting
//! [`Settings::base_path`].
//!
//! ```no_run
//! # async fn demo(request: http::Request<serve::Body>) -> Result<(), String> {
//! use auth_login::{App, Settings};
//! use serve::App as _;
//! let app = App::new(auth_core::MemoryStore::new(), Settings::new("http://127.0.0.1:8080"))?;
//! let response = std::sync::Arc::new(app).handle("127.0.0.1:50000".parse().unwrap(), request).await;
//! # Ok(()) }
//! ```

mod users;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use auth_core::{
    Algorithm, BearerChallenge, BearerError, Claims, Either, Error as AuthError, JwtIssuer,
    JwtVerifier, Key, KeySet, LoginCsrf, LoginThrottle, MemoryAttemptStore, MemoryStore,
    PasswordPolicy, Passwords, RedisAttemptStore, RedisStore, Session, SessionConfig,
    SessionCookie, SessionStore, Sessions, ThrottlePolicy, Verification, bearer_token,
    normalize_password,
};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use proxy_core::{TrustedProxies, client_address};
use serve::ResponseFuture;
use serve::page::{self, escape, text};
pub use users::RedisUsers;
use users::Users;

/// The body the pages are built with; [`serve::App::handle`] boxes it.
type Body = Full<Bytes>;

/// Forms are small; anything larger is refused with 413.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// API tokens live this long.
const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// What the application needs to know about where it is served.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server's origin, `http://HOST:PORT`: with [`Settings::base_path`] it is the `iss`
    /// of the API tokens.
    pub origin: String,
    /// The path prefix the application is mounted under: empty at the root, or `/auth`
    /// (no trailing slash). Every path it serves and every link it writes starts with it.
    pub base_path: String,
    /// The session cookie's name. Applications sharing one origin need different names.
    pub cookie_name: String,
    /// The reverse proxies whose forwarded client address login throttling counts instead
    /// of theirs ([`client_address`]; nobody by default), and the secret of the login
    /// form's CSRF tokens (random per process by default). The binary reads them from the
    /// environment ([`serve::Deployment::from_env`]).
    pub deployment: serve::Deployment,
    /// Limits of login throttling: failures per account from one client address, and per
    /// client address across accounts, in a window (auth-core's defaults: 5 and 20 in 15
    /// minutes). The refusal says how long to wait.
    pub throttle: ThrottlePolicy,
    /// Which passwords sign-up accepts: auth-core's default, NIST SP 800-63B for a password
    /// that is the only factor (15 characters or more, not a common password).
    pub password_policy: PasswordPolicy,
    /// Where login throttling counts failures: `None` in this process; a Redis store
    /// shared by every instance, so that a guesser spreading attempts over instances meets
    /// one limit.
    pub attempt_store: Option<RedisAttemptStore>,
    /// The keys API tokens are signed with, the same on every instance (from
    /// configuration, or from Redis: `KeySet::from_config`); `None`: an EdDSA key made at
    /// start, so tokens end with the process and another instance refuses them.
    pub signing_keys: Option<KeySet>,
    /// Where the accounts are: `None` in this process; a Redis hash shared by every
    /// instance, so that an account made on one logs in on all.
    pub user_store: Option<RedisUsers>,
}

impl Settings {
    /// At the root of `origin`, with the `__Host-session` cookie, trusting no proxy.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            base_path: String::new(),
            cookie_name: "__Host-session".to_owned(),
            deployment: serve::Deployment::default(),
            throttle: ThrottlePolicy::default(),
            password_policy: PasswordPolicy::default(),
            attempt_store: None,
            signing_keys: None,
            user_store: None,
        }
    }
}

/// Where login throttling counts: in this process or in Redis ([`Settings::attempt_store`]).
pub type AttemptBackend = Either<MemoryAttemptStore, RedisAttemptStore>;

/// Sessions in this process or in Redis, chosen at start (the showcase's choice).
pub type SessionBackend = Either<MemoryStore, RedisStore>;

/// Everything the handlers share: sessions in `S`, the users, the signing keys.
pub struct App<S> {
    base: String,
    /// `http://HOST:PORT`: the address in the token page's curl command when the request
    /// names no usable `Host`.
    origin: String,
    sessions: Sessions<S>,
    cookie: SessionCookie,
    passwords: Passwords,
    password_policy: PasswordPolicy,
    /// The user table: name to PHC hash, in memory or Redis. A real application keeps it
    /// in its database.
    users: Users,
    throttle: LoginThrottle<AttemptBackend>,
    /// Whose forwarded client address the throttle counts.
    trusted_proxies: TrustedProxies,
    /// CSRF tokens for visitors without a session: in a signed cookie, so showing the login
    /// form stores nothing.
    login_csrf: LoginCsrf,
    issuer: JwtIssuer,
    verifier: JwtVerifier,
    /// Login attempts by outcome, for [`App::login_counts`].
    logins: LoginCounts,
}

/// Login attempts since the app started, by outcome ([`App::login_counts`]).
#[derive(Debug, Default)]
pub struct LoginCounts {
    /// Right user name and password: a session was logged in.
    pub succeeded: AtomicU64,
    /// Wrong user name or password (or a session that could not be logged in).
    pub failed: AtomicU64,
    /// Refused by login throttling before the password was checked.
    pub throttled: AtomicU64,
}

impl<S> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore> App<S> {
    /// An application keeping sessions in `store`, signing API tokens with
    /// [`Settings::signing_keys`] or, when there are none, with an EdDSA key made now (API
    /// tokens then end with the process).
    pub fn new(store: S, settings: Settings) -> Result<Self, String> {
        let keys = match settings.signing_keys {
            Some(keys) => keys,
            None => {
                let mut keys = KeySet::new();
                let kid = format!(
                    "auth-login-{}",
                    SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |since| since.as_secs())
                );
                keys.rotate(Key::generate(kid, Algorithm::EdDSA).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
                keys
            }
        };
        let attempts = match settings.attempt_store {
            Some(redis) => Either::Right(redis),
            None => Either::Left(MemoryAttemptStore::new()),
        };
        let issuer_url = format!("{}{}", settings.origin, settings.base_path);
        let login_csrf = LoginCsrf::configured(settings.deployment.login_csrf_secret.as_deref())
            .map_err(|e| e.to_string())?
            .cookie_name(format!("{}-csrf", settings.cookie_name));
        Ok(Self {
            base: settings.base_path,
            origin: settings.origin,
            sessions: Sessions::new(store, SessionConfig::default()),
            cookie: SessionCookie::new().name(settings.cookie_name),
            passwords: Passwords::default(),
            password_policy: settings.password_policy,
            users: match settings.user_store {
                Some(redis) => Users::Redis(redis),
                None => Users::Memory(RwLock::default()),
            },
            throttle: LoginThrottle::new(attempts, settings.throttle),
            trusted_proxies: settings.deployment.trusted_proxies,
            login_csrf,
            issuer: JwtIssuer::new(keys.clone()).with_issuer(&issuer_url),
            verifier: JwtVerifier::new(keys).with_issuer(&issuer_url),
            logins: LoginCounts::default(),
        })
    }
}

impl<S> App<S> {
    /// Login attempts since the app started, by outcome (relaxed atomic counters).
    pub fn login_counts(&self) -> &LoginCounts {
        &self.logins
    }
}

impl<S: SessionStore> App<S> {
    /// The user logged in by the session cookie in `headers`, for another app on the same
    /// origin (the showcase's WebSocket bridge at `/broker/` authenticates its handshake
    /// with it); `None` without a cookie or with a session that is unknown, expired or not
    /// logged in. Nothing is written.
    ///
    /// # Errors
    /// The session store's, e.g. [`AuthError::StoreUnavailable`] when Redis is down.
    pub async fn session_user(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Option<String>, AuthError> {
        let session = self
            .cookie
            .load(&self.sessions, headers, SystemTime::now())
            .await?;
        Ok(session.user().map(str::to_owned))
    }
}

impl<S: SessionStore + 'static> serve::App for App<S> {
    /// Answers one request from `peer`. Login throttling counts the client's address:
    /// `peer`'s, or the one a trusted proxy forwards ([`Settings::deployment`]).
    fn handle(self: Arc<Self>, peer: SocketAddr, request: Request<serve::Body>) -> ResponseFuture {
        Box::pin(async move {
            let client = client_address(peer.ip(), request.headers(), &self.trusted_proxies);
            handle(&self, client, request).await.map(serve::boxed)
        })
    }
}

impl App<MemoryStore> {
    /// Drops expired sessions; call it now and then (the binary does every minute).
    pub fn sweep(&self, now: SystemTime) {
        self.sessions.store().sweep(now);
    }

    /// Sessions held in the store now.
    pub fn session_count(&self) -> usize {
        self.sessions.store().len()
    }
}

impl App<SessionBackend> {
    /// Drops expired sessions when they are in memory; Redis expires its own.
    pub fn sweep(&self, now: SystemTime) {
        if let Some(memory) = self.sessions.store().left() {
            memory.sweep(now);
        }
    }

    /// Sessions held now when they are in memory; `None` on Redis, where counting them
    /// would scan every instance's keys.
    pub fn memory_session_count(&self) -> Option<usize> {
        self.sessions.store().left().map(MemoryStore::len)
    }
}

/// The response to an auth-core refusal. A shared store that does not answer (Redis down)
/// is a 503 that says to try again, with `Retry-After`; its error is logged, never shown.
fn refusal(error: &AuthError) -> Response<Body> {
    match error {
        AuthError::StoreUnavailable(detail) => {
            tracing::warn!(%detail, "a shared store is unavailable");
            unavailable()
        }
        _ => error.to_response(),
    }
}

/// The user table could not be read or written: 503, the error logged.
fn users_unavailable(error: &users::Unavailable) -> Response<Body> {
    tracing::warn!(detail = %error.0, "the user table is unavailable");
    unavailable()
}

/// 503: a shared store (Redis) is not answering; nothing was done.
fn unavailable() -> Response<Body> {
    let mut response = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "The session store is not answering, so nothing was done. Try again in a few seconds.",
    );
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

async fn handle<S: SessionStore>(
    app: &App<S>,
    client: IpAddr,
    request: Request<serve::Body>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let Some(path) = serve::local_path(&app.base, parts.uri.path()).map(str::to_owned) else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    // Routes that need no session.
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/healthz") => {
            return json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
        }
        (&Method::GET, "/.well-known/jwks.json") => {
            return json(StatusCode::OK, &app.verifier.keys().jwks());
        }
        (&Method::GET, "/api/me") => return api_me(app, &parts.headers),
        _ => {}
    }

    let response = pages(app, client, &parts, body, &path)
        .await
        .unwrap_or_else(|refusal| refusal);
    // Every refusal of a page is read by a person: in the page, with the way back.
    let heading = refusal_heading(&path, response.status());
    page::explain(
        response,
        heading,
        &format!("{}/", app.base),
        "Back to the login page",
    )
    .await
}

/// The heading of a page route's refusal: what did not happen.
fn refusal_heading(path: &str, status: StatusCode) -> &'static str {
    if status == StatusCode::FORBIDDEN {
        // The forms' CSRF check.
        return "Form refused";
    }
    match path {
        "/signup" => "Sign-up failed",
        "/login" => "Login failed",
        "/token" => "No API token issued",
        "/logout" => "Logout failed",
        _ => "Page not available",
    }
}

/// The pages: the session from its cookie and the forms' CSRF token, then the route; on
/// the way out the session is saved and its cookie set.
async fn pages<S: SessionStore>(
    app: &App<S>,
    client: IpAddr,
    parts: &http::request::Parts,
    body: serve::Body,
    path: &str,
) -> Result<Response<Body>, Response<Body>> {
    let now = SystemTime::now();
    let mut session = (app.cookie)
        .load(&app.sessions, &parts.headers, now)
        .await
        .map_err(|error| refusal(&error))?;
    let home_url = format!("{}/", app.base);
    let mut response = match (&parts.method, path) {
        (&Method::GET, "/") => {
            // Before login the token rides in a signed cookie (nothing is stored), after
            // login in the session.
            let (csrf, cookie) = (app.login_csrf)
                .form_token(&mut session, &parts.headers)
                .map_err(|error| refusal(&error))?;
            let mut page = home(&app.base, &session, &csrf, app.password_policy.min());
            if let Some(value) = cookie {
                page.headers_mut().append(SET_COOKIE, value);
            }
            page
        }
        (&Method::POST, "/signup" | "/login" | "/logout" | "/token") => {
            let form = serve::read_form(body, MAX_FORM_BYTES).await?;
            let presented = form.get("csrf").map(String::as_str);
            if let Err(error) = app
                .login_csrf
                .verify_form(&session, &parts.headers, presented)
            {
                return Err(text(
                    error.status(),
                    "Nothing was done: the form's security token was missing or out of date, or another site sent the form (CSRF protection). Open the page again and send the form from there.",
                ));
            }
            match path {
                "/signup" => signup(app, &mut session, &form, &home_url).await,
                "/login" => login(app, &mut session, &form, client, &home_url).await,
                "/logout" => {
                    session.logout();
                    redirect(&home_url)
                }
                _ => token(app, &session, &parts.headers),
            }
        }
        (_, "/" | "/signup" | "/login" | "/logout" | "/token") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    (app.cookie)
        .finish(&app.sessions, &mut session, response.headers_mut(), now)
        .await
        .map_err(|error| refusal(&error))?;
    Ok(response)
}

fn home(base: &str, session: &Session, csrf: &str, min_password: usize) -> Response<Body> {
    let body = match session.user() {
        Some(user) => format!(
            r#"<p class=ok>Logged in as <b>{user}</b>.</p>
<div class=card><h2>API token</h2><p>A short-lived JWT for the JSON API at <code>{base}/api/me</code>.</p>
<form method="post" action="{base}/token"><input type="hidden" name="csrf" value="{csrf}"><button>Get an API token</button></form></div>
<form method="post" action="{base}/logout"><input type="hidden" name="csrf" value="{csrf}"><button class=secondary>Log out</button></form>"#,
            user = escape(user)
        ),
        None => format!(
            r#"<p>Passwords hashed with argon2id, a server-side session in a <code>__Host-</code> cookie, CSRF-protected forms, and login throttling per account and address.</p>
<div class=card><h2>Sign up</h2>
<form method="post" action="{base}/signup"><input type="hidden" name="csrf" value="{csrf}">
<input name="username" placeholder="user name" aria-label="user name" required> <input name="password" type="password" placeholder="password ({min_password}+ characters)" aria-label="password" minlength="{min_password}" required> <button>Sign up</button></form>
<p class=muted>At least {min_password} characters, not a common password and not your user name (NIST SP 800-63B).</p></div>
<div class=card><h2>Log in</h2>
<form method="post" action="{base}/login"><input type="hidden" name="csrf" value="{csrf}">
<input name="username" placeholder="user name" aria-label="user name" required> <input name="password" type="password" placeholder="password" aria-label="password" required> <button>Log in</button></form></div>"#
        ),
    };
    html(StatusCode::OK, TITLE, &body)
}

fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

// argon2 takes tens of milliseconds of CPU: hashing runs off the async workers.
async fn hash_blocking(passwords: &Passwords, password: String) -> Result<String, AuthError> {
    let passwords = passwords.clone();
    serve::blocking(move || passwords.hash(password))
        .await
        .unwrap_or_else(|error| Err(AuthError::Hashing(error)))
}

async fn verify_blocking(
    passwords: &Passwords,
    password: String,
    stored: Option<String>,
) -> Result<Verification, AuthError> {
    let passwords = passwords.clone();
    serve::blocking(move || passwords.verify_user(password, stored.as_deref()))
        .await
        .unwrap_or_else(|error| Err(AuthError::Hashing(error)))
}

async fn signup<S: SessionStore>(
    app: &App<S>,
    session: &mut Session,
    form: &HashMap<String, String>,
    home_url: &str,
) -> Response<Body> {
    let username = form.get("username").map(String::as_str).unwrap_or("");
    // NFKC, as NIST SP 800-63B asks: the same password typed on another keyboard verifies.
    let password = normalize_password(form.get("password").map_or("", String::as_str)).into_owned();
    if !valid_username(username) {
        return text(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user names are 1 to 64 letters, digits, '-', '_' or '.'",
        );
    }
    if let Err(weak) = app.password_policy.check_for_user(&password, username) {
        return text(StatusCode::UNPROCESSABLE_ENTITY, &weak.to_string());
    }
    match app.users.get(username).await {
        Ok(Some(_)) => return text(StatusCode::CONFLICT, "that user name is taken"),
        Ok(None) => {}
        Err(error) => return users_unavailable(&error),
    }
    let hash = match hash_blocking(&app.passwords, password).await {
        Ok(hash) => hash,
        Err(error) => return refusal(&error),
    };
    match app.users.insert_new(username, hash).await {
        Ok(true) => {}
        Ok(false) => return text(StatusCode::CONFLICT, "that user name is taken"),
        Err(error) => return users_unavailable(&error),
    }
    match session.login(username) {
        Ok(()) => redirect(home_url),
        Err(error) => text(error.status(), &error.to_string()),
    }
}

async fn login<S: SessionStore>(
    app: &App<S>,
    session: &mut Session,
    form: &HashMap<String, String>,
    client: IpAddr,
    home_url: &str,
) -> Response<Body> {
    let username = form.get("username").map(String::as_str).unwrap_or("");
    let password = normalize_password(form.get("password").map_or("", String::as_str)).into_owned();
    let stored = match app.users.get(username).await {
        Ok(stored) => stored,
        Err(error) => return users_unavailable(&error),
    };
    // The failure is counted before the password is checked, so concurrent guesses cannot
    // all pass the limit; a right password gives it back.
    let check = || verify_blocking(&app.passwords, password.clone(), stored);
    match app
        .throttle
        .attempt(username, client, SystemTime::now(), check)
        .await
    {
        Ok(Verification::Match { needs_rehash }) => {
            if needs_rehash
                && let Ok(hash) = hash_blocking(&app.passwords, password).await
                && let Err(error) = app.users.replace(username, hash).await
            {
                // The login stands; the old hash still verifies.
                tracing::warn!(detail = %error.0, "password rehash not stored");
            }
            match session.login(username) {
                Ok(()) => {
                    app.logins.succeeded.fetch_add(1, Ordering::Relaxed);
                    redirect(home_url)
                }
                Err(error) => {
                    app.logins.failed.fetch_add(1, Ordering::Relaxed);
                    text(error.status(), &error.to_string())
                }
            }
        }
        // One message for unknown users and wrong passwords: no account enumeration.
        Ok(Verification::Mismatch) => {
            app.logins.failed.fetch_add(1, Ordering::Relaxed);
            text(StatusCode::UNAUTHORIZED, "wrong user name or password")
        }
        Err(error) => {
            let counter = if error.status() == StatusCode::TOO_MANY_REQUESTS {
                &app.logins.throttled
            } else {
                &app.logins.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            refusal(&error)
        }
    }
}

fn token<S: SessionStore>(
    app: &App<S>,
    session: &Session,
    headers: &http::HeaderMap,
) -> Response<Body> {
    let Some(user) = session.user() else {
        return text(StatusCode::UNAUTHORIZED, "log in first");
    };
    let claims = Claims::new(user, SystemTime::now(), TOKEN_TTL);
    match app.issuer.issue(&claims) {
        Ok(token) => {
            let mut response = if wants_html(headers) {
                token_page(app, headers, &token)
            } else {
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "access_token": token,
                        "token_type": "Bearer",
                        "expires_in": TOKEN_TTL.as_secs(),
                    }),
                )
            };
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => text(error.status(), &error.to_string()),
    }
}

/// Whether the client reads HTML (a browser's form post): its `Accept` names `text/html`.
/// Scripts that send no `Accept`, or ask for JSON, get the RFC 6749-style JSON.
fn wants_html(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/html"))
        })
}

/// `http://HOST` for the curl command: the `Host` the browser sent when it is a plain
/// host and port, else the configured origin (never a header's markup: it is escaped too).
fn origin_for<S>(app: &App<S>, headers: &http::HeaderMap) -> String {
    let scheme = app.origin.split("://").next().unwrap_or("http");
    headers
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(|host| host.parse::<http::uri::Authority>().ok())
        .filter(|authority| {
            authority
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map_or_else(
            || app.origin.clone(),
            |authority| format!("{scheme}://{authority}"),
        )
}

/// The API token for a person: the token with a copy button, how long it lives, and the
/// curl command that calls the API with it, at the address the browser used.
fn token_page<S>(app: &App<S>, headers: &http::HeaderMap, token: &str) -> Response<Body> {
    let api = format!("{}{}/api/me", origin_for(app, headers), app.base);
    let curl = format!("curl -s -H 'Authorization: Bearer {token}' {api}");
    let body = format!(
        r#"<p>A JWT signed with this server's EdDSA key, valid for {minutes} minutes. Send it as
<code>Authorization: Bearer &lt;token&gt;</code>; <a href="{base}/.well-known/jwks.json">the public key</a> verifies it.</p>
<h2>Your token</h2>
<pre id=token>{token}</pre>
<p><button type=button class=copy data-copy=token>Copy the token</button> <span class=status aria-live=polite></span></p>
<h2>Call the API with it</h2>
<pre id=curl><code>{curl}</code></pre>
<p><button type=button class=copy data-copy=curl>Copy the command</button> <span class=status aria-live=polite></span></p>
<p><a id=again href="{base}/">Back to the login page</a></p>
<script>
for (const button of document.querySelectorAll("button.copy")) {{
  button.addEventListener("click", async () => {{
    const text = document.getElementById(button.dataset.copy).textContent;
    const status = button.nextElementSibling;
    try {{
      await navigator.clipboard.writeText(text);
      status.textContent = "Copied.";
    }} catch (error) {{
      // No clipboard access (an insecure origin, or refused): select it for Ctrl+C.
      getSelection().selectAllChildren(document.getElementById(button.dataset.copy));
      status.textContent = "Selected: press Ctrl+C to copy.";
    }}
  }});
}}
</script>"#,
        minutes = TOKEN_TTL.as_secs() / 60,
        base = escape(&app.base),
        token = escape(token),
        curl = escape(&curl),
    );
    html(StatusCode::OK, "Your API token", &body)
}

fn api_me<S>(app: &App<S>, headers: &http::HeaderMap) -> Response<Body> {
    let challenge = BearerChallenge::new().realm("auth-login");
    let token = match bearer_token(headers) {
        Ok(Some(token)) => token,
        Ok(None) => {
            let detail = format!(
                "send an API token as `Authorization: Bearer <token>`; log in at {}/ and get one there",
                app.base
            );
            return challenge_response(&challenge, &detail);
        }
        Err(error) => {
            let detail = error.to_string();
            return challenge_response(
                &challenge.error(BearerError::InvalidRequest, detail.clone()),
                &detail,
            );
        }
    };
    match app.verifier.verify::<Claims>(&token, SystemTime::now()) {
        Ok(claims) => json(
            StatusCode::OK,
            &serde_json::json!({ "user": claims.sub, "expires_at": claims.exp }),
        ),
        Err(error) => {
            let code = BearerError::for_error(&error).unwrap_or(BearerError::InvalidToken);
            let detail = error.to_string();
            challenge_response(&challenge.error(code, detail.clone()), &detail)
        }
    }
}

/// The challenge's status and `WWW-Authenticate` header, with an RFC 9457 problem document
/// saying what was wrong, for people and scripts reading the body.
fn challenge_response(challenge: &BearerChallenge, detail: &str) -> Response<Body> {
    let (mut parts, ()) = challenge.response().into_parts();
    let problem = serde_json::json!({
        "type": "about:blank",
        "title": parts.status.canonical_reason().unwrap_or("Unauthorized"),
        "status": parts.status.as_u16(),
        "detail": detail,
    });
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    Response::from_parts(parts, Full::new(Bytes::from(problem.to_string())))
}

/// The title of the home page: the feature, not the crate.
const TITLE: &str = "Password login and API tokens";

fn html(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    page::html(status, page::document(title, body))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    page::json(status, value.to_string())
}

fn redirect(to: &str) -> Response<Body> {
    page::redirect(StatusCode::SEE_OTHER, to)
}
