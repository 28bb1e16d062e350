//! WS-Security UsernameToken Profile 1.1: checking `wsse:Security` headers on the server,
//! writing them on the client.
//!
//! PasswordText and PasswordDigest (`Base64(SHA-1(nonce + created + password))`, profile
//! section 3.1) are both accepted unless turned off; nonces are remembered until their
//! `Created` time falls out of the freshness window, so a replay is refused; `wsu:Timestamp`
//! is checked against the clock with an allowed skew. Failures carry the WS-Security 1.1
//! fault codes (section 12). Credentials come from a [`CredentialStore`] you implement.
//!
//! ```
//! use std::time::SystemTime;
//! use soap_core::{CredentialStore, Security, UsernameToken};
//!
//! struct Users;
//! impl CredentialStore for Users {
//!     fn password(&self, user: &str) -> Option<String> {
//!         (user == "ada").then(|| "s3cret".to_owned())
//!     }
//! }
//!
//! let security = Security::new(Users);
//! let now = SystemTime::now();
//! let header = UsernameToken::new("ada", "s3cret").digest().to_header(now)?;
//! assert_eq!(security.verify(&header, now)?, "ada");
//! // The same nonce a second time is a replay.
//! assert!(security.verify(&header, now).is_err());
//! # Ok::<(), soap_core::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha1::{Digest as _, Sha1};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fault::{Fault, FaultCode};
use crate::xml::Element;

/// The `wsse` namespace (WSS 1.0 secext).
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// The `wsu` namespace (WSS 1.0 utility).
pub const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// `Password/@Type` for a clear-text password.
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";
/// `Password/@Type` for a digest.
pub const PASSWORD_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
const BASE64_BINARY: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// Why a `wsse:Security` header was refused; each maps to its WS-Security fault code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityFailure {
    /// Unknown user, wrong password, replayed nonce (`wsse:FailedAuthentication`).
    #[error("the security token could not be authenticated")]
    FailedAuthentication,
    /// The header is missing or malformed (`wsse:InvalidSecurity`).
    #[error("error processing the Security header: {0}")]
    InvalidSecurity(String),
    /// The token is malformed (`wsse:InvalidSecurityToken`).
    #[error("invalid security token: {0}")]
    InvalidSecurityToken(String),
    /// A password type that is turned off or unknown (`wsse:UnsupportedSecurityToken`).
    #[error("unsupported security token")]
    UnsupportedSecurityToken,
    /// The timestamp or the token's `Created` is outside the freshness window
    /// (`wsse:MessageExpired`).
    #[error("the message has expired")]
    MessageExpired,
}

impl SecurityFailure {
    /// The fault code's local name in the `wsse` namespace.
    pub fn code(&self) -> &'static str {
        match self {
            SecurityFailure::FailedAuthentication => "FailedAuthentication",
            SecurityFailure::InvalidSecurity(_) => "InvalidSecurity",
            SecurityFailure::InvalidSecurityToken(_) => "InvalidSecurityToken",
            SecurityFailure::UnsupportedSecurityToken => "UnsupportedSecurityToken",
            SecurityFailure::MessageExpired => "MessageExpired",
        }
    }

    /// The fault: Sender with subcode `wsse:<code>` (1.1: `faultcode` `wsse:<code>`). The
    /// reason is the spec's generic text; which check failed is not revealed.
    pub fn to_fault(&self) -> Fault {
        let reason = match self {
            SecurityFailure::FailedAuthentication => {
                "The security token could not be authenticated or authorized"
            }
            SecurityFailure::InvalidSecurity(_) => {
                "An error was discovered processing the <wsse:Security> header"
            }
            SecurityFailure::InvalidSecurityToken(_) => "An invalid security token was provided",
            SecurityFailure::UnsupportedSecurityToken => "An unsupported token was provided",
            SecurityFailure::MessageExpired => "The message has expired",
        };
        Fault::new(FaultCode::Sender, reason).with_subcode(WSSE_NS, self.code())
    }
}

/// Where passwords come from. `verify_password` backs PasswordText (a hash check such as
/// auth-core's argon2 fits); PasswordDigest needs the clear password, so it works only for
/// users `password` returns one for.
pub trait CredentialStore: Send + Sync {
    /// The clear-text password of `user`, if this store can give it.
    fn password(&self, user: &str) -> Option<String>;

