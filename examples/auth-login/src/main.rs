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
//! `PORT` (default 8080) and `BIND` (default 127.0.0.1) choose the address; the first line on
//! stdout is `listening on http://ADDR`. The signing key is made at start, so API tokens end
//! with the process.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use auth_core::{
    Algorithm, BearerChallenge, BearerError, CSRF_SESSION_KEY, Claims, Error as AuthError,
    JwtIssuer, JwtVerifier, Key, KeySet, LoginThrottle, MemoryAttemptStore, MemoryStore, Passwords,
    RedisStore, Session, SessionConfig, SessionCookie, SessionStore, Sessions, ThrottlePolicy,
    Verification, bearer_token, synchronizer_token, verify_synchronizer,
};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type Body = Full<Bytes>;

/// Forms are small; anything larger is refused with 413.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// API tokens live this long.
const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// Everything the handlers share.
struct App<S> {
    sessions: Sessions<S>,
    cookie: SessionCookie,
    passwords: Passwords,
    /// The user table: name to PHC hash. A real application keeps it in its database.
    users: RwLock<HashMap<String, String>>,
    throttle: LoginThrottle<MemoryAttemptStore>,
    issuer: JwtIssuer,
    verifier: JwtVerifier,
}

impl<S: SessionStore> App<S> {
    fn new(
        store: S,
        passwords: Passwords,
        throttle: LoginThrottle<MemoryAttemptStore>,
        issuer: JwtIssuer,
        verifier: JwtVerifier,
    ) -> Self {
        Self {
            sessions: Sessions::new(store, SessionConfig::default()),
            cookie: SessionCookie::default(),
            passwords,
            users: RwLock::default(),
            throttle,
            issuer,
            verifier,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn address() -> Result<SocketAddr, String> {
    let ip = match std::env::var("BIND") {
        Ok(bind) => bind
            .parse::<IpAddr>()
            .map_err(|_| format!("BIND={bind:?} is not an IP address"))?,
        Err(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 8080,
    };
    Ok(SocketAddr::new(ip, port))
}

async fn run() -> Result<(), String> {
    let addr = address()?;
    let mut keys = KeySet::new();
    let kid = format!(
        "auth-login-{}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    );
    keys.rotate(Key::generate(kid, Algorithm::EdDSA).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let issuer_url = format!("http://{addr}");
    let passwords = Passwords::default();
    let throttle = LoginThrottle::new(MemoryAttemptStore::new(), ThrottlePolicy::default());
    let issuer = JwtIssuer::new(keys.clone()).with_issuer(&issuer_url);
    let verifier = JwtVerifier::new(keys).with_issuer(&issuer_url);
    let listener = bind(addr).await?;

    match std::env::var("REDIS_URL") {
        Ok(url) => {
            let store = RedisStore::connect(&url, "auth-login:")
                .await
                .map_err(|error| format!("REDIS_URL: {error}"))?;
            tracing::info!("sessions in Redis");
            serve(
                listener,
                Arc::new(App::new(store, passwords, throttle, issuer, verifier)),
            )
            .await
        }
        Err(_) => {
            tracing::info!("sessions in memory");
            let app = Arc::new(App::new(
                MemoryStore::new(),
                passwords,
                throttle,
                issuer,
                verifier,
            ));
            let sweeper = app.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    sweeper.sessions.store().sweep(SystemTime::now());
                }
            });
            serve(listener, app).await
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(addr).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::AddrInUse {
            format!("cannot listen on {addr}: address already in use; set PORT to a free port")
        } else {
            format!("cannot listen on {addr}: {error}")
        }
    })?;
    let local = listener.local_addr().map_err(|error| error.to_string())?;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on http://{local}");
    let _ = stdout.flush();
    Ok(listener)
}

async fn serve<S: SessionStore + 'static>(
    listener: TcpListener,
    app: Arc<App<S>>,
) -> Result<(), String> {
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let app = app.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(handle(&app, peer.ip(), request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                return Ok(());
            }
        }
    }
}

/// Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn handle<S: SessionStore>(
    app: &App<S>,
    peer: IpAddr,
    request: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
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
    let mut response = match (&parts.method, path.as_str(), form) {
        (&Method::GET, "/", _) => home(&mut session),
        (&Method::POST, route, Some(form)) => {
            let presented = form.get("csrf").map(String::as_str);
            let stored = session.get::<String>(CSRF_SESSION_KEY);
            if verify_synchronizer(stored.as_deref(), presented).is_err() {
                text(
                    StatusCode::FORBIDDEN,
                    "missing or stale form token: reload the page",
                )
            } else {
                match route {
                    "/signup" => signup(app, &mut session, &form).await,
                    "/login" => login(app, &mut session, &form, peer).await,
                    "/logout" => {
                        session.logout();
                        redirect("/")
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
    match app.cookie.set_cookie(&session) {
        Ok(Some(value)) => {
            response.headers_mut().append(SET_COOKIE, value);
        }
        Ok(None) => {}
        Err(error) => return text(error.status(), "could not set the session cookie"),
    }
    response
}

async fn read_form(body: Incoming) -> Result<HashMap<String, String>, Response<Body>> {
    let bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, "form too large"))?
        .to_bytes();
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// The CSRF token of the session, made on first use.
fn csrf_token(session: &mut Session) -> String {
    if let Some(token) = session.get::<String>(CSRF_SESSION_KEY) {
        return token;
    }
    let token = synchronizer_token().unwrap_or_default();
    // The anonymous session is stored because of this: login forms need CSRF protection
    // too (login CSRF).
    let _ = session.insert(CSRF_SESSION_KEY, &token);
    token
}

fn home(session: &mut Session) -> Response<Body> {
    let csrf = csrf_token(session);
    let body = match session.user() {
        Some(user) => format!(
            r#"<p>Logged in as <b>{user}</b>.</p>
<form method="post" action="/token"><input type="hidden" name="csrf" value="{csrf}"><button>Get an API token</button></form>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{csrf}"><button>Log out</button></form>"#,
            user = escape(user)
        ),
        None => format!(
            r#"<h2>Sign up</h2>
<form method="post" action="/signup"><input type="hidden" name="csrf" value="{csrf}">
<input name="username" placeholder="user name" required> <input name="password" type="password" placeholder="password (8+ characters)" required> <button>Sign up</button></form>
<h2>Log in</h2>
<form method="post" action="/login"><input type="hidden" name="csrf" value="{csrf}">
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
        Err(error) => return text(error.status(), &error.to_string()),
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
        Ok(()) => redirect("/"),
        Err(error) => text(error.status(), &error.to_string()),
    }
}

async fn login<S: SessionStore>(
    app: &App<S>,
    session: &mut Session,
    form: &HashMap<String, String>,
    peer: IpAddr,
) -> Response<Body> {
    let username = form.get("username").map(String::as_str).unwrap_or("");
    let password = form.get("password").cloned().unwrap_or_default();
    let now = SystemTime::now();
    if let Err(error) = app.throttle.check(username, peer, now).await {
        let mut response = text(error.status(), "too many failed attempts: try again later");
        if let AuthError::Throttled { retry_after } = error {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs()));
        }
        return response;
    }
    let stored = app
        .users
        .read()
        .ok()
        .and_then(|users| users.get(username).cloned());
    let verification = match verify_blocking(&app.passwords, password.clone(), stored).await {
        Ok(verification) => verification,
        Err(error) => return text(error.status(), &error.to_string()),
    };
    match verification {
        Verification::Match { needs_rehash } => {
            let _ = app.throttle.record_success(username).await;
            if needs_rehash
                && let Ok(hash) = hash_blocking(&app.passwords, password).await
                && let Ok(mut users) = app.users.write()
            {
                users.insert(username.to_owned(), hash);
            }
            match session.login(username) {
                Ok(()) => redirect("/"),
                Err(error) => text(error.status(), &error.to_string()),
            }
        }
        Verification::Mismatch => {
            let _ = app.throttle.record_failure(username, peer, now).await;
            // One message for unknown users and wrong passwords: no account enumeration.
            text(StatusCode::UNAUTHORIZED, "wrong user name or password")
        }
    }
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(status: StatusCode, body: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>auth-login</title><h1>auth-login</h1>{body}\n"
    );
    respond(status, "text/html; charset=utf-8", page.into_bytes())
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=utf-8",
        format!("{message}\n").into_bytes(),
    )
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    respond(status, "application/json", value.to_string().into_bytes())
}

fn redirect(to: &'static str) -> Response<Body> {
    let mut response = respond(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        Vec::new(),
    );
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    response
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
