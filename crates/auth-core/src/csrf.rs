//! Cross-site request forgery defenses: a synchronizer token kept in the session, a signed
//! double-submit cookie for stateless apps, [`LoginCsrf`] for forms shown to visitors who
//! have no session yet, and a check of `Sec-Fetch-Site` / `Origin`.
//!
//! Login and sign-up forms need CSRF protection too (login CSRF), but keeping their token
//! in a server-side session means storing a session for every cookieless visit, which lets
//! anyone fill the session store. [`LoginCsrf`] keeps the token in a signed cookie instead:
//! nothing is stored before login; after login, use the session's synchronizer token.
//!
//! Use the origin check on every state-changing request, and one of the tokens as well where
//! old browsers matter (OWASP CSRF Prevention Cheat Sheet).
//!
//! ```
//! use auth_core::{DoubleSubmit, OriginCheck};
//! use http::{HeaderMap, HeaderValue, Method};
//!
//! // Stateless: the same token in a cookie and in a form field or header, signed and bound
//! // to the session (or any per-user value) so that a sibling subdomain cannot plant one.
//! let csrf = DoubleSubmit::new([7u8; 32]);
//! let token = csrf.issue(b"session-id-123").unwrap();
//! assert!(csrf.verify(&token, &token, b"session-id-123").is_ok());
//! assert!(csrf.verify(&token, &token, b"another-session").is_err());
//!
//! // Browsers say where a request comes from.
//! let check = OriginCheck::new(["https://app.example"]);
//! let mut headers = HeaderMap::new();
//! headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
//! assert!(check.check(&Method::POST, &headers).is_err());
//! assert!(check.check(&Method::GET, &headers).is_ok());
//! ```

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie_jar::{RequestCookies, SameSite, SetCookie};
use http::{HeaderMap, HeaderValue, Method};

use crate::random::{constant_time_eq, random_bytes, random_token};
use crate::session::Session;
use crate::{Error, Result};

/// The session data key under which [`synchronizer_token`]s live.
pub const CSRF_SESSION_KEY: &str = "_csrf";

/// A fresh synchronizer token: 256 random bits, base64url. Store it in the session (under
/// [`CSRF_SESSION_KEY`]) and embed it in forms; compare with [`verify_synchronizer`].
pub fn synchronizer_token() -> Result<String> {
    random_token()
}

/// Compares a presented token with the one stored in the session, in constant time.
pub fn verify_synchronizer(stored: Option<&str>, presented: Option<&str>) -> Result<()> {
    match (stored, presented) {
        (Some(stored), Some(presented))
            if !stored.is_empty() && constant_time_eq(stored.as_bytes(), presented.as_bytes()) =>
        {
            Ok(())
        }
        _ => Err(Error::CsrfTokenInvalid),
    }
}

/// The session's synchronizer token, made and stored under [`CSRF_SESSION_KEY`] on first
/// use: embed it in the forms of a page that `session` sees.
pub fn session_csrf_token(session: &mut Session) -> Result<String> {
    if let Some(token) = session.get::<String>(CSRF_SESSION_KEY) {
        return Ok(token);
    }
    let token = synchronizer_token()?;
    session.insert(CSRF_SESSION_KEY, &token)?;
    Ok(token)
}

/// Compares a submitted token with the session's synchronizer token
/// ([`session_csrf_token`]), in constant time: [`Error::CsrfTokenInvalid`] (403) when the
/// session has none or they differ.
pub fn verify_session_csrf(session: &Session, submitted: Option<&str>) -> Result<()> {
    let stored = session.get::<String>(CSRF_SESSION_KEY);
    verify_synchronizer(stored.as_deref(), submitted)
}

/// Signed double-submit tokens: `random.hmac(key, binding || random)`.
///
/// The binding ties a token to one session or user, so a token set by an attacker who can
/// write cookies for the domain (a sibling subdomain) does not verify for the victim.
#[derive(Clone)]
pub struct DoubleSubmit {
    key: hmac::Key,
}

impl fmt::Debug for DoubleSubmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoubleSubmit").finish_non_exhaustive()
    }
}

