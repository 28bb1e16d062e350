//! oauth-provider as a library: an OAuth 2.0 authorization server with login and consent
//! pages, built on auth-core (`oauth` feature, sessions, passwords, CSRF, login throttling).
//!
//! [`App`] holds the state and answers requests (it implements [`serve::App`]); it opens no
//! socket and spawns no task. `src/main.rs` serves it (`cargo run -p oauth-provider`),
//! and `examples/showcase` mounts the same [`App`] under `/oauth` with
//! [`Settings::base_path`]: the issuer is then `http://HOST:PORT/oauth`, its endpoints are
//! below it, and its RFC 8414 metadata is at
//! `/.well-known/oauth-authorization-server/oauth` ([`App::metadata_path`]), which the
//! server must route to this app too.
//!
//! Registered clients: `demo-app` (public, PKCE) and `demo-web` (confidential,
//! `client_secret_basic`), both with [`Settings::redirect_uris`]. One user: `alice` with
//! [`Settings::demo_password`]. Access tokens are RFC 9068 JWTs signed with a key made at
//! start.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::oauth::server::{
    AccessTokenFormat, AuthorizationRejection, AuthorizationRequest, AuthorizationServer, Client,
    ClientAuthMethod, GrantType, MemoryClientRegistry, MemoryGrantStore, ServerConfig,
};
use auth_core::{
    Algorithm, BearerChallenge, BearerError, CSRF_SESSION_KEY, Error as AuthError, JwtIssuer,
    JwtVerifier, Key, KeySet, LoginCsrf, LoginThrottle, MemoryAttemptStore, MemoryRefreshStore,
    MemoryStore, Passwords, RefreshTokens, Session, SessionConfig, SessionCookie, Sessions,
    ThrottlePolicy, Verification, bearer_token, synchronizer_token, verify_synchronizer,
};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use serve::ResponseFuture;

/// The body the pages are built with; [`serve::App::handle`] boxes it.
type Body = Full<Bytes>;
type OAuth = AuthorizationServer<MemoryClientRegistry, MemoryGrantStore, MemoryRefreshStore>;

/// Forms and token requests are small; anything larger is refused with 413.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Where the validated authorization request waits for consent.
const PENDING_KEY: &str = "oauth_request";

/// Where the provider is served and what it starts with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server's origin, `http://HOST:PORT`; with [`Settings::base_path`] it is the
    /// issuer.
    pub origin: String,
    /// The path prefix: empty at the root, or `/oauth` (no trailing slash).
    pub base_path: String,
    /// The redirect URIs both demo clients may use (a loopback `http` URI matches any port,
    /// RFC 8252 section 7.3).
    pub redirect_uris: Vec<String>,
    /// The secret of the confidential client `demo-web`.
    pub client_secret: String,
    /// The password of the one user, `alice`.
    pub demo_password: String,
    /// The session cookie's name. Applications sharing one origin need different names.
    pub cookie_name: String,
}

impl Settings {
    /// At the root of `origin`, with the defaults the binary documents.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            base_path: String::new(),
            redirect_uris: vec!["http://127.0.0.1/callback".to_owned()],
            client_secret: "demo-web-secret-change-me".to_owned(),
            demo_password: "wonderland-rabbit".to_owned(),
            cookie_name: "__Host-session".to_owned(),
        }
    }
}

