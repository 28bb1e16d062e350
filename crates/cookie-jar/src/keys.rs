//! Signed (HMAC-SHA256) and private (AES-256-GCM) cookies with key rotation.
//!
//! Both kinds are bound to the cookie's name: a value signed or sealed for `theme` does not
//! verify or open as `role`. Signed values use our own format, `v2.` + base64url(HMAC-SHA256
//! over the name and the value) + the value, because the `cookie` crate's signed format MACs
//! the value alone. Values in that older format are refused unless
//! [`KeyRing::accept_unbound_signatures`] is set for a migration period.
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

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use cookie::Key;
use cookie::{Cookie, CookieJar};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

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
    accept_unbound: bool,
}

/// The prefix of name-bound signed values. An old-format value (base64 with `+`, `/`, `=`)
/// never contains `.` in its first 44 bytes, so the two cannot be confused.
const SIGNED_V2: &str = "v2.";
/// The length of the base64url (unpadded) HMAC-SHA256 tag.
const TAG_CHARS: usize = 43;

/// HMAC-SHA256 under the key's signing half over a domain label, the name's length, the
/// name and the value: the length prefix keeps (`ab`, `c`) and (`a`, `bc`) apart.
fn signed_tag(key: &Key, name: &str, value: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.signing()).ok()?;
    mac.update(b"cookie-jar signed cookie v2\0");
    mac.update(&(name.len() as u64).to_be_bytes());
    mac.update(name.as_bytes());
    mac.update(value.as_bytes());
    Some(mac)
}

fn sign_bound(key: &Key, name: &str, value: &str) -> String {
    let tag = signed_tag(key, name, value)
        .map(|mac| URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{SIGNED_V2}{tag}{value}")
}

fn verify_bound(key: &Key, name: &str, signed: &str) -> Option<String> {
    let rest = signed.strip_prefix(SIGNED_V2)?;
    let tag = rest.get(..TAG_CHARS)?;
    let value = rest.get(TAG_CHARS..)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    // `verify_slice` compares in constant time.
    signed_tag(key, name, value)?.verify_slice(&tag).ok()?;
    Some(value.to_owned())
}

fn verify_unbound(key: &Key, name: &str, value: &str) -> Option<String> {
    let c = Cookie::new(name.to_owned(), value.to_owned());
    CookieJar::new()
        .signed(key)
        .verify(c)
        .map(|c| c.value().to_owned())
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
            accept_unbound: false,
        }
    }

    /// Also accepts signed values in the `cookie` crate's format, which MACs the value
    /// alone (what this crate wrote before 0.1.0's name binding), for a migration period:
    /// such a value verifies under any cookie name, so a value a user may hold for one
    /// signed cookie can be replayed as another. [`needs_reissue`](Self::needs_reissue)
    /// is true for them, so they are replaced on the next response. Default: refused.
    #[must_use]
    pub fn accept_unbound_signatures(mut self, yes: bool) -> Self {
        self.accept_unbound = yes;
        self
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

    /// Signs the cookie's name and value with the current key: the value becomes `v2.`,
    /// the base64url HMAC-SHA256 tag, then the plain value.
    #[must_use]
    pub fn sign(&self, cookie: SetCookie) -> SetCookie {
        let value = sign_bound(&self.current, cookie.name(), cookie.value());
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

    /// The verified plain value of a signed cookie, or `None` if no key of the ring signed
    /// it for this `name` (a value signed for another cookie name is `None`).
    #[must_use]
    pub fn verify(&self, name: &str, value: &str) -> Option<String> {
        self.keys().find_map(|key| {
            verify_bound(key, name, value).or_else(|| {
                self.accept_unbound
                    .then(|| verify_unbound(key, name, value))
                    .flatten()
            })
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

    /// Whether `value` verifies or opens only under an old key or in the old unbound signed
    /// format, so the cookie should be re-issued under the current one.
    #[must_use]
    pub fn needs_reissue(&self, name: &str, value: &str) -> bool {
        let jar = CookieJar::new();
        let c = || Cookie::new(name.to_owned(), value.to_owned());
        let current = verify_bound(&self.current, name, value).is_some()
            || jar.private(&self.current).decrypt(c()).is_some();
        !current && (self.verify(name, value).is_some() || self.open(name, value).is_some())
    }
}

impl KeyRing {
    /// A ring from configuration text, so that every instance of an application reads and
    /// writes the same cookies: keys in base64 (standard or URL-safe alphabet, padding
    /// optional) of at least 64 bytes each, separated by whitespace or commas. The first is
    /// the current key; the others are old keys still accepted when reading.
    ///
    /// ```
    /// use cookie_jar::{KeyRing, SetCookie};
    ///
    /// let configured = KeyRing::generate_config(); // once, by an operator
    /// let one = KeyRing::from_config(&configured)?;
    /// let two = KeyRing::from_config(&configured)?;
    /// let sealed = one.seal(SetCookie::build("sid", "42").finish()?);
    /// assert_eq!(two.open("sid", sealed.value()).as_deref(), Some("42"));
    ///
    /// // Rotation: a new key first; cookies of the old one still open.
    /// let rotated = KeyRing::from_config(&format!("{} {configured}", KeyRing::generate_config()))?;
    /// assert_eq!(rotated.open("sid", sealed.value()).as_deref(), Some("42"));
    /// assert!(rotated.needs_reissue("sid", sealed.value()));
    /// # Ok::<(), cookie_jar::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::KeyConfig`] for an empty list or text that is not base64 (the message never
    /// holds key material), [`Error::KeyTooShort`] for a key under 64 bytes.
    pub fn from_config(text: &str) -> Result<Self> {
        let mut keys = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty())
            .enumerate()
            .map(|(index, entry)| {
                let unpadded = entry.trim_end_matches('=');
                let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(unpadded)
                    .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
                    .map_err(|_| Error::KeyConfig(format!("key {} is not base64", index + 1)))?;
                key_from_bytes(&bytes)
            });
        let current = keys
            .next()
            .ok_or_else(|| Error::KeyConfig("no keys configured".into()))??;
        let mut ring = Self::new(current);
        for key in keys {
            ring = ring.with_old_key(key?);
        }
        Ok(ring)
    }

    /// A new random key (64 bytes) in the text form [`KeyRing::from_config`] reads. It is a
    /// secret: keep it where secrets are kept.
    #[must_use]
    pub fn generate_config() -> String {
        base64::engine::general_purpose::STANDARD.encode(Key::generate().master())
    }
}

fn key_from_bytes(bytes: &[u8]) -> Result<Key> {
    Key::try_from(bytes).map_err(|_| Error::KeyTooShort(bytes.len()))
}