    /// Whether `password` is `user`'s; by default compares with [`Self::password`] in
    /// constant time.
    fn verify_password(&self, user: &str, password: &str) -> bool {
        self.password(user)
            .is_some_and(|p| constant_time_eq(p.as_bytes(), password.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Server-side UsernameToken checking with a nonce replay cache.
pub struct Security {
    store: Box<dyn CredentialStore>,
    allow_text: bool,
    allow_digest: bool,
    max_skew: Duration,
    freshness: Duration,
    max_nonces: usize,
    nonces: Mutex<HashMap<String, SystemTime>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("allow_text", &self.allow_text)
            .field("allow_digest", &self.allow_digest)
            .field("max_skew", &self.max_skew)
            .field("freshness", &self.freshness)
            .field("max_nonces", &self.max_nonces)
            .finish_non_exhaustive()
    }
}

impl Security {
    /// Both password types, 5 minutes of clock skew, a 5-minute freshness window for
    /// `Created`, at most 100,000 remembered nonces.
    pub fn new(store: impl CredentialStore + 'static) -> Self {
        Security {
            store: Box::new(store),
            allow_text: true,
            allow_digest: true,
            max_skew: Duration::from_secs(300),
            freshness: Duration::from_secs(300),
            max_nonces: 100_000,
            nonces: Mutex::new(HashMap::new()),
        }
    }
    /// Accept PasswordText or not.
    pub fn allow_text(mut self, on: bool) -> Self {
        self.allow_text = on;
        self
    }
    /// Accept PasswordDigest or not.
    pub fn allow_digest(mut self, on: bool) -> Self {
        self.allow_digest = on;
        self
    }
    /// The allowed clock difference with the sender.
    pub fn max_skew(mut self, skew: Duration) -> Self {
        self.max_skew = skew;
        self
    }
    /// How old a token's `Created` may be; nonces are remembered this long (plus skew).
    pub fn freshness(mut self, window: Duration) -> Self {
        self.freshness = window;
        self
    }
    /// The most nonces remembered; when full of unexpired nonces, new tokens with a nonce
    /// are refused (memory stays bounded; fails closed).
    pub fn max_nonces(mut self, n: usize) -> Self {
        self.max_nonces = n;
        self
    }

    /// Checks a `wsse:Security` header block; returns the authenticated user name.
    pub fn verify(&self, security: &Element, now: SystemTime) -> Result<String, SecurityFailure> {
        if !security.is(WSSE_NS, "Security") {
            return Err(SecurityFailure::InvalidSecurity(
                "not a wsse:Security block".into(),
            ));
        }
        if let Some(ts) = security.child(WSU_NS, "Timestamp") {
            self.check_timestamp(ts, now)?;
        }
        let token = security
            .child(WSSE_NS, "UsernameToken")
            .ok_or_else(|| SecurityFailure::InvalidSecurity("no UsernameToken".into()))?;
        let user = token
            .child(WSSE_NS, "Username")
            .map(|u| u.text().trim().to_owned())
            .ok_or_else(|| SecurityFailure::InvalidSecurityToken("no Username".into()))?;
        let password = token
            .child(WSSE_NS, "Password")
            .ok_or_else(|| SecurityFailure::InvalidSecurityToken("no Password".into()))?;
        let nonce = token.child(WSSE_NS, "Nonce").map(|n| n.text().trim());
        let created = match token.child(WSU_NS, "Created") {
            Some(c) => Some(self.check_created(c.text(), now)?),
            None => None,
        };
        let kind = password.attribute(None, "Type").unwrap_or(PASSWORD_TEXT);
        let ok = match kind {
            PASSWORD_TEXT if self.allow_text => self.store.verify_password(&user, password.text()),
            PASSWORD_DIGEST if self.allow_digest => {
                let (Some(nonce), Some((created_text, _))) = (nonce, created.as_ref()) else {
                    return Err(SecurityFailure::InvalidSecurityToken(
                        "PasswordDigest needs Nonce and Created".into(),
                    ));
                };
                let nonce_bytes = B64.decode(nonce).map_err(|_| {
                    SecurityFailure::InvalidSecurityToken("Nonce is not base64".into())
                })?;
                let sent = B64
                    .decode(password.text().trim())
                    .map_err(|_| SecurityFailure::FailedAuthentication)?;
                match self.store.password(&user) {
                    Some(clear) => {
                        let expected = digest(&nonce_bytes, created_text, &clear);
                        constant_time_eq(&expected, &sent)
                    }
                    None => false,
                }
            }
            _ => return Err(SecurityFailure::UnsupportedSecurityToken),
        };
        if !ok {
            return Err(SecurityFailure::FailedAuthentication);
        }
        // Remember the nonce after authentication, so that an attacker without the password
        // cannot fill the cache (profile section 3.1: reject a nonce seen before).
        if let Some(nonce) = nonce {
            let expires_at = created
                .map(|(_, at)| at)
                .unwrap_or(now)
                .checked_add(self.freshness.saturating_add(self.max_skew))
                .unwrap_or(now);
            self.remember_nonce(nonce, expires_at, now)?;
        }
        Ok(user)
    }

    fn remember_nonce(
        &self,
        nonce: &str,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<(), SecurityFailure> {
        let mut nonces = self
            .nonces
            .lock()
            .map_err(|_| SecurityFailure::FailedAuthentication)?;
        if nonces.get(nonce).is_some_and(|exp| *exp > now) {
            return Err(SecurityFailure::FailedAuthentication);
        }
        if nonces.len() >= self.max_nonces {
            nonces.retain(|_, exp| *exp > now);
            if nonces.len() >= self.max_nonces {
                return Err(SecurityFailure::FailedAuthentication);
            }
        }
        nonces.insert(nonce.to_owned(), expires_at);
        Ok(())
    }

    fn check_created(
        &self,
        text: &str,
        now: SystemTime,
    ) -> Result<(String, SystemTime), SecurityFailure> {
        let at = parse_time(text)?;
        if in_future(at, now, self.max_skew) {
            return Err(SecurityFailure::MessageExpired);
        }
        if now
            .duration_since(at)
            .is_ok_and(|age| age > self.freshness.saturating_add(self.max_skew))
        {
            return Err(SecurityFailure::MessageExpired);
        }
        Ok((text.trim().to_owned(), at))
    }

    fn check_timestamp(&self, ts: &Element, now: SystemTime) -> Result<(), SecurityFailure> {
        if let Some(created) = ts.child(WSU_NS, "Created")
            && in_future(parse_time(created.text())?, now, self.max_skew)
        {
            return Err(SecurityFailure::MessageExpired);
        }
        if let Some(expires) = ts.child(WSU_NS, "Expires")
            && now
                .duration_since(parse_time(expires.text())?)
                .is_ok_and(|late| late > self.max_skew)
        {
            return Err(SecurityFailure::MessageExpired);
        }
        Ok(())
    }
}

/// Whether `at` is more than `skew` after `now`.
fn in_future(at: SystemTime, now: SystemTime, skew: Duration) -> bool {
    at.duration_since(now).is_ok_and(|ahead| ahead > skew)
}

fn parse_time(text: &str) -> Result<SystemTime, SecurityFailure> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| SecurityFailure::InvalidSecurity("a time is not xs:dateTime".into()))
}

fn format_time(at: SystemTime) -> Result<String, crate::Error> {
    OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .map_err(|e| crate::Error::Config(e.to_string()))?
        .format(&Rfc3339)
        .map_err(|e| crate::Error::Config(e.to_string()))
}

fn digest(nonce: &[u8], created: &str, password: &str) -> Vec<u8> {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    h.finalize().to_vec()
}

/// Client side: a UsernameToken to add to a request.
#[derive(Clone)]
pub struct UsernameToken {
    user: String,
    password: String,
    digest: bool,
    timestamp: Option<Duration>,
}

impl std::fmt::Debug for UsernameToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsernameToken")
            .field("user", &self.user)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl UsernameToken {
    /// A PasswordText token.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        UsernameToken {
            user: user.into(),
            password: password.into(),
            digest: false,
            timestamp: None,
        }
    }
    /// Sends a PasswordDigest instead of the password.
    pub fn digest(mut self) -> Self {
        self.digest = true;
        self
    }
    /// Adds a `wsu:Timestamp` that expires after `ttl`.
    pub fn timestamp(mut self, ttl: Duration) -> Self {
        self.timestamp = Some(ttl);
        self
    }

