//! Signed (HMAC-SHA256) and private (AES-256-GCM) cookies with key rotation.
//!
//! A [`KeyRing`] holds the current key, used for every new cookie, and older keys that are
//! still accepted when reading. Rotating is: make a new ring with the new key as current and
//! the previous current key among the old ones; once every cookie signed with the oldest key
//! has expired, drop it. Nobody is logged out by a rotation.
//!
//! ```
//! use cookie_jar::{Key, KeyRing, SetCookie};
//!
//! let old = Key::generate();
//! let ring_v1 = KeyRing::new(old.clone());
//! let sealed = ring_v1.seal(SetCookie::build("sid", "42").finish()?);
//!
//! // Rotate: new current key, the old one still opens existing cookies.
//! let ring_v2 = KeyRing::new(Key::generate()).with_old_key(old);
//! assert_eq!(ring_v2.open("sid", sealed.value()).as_deref(), Some("42"));
//! # Ok::<(), cookie_jar::Error>(())
//! ```

use std::fmt;

pub use cookie::Key;
use cookie::{Cookie, CookieJar};

use crate::error::{Error, Result};
use crate::set_cookie::SetCookie;

/// A current key plus older keys still accepted for reading.
///
/// The same ring signs ([`sign`](Self::sign)/[`verify`](Self::verify): the value stays
/// readable, tampering is detected) and encrypts ([`seal`](Self::seal)/[`open`](Self::open):
/// the value is hidden and authenticated, with the cookie name bound in). Values that do not
/// verify under any key (tampered, foreign, truncated, garbage) read as absent, never as an
/// error or a panic.
#[derive(Clone)]
pub struct KeyRing {
    current: Key,
    old: Vec<Key>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("old_keys", &self.old.len())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// A ring whose only key is `current`.
    #[must_use]
    pub fn new(current: Key) -> Self {
        Self {
            current,
            old: Vec::new(),
        }
    }

    /// A ring from raw key material (at least 64 bytes: 32 for signing, 32 for encryption).
    pub fn from_bytes(current: &[u8]) -> Result<Self> {
        Ok(Self::new(key_from_bytes(current)?))
    }

    /// Adds a key that is still accepted when reading (tried newest-added first).
    #[must_use]
    pub fn with_old_key(mut self, key: Key) -> Self {
        self.old.push(key);
        self
    }

    /// Adds an old key from raw key material (at least 64 bytes).
    pub fn with_old_bytes(self, key: &[u8]) -> Result<Self> {
        Ok(self.with_old_key(key_from_bytes(key)?))
    }

    fn keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.current).chain(self.old.iter())
    }

    /// Signs the cookie's value with the current key (HMAC-SHA256, base64 tag prefixed).
    #[must_use]
    pub fn sign(&self, cookie: SetCookie) -> SetCookie {
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.current)
            .add(cookie.as_cookie().clone());
        let value = jar
            .get(cookie.name())
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        cookie.with_value(value)
    }

    /// Encrypts the cookie's value with the current key (AES-256-GCM, name as associated data).
    #[must_use]
    pub fn seal(&self, cookie: SetCookie) -> SetCookie {
        let mut jar = CookieJar::new();
        jar.private_mut(&self.current)
            .add(cookie.as_cookie().clone());
        let value = jar
            .get(cookie.name())
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        cookie.with_value(value)
    }

    /// The verified plain value of a signed cookie, or `None` if no key of the ring signed it.
    #[must_use]
    pub fn verify(&self, name: &str, value: &str) -> Option<String> {
        let jar = CookieJar::new();
        self.keys().find_map(|key| {
            let c = Cookie::new(name.to_owned(), value.to_owned());
            jar.signed(key).verify(c).map(|c| c.value().to_owned())
        })
    }

    /// The decrypted value of a private cookie, or `None` if no key of the ring sealed it.
    #[must_use]
    pub fn open(&self, name: &str, value: &str) -> Option<String> {
        let jar = CookieJar::new();
        self.keys().find_map(|key| {
            let c = Cookie::new(name.to_owned(), value.to_owned());
            jar.private(key).decrypt(c).map(|c| c.value().to_owned())
        })
    }

    /// Whether `value` verifies or opens only under an old key, so the cookie should be
    /// re-issued under the current one.
    #[must_use]
    pub fn needs_reissue(&self, name: &str, value: &str) -> bool {
        let jar = CookieJar::new();
        let c = || Cookie::new(name.to_owned(), value.to_owned());
        let current = jar.signed(&self.current).verify(c()).is_some()
            || jar.private(&self.current).decrypt(c()).is_some();
        !current && (self.verify(name, value).is_some() || self.open(name, value).is_some())
    }
}

fn key_from_bytes(bytes: &[u8]) -> Result<Key> {
    Key::try_from(bytes).map_err(|_| Error::KeyTooShort(bytes.len()))
}
