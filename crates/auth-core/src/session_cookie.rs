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
//!
//! A handler written without a framework does the same in two calls around its own work:
//! [`SessionCookie::load`] at the start, [`SessionCookie::finish`] on the way out (which is
//! what the `tower` feature's `SessionLayer` does for a service).
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use auth_core::{MemoryStore, SessionConfig, SessionCookie, Sessions};
//! use http::{Request, Response, header::SET_COOKIE};
//!
//! # async fn run() -> auth_core::Result<()> {
//! let sessions = Sessions::new(MemoryStore::new(), SessionConfig::default());
//! let cookie = SessionCookie::new();
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let request = Request::new(());
//!
//! let mut session = cookie.load(&sessions, request.headers(), now).await?;
//! session.login("alice")?;
//! let mut response = Response::new("welcome");
//! // On an error (a store outage is 503) answer with `error.status()` instead.
//! cookie.finish(&sessions, &mut session, response.headers_mut(), now).await?;
//! assert!(response.headers()[SET_COOKIE].to_str().unwrap().starts_with("__Host-session="));
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

use std::time::{Duration, SystemTime};

use cookie_jar::{RequestCookies, SameSite, SetCookie};
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::session::{Session, SessionStore, Sessions};
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

    /// The session of a request with `headers`: the id [`SessionCookie::read`] finds,
    /// loaded by [`Sessions::load`] (a fresh anonymous session when there is none, or it is
    /// unknown or expired; [`Error::StoreUnavailable`] when the store fails).
    pub async fn load<S: SessionStore>(
        &self,
        sessions: &Sessions<S>,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Session> {
        let presented = self.read(headers);
        sessions.load(presented.as_deref(), now).await
    }

    /// The end of a request: saves `session` ([`Sessions::save`]) and appends the
    /// `Set-Cookie` it needs ([`SessionCookie::set_cookie`]) to `headers`, the response's.
    /// On an error nothing is appended; answer with the error's status instead (503 when
    /// the store is unavailable), since the browser's cookie and the store would disagree.
    pub async fn finish<S: SessionStore>(
        &self,
        sessions: &Sessions<S>,
        session: &mut Session,
        headers: &mut HeaderMap,
        now: SystemTime,
    ) -> Result<()> {
        sessions.save(session, now).await?;
        if let Some(value) = self.set_cookie(session)? {
            headers.append(SET_COOKIE, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use http::header::COOKIE;

    use super::*;
    use crate::{MemoryStore, SessionChange, SessionConfig, SessionId, SessionRecord};

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    /// A store whose writes fail, as Redis does when it is down.
    struct Down;

    impl SessionStore for Down {
        async fn load(&self, _: &SessionId) -> Result<Option<SessionRecord>> {
            Ok(None)
        }
        async fn save(&self, _: &SessionId, _: &SessionChange<'_>) -> Result<()> {
            Err(Error::StoreUnavailable("down".into()))
        }
        async fn delete(&self, _: &SessionId) -> Result<()> {
            Err(Error::StoreUnavailable("down".into()))
        }
        async fn delete_user(&self, _: &str) -> Result<usize> {
            Err(Error::StoreUnavailable("down".into()))
        }
    }

    fn presenting(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(pair).unwrap());
        headers
    }

    #[tokio::test]
    async fn load_and_finish_round_trip_then_logout_removes_the_cookie() {
        let sessions = Sessions::new(MemoryStore::new(), SessionConfig::default());
        let cookie = SessionCookie::new().name("__Host-app");

        // Anonymous and untouched: nothing stored, nothing set.
        let mut session = cookie
            .load(&sessions, &HeaderMap::new(), now())
            .await
            .unwrap();
        let mut headers = HeaderMap::new();
        cookie
            .finish(&sessions, &mut session, &mut headers, now())
            .await
            .unwrap();
        assert!(headers.is_empty());
        assert_eq!(sessions.store().len(), 0);

        session.login("ada").unwrap();
        cookie
            .finish(&sessions, &mut session, &mut headers, now())
            .await
            .unwrap();
        let set = headers.get(SET_COOKIE).unwrap().clone();
        assert!(set.to_str().unwrap().starts_with("__Host-app="));

        // The browser presents it: the same session, nothing to set again; the response's
        // own Set-Cookie headers are kept.
        let request = presenting(&set);
        let mut again = cookie.load(&sessions, &request, now()).await.unwrap();
        assert_eq!(again.user(), Some("ada"));
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static("theme=dark"));
        cookie
            .finish(&sessions, &mut again, &mut headers, now())
            .await
            .unwrap();
        assert_eq!(headers.get_all(SET_COOKIE).iter().count(), 1);

        again.logout();
        cookie
            .finish(&sessions, &mut again, &mut headers, now())
            .await
            .unwrap();
        let values: Vec<_> = headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(values.len(), 2);
        assert!(values[1].to_str().unwrap().contains("Max-Age=0"));
        assert_eq!(sessions.store().len(), 0);
        let after = cookie.load(&sessions, &request, now()).await.unwrap();
        assert_eq!(after.user(), None);
    }

    #[tokio::test]
    async fn a_failed_save_sets_no_cookie() {
        let sessions = Sessions::new(Down, SessionConfig::default());
        let cookie = SessionCookie::new();
        let mut session = cookie
            .load(&sessions, &HeaderMap::new(), now())
            .await
            .unwrap();
        session.login("ada").unwrap();
        let mut headers = HeaderMap::new();
        let error = cookie
            .finish(&sessions, &mut session, &mut headers, now())
            .await
            .unwrap_err();
        assert_eq!(error.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.is_empty());
    }
}
