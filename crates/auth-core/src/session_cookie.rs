//! The session cookie: how a session id travels between browser and server.
//!
//! By default the cookie is `__Host-session`, `Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`,
//! with no `Domain` and no lifetime (it ends with the browser session; the server's idle and
//! absolute timeouts bound it anyway). The `__Host-` prefix makes browsers refuse the cookie
//! from a sibling subdomain or over plain HTTP (except on localhost), which stops cookie
//! tossing and fixation from elsewhere. Built with cookie-jar, which validates every
//! attribute.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use auth_core::{MemoryStore, SessionConfig, SessionCookie, Sessions};
//! use http::{HeaderMap, HeaderValue, header::COOKIE};
//!
//! # async fn run() -> auth_core::Result<()> {
//! let sessions = Sessions::new(MemoryStore::new(), SessionConfig::default());
//! let cookie = SessionCookie::default();
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//!
//! let mut session = sessions.load(cookie.read(&HeaderMap::new()).as_deref(), now).await?;
//! session.login("alice")?;
//! sessions.save(&mut session, now).await?;
//! let set_cookie = cookie.set_cookie(&session)?.expect("a new id is sent");
//! let header = set_cookie.to_str().unwrap();
//! assert!(header.starts_with("__Host-session="));
//! assert!(header.contains("HttpOnly") && header.contains("Secure") && header.contains("SameSite=Lax"));
//!
//! // The browser sends it back.
//! let pair = header.split(';').next().unwrap();
//! let mut headers = HeaderMap::new();
//! headers.insert(COOKIE, HeaderValue::from_str(pair).unwrap());
//! let again = sessions.load(cookie.read(&headers).as_deref(), now).await?;
//! assert_eq!(again.user(), Some("alice"));
//! assert_eq!(cookie.set_cookie(&again)?, None); // nothing to resend
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

use std::time::Duration;

use cookie_jar::{RequestCookies, SameSite, SetCookie};
use http::{HeaderMap, HeaderValue};

use crate::session::Session;
use crate::{Error, Result};

/// The session cookie's name and attributes.
#[derive(Debug, Clone)]
pub struct SessionCookie {
    name: String,
    same_site: SameSite,
    max_age: Option<Duration>,
}

impl Default for SessionCookie {
    fn default() -> Self {
        Self {
            name: "__Host-session".to_owned(),
            same_site: SameSite::Lax,
            max_age: None,
        }
    }
}

fn cookie_error(error: cookie_jar::Error) -> Error {
    Error::Key(format!("session cookie: {error}"))
}

impl SessionCookie {
    /// The default cookie (`__Host-session`, see the module docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Another name. Keep the `__Host-` prefix unless the cookie must span subdomains.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// `SameSite=Strict` (never sent on cross-site navigations) or back to `Lax`. `None` is
    /// not offered: a session cookie sent on cross-site requests invites CSRF.
    pub fn strict(mut self, strict: bool) -> Self {
        self.same_site = if strict {
            SameSite::Strict
        } else {
            SameSite::Lax
        };
        self
    }

    /// A persistent cookie that lives `max_age` (capped at 400 days by cookie-jar) instead
    /// of ending with the browser session.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The session id the request presents, if any (the first cookie with the name).
    pub fn read(&self, headers: &HeaderMap) -> Option<String> {
        RequestCookies::from_headers(headers)
            .get(&self.name)
            .map(str::to_owned)
    }

    /// The `Set-Cookie` the response needs for `session`: the id when it is new or rotated
    /// (and the session was saved with something in it), a removal after logout, `None`
    /// otherwise.
    pub fn set_cookie(&self, session: &Session) -> Result<Option<HeaderValue>> {
        if session.is_destroyed() {
            let removal = SetCookie::removal(&self.name, Some("/"), None).map_err(cookie_error)?;
            return Ok(Some(removal.to_header_value()));
        }
        if !session.id_changed() || !session.is_stored() {
            return Ok(None);
        }
        let mut builder =
            SetCookie::build(self.name.clone(), session.id().to_string()).same_site(self.same_site);
        if let Some(max_age) = self.max_age {
            let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            builder = builder.max_age(time::Duration::seconds(seconds));
        }
        Ok(Some(
            builder.finish().map_err(cookie_error)?.to_header_value(),
        ))
    }
}