impl DoubleSubmit {
    /// Tokens signed with HMAC-SHA256 under `secret` (keep it at least 32 random bytes).
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref()),
        }
    }

    fn mac(&self, binding: &[u8], nonce: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        // Length-prefix the binding so that (binding, nonce) pairs cannot collide.
        context.update(&(binding.len() as u64).to_be_bytes());
        context.update(binding);
        context.update(nonce);
        context.sign()
    }

    /// A new token for `binding`: put it in a cookie and in the page.
    pub fn issue(&self, binding: &[u8]) -> Result<String> {
        let nonce = random_bytes::<16>()?;
        let tag = self.mac(binding, &nonce);
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        ))
    }

    /// Checks that the cookie's token and the submitted one are equal and signed for
    /// `binding`.
    pub fn verify(&self, cookie: &str, submitted: &str, binding: &[u8]) -> Result<()> {
        if cookie.len() > 128 || !constant_time_eq(cookie.as_bytes(), submitted.as_bytes()) {
            return Err(Error::CsrfTokenInvalid);
        }
        let (nonce, tag) = cookie.split_once('.').ok_or(Error::CsrfTokenInvalid)?;
        let nonce = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| Error::CsrfTokenInvalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| Error::CsrfTokenInvalid)?;
        let mut context = Vec::with_capacity(8 + binding.len() + nonce.len());
        context.extend_from_slice(&(binding.len() as u64).to_be_bytes());
        context.extend_from_slice(binding);
        context.extend_from_slice(&nonce);
        hmac::verify(&self.key, &context, &tag).map_err(|_| Error::CsrfTokenInvalid)
    }
}

/// Stateless CSRF tokens for visitors without a session (login and sign-up forms): a
/// [`DoubleSubmit`] token in a `__Host-` cookie and in the form, so no session is stored
/// for an anonymous page view.
///
/// The token is HMAC-signed with the server's secret, so a client cannot make one up, and
/// the `__Host-` prefix stops a sibling subdomain from planting one. Share the secret between
/// instances behind one load balancer.
///
/// ```
/// use auth_core::LoginCsrf;
/// use http::{HeaderMap, HeaderValue, header};
///
/// let csrf = LoginCsrf::new([9u8; 32]);
/// // GET: a token for the form, and the cookie to set (none if the request's is valid).
/// let (token, set_cookie) = csrf.token(&HeaderMap::new()).unwrap();
/// let set_cookie = set_cookie.unwrap();
/// // POST: the browser sends the cookie back, the form carries the token.
/// let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
/// assert!(csrf.verify(&headers, Some(&token)).is_ok());
/// assert!(csrf.verify(&headers, Some("forged")).is_err());
/// assert!(csrf.verify(&HeaderMap::new(), Some(&token)).is_err());
/// ```
///
/// Pages shown both before and after login use [`LoginCsrf::form_token`] and
/// [`LoginCsrf::verify_form`], which pick the login token for an anonymous session and the
/// session's synchronizer token once it has a user:
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use auth_core::{LoginCsrf, MemoryStore, SessionConfig, Sessions};
/// use http::HeaderMap;
///
/// # async fn run() -> auth_core::Result<()> {
/// let sessions = Sessions::new(MemoryStore::new(), SessionConfig::default());
/// let csrf = LoginCsrf::new([9u8; 32]);
/// let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// let mut session = sessions.load(None, now).await?;
/// let (login_token, set_cookie) = csrf.form_token(&mut session, &HeaderMap::new())?;
/// assert!(set_cookie.is_some()); // anonymous: a signed cookie, no session data
///
/// session.login("alice")?;
/// let (token, set_cookie) = csrf.form_token(&mut session, &HeaderMap::new())?;
/// assert!(set_cookie.is_none()); // logged in: the session holds the token
/// assert!(csrf.verify_form(&session, &HeaderMap::new(), Some(&token)).is_ok());
/// assert!(csrf.verify_form(&session, &HeaderMap::new(), Some(&login_token)).is_err());
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LoginCsrf {
    tokens: DoubleSubmit,
    cookie: String,
}

/// What login CSRF tokens are bound to (there is no session yet).
const LOGIN_BINDING: &[u8] = b"auth-core login csrf";

