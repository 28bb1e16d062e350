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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use auth_core::{
    Algorithm, BearerChallenge, BearerError, CSRF_SESSION_KEY, Claims, Error as AuthError,
    JwtIssuer, JwtVerifier, Key, KeySet, LoginCsrf, LoginThrottle, MemoryAttemptStore, MemoryStore,
    Passwords, Session, SessionConfig, SessionCookie, SessionStore, Sessions, ThrottlePolicy,
    Verification, bearer_token, synchronizer_token, verify_synchronizer,
};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use serve::ResponseFuture;
use serve::page::{self, escape, text};

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
}

impl Settings {
    /// At the root of `origin`, with the `__Host-session` cookie.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            base_path: String::new(),
            cookie_name: "__Host-session".to_owned(),
        }
    }
}

/// Everything the handlers share: sessions in `S`, users in memory, a fresh signing key.
pub struct App<S> {
    base: String,
    sessions: Sessions<S>,
    cookie: SessionCookie,
    passwords: Passwords,
    /// The user table: name to PHC hash. A real application keeps it in its database.
    users: RwLock<HashMap<String, String>>,
    throttle: LoginThrottle<MemoryAttemptStore>,
    /// CSRF tokens for visitors without a session: in a signed cookie, so showing the login
    /// form stores nothing.
    login_csrf: LoginCsrf,
    issuer: JwtIssuer,
    verifier: JwtVerifier,
}