/// The authorization server, its login and consent pages, and a demo resource `/api/me`.
pub struct App {
    base: String,
    metadata_path: String,
    oauth: OAuth,
    sessions: Sessions<MemoryStore>,
    cookie: SessionCookie,
    passwords: Passwords,
    /// The user table: name to PHC hash. A real provider keeps it in its database.
    users: HashMap<String, String>,
    throttle: LoginThrottle<MemoryAttemptStore>,
    /// CSRF tokens for visitors without a session: in a signed cookie, so showing the login
    /// form stores nothing.
    login_csrf: LoginCsrf,
    /// Verifies access tokens at the demo resource endpoint `/api/me`.
    verifier: JwtVerifier,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Registers the demo clients, makes a signing key and hashes the demo password.
    pub fn new(settings: Settings) -> Result<Self, String> {
        let issuer = format!("{}{}", settings.origin, settings.base_path);
        let clients = MemoryClientRegistry::new();
        let grants = [GrantType::AuthorizationCode, GrantType::RefreshToken];
        clients.register(
            Client::public("demo-app", settings.redirect_uris.clone())
                .map_err(|error| format!("redirect URIs: {error}"))?
                .with_scopes(["profile", "email"])
                .with_grants(grants),
        );
        clients.register(
            Client::confidential(
                "demo-web",
                &settings.client_secret,
                ClientAuthMethod::ClientSecretBasic,
                settings.redirect_uris,
            )
            .map_err(|error| format!("client secret: {error}"))?
            .with_scopes(["profile", "email", "api"])
            .with_grants([
                GrantType::AuthorizationCode,
                GrantType::RefreshToken,
                GrantType::ClientCredentials,
            ]),
        );

        let mut keys = KeySet::new();
        keys.rotate(
            Key::generate("oauth-provider-1", Algorithm::ES256).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let audience = format!("{issuer}/api");
        let config = ServerConfig::new(&issuer)
            .map_err(|error| error.to_string())?
            .with_scopes_supported(["profile", "email", "api"]);
        let oauth = AuthorizationServer::new(
            config,
            clients,
            MemoryGrantStore::new(),
            RefreshTokens::new(MemoryRefreshStore::new(), Duration::from_secs(14 * 86_400)),
            AccessTokenFormat::Jwt {
                issuer: JwtIssuer::new(keys.clone()),
                audience: audience.clone(),
            },
        );
        let verifier = JwtVerifier::new(keys)
            .with_issuer(&issuer)
            .with_audience(&audience)
            .with_type("at+jwt");

        // 256 random bits, made now: form tokens end with the process.
        let csrf_secret = synchronizer_token().map_err(|e| e.to_string())?;
        let login_csrf =
            LoginCsrf::new(csrf_secret).cookie_name(format!("{}-csrf", settings.cookie_name));
        let passwords = Passwords::default();
        let alice = passwords
            .hash(settings.demo_password)
            .map_err(|error| error.to_string())?;
        Ok(Self {
            metadata_path: format!(
                "/.well-known/oauth-authorization-server{}",
                settings.base_path
            ),
            base: settings.base_path,
            oauth,
            sessions: Sessions::new(MemoryStore::new(), SessionConfig::default()),
            cookie: SessionCookie::new().name(settings.cookie_name),
            passwords,
            users: HashMap::from([("alice".to_owned(), alice)]),
            throttle: LoginThrottle::new(MemoryAttemptStore::new(), ThrottlePolicy::default()),
            login_csrf,
            verifier,
        })
    }

    /// Where the RFC 8414 metadata is served: `/.well-known/oauth-authorization-server`
    /// followed by the base path (outside the base path when there is one).
    pub fn metadata_path(&self) -> &str {
        &self.metadata_path
    }

    /// Drops expired sessions and grants; call it now and then (the binary does every
    /// minute).
    pub fn sweep(&self, now: SystemTime) {
        self.sessions.store().sweep(now);
        self.oauth.grants().sweep(now);
    }
}

impl serve::App for App {
    /// Answers one request from `peer` (its IP is what login throttling counts).
    fn handle(self: Arc<Self>, peer: SocketAddr, request: Request<Incoming>) -> ResponseFuture {
        Box::pin(async move { handle(&self, peer.ip(), request).await.map(serve::boxed) })
    }
}

/// The part of `path` below `base`: `/` for `base` itself, `None` outside it.
fn local_path<'a>(base: &str, path: &'a str) -> Option<&'a str> {
    match path.strip_prefix(base)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

async fn handle(app: &App, peer: IpAddr, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let now = SystemTime::now();
    // RFC 8414 section 3.1: an issuer with a path has its metadata at the well-known path
    // with the issuer's path appended, outside the mount.
    if parts.method == Method::GET && parts.uri.path() == app.metadata_path() {
        return convert(app.oauth.metadata_response());
    }
    let Some(path) = local_path(&app.base, parts.uri.path()).map(str::to_owned) else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    let base = app.base.as_str();
    // The protocol endpoints: no session, no cookies.
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/healthz") => {
            return json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
        }
        (&Method::GET, "/.well-known/jwks.json") => {
            return json(StatusCode::OK, &app.oauth.jwks());
        }
        (&Method::GET, "/api/me") => return api_me(app, &parts.headers),
        (_, "/token" | "/revoke" | "/introspect") => {
            let body = match read_body(body).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let response = match path.as_str() {
                "/token" => app.oauth.token(&parts, &body, now).await,
                "/revoke" => app.oauth.revoke(&parts, &body, now).await,
                _ => app.oauth.introspect(&parts, &body, now).await,
            };
            return convert(response);
        }
        _ => {}
    }

    let presented = app.cookie.read(&parts.headers);
    let mut session = match app.sessions.load(presented.as_deref(), now).await {
        Ok(session) => session,
        Err(error) => return text(error.status(), "the session store is unavailable"),
    };
    let form = if parts.method == Method::POST {
        match read_body(body).await {
            Ok(bytes) => Some(
                form_urlencoded::parse(&bytes)
                    .into_owned()
                    .collect::<HashMap<String, String>>(),
            ),
            Err(response) => return response,
        }
    } else {
        None
    };
    // Anonymous visitors get a login CSRF token in a signed cookie (nothing stored for it);
    // once logged in, the session's synchronizer token takes over.
    let (login_token, login_cookie) = if session.user().is_none() && parts.method == Method::GET {
        match app.login_csrf.token(&parts.headers) {
            Ok(pair) => pair,
            Err(error) => return text(error.status(), "could not make a form token"),
        }
    } else {
        (String::new(), None)
    };
    let mut response = match (&parts.method, path.as_str(), form) {
        (&Method::GET, "/", _) => home(base, &mut session, &login_token),
        (&Method::GET, "/authorize", _) => {
            authorize(
                app,
                &mut session,
                parts.uri.query().unwrap_or(""),
                &login_token,
            )
            .await
        }
        (&Method::GET, "/consent", _) => consent_page(base, &mut session, &login_token),
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
                    "/login" => login(app, &mut session, &form, peer).await,
                    "/consent" => consent(app, &mut session, &form, now).await,
                    "/logout" => {
                        session.logout();
                        redirect(&format!("{base}/"))
                    }
                    _ => text(StatusCode::NOT_FOUND, "not found"),
                }
            }
        }
        (_, "/" | "/authorize" | "/consent" | "/login" | "/logout", _) => {
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

async fn read_body(body: Incoming) -> Result<Bytes, Response<Body>> {
    Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))
}