impl LoginCsrf {
    /// Tokens signed under `secret` (at least 32 random bytes), in the `__Host-login-csrf`
    /// cookie.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self {
            tokens: DoubleSubmit::new(secret),
            cookie: "__Host-login-csrf".to_owned(),
        }
    }

    /// Tokens signed under the configured `secret`, or under 32 random bytes made now when
    /// there is none (tokens then end with the process, and instances behind one load
    /// balancer refuse each other's). A configured secret shorter than 32 bytes is refused
    /// with [`Error::Key`].
    ///
    /// ```
    /// use auth_core::LoginCsrf;
    /// use http::HeaderMap;
    ///
    /// let shared = [7u8; 32];
    /// let (token, _) = LoginCsrf::configured(Some(&shared)).unwrap().token(&HeaderMap::new()).unwrap();
    /// assert!(LoginCsrf::configured(Some(b"short")).is_err());
    /// assert!(LoginCsrf::configured(None).is_ok());
    /// ```
    pub fn configured(secret: Option<&[u8]>) -> Result<Self> {
        match secret {
            Some(secret) if secret.len() >= 32 => Ok(Self::new(secret)),
            Some(secret) => Err(Error::Key(format!(
                "the login CSRF secret has {} bytes; it needs at least 32",
                secret.len()
            ))),
            None => random_bytes::<32>().map(Self::new),
        }
    }

    /// Another cookie name (applications sharing one origin need different names).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie = name.into();
        self
    }

    /// The token to put in the form: the request's own when it is valid, otherwise a new
    /// one together with the `Set-Cookie` value that carries it.
    pub fn token(&self, headers: &HeaderMap) -> Result<(String, Option<HeaderValue>)> {
        if let Some(token) = RequestCookies::from_headers(headers).get(&self.cookie)
            && self.tokens.verify(token, token, LOGIN_BINDING).is_ok()
        {
            return Ok((token.to_owned(), None));
        }
        let token = self.tokens.issue(LOGIN_BINDING)?;
        let cookie = SetCookie::build(self.cookie.clone(), token.clone())
            .same_site(SameSite::Strict)
            .finish()
            .map_err(|error| Error::Key(format!("login CSRF cookie: {error}")))?;
        Ok((token, Some(cookie.to_header_value())))
    }

    /// Checks that the submitted token equals the cookie's and is signed by us:
    /// [`Error::CsrfTokenInvalid`] (403) otherwise.
    pub fn verify(&self, headers: &HeaderMap, submitted: Option<&str>) -> Result<()> {
        let cookie = RequestCookies::from_headers(headers)
            .get(&self.cookie)
            .map(str::to_owned)
            .ok_or(Error::CsrfTokenInvalid)?;
        let submitted = submitted.ok_or(Error::CsrfTokenInvalid)?;
        self.tokens.verify(&cookie, submitted, LOGIN_BINDING)
    }

    /// The token for a page's forms and the `Set-Cookie` it needs: once `session` has a
    /// user, the session's synchronizer token ([`session_csrf_token`], no cookie); before,
    /// a login token ([`LoginCsrf::token`]), so that an anonymous page view stores nothing.
    pub fn form_token(
        &self,
        session: &mut Session,
        headers: &HeaderMap,
    ) -> Result<(String, Option<HeaderValue>)> {
        if session.user().is_some() {
            return session_csrf_token(session).map(|token| (token, None));
        }
        self.token(headers)
    }

    /// Checks a submitted form's token as [`LoginCsrf::form_token`] made it: against the
    /// session's synchronizer token once `session` has a user (a login token no longer
    /// passes), against the login cookie before.
    pub fn verify_form(
        &self,
        session: &Session,
        headers: &HeaderMap,
        submitted: Option<&str>,
    ) -> Result<()> {
        if session.user().is_some() {
            return verify_session_csrf(session, submitted);
        }
        self.verify(headers, submitted)
    }
}

/// Refuses state-changing requests that a browser marks as coming from another site.
///
/// Order of evidence: `Sec-Fetch-Site` (sent by every current browser) decides when present:
/// `same-origin` and `none` (typed by the user) pass, `same-site` and `cross-site` fail.
/// Otherwise `Origin` must be one of the allowed origins. A request with neither header
/// (not from a browser, or a very old one) passes only if `allow_missing` is set; pair that
/// with a CSRF token.
#[derive(Debug, Clone)]
pub struct OriginCheck {
    allowed: Vec<String>,
    allow_missing: bool,
}