impl<S> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore> App<S> {
    /// An application keeping sessions in `store`, with an EdDSA signing key made now (API
    /// tokens end with the process).
    pub fn new(store: S, settings: Settings) -> Result<Self, String> {
        let mut keys = KeySet::new();
        let kid = format!(
            "auth-login-{}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs())
        );
        keys.rotate(Key::generate(kid, Algorithm::EdDSA).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let issuer_url = format!("{}{}", settings.origin, settings.base_path);
        // 256 random bits, made now: like the signing key, form tokens end with the process.
        let csrf_secret = synchronizer_token().map_err(|e| e.to_string())?;
        let login_csrf =
            LoginCsrf::new(csrf_secret).cookie_name(format!("{}-csrf", settings.cookie_name));
        Ok(Self {
            base: settings.base_path,
            sessions: Sessions::new(store, SessionConfig::default()),
            cookie: SessionCookie::new().name(settings.cookie_name),
            passwords: Passwords::default(),
            users: RwLock::default(),
            throttle: LoginThrottle::new(MemoryAttemptStore::new(), ThrottlePolicy::default()),
            login_csrf,
            issuer: JwtIssuer::new(keys.clone()).with_issuer(&issuer_url),
            verifier: JwtVerifier::new(keys).with_issuer(&issuer_url),
        })
    }
}

impl<S: SessionStore + 'static> serve::App for App<S> {
    /// Answers one request from `peer` (its IP is what login throttling counts).
    fn handle(self: Arc<Self>, peer: SocketAddr, request: Request<serve::Body>) -> ResponseFuture {
        Box::pin(async move { handle(&self, peer.ip(), request).await.map(serve::boxed) })
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

async fn handle<S: SessionStore>(
    app: &App<S>,
    peer: IpAddr,
    request: Request<serve::Body>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let Some(path) = serve::local_path(&app.base, parts.uri.path()).map(str::to_owned) else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    let home_url = format!("{}/", app.base);
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

    let now = SystemTime::now();
    let presented = app.cookie.read(&parts.headers);
    let mut session = match app.sessions.load(presented.as_deref(), now).await {
        Ok(session) => session,
        Err(error) => return text(error.status(), "the session store is unavailable"),
    };
    let form = if parts.method == Method::POST {
        match read_form(body).await {
            Ok(form) => Some(form),
            Err(response) => return response,
        }
    } else {
        None
    };
    // Anonymous visitors get a login CSRF token in a signed cookie (nothing stored); once
    // logged in, the session's synchronizer token takes over.
    let (login_token, login_cookie) = if session.user().is_none() && parts.method == Method::GET {
        match app.login_csrf.token(&parts.headers) {
            Ok(pair) => pair,
            Err(error) => return text(error.status(), "could not make a form token"),
        }
    } else {
        (String::new(), None)
    };
    let mut response = match (&parts.method, path.as_str(), form) {
        (&Method::GET, "/", _) => home(&app.base, &mut session, &login_token),
        (&Method::POST, route, Some(form)) => {
            let presented = form.get("csrf").map(String::as_str);
            let checked = if session.user().is_some() {
                let stored = session.get::<String>(CSRF_SESSION_KEY);
                verify_synchronizer(stored.as_deref(), presented)
            } else {
                app.login_csrf.verify(&parts.headers, presented)
            };
            if checked.is_err() {
                text(
                    StatusCode::FORBIDDEN,
                    "missing or stale form token: reload the page",
                )
            } else {
                match route {
                    "/signup" => signup(app, &mut session, &form, &home_url).await,
                    "/login" => login(app, &mut session, &form, peer, &home_url).await,
                    "/logout" => {
                        session.logout();
                        redirect(&home_url)
                    }
                    "/token" => token(app, &session),
                    _ => text(StatusCode::NOT_FOUND, "not found"),
                }
            }
        }
        (_, "/" | "/signup" | "/login" | "/logout" | "/token", _) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    if let Err(error) = app.sessions.save(&mut session, now).await {
        return text(error.status(), "the session store is unavailable");
    }
    if let Some(value) = login_cookie {
        response.headers_mut().append(SET_COOKIE, value);
    }
    match app.cookie.set_cookie(&session) {
        Ok(Some(value)) => {
            response.headers_mut().append(SET_COOKIE, value);
        }
        Ok(None) => {}
        Err(error) => return text(error.status(), "could not set the session cookie"),
    }
    response
}

async fn read_form(body: serve::Body) -> Result<HashMap<String, String>, Response<Body>> {
    let bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, "form too large"))?
        .to_bytes();
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// The CSRF token for the page's forms: the session's synchronizer token once logged in
/// (made on first use), the stateless `login` token before.
fn csrf_token(session: &mut Session, login: &str) -> String {
    if session.user().is_none() {
        return login.to_owned();
    }
    if let Some(token) = session.get::<String>(CSRF_SESSION_KEY) {
        return token;
    }
    let token = synchronizer_token().unwrap_or_default();
    let _ = session.insert(CSRF_SESSION_KEY, &token);
    token
}

fn home(base: &str, session: &mut Session, login_token: &str) -> Response<Body> {
    let csrf = csrf_token(session, login_token);
    let body = match session.user() {
        Some(user) => format!(
            r#"<p>Logged in as <b>{user}</b>.</p>
<form method="post" action="{base}/token"><input type="hidden" name="csrf" value="{csrf}"><button>Get an API token</button></form>
<form method="post" action="{base}/logout"><input type="hidden" name="csrf" value="{csrf}"><button>Log out</button></form>"#,
            user = escape(user)
        ),
        None => format!(
            r#"<h2>Sign up</h2>
<form method="post" action="{base}/signup"><input type="hidden" name="csrf" value="{csrf}">
<input name="username" placeholder="user name" required> <input name="password" type="password" placeholder="password (8+ characters)" required> <button>Sign up</button></form>
<h2>Log in</h2>
<form method="post" action="{base}/login"><input type="hidden" name="csrf" value="{csrf}">
<input name="username" placeholder="user name" required> <input name="password" type="password" placeholder="password" required> <button>Log in</button></form>"#
        ),
    };
    html(StatusCode::OK, &body)
}

fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

async fn hash_blocking(passwords: &Passwords, password: String) -> Result<String, AuthError> {
    let passwords = passwords.clone();
    // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
    tokio::task::spawn_blocking(move || passwords.hash(password))
        .await
        .unwrap_or_else(|error| Err(AuthError::Hashing(error.to_string())))
}

async fn verify_blocking(
    passwords: &Passwords,
    password: String,
    stored: Option<String>,
) -> Result<Verification, AuthError> {
    let passwords = passwords.clone();
    tokio::task::spawn_blocking(move || match stored {
        Some(stored) => passwords.verify(password, &stored),
        None => passwords.verify_unknown_user(password),
    })
    .await
    .unwrap_or_else(|error| Err(AuthError::Hashing(error.to_string())))
}

async fn signup<S: SessionStore>(
    app: &App<S>,
    session: &mut Session,
    form: &HashMap<String, String>,
    home_url: &str,
) -> Response<Body> {
    let username = form.get("username").map(String::as_str).unwrap_or("");
    let password = form.get("password").cloned().unwrap_or_default();
    if !valid_username(username) {
        return text(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user names are 1 to 64 letters, digits, '-', '_' or '.'",
        );
    }
    if password.chars().count() < 8 {
        return text(
            StatusCode::UNPROCESSABLE_ENTITY,
            "passwords have at least 8 characters",
        );
    }
    if app
        .users
        .read()
        .is_ok_and(|users| users.contains_key(username))
    {
        return text(StatusCode::CONFLICT, "that user name is taken");
    }
    let hash = match hash_blocking(&app.passwords, password).await {
        Ok(hash) => hash,
        Err(error) => return auth_error(&error),
    };
    match app.users.write() {
        Ok(mut users) => {
            if users.contains_key(username) {
                return text(StatusCode::CONFLICT, "that user name is taken");
            }
            users.insert(username.to_owned(), hash);
        }
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "user table unavailable"),
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
    peer: IpAddr,
    home_url: &str,
) -> Response<Body> {
    let username = form.get("username").map(String::as_str).unwrap_or("");
    let password = form.get("password").cloned().unwrap_or_default();
    let now = SystemTime::now();
    // The failure is reserved before the password is checked, so concurrent guesses cannot
    // all pass the limit; a right password gives it back.
    let attempt = match app.throttle.reserve(username, peer, now).await {
        Ok(attempt) => attempt,
        Err(error) => return auth_error(&error),
    };
    let stored = app
        .users
        .read()
        .ok()
        .and_then(|users| users.get(username).cloned());
    let verification = match verify_blocking(&app.passwords, password.clone(), stored).await {
        Ok(verification) => verification,
        Err(error) => {
            // Not checked (hashing busy): not a failure.
            let _ = app.throttle.release(attempt, now).await;
            return auth_error(&error);
        }
    };
    match verification {
        Verification::Match { needs_rehash } => {
            let _ = app.throttle.succeeded(attempt, now).await;
            if needs_rehash
                && let Ok(hash) = hash_blocking(&app.passwords, password).await
                && let Ok(mut users) = app.users.write()
            {
                users.insert(username.to_owned(), hash);
            }
            match session.login(username) {
                Ok(()) => redirect(home_url),
                Err(error) => text(error.status(), &error.to_string()),
            }
        }
        Verification::Mismatch => {
            attempt.failed();
            // One message for unknown users and wrong passwords: no account enumeration.
            text(StatusCode::UNAUTHORIZED, "wrong user name or password")
        }
    }
}

/// An auth-core error as a response: 429 (throttled) and 503 (hashing busy) with
/// `Retry-After`.
fn auth_error(error: &AuthError) -> Response<Body> {
    let (message, retry_after) = match error {
        AuthError::Throttled { retry_after } => {
            ("too many failed attempts: try again later", retry_after)
        }
        AuthError::HashingBusy { retry_after } => {
            ("too many logins at once: try again shortly", retry_after)
        }
        other => return text(other.status(), &other.to_string()),
    };
    let mut response = text(error.status(), message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
    response
}

fn token<S: SessionStore>(app: &App<S>, session: &Session) -> Response<Body> {
    let Some(user) = session.user() else {
        return text(StatusCode::UNAUTHORIZED, "log in first");
    };
    let claims = Claims::new(user, SystemTime::now(), TOKEN_TTL);
    match app.issuer.issue(&claims) {
        Ok(token) => {
            let mut response = json(
                StatusCode::OK,
                &serde_json::json!({
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": TOKEN_TTL.as_secs(),
                }),
            );
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => text(error.status(), &error.to_string()),
    }
}

fn api_me<S>(app: &App<S>, headers: &http::HeaderMap) -> Response<Body> {
    let challenge = BearerChallenge::new().realm("auth-login");
    let token = match bearer_token(headers) {
        Ok(Some(token)) => token,
        Ok(None) => return challenge_response(&challenge),
        Err(error) => {
            return challenge_response(
                &challenge.error(BearerError::InvalidRequest, error.to_string()),
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
            challenge_response(&challenge.error(code, error.to_string()))
        }
    }
}

fn challenge_response(challenge: &BearerChallenge) -> Response<Body> {
    let (parts, ()) = challenge.response().into_parts();
    Response::from_parts(parts, Full::new(Bytes::new()))
}

fn html(status: StatusCode, body: &str) -> Response<Body> {
    page::html(status, page::document("auth-login", body))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    page::json(status, value.to_string())
}

fn redirect(to: &str) -> Response<Body> {
    page::redirect(StatusCode::SEE_OTHER, to)
}
