//! Building `Set-Cookie` headers with secure defaults, validated at build time.
//!
//! ```
//! use cookie_jar::{SameSite, SetCookie};
//! use time::Duration;
//!
//! let cookie = SetCookie::build("theme", "dark").max_age(Duration::days(30)).finish()?;
//! assert_eq!(
//!     cookie.to_string(),
//!     "theme=dark; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=2592000"
//! );
//! // A value with `;` would inject attributes: refused.
//! assert!(SetCookie::build("x", "1; Domain=evil.example").finish().is_err());
//! # Ok::<(), cookie_jar::Error>(())
//! ```

use std::fmt;

use cookie::Cookie;
use http::HeaderValue;
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};

/// Longest lifetime a cookie may ask for: 400 days (RFC 6265bis section 5.5).
pub const MAX_COOKIE_AGE: Duration = Duration::days(400);
/// Most bytes of name plus value (RFC 6265bis section 5.6, step 4).
pub const MAX_NAME_VALUE_BYTES: usize = 4096;
/// Most bytes of one attribute value (RFC 6265bis section 5.6, step 7).
pub const MAX_ATTRIBUTE_BYTES: usize = 1024;

/// The `SameSite` attribute (RFC 6265bis section 4.1.2.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "client", derive(serde::Serialize, serde::Deserialize))]
pub enum SameSite {
    /// Sent only with same-site requests.
    Strict,
    /// Sent with same-site requests and cross-site top-level navigations with a safe method.
    Lax,
    /// Sent with every request; requires `Secure`.
    None,
}

/// A validated cookie ready to be sent in a `Set-Cookie` header.
///
/// Made by [`SetCookie::build`]; the only way to obtain one is through the checks of
/// [`SetCookieBuilder::finish`], so every `SetCookie` is a header a browser will accept.
#[derive(Clone, Debug, PartialEq)]
pub struct SetCookie {
    cookie: Cookie<'static>,
}

/// Builder for [`SetCookie`], starting from `Secure; HttpOnly; SameSite=Lax; Path=/`.
#[derive(Clone, Debug)]
#[must_use = "call finish() to validate and obtain the SetCookie"]
pub struct SetCookieBuilder {
    name: String,
    value: String,
    path: Option<String>,
    domain: Option<String>,
    max_age: Option<Duration>,
    expires: Option<OffsetDateTime>,
    same_site: Option<SameSite>,
    secure: bool,
    http_only: bool,
    partitioned: bool,
}

impl SetCookie {
    /// Starts a cookie with the secure defaults `Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`
    /// and no lifetime (a session cookie).
    pub fn build(name: impl Into<String>, value: impl Into<String>) -> SetCookieBuilder {
        SetCookieBuilder {
            name: name.into(),
            value: value.into(),
            path: Some("/".to_owned()),
            domain: None,
            max_age: None,
            expires: None,
            same_site: Some(SameSite::Lax),
            secure: true,
            http_only: true,
            partitioned: false,
        }
    }

    /// A `Set-Cookie` that makes the browser delete the cookie `name` stored with `path` and
    /// `domain` (which must be those it was set with, or the browser keeps the original).
    ///
    /// The removal is an empty value with `Max-Age=0` and a past `Expires`
    /// (RFC 6265bis section 5.7 step 22: an expired cookie replaces and evicts the old one).
    pub fn removal(name: &str, path: Option<&str>, domain: Option<&str>) -> Result<Self> {
        let mut b = Self::build(name, "").max_age(Duration::ZERO);
        b.path = path.map(str::to_owned);
        b.domain = domain.map(str::to_owned);
        b.expires = Some(OffsetDateTime::UNIX_EPOCH);
        // A __Host-/__Secure- removal must itself obey the prefix, which the defaults do.
        b.finish()
    }