impl OriginCheck {
    /// Allows requests from `origins` (`scheme://host[:port]`, compared case-insensitively).
    pub fn new<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            allowed: origins
                .into_iter()
                .map(|origin| origin.into().to_ascii_lowercase())
                .collect(),
            allow_missing: false,
        }
    }

    /// Lets requests without `Sec-Fetch-Site` and `Origin` through (default: refused).
    pub fn allow_missing(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }

    /// `Ok` for safe methods and same-origin requests, [`Error::CrossSiteRequest`] (403)
    /// otherwise.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<()> {
        if method.is_safe() {
            return Ok(());
        }
        if let Some(site) = headers.get("sec-fetch-site") {
            return match site.as_bytes() {
                b"same-origin" | b"none" => Ok(()),
                _ => Err(Error::CrossSiteRequest),
            };
        }
        match headers.get(http::header::ORIGIN) {
            Some(origin) => {
                let origin = origin.to_str().map_err(|_| Error::CrossSiteRequest)?;
                if self
                    .allowed
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(origin))
                {
                    Ok(())
                } else {
                    Err(Error::CrossSiteRequest)
                }
            }
            None if self.allow_missing => Ok(()),
            None => Err(Error::CrossSiteRequest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn synchronizer() {
        let token = synchronizer_token().unwrap();
        assert!(verify_synchronizer(Some(&token), Some(&token)).is_ok());
        assert!(verify_synchronizer(Some(&token), Some("other")).is_err());
        assert!(verify_synchronizer(Some(&token), None).is_err());
        assert!(verify_synchronizer(None, Some(&token)).is_err());
        assert!(verify_synchronizer(Some(""), Some("")).is_err());
    }

    #[test]
    fn double_submit() {
        let csrf = DoubleSubmit::new([1u8; 32]);
        let token = csrf.issue(b"s1").unwrap();
        assert!(csrf.verify(&token, &token, b"s1").is_ok());
        // Cookie and submitted value must match.
        let other = csrf.issue(b"s1").unwrap();
        assert!(csrf.verify(&token, &other, b"s1").is_err());
        // Bound to the session.
        assert!(csrf.verify(&token, &token, b"s2").is_err());
        // Another key's token, garbage, and a forged tag.
        let foreign = DoubleSubmit::new([2u8; 32]).issue(b"s1").unwrap();
        assert!(csrf.verify(&foreign, &foreign, b"s1").is_err());
        for bad in ["", ".", "abc", "a.b", &"x".repeat(1000)] {
            assert!(csrf.verify(bad, bad, b"s1").is_err(), "{bad}");
        }
        // Binding and nonce cannot be shifted into each other.
        let (nonce, tag) = token.split_once('.').unwrap();
        let shifted = format!("{}.{tag}", &nonce[1..]);
        assert!(csrf.verify(&shifted, &shifted, b"s1").is_err());
    }

    #[test]
    fn login_csrf_needs_the_signed_cookie_and_the_same_token() {
        let csrf = LoginCsrf::new([3u8; 32]).cookie_name("__Host-app-csrf");
        let (token, set_cookie) = csrf.token(&HeaderMap::new()).unwrap();
        let set_cookie = set_cookie.unwrap();
        let set_cookie = set_cookie.to_str().unwrap();
        for attribute in [
            "__Host-app-csrf=",
            "Secure",
            "HttpOnly",
            "Path=/",
            "SameSite=Strict",
        ] {
            assert!(set_cookie.contains(attribute), "{set_cookie}");
        }
        let with_cookie = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::header::COOKIE,
                HeaderValue::from_str(&format!("__Host-app-csrf={value}")).unwrap(),
            );
            headers
        };
        let headers = with_cookie(&token);
        assert!(csrf.verify(&headers, Some(&token)).is_ok());
        // The valid cookie is reused, not replaced.
        assert_eq!(csrf.token(&headers).unwrap(), (token.clone(), None));
        assert!(csrf.verify(&headers, None).is_err());
        assert!(csrf.verify(&headers, Some("x")).is_err());
        assert!(csrf.verify(&HeaderMap::new(), Some(&token)).is_err());
        // A made-up pair (same value in cookie and form) is not signed by us.
        let forged = "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(csrf.verify(&with_cookie(forged), Some(forged)).is_err());
        assert!(csrf.token(&with_cookie(forged)).unwrap().1.is_some());
        // Another server's token does not verify here.
        let (foreign, _) = LoginCsrf::new([4u8; 32]).token(&HeaderMap::new()).unwrap();
        assert!(csrf.verify(&with_cookie(&foreign), Some(&foreign)).is_err());
    }

    fn session() -> Session {
        let sessions = crate::Sessions::new(crate::MemoryStore::new(), Default::default());
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(sessions.load(None, now))
            .unwrap()
    }

    #[test]
    fn session_token_is_made_once_and_checked() {
        let mut session = session();
        assert!(verify_session_csrf(&session, Some("")).is_err());
        let token = session_csrf_token(&mut session).unwrap();
        assert_eq!(session.get::<String>(CSRF_SESSION_KEY), Some(token.clone()));
        assert_eq!(session_csrf_token(&mut session).unwrap(), token);
        assert!(verify_session_csrf(&session, Some(&token)).is_ok());
        assert!(verify_session_csrf(&session, Some("other")).is_err());
        assert!(verify_session_csrf(&session, None).is_err());
    }

    #[test]
    fn configured_secrets_are_shared_and_random_ones_are_not() {
        let secret = [8u8; 40];
        let one = LoginCsrf::configured(Some(&secret)).unwrap();
        let other = LoginCsrf::configured(Some(&secret)).unwrap();
        let (token, set_cookie) = one.token(&HeaderMap::new()).unwrap();
        let pair = set_cookie.unwrap();
        let pair = pair.to_str().unwrap().split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, HeaderValue::from_str(pair).unwrap());
        // Another instance with the same secret accepts the token.
        assert!(other.verify(&headers, Some(&token)).is_ok());
        let random = LoginCsrf::configured(None).unwrap();
        assert!(random.verify(&headers, Some(&token)).is_err());
        let short = LoginCsrf::configured(Some(&[1u8; 31])).unwrap_err();
        assert!(short.to_string().contains("31 bytes"), "{short}");
    }

    #[test]
    fn form_tokens_follow_the_login() {
        let csrf = LoginCsrf::new([5u8; 32]);
        let mut session = session();
        // Anonymous: the login pair, and nothing written to the session.
        let (login, set_cookie) = csrf.form_token(&mut session, &HeaderMap::new()).unwrap();
        let pair = set_cookie.unwrap();
        let pair = pair.to_str().unwrap().split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, HeaderValue::from_str(pair).unwrap());
        assert!(session.get::<String>(CSRF_SESSION_KEY).is_none());
        assert!(csrf.verify_form(&session, &headers, Some(&login)).is_ok());
        assert!(
            csrf.verify_form(&session, &HeaderMap::new(), Some(&login))
                .is_err()
        );
        // The request's valid login cookie is reused.
        assert_eq!(
            csrf.form_token(&mut session, &headers).unwrap(),
            (login.clone(), None)
        );
        // Logged in: the session's token, and the login pair no longer passes.
        session.login("ada").unwrap();
        assert!(csrf.verify_form(&session, &headers, Some(&login)).is_err());
        let (own, set_cookie) = csrf.form_token(&mut session, &headers).unwrap();
        assert!(set_cookie.is_none());
        assert_ne!(own, login);
        assert!(
            csrf.verify_form(&session, &HeaderMap::new(), Some(&own))
                .is_ok()
        );
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn origin_check() {
        let check = OriginCheck::new(["https://app.example"]);
        let post = Method::POST;
        assert!(
            check
                .check(&post, &headers(&[("sec-fetch-site", "same-origin")]))
                .is_ok()
        );
        assert!(
            check
                .check(&post, &headers(&[("sec-fetch-site", "none")]))
                .is_ok()
        );
        assert!(
            check
                .check(&post, &headers(&[("sec-fetch-site", "same-site")]))
                .is_err()
        );
        assert!(
            check
                .check(&post, &headers(&[("sec-fetch-site", "cross-site")]))
                .is_err()
        );
        // Sec-Fetch-Site wins over a matching Origin.
        assert!(
            check
                .check(
                    &post,
                    &headers(&[
                        ("sec-fetch-site", "cross-site"),
                        ("origin", "https://app.example")
                    ])
                )
                .is_err()
        );
        assert!(
            check
                .check(&post, &headers(&[("origin", "https://APP.example")]))
                .is_ok()
        );
        assert!(
            check
                .check(&post, &headers(&[("origin", "https://evil.example")]))
                .is_err()
        );
        assert!(check.check(&post, &headers(&[("origin", "null")])).is_err());
        assert!(check.check(&post, &HeaderMap::new()).is_err());
        assert!(
            check
                .clone()
                .allow_missing(true)
                .check(&post, &HeaderMap::new())
                .is_ok()
        );
        assert!(
            check
                .check(&Method::GET, &headers(&[("sec-fetch-site", "cross-site")]))
                .is_ok()
        );
        assert_eq!(
            Error::CrossSiteRequest.status(),
            http::StatusCode::FORBIDDEN
        );
    }
}