    /// The `wsse:Security` header block, with a fresh random nonce.
    pub fn to_header(&self, now: SystemTime) -> Result<Element, crate::Error> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| crate::Error::Config(e.to_string()))?;
        self.to_header_with_nonce(now, &nonce)
    }

    /// The header block with a given nonce (for tests and replays of known vectors).
    pub fn to_header_with_nonce(
        &self,
        now: SystemTime,
        nonce: &[u8],
    ) -> Result<Element, crate::Error> {
        let created = format_time(now)?;
        let (kind, password) = if self.digest {
            (
                PASSWORD_DIGEST,
                B64.encode(digest(nonce, &created, &self.password)),
            )
        } else {
            (PASSWORD_TEXT, self.password.clone())
        };
        let token = Element::new(Some(WSSE_NS), "UsernameToken")
            .with_child(Element::new(Some(WSSE_NS), "Username").with_text(self.user.clone()))
            .with_child(
                Element::new(Some(WSSE_NS), "Password")
                    .with_attribute(None, "Type", kind)
                    .with_text(password),
            )
            .with_child(
                Element::new(Some(WSSE_NS), "Nonce")
                    .with_attribute(None, "EncodingType", BASE64_BINARY)
                    .with_text(B64.encode(nonce)),
            )
            .with_child(Element::new(Some(WSU_NS), "Created").with_text(created.clone()));
        let mut security = Element::new(Some(WSSE_NS), "Security")
            .with_prefix("wsse", WSSE_NS)
            .with_prefix("wsu", WSU_NS);
        if let Some(ttl) = self.timestamp {
            security.push_child(
                Element::new(Some(WSU_NS), "Timestamp")
                    .with_child(Element::new(Some(WSU_NS), "Created").with_text(created))
                    .with_child(
                        Element::new(Some(WSU_NS), "Expires")
                            .with_text(format_time(now.checked_add(ttl).unwrap_or(now))?),
                    ),
            );
        }
        security.push_child(token);
        Ok(security)
    }
}
