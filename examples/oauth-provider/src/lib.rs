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
//!
//! It is an OpenID Connect provider too: `scope=openid` gets an ID token (RS256, with the
//! `nonce`, `auth_time`, `at_hash` and the claims `profile` and `email` release), `/userinfo`
//! answers for the access token, discovery is at `/.well-known/openid-configuration` below
//! the issuer, and `prompt` (`none`, `login`) and `max_age` are honoured.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::oauth::server::{
    AccessTokenFormat, AuthorizationRejection, AuthorizationRequest, AuthorizationServer, Client,
    ClientAuthMethod, GrantType, MemoryClientRegistry, MemoryGrantStore, RedisGrantStore,
    ServerConfig,
};
use auth_core::{
    Algorithm, BearerChallenge, BearerError, Either, Error as AuthError, JwtIssuer, JwtVerifier,
    Key, KeySet, LoginCsrf, LoginThrottle, MemoryAttemptStore, MemoryRefreshStore, MemoryStore,
    Passwords, RedisAttemptStore, RedisRefreshStore, RedisStore, RefreshTokens, Session,
    SessionConfig, SessionCookie, Sessions, ThrottlePolicy, Verification, bearer_token,
    normalize_password,
};
use bytes::Bytes;
use http::header::SET_COOKIE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use proxy_core::{TrustedProxies, client_address};
use serve::ResponseFuture;
use serve::page::{self, escape, text};

mod openid;

/// The body the pages are built with; [`serve::App::handle`] boxes it.
type Body = Full<Bytes>;
type OAuth = AuthorizationServer<
    MemoryClientRegistry,
    Either<MemoryGrantStore, RedisGrantStore>,
    Either<MemoryRefreshStore, RedisRefreshStore>,
>;

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
    /// Proxies to believe about the client's address (login throttling counts the address
    /// they forward, [`client_address`]) and the login forms' secret, shared by instances;
    /// by default no proxy and a random secret ([`serve::Deployment::from_env`] for the
    /// binary).
    pub deployment: serve::Deployment,
    /// How many failed logins an account and a client address may have in a window
    /// (default: auth-core's `ThrottlePolicy`, 5 and 20 in 15 minutes).
    pub throttle: ThrottlePolicy,
    /// Where sessions, login failures, authorization codes, grants and refresh-token
    /// families live: `None` in this process; Redis stores shared by every instance, so
    /// that the authorization request and the token request may land on different
    /// instances and a refresh token rotated on one is known as used on all.
    pub shared: Option<SharedStores>,
    /// The keys access tokens are signed with, the same on every instance (from
    /// configuration or Redis: `KeySet::from_config`); `None`: an ES256 key made at start.
    pub signing_keys: Option<KeySet>,
    /// The keys ID tokens are signed with (RS256), likewise the same on every instance: a
    /// client checks an ID token against the JWKS, which any instance may serve; `None`: an
    /// RS256 key made at start.
    pub id_token_keys: Option<KeySet>,
}

/// The provider's state in Redis ([`Settings::shared`]).
#[derive(Debug, Clone)]
pub struct SharedStores {
    /// The login sessions.
    pub sessions: RedisStore,
    /// Login throttling's failure counts.
    pub attempts: RedisAttemptStore,
    /// Authorization codes, grants and opaque access tokens.
    pub grants: RedisGrantStore,
    /// Refresh-token families, their rotations and revocations.
    pub refresh: RedisRefreshStore,
}

impl Settings {
    /// At the root of `origin`, with the defaults the binary documents, trusting no proxy.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            base_path: String::new(),
            redirect_uris: vec!["http://127.0.0.1/callback".to_owned()],
            client_secret: "demo-web-secret-change-me".to_owned(),
            demo_password: "wonderland-rabbit".to_owned(),
            cookie_name: "__Host-session".to_owned(),
            deployment: serve::Deployment::default(),
            throttle: ThrottlePolicy::default(),
            shared: None,
            signing_keys: None,
            id_token_keys: None,
        }
    }
}

/// The authorization server, its login and consent pages, and a demo resource `/api/me`.
pub struct App {
    base: String,
    metadata_path: String,
    oauth: OAuth,
    sessions: Sessions<Either<MemoryStore, RedisStore>>,
    cookie: SessionCookie,
    passwords: Passwords,
    /// The user table: name to PHC hash. A real provider keeps it in its database.
    users: HashMap<String, String>,
    throttle: LoginThrottle<Either<MemoryAttemptStore, RedisAttemptStore>>,
    /// Whose forwarded client address the throttle counts.
    trusted_proxies: TrustedProxies,
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