/// `GET /authorize`: validate, then log in and ask for consent.
async fn authorize(app: &App, session: &mut Session, query: &str, login: &str) -> Response<Body> {
    match app.oauth.authorization_request(query).await {
        Ok(request) => {
            if session.user().is_none() {
                // Nothing is stored for an anonymous visitor: the request rides in the login
                // form and is validated again when the login succeeds.
                return login_page(&app.base, session, "Log in to continue", login, Some(query));
            }
            if session.insert(PENDING_KEY, &request).is_err() {
                return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot keep the request");
            }
            consent_page(&app.base, session, login)
        }
        // The client or redirect URI cannot be trusted: tell the user, never redirect.
        Err(AuthorizationRejection::ShowToUser(error)) => html(
            StatusCode::BAD_REQUEST,
            &format!(
                "<p>This sign-in request is invalid: <code>{}</code>: {}</p>",
                error.code,
                escape(&error.description)
            ),
        ),
        Err(AuthorizationRejection::Redirect { response, .. }) => convert_empty(response),
    }
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

/// The login form; `authorize` is the query of a pending `GET /authorize`, carried in the
/// form so that no session is stored before the login.
fn login_page(
    base: &str,
    session: &mut Session,
    heading: &str,
    login: &str,
    authorize: Option<&str>,
) -> Response<Body> {
    let csrf = csrf_token(session, login);
    let pending = authorize
        .map(|query| {
            format!(
                r#"<input type="hidden" name="authorize" value="{}">"#,
                escape(query)
            )
        })
        .unwrap_or_default();
    html(
        StatusCode::OK,
        &format!(
            r#"<h2>{heading}</h2>
<form method="post" action="{base}/login"><input type="hidden" name="csrf" value="{csrf}">{pending}
<input name="username" placeholder="user name" required> <input name="password" type="password" placeholder="password" required> <button>Log in</button></form>"#,
            heading = escape(heading)
        ),
    )
}

fn home(base: &str, session: &mut Session, login: &str) -> Response<Body> {
    match session.user().map(str::to_owned) {
        Some(user) => {
            let csrf = csrf_token(session, login);
            html(
                StatusCode::OK,
                &format!(
                    r#"<p>Logged in as <b>{user}</b>.</p>
<form method="post" action="{base}/logout"><input type="hidden" name="csrf" value="{csrf}"><button>Log out</button></form>"#,
                    user = escape(&user)
                ),
            )
        }
        None => login_page(base, session, "Log in", login, None),
    }
}

/// The consent hook: the application renders it from the validated request.
fn consent_page(base: &str, session: &mut Session, login: &str) -> Response<Body> {
    let Some(request) = session.get::<AuthorizationRequest>(PENDING_KEY) else {
        return text(StatusCode::BAD_REQUEST, "no sign-in request in progress");
    };
    let Some(user) = session.user().map(str::to_owned) else {
        return login_page(base, session, "Log in to continue", login, None);
    };
    let csrf = csrf_token(session, login);
    let scopes: String = if request.scope.is_empty() {
        "<li>your user name</li>".to_owned()
    } else {
        request
            .scope
            .iter()
            .map(|scope| format!("<li>{}</li>", escape(scope)))
            .collect()
    };
    html(
        StatusCode::OK,
        &format!(
            r#"<p>Logged in as <b>{user}</b>.</p>
<p><b>{client}</b> asks for:</p><ul>{scopes}</ul>
<form method="post" action="{base}/consent"><input type="hidden" name="csrf" value="{csrf}">
<button name="decision" value="allow">Allow</button> <button name="decision" value="deny">Deny</button></form>"#,
            user = escape(&user),
            client = escape(&request.client_id),
        ),
    )
}

async fn consent(
    app: &App,
    session: &mut Session,
    form: &HashMap<String, String>,
    now: SystemTime,
) -> Response<Body> {
    let Some(user) = session.user().map(str::to_owned) else {
        return text(StatusCode::UNAUTHORIZED, "log in first");
    };
    let Some(request) = session.get::<AuthorizationRequest>(PENDING_KEY) else {
        return text(StatusCode::BAD_REQUEST, "no sign-in request in progress");
    };
    // One answer per request: a second POST finds nothing.
    session.remove(PENDING_KEY);
    if form.get("decision").map(String::as_str) == Some("allow") {
        match app.oauth.approve(&request, &user, now).await {
            Ok(response) => convert_empty(response),
            Err(error) => text(error.status(), "could not issue a code"),
        }
    } else {
        convert_empty(app.oauth.deny(&request))
    }
}

async fn login(
    app: &App,
    session: &mut Session,
    form: &HashMap<String, String>,
    peer: IpAddr,
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
    let stored = app.users.get(username).cloned();
    let passwords = app.passwords.clone();
    // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
    let verification = tokio::task::spawn_blocking(move || match stored {
        Some(stored) => passwords.verify(password, &stored),
        None => passwords.verify_unknown_user(password),
    })
    .await
    .unwrap_or_else(|error| Err(AuthError::Hashing(error.to_string())));
    match verification {
        Ok(Verification::Match { .. }) => {
            let _ = app.throttle.succeeded(attempt, now).await;
            if let Err(error) = session.login(username) {
                return text(error.status(), &error.to_string());
            }
            // The request carried by the login form is checked again: the form is the
            // user's, so it is trusted no more than the URL it came from.
            if let Some(query) = form.get("authorize") {
                match app.oauth.authorization_request(query).await {
                    Ok(request) => {
                        if session.insert(PENDING_KEY, &request).is_err() {
                            return text(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "cannot keep the request",
                            );
                        }
                    }
                    Err(_) => {
                        return text(StatusCode::BAD_REQUEST, "this sign-in request is invalid");
                    }
                }
            }
            if session.get::<AuthorizationRequest>(PENDING_KEY).is_some() {
                redirect(&format!("{}/consent", app.base))
            } else {
                redirect(&format!("{}/", app.base))
            }
        }
        Ok(Verification::Mismatch) => {
            attempt.failed();
            text(StatusCode::UNAUTHORIZED, "wrong user name or password")
        }
        Err(error) => {
            // Not checked (hashing busy): not a failure.
            let _ = app.throttle.release(attempt, now).await;
            auth_error(&error)
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

/// A protected resource: who the access token speaks for.
fn api_me(app: &App, headers: &http::HeaderMap) -> Response<Body> {
    let challenge = BearerChallenge::new().realm("oauth-provider");
    let token = match bearer_token(headers) {
        Ok(Some(token)) => token,
        Ok(None) => return convert_empty(challenge.response()),
        Err(error) => {
            return convert_empty(
                challenge
                    .error(BearerError::InvalidRequest, error.to_string())
                    .response(),
            );
        }
    };
    match app
        .verifier
        .verify::<serde_json::Value>(&token, SystemTime::now())
    {
        Ok(claims) => json(
            StatusCode::OK,
            &serde_json::json!({
                "sub": claims.get("sub"),
                "client_id": claims.get("client_id"),
                "scope": claims.get("scope"),
            }),
        ),
        Err(error) => {
            let code = BearerError::for_error(&error).unwrap_or(BearerError::InvalidToken);
            convert_empty(challenge.error(code, error.to_string()).response())
        }
    }
}

fn convert(response: Response<Vec<u8>>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Full::new(Bytes::from(body)))
}

fn convert_empty(response: Response<()>) -> Response<Body> {
    let (parts, ()) = response.into_parts();
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
        "<!doctype html><meta charset=utf-8><title>oauth-provider</title><h1>backend-kit provider</h1>{body}\n"
    );
    let mut response = respond(status, "text/html; charset=utf-8", page.into_bytes());
    // The login and consent pages must not be framed (clickjacking, RFC 9700 section 4.16).
    response
        .headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    response.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    // The authorization page's URL holds state and the PKCE challenge: never leak it in
    // Referer (RFC 9700 section 4.2.4).
    response
        .headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
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

fn redirect(to: &str) -> Response<Body> {
    let mut response = respond(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        Vec::new(),
    );
    response.headers_mut().insert(
        LOCATION,
        HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
    );
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