    /// The cookie's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.cookie.name()
    }

    /// The cookie's value.
    #[must_use]
    pub fn value(&self) -> &str {
        self.cookie.value()
    }

    /// The `Path` attribute, if any.
    #[must_use]
    pub fn path(&self) -> Option<&str> {
        self.cookie.path()
    }

    /// The `Domain` attribute, if any.
    #[must_use]
    pub fn domain(&self) -> Option<&str> {
        self.cookie.domain()
    }

    /// The header value for `Set-Cookie`.
    #[must_use]
    pub fn to_header_value(&self) -> HeaderValue {
        // Every byte was checked at build time to be a visible ASCII or space character.
        HeaderValue::from_str(&self.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// The underlying `cookie` crate value.
    #[must_use]
    pub fn as_cookie(&self) -> &Cookie<'static> {
        &self.cookie
    }

    pub(crate) fn with_value(&self, value: String) -> Self {
        let mut cookie = self.cookie.clone();
        cookie.set_value(value);
        Self { cookie }
    }
}

impl fmt::Display for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cookie, f)
    }
}

impl SetCookieBuilder {
    /// Sets `Path`; `None` omits it (the browser then uses the request's directory).
    pub fn path(mut self, path: impl Into<Option<String>>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets `Domain`, which makes the cookie visible to subdomains too. Omitted by default
    /// (host-only), which is the safer choice.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Sets `Max-Age`; capped at [`MAX_COOKIE_AGE`], negative becomes zero.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age.clamp(Duration::ZERO, MAX_COOKIE_AGE));
        self
    }

    /// Sets `Expires`; capped at [`MAX_COOKIE_AGE`] from now when the cookie is built.
    pub fn expires(mut self, at: OffsetDateTime) -> Self {
        self.expires = Some(at);
        self
    }

    /// Sets `SameSite`; `None` as argument omits the attribute (browsers then apply Lax).
    pub fn same_site(mut self, same_site: impl Into<Option<SameSite>>) -> Self {
        self.same_site = same_site.into();
        self
    }

    /// Sets or clears `Secure` (default: set).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Sets or clears `HttpOnly` (default: set).
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// Sets `Partitioned` (CHIPS); requires `Secure`.
    pub fn partitioned(mut self, partitioned: bool) -> Self {
        self.partitioned = partitioned;
        self
    }

    /// Validates and builds the cookie, capping `Expires` against the current time.
    pub fn finish(self) -> Result<SetCookie> {
        self.finish_at(OffsetDateTime::now_utc())
    }

    /// Validates and builds the cookie, capping `Expires` at 400 days after `now`.
    pub fn finish_at(self, now: OffsetDateTime) -> Result<SetCookie> {
        let name = self.name;
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(Error::InvalidName(name));
        }
        if let Some(byte) = self.value.bytes().find(|b| !is_cookie_octet(*b)) {
            return Err(Error::InvalidValue { name, byte });
        }
        let len = name.len() + self.value.len();
        if len > MAX_NAME_VALUE_BYTES {
            return Err(Error::CookieTooLarge { name, len });
        }
        for (attribute, value) in [("Path", &self.path), ("Domain", &self.domain)] {
            let Some(value) = value else { continue };
            if value.len() > MAX_ATTRIBUTE_BYTES {
                return Err(Error::AttributeTooLarge {
                    attribute,
                    len: value.len(),
                });
            }
            if value
                .bytes()
                .any(|b| b == b';' || b.is_ascii_control() || !b.is_ascii())
            {
                return Err(Error::InvalidAttribute {
                    attribute,
                    value: value.clone(),
                });
            }
        }
        // RFC 6265bis section 4.1.3: prefixes are matched case-insensitively by browsers.
        let lower = name.get(..9).map(str::to_ascii_lowercase);
        let lower7 = name.get(..7).map(str::to_ascii_lowercase);
        if lower.as_deref() == Some("__secure-") && !self.secure {
            return Err(Error::Prefix {
                name,
                rule: "__Secure- requires Secure",
            });
        }
        if lower7.as_deref() == Some("__host-") {
            let rule = if !self.secure {
                Some("__Host- requires Secure")
            } else if self.domain.is_some() {
                Some("__Host- forbids Domain")
            } else if self.path.as_deref() != Some("/") {
                Some("__Host- requires Path=/")
            } else {
                None
            };
            if let Some(rule) = rule {
                return Err(Error::Prefix { name, rule });
            }
        }
        if self.same_site == Some(SameSite::None) && !self.secure {
            return Err(Error::SameSiteNoneInsecure(name));
        }
        if self.partitioned && !self.secure {
            return Err(Error::Prefix {
                name,
                rule: "Partitioned requires Secure",
            });
        }
        let mut cookie = Cookie::new(name, self.value);
        cookie.set_http_only(self.http_only);
        cookie.set_secure(self.secure);
        cookie.set_same_site(self.same_site.map(|s| match s {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        }));
        if self.partitioned {
            cookie.set_partitioned(true);
        }
        if let Some(path) = self.path {
            cookie.set_path(path);
        }
        if let Some(domain) = self.domain {
            cookie.set_domain(domain);
        }
        if let Some(age) = self.max_age {
            cookie.set_max_age(age);
        }
        if let Some(at) = self.expires {
            let cap = now.saturating_add(MAX_COOKIE_AGE);
            cookie.set_expires(at.min(cap));
        }
        Ok(SetCookie { cookie })
    }
}