        let keys = match settings.signing_keys {
            Some(keys) => keys,
            None => {
                let mut keys = KeySet::new();
                keys.rotate(
                    Key::generate("oauth-provider-1", Algorithm::ES256)
                        .map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?;
                keys
            }
        };
        let (sessions, attempts, grants, refresh) = match settings.shared {
            Some(shared) => (
                Either::Right(shared.sessions),
                Either::Right(shared.attempts),
                Either::Right(shared.grants),
                Either::Right(shared.refresh),
            ),
            None => (
                Either::Left(MemoryStore::new()),
                Either::Left(MemoryAttemptStore::new()),
                Either::Left(MemoryGrantStore::new()),
                Either::Left(MemoryRefreshStore::new()),
            ),
        };
        let audience = format!("{issuer}/api");
        let config = ServerConfig::new(&issuer)
            .map_err(|error| error.to_string())?
            .with_scopes_supported(["openid", "profile", "email", "api"]);
        let oauth = AuthorizationServer::new(
            config,
            clients,
            grants,
            RefreshTokens::new(refresh, Duration::from_secs(14 * 86_400)),
            AccessTokenFormat::Jwt {
                issuer: JwtIssuer::new(keys.clone()),
                audience: audience.clone(),
            },
        )
        .with_openid(match settings.id_token_keys {
            Some(keys) => keys,
            None => openid::id_token_keys()?,
        });
        let verifier = JwtVerifier::new(keys)
            .with_issuer(&issuer)
            .with_audience(&audience)
            .with_type("at+jwt");

        let login_csrf = LoginCsrf::configured(settings.deployment.login_csrf_secret.as_deref())
            .map_err(|e| e.to_string())?
            .cookie_name(format!("{}-csrf", settings.cookie_name));
        let passwords = Passwords::default();
        let alice = passwords
            .hash(normalize_password(&settings.demo_password).as_bytes())
            .map_err(|error| error.to_string())?;
        Ok(Self {
            metadata_path: format!(
                "/.well-known/oauth-authorization-server{}",
                settings.base_path
            ),
            base: settings.base_path,
            oauth,
            sessions: Sessions::new(sessions, SessionConfig::default()),
            cookie: SessionCookie::new().name(settings.cookie_name),
            passwords,
            users: HashMap::from([("alice".to_owned(), alice)]),
            throttle: LoginThrottle::new(attempts, settings.throttle),
            trusted_proxies: settings.deployment.trusted_proxies,
            login_csrf,
            verifier,
        })
    }

    /// Where the RFC 8414 metadata is served: `/.well-known/oauth-authorization-server`
    /// followed by the base path (outside the base path when there is one).
    pub fn metadata_path(&self) -> &str {
        &self.metadata_path
    }

    /// Drops expired sessions and grants held in memory (Redis expires its own); call it
    /// now and then (the binary does every minute).
    pub fn sweep(&self, now: SystemTime) {
        if let Some(memory) = self.sessions.store().left() {
            memory.sweep(now);
        }
        if let Some(memory) = self.oauth.grants().left() {
            memory.sweep(now);
        }
    }
}

impl serve::App for App {
    /// Answers one request from `peer`. Login throttling counts the client's address:
    /// `peer`'s, or the one a trusted proxy forwards ([`Settings::deployment`]).
    fn handle(self: Arc<Self>, peer: SocketAddr, request: Request<serve::Body>) -> ResponseFuture {
        Box::pin(async move {
            let client = client_address(peer.ip(), request.headers(), &self.trusted_proxies);
            handle(&self, client, request).await.map(serve::boxed)
        })
    }
}

async fn handle(app: &App, client: IpAddr, request: Request<serve::Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let now = SystemTime::now();
    // RFC 8414 section 3.1: an issuer with a path has its metadata at the well-known path
    // with the issuer's path appended, outside the mount.
    if parts.method == Method::GET && parts.uri.path() == app.metadata_path() {
        return convert(app.oauth.metadata_response());
    }
    let Some(path) = serve::local_path(&app.base, parts.uri.path()).map(str::to_owned) else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    // The protocol endpoints: no session, no cookies.
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/healthz") => {
            return json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
        }
        (&Method::GET, "/.well-known/jwks.json") => {
            return json(StatusCode::OK, &app.oauth.jwks());
        }
        (&Method::GET, "/.well-known/openid-configuration") => {
            return convert(app.oauth.openid_configuration_response());
        }
        (&Method::GET, "/api/me") => return api_me(app, &parts.headers),
        (_, "/token" | "/revoke" | "/introspect" | "/userinfo") => {
            let body = match serve::read_body(body, MAX_BODY_BYTES).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let response = match path.as_str() {
                "/token" => app.oauth.token(&parts, &body, now).await,
                "/revoke" => app.oauth.revoke(&parts, &body, now).await,
                "/userinfo" => app.oauth.userinfo(&parts, &body, now).await,
                _ => app.oauth.introspect(&parts, &body, now).await,
            };
            return convert(response);
        }
        _ => {}
    }

    let (response, back) = pages(app, now, client, &parts, body, &path).await;
    let heading = if response.status() == StatusCode::FORBIDDEN {
        // The forms' CSRF check.
        "Form refused"
    } else {
        refusal_heading(&path)
    };
    // Refusals of the login and consent pages are read by a person: in the page (with the
    // provider's own page headers), with the way back to the form.
    let response = page::explain(response, heading, &back, "Back to the login form").await;
    protect(response)
}

