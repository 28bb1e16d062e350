//! A per-request jar whose changes become the response's `Set-Cookie` headers.
//!
//! ```
//! use cookie_jar::{DeltaJar, SetCookie};
//! use http::{HeaderMap, HeaderValue, header::{COOKIE, SET_COOKIE}};
//!
//! let mut req = HeaderMap::new();
//! req.insert(COOKIE, HeaderValue::from_static("old=1; keep=2"));
//! let mut jar = DeltaJar::from_headers(&req);
//! jar.add(SetCookie::build("new", "3").finish()?);
//! jar.remove("old")?;
//! assert_eq!(jar.get("new"), Some("3"));
//! assert_eq!(jar.get("old"), None);
//! assert_eq!(jar.get("keep"), Some("2"));
//!
//! let mut resp = HeaderMap::new();
//! jar.write_to(&mut resp);
//! assert_eq!(resp.get_all(SET_COOKIE).iter().count(), 2);
//! # Ok::<(), cookie_jar::Error>(())
//! ```

use http::HeaderMap;
use http::header::SET_COOKIE;

use crate::error::Result;
use crate::keys::KeyRing;
use crate::request::RequestCookies;
use crate::set_cookie::SetCookie;

/// The cookies of a request plus the additions and removals made while handling it.
///
/// Reads see the changes ([`get`](Self::get) returns an added value and nothing for a removed
/// cookie); [`write_to`](Self::write_to) emits exactly one `Set-Cookie` per changed
/// `(name, path, domain)`, the last change winning.
#[derive(Clone, Debug, Default)]
pub struct DeltaJar {
    request: RequestCookies,
    delta: Vec<Change>,
}

#[derive(Clone, Debug)]
struct Change {
    cookie: SetCookie,
    removed: bool,
}

impl DeltaJar {
    /// A jar over the cookies already parsed from a request.
    #[must_use]
    pub fn new(request: RequestCookies) -> Self {
        Self {
            request,
            delta: Vec::new(),
        }
    }

    /// A jar over the `Cookie` headers of `headers`.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self::new(RequestCookies::from_headers(headers))
    }

    /// The request's cookies, untouched by the delta.
    #[must_use]
    pub fn request(&self) -> &RequestCookies {
        &self.request
    }

    /// The current value of `name`: the last addition, nothing after a removal, else the
    /// request's value.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        match self.delta.iter().rev().find(|c| c.cookie.name() == name) {
            Some(c) if c.removed => None,
            Some(c) => Some(c.cookie.value()),
            None => self.request.get(name),
        }
    }

    /// Adds or replaces a cookie.
    pub fn add(&mut self, cookie: SetCookie) {
        self.push(Change {
            cookie,
            removed: false,
        });
    }

    /// Removes a cookie that was set with the defaults (`Path=/`, no `Domain`).
    pub fn remove(&mut self, name: &str) -> Result<()> {
        self.remove_with(name, Some("/"), None)
    }

    /// Removes a cookie set with this `path` and `domain`; the removal header carries them so
    /// the browser matches the stored cookie (RFC 6265bis section 5.7, step 23).
    pub fn remove_with(
        &mut self,
        name: &str,
        path: Option<&str>,
        domain: Option<&str>,
    ) -> Result<()> {
        let cookie = SetCookie::removal(name, path, domain)?;
        self.push(Change {
            cookie,
            removed: true,
        });
        Ok(())
    }

    fn push(&mut self, change: Change) {
        let key = |c: &SetCookie| {
            (
                c.name().to_owned(),
                c.path().map(str::to_owned),
                c.domain().map(str::to_owned),
            )
        };
        let k = key(&change.cookie);
        self.delta.retain(|c| key(&c.cookie) != k);
        self.delta.push(change);
    }

    /// Adds a cookie whose value is signed with the ring's current key.
    pub fn add_signed(&mut self, cookie: SetCookie, ring: &KeyRing) {
        self.add(ring.sign(cookie));
    }

    /// Adds a cookie whose value is encrypted with the ring's current key.
    pub fn add_private(&mut self, cookie: SetCookie, ring: &KeyRing) {
        self.add(ring.seal(cookie));
    }

    /// The verified value of a signed cookie; tampered or foreign values read as `None`.
    #[must_use]
    pub fn get_signed(&self, name: &str, ring: &KeyRing) -> Option<String> {
        self.get(name).and_then(|v| ring.verify(name, v))
    }

    /// The decrypted value of a private cookie; tampered or foreign values read as `None`.
    #[must_use]
    pub fn get_private(&self, name: &str, ring: &KeyRing) -> Option<String> {
        self.get(name).and_then(|v| ring.open(name, v))
    }

    /// The pending `Set-Cookie` values, in the order they were last changed.
    pub fn delta(&self) -> impl Iterator<Item = &SetCookie> {
        self.delta.iter().map(|c| &c.cookie)
    }

    /// Appends one `Set-Cookie` header per pending change to `headers`.
    pub fn write_to(&self, headers: &mut HeaderMap) {
        for cookie in self.delta() {
            headers.append(SET_COOKIE, cookie.to_header_value());
        }
    }
}