/// RFC 9110 section 5.6.2 `tchar`.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 6265bis section 4.1.1 `cookie-octet`: visible ASCII except `"` `,` `;` `\`.
pub(crate) fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_are_secure() {
        let c = SetCookie::build("a", "b").finish().unwrap();
        let s = c.to_string();
        for part in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(s.contains(part), "{s}");
        }
    }

    #[test]
    fn injection_and_sizes_refused() {
        for v in ["a;b", "a b", "a\nb", "a,b", "\"q\"", "a\\b", "é"] {
            assert!(
                matches!(
                    SetCookie::build("n", v).finish(),
                    Err(Error::InvalidValue { .. })
                ),
                "{v}"
            );
        }
        for n in ["", "a=b", "a;b", "a b", "a\u{7f}"] {
            assert!(
                matches!(
                    SetCookie::build(n, "v").finish(),
                    Err(Error::InvalidName(_))
                ),
                "{n}"
            );
        }
        let big = "x".repeat(4096);
        assert!(matches!(
            SetCookie::build("n", big).finish(),
            Err(Error::CookieTooLarge { .. })
        ));
        assert!(SetCookie::build("n", "x".repeat(4095)).finish().is_ok());
        let long = format!("/{}", "p".repeat(1024));
        assert!(matches!(
            SetCookie::build("n", "v").path(long).finish(),
            Err(Error::AttributeTooLarge { .. })
        ));
        assert!(matches!(
            SetCookie::build("n", "v")
                .domain("a.example; Secure")
                .finish(),
            Err(Error::InvalidAttribute { .. })
        ));
    }

    #[test]
    fn prefixes_enforced() {
        assert!(
            SetCookie::build("__Secure-a", "1")
                .secure(false)
                .finish()
                .is_err()
        );
        assert!(
            SetCookie::build("__secure-a", "1")
                .secure(false)
                .finish()
                .is_err()
        );
        assert!(SetCookie::build("__Secure-a", "1").finish().is_ok());
        assert!(SetCookie::build("__Host-a", "1").finish().is_ok());
        assert!(
            SetCookie::build("__Host-a", "1")
                .domain("example.com")
                .finish()
                .is_err()
        );
        assert!(
            SetCookie::build("__Host-a", "1")
                .path("/x".to_owned())
                .finish()
                .is_err()
        );
        assert!(
            SetCookie::build("__HOST-a", "1")
                .path(None)
                .finish()
                .is_err()
        );
        assert!(
            SetCookie::build("__Host-a", "1")
                .secure(false)
                .finish()
                .is_err()
        );
    }

    #[test]
    fn same_site_none_needs_secure_and_partitioned() {
        let none = SetCookie::build("a", "1").same_site(SameSite::None);
        assert!(matches!(
            none.clone().secure(false).finish(),
            Err(Error::SameSiteNoneInsecure(_))
        ));
        let ok = none.partitioned(true).finish().unwrap().to_string();
        assert!(
            ok.contains("SameSite=None") && ok.contains("Partitioned"),
            "{ok}"
        );
    }

    #[test]
    fn lifetime_capped() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let c = SetCookie::build("a", "1")
            .max_age(Duration::days(1000))
            .finish_at(now)
            .unwrap();
        assert_eq!(c.as_cookie().max_age(), Some(MAX_COOKIE_AGE));
        let c = SetCookie::build("a", "1")
            .expires(now + Duration::days(5000))
            .finish_at(now)
            .unwrap();
        assert_eq!(c.as_cookie().expires_datetime(), Some(now + MAX_COOKIE_AGE));
    }
}