/// The heading of a page route's refusal: what did not happen.
fn refusal_heading(path: &str) -> &'static str {
    match path {
        "/login" => "Login failed",
        "/consent" | "/authorize" => "Sign-in request refused",
        "/logout" => "Logout failed",
        _ => "Page not available",
    }
}

/// The login and consent pages at `now` with the way back from a refusal: the login form
/// again, with the sign-in request it carried when there is one.
async fn pages(
    app: &App,
    now: SystemTime,
    client: IpAddr,
    parts: &http::request::Parts,
    body: serve::Body,
    path: &str,
) -> (Response<Body>, String) {
    let mut back = format!("{}/", app.base);
    let response = session_pages(app, now, client, parts, body, path, &mut back)
        .await
        .unwrap_or_else(|refusal| refusal);
    (response, back)
}

/// The login and consent pages at `now`: the session from its cookie and the forms' CSRF
/// token, then the route; on the way out the session is saved and its cookie set. `back` is
/// set to the login form of a pending sign-in request.
async fn session_pages(
    app: &App,
    now: SystemTime,
    client: IpAddr,
    parts: &http::request::Parts,
    body: serve::Body,
    path: &str,
    back: &mut String,
) -> Result<Response<Body>, Response<Body>> {
    let base = app.base.as_str();
    let mut session = (app.cookie)
        .load(&app.sessions, &parts.headers, now)
        .await
        .map_err(|error| refusal(&error))?;
    let mut response = match (&parts.method, path) {
        (&Method::GET, "/" | "/authorize" | "/consent") => {
            // Before login the token rides in a signed cookie (nothing is stored), after
            // login in the session.
            let (csrf, cookie) = (app.login_csrf)
                .form_token(&mut session, &parts.headers)
                .map_err(|error| refusal(&error))?;
            let query = parts.uri.query().unwrap_or("");
            let mut page = match path {
                "/" => home(base, &session, &csrf),
                "/authorize" => authorize(app, &mut session, query, &csrf).await,
                _ => consent_page(base, &session, &csrf),
            };
            if let Some(value) = cookie {
                page.headers_mut().append(SET_COOKIE, value);
            }
            page
        }
        (&Method::POST, "/login" | "/consent" | "/logout") => {
            let form = serve::read_form(body, MAX_BODY_BYTES).await?;
            if let Some(query) = form.get("authorize") {
                // Back to the same sign-in request's login form (a relative path of ours:
                // only the query is the form's).
                *back = format!("{base}/authorize?{query}");
            }
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
                "/login" => login(app, &mut session, &form, client).await,
                "/consent" => consent(app, &mut session, &form, now).await,
                _ => {
                    session.logout();
                    redirect(&format!("{base}/"))
                }
            }
        }
        (_, "/" | "/authorize" | "/consent" | "/login" | "/logout") => {
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

/// `GET /authorize`: validate, then log in and ask for consent.
async fn authorize(app: &App, session: &mut Session, query: &str, csrf: &str) -> Response<Body> {
    match app.oauth.authorization_request(query).await {
        Ok(request) => {
            if let Some(response) = openid::prompt(app, session, &request, query, csrf) {
                return response;
            }
            if session.user().is_none() {
                // Nothing is stored for an anonymous visitor: the request rides in the login
                // form and is validated again when the login succeeds.
                return login_page(&app.base, "Log in to continue", csrf, Some(query));
            }
            if session.insert(PENDING_KEY, &request).is_err() {
                return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot keep the request");
            }
            consent_page(&app.base, session, csrf)
        }
        // The client or redirect URI cannot be trusted: tell the user, never redirect.
        Err(AuthorizationRejection::ShowToUser(error)) => html(
            StatusCode::BAD_REQUEST,
            "Sign-in request refused",
            &format!(
                "<p class=error id=error role=alert>This sign-in request is invalid: <code>{}</code>: {}</p>\
                 <p>The application that sent you here is not registered with this redirect address, \
                 so you are not sent back to it. Close this page, or go <a id=again href=\"{}/\">to the provider's home page</a>.</p>",
                error.code,
                escape(&error.description),
                escape(&app.base),
            ),
        ),
        Err(AuthorizationRejection::Redirect { response, .. }) => convert_empty(response),
    }
}

/// The login form; `authorize` is the query of a pending `GET /authorize`, carried in the
/// form so that no session is stored before the login.
fn login_page(base: &str, heading: &str, csrf: &str, authorize: Option<&str>) -> Response<Body> {
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
        LOGIN_TITLE,
        &format!(
            r#"<div class=card><h2>{heading}</h2>
<form method="post" action="{base}/login"><input type="hidden" name="csrf" value="{csrf}">{pending}
<input name="username" placeholder="user name" aria-label="user name" required> <input name="password" type="password" placeholder="password" aria-label="password" required> <button>Log in</button></form>
<p class=muted>The demo user is <code>alice</code> with the password <code>wonderland-rabbit</code>.</p></div>"#,
            heading = escape(heading)
        ),
    )
}

fn home(base: &str, session: &Session, csrf: &str) -> Response<Body> {
    match session.user() {
        Some(user) => html(
            StatusCode::OK,
            HOME_TITLE,
            &format!(
                r#"<p class=ok>Logged in as <b>{user}</b>.</p>
<p>Applications send you here to log in and to allow them access.</p>
<form method="post" action="{base}/logout"><input type="hidden" name="csrf" value="{csrf}"><button class=secondary>Log out</button></form>"#,
                user = escape(user)
            ),
        ),
        None => login_page(base, "Log in", csrf, None),
    }
}

/// The consent hook: the application renders it from the validated request.
fn consent_page(base: &str, session: &Session, csrf: &str) -> Response<Body> {
    let Some(request) = session.get::<AuthorizationRequest>(PENDING_KEY) else {
        return text(StatusCode::BAD_REQUEST, "no sign-in request in progress");
    };
    let Some(user) = session.user() else {
        return login_page(base, "Log in to continue", csrf, None);
    };
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
        CONSENT_TITLE,
        &format!(
            r#"<p>Logged in as <b>{user}</b>.</p>
<div class=card><p><b>{client}</b> asks for:</p><ul>{scopes}</ul>
<form method="post" action="{base}/consent"><input type="hidden" name="csrf" value="{csrf}">
<button name="decision" value="allow">Allow</button> <button class=secondary name="decision" value="deny">Deny</button></form></div>"#,
            user = escape(user),
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
        let user = openid::end_user(session, &user);
        match app.oauth.approve_user(&request, &user, now).await {
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
    client: IpAddr,
) -> Response<Body> {
    let username = form.get("username").map(String::as_str).unwrap_or("");
    // NFKC, as the demo password was hashed (NIST SP 800-63B).
    let password = normalize_password(form.get("password").map_or("", String::as_str)).into_owned();
    let stored = app.users.get(username).cloned();
    let passwords = app.passwords.clone();
    // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
    let check = || async move {
        serve::blocking(move || passwords.verify_user(password, stored.as_deref()))
            .await
            .unwrap_or_else(|error| Err(AuthError::Hashing(error)))
    };
    // The failure is counted before the password is checked, so concurrent guesses cannot
    // all pass the limit; a right password gives it back.
    match app
        .throttle
        .attempt(username, client, SystemTime::now(), check)
        .await
    {
        Ok(Verification::Match { .. }) => {
            if let Err(error) = session.login(username) {
                return text(error.status(), &error.to_string());
            }
            openid::remember_login(session, SystemTime::now());
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
        Ok(Verification::Mismatch) => text(StatusCode::UNAUTHORIZED, "wrong user name or password"),
        Err(error) => refusal(&error),
    }
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

/// The titles of the provider's pages: the feature, not the crate.
const LOGIN_TITLE: &str = "Log in to the OAuth 2.0 provider";
const HOME_TITLE: &str = "OAuth 2.0 provider";
const CONSENT_TITLE: &str = "Allow access to your account?";

fn html(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    protect(page::html(status, page::document(title, body)))
}

/// The provider's own headers on an HTML page; other responses are left alone.
fn protect(mut response: Response<Body>) -> Response<Body> {
    let is_html = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if !is_html {
        return response;
    }
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

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    page::json(status, value.to_string())
}

fn redirect(to: &str) -> Response<Body> {
    page::redirect(StatusCode::SEE_OTHER, to)
}

/// The response to an auth-core refusal. A shared store that does not answer (Redis down)
/// is a 503 that says to try again, with `Retry-After`; its error is logged, never shown.
fn refusal(error: &AuthError) -> Response<Body> {
    match error {
        AuthError::StoreUnavailable(detail) => {
            tracing::warn!(%detail, "a shared store is unavailable");
            let mut response = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The session store is not answering, so nothing was done. Try again in a few seconds.",
            );
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
        _ => error.to_response(),
    }
}
