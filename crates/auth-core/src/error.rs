//! The one error type of auth-core, and the HTTP status each variant maps to.

use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

/// Everything that can go wrong in auth-core.
///
/// Each variant says what was wrong with the input; [`Error::status`] gives the HTTP status a
/// client should see. Messages never echo secrets (passwords, tokens, keys).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A password was longer than the configured limit; refused before hashing so that long
    /// inputs cannot be used to burn CPU.
    #[error("password is longer than {max} bytes")]
    PasswordTooLong {
        /// The configured limit in bytes.
        max: usize,
    },
    /// A stored password hash is not a PHC string argon2 can read.
    #[error("stored password hash is not a valid argon2 PHC string: {0}")]
    InvalidPasswordHash(String),
    /// The argon2 parameters given are out of range.
    #[error("invalid argon2 parameters: {0}")]
    InvalidParams(String),
    /// Hashing failed inside argon2 (out of memory and the like).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed")]
    Random,

    /// A token exceeded the configured maximum size.
    #[error("token is larger than {max} bytes")]
    TokenTooLarge {
        /// The configured limit in bytes.
        max: usize,
    },
    /// A token is not three base64url parts with JSON header and claims.
    #[error("malformed token: {0}")]
    MalformedToken(&'static str),
    /// The token's header names no `kid`, and the verifier needs one to pick a key.
    #[error("token header has no `kid`")]
    MissingKeyId,
    /// The token's `typ` header is not the one the verifier requires (for example an ID
    /// token presented where an `at+jwt` access token is expected).
    #[error("token type is not accepted")]
    WrongTokenType,
    /// No verification key has the token's `kid`.
    #[error("no key with the token's `kid`")]
    UnknownKey,
    /// The token's `alg` is not the algorithm of the key its `kid` names (this refuses
    /// `alg: none` and every HS/RS, HS/EC key-confusion attempt).
    #[error("token algorithm does not match the key's algorithm")]
    AlgorithmMismatch,
    /// The header lists a critical extension this verifier does not understand
    /// (RFC 7515 section 4.1.11).
    #[error("unsupported critical header parameter {0:?}")]
    UnsupportedCritical(String),
    /// The signature does not verify with the key.
    #[error("invalid token signature")]
    InvalidSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// A claim the verifier requires is absent or of the wrong type.
    #[error("claim `{0}` is missing or not of the required type")]
    MissingClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("token issuer is not accepted")]
    InvalidIssuer,
    /// `aud` does not contain the configured audience.
    #[error("token audience is not accepted")]
    InvalidAudience,
    /// A key could not be loaded or used (wrong format, wrong algorithm for the key type).
    #[error("key error: {0}")]
    Key(String),
    /// The key set has no active signing key.
    #[error("the key set has no signing key")]
    NoSigningKey,

    /// A refresh token is unknown (never issued, revoked, or garbage).
    #[error("refresh token is not valid")]
    RefreshTokenInvalid,
    /// A refresh token was presented a second time: its whole family is now revoked.
    #[error("refresh token was already used; its family has been revoked")]
    RefreshTokenReused,
    /// A refresh token is past its expiry.
    #[error("refresh token has expired")]
    RefreshTokenExpired,

    /// The `Authorization` header is malformed, repeated or of an unexpected scheme.
    #[error("invalid Authorization header: {0}")]
    InvalidAuthorization(&'static str),

    /// The CSRF token is absent or does not match.
    #[error("CSRF token missing or invalid")]
    CsrfTokenInvalid,
    /// The request comes from another site (by `Sec-Fetch-Site` or `Origin`).
    #[error("cross-site request refused")]
    CrossSiteRequest,

    /// The session store could not be reached or answered with an error. Maps to 503: the
    /// caller must not fall back to an anonymous session for a user who may be logged in.
    #[error("session store unavailable: {0}")]
    StoreUnavailable(String),
    /// A stored session could not be decoded.
    #[error("stored session is corrupt: {0}")]
    CorruptSession(String),
    /// The in-memory store is full of live sessions.
    #[error("session store is at capacity")]
    StoreFull,

    /// An OAuth authorization server answered with an error (RFC 6749 sections 4.1.2.1 and
    /// 5.2), in a callback or a token response.
    #[error("the authorization server answered {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    OAuthServer {
        /// The `error` code, such as `access_denied` or `invalid_grant`.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// An OAuth callback's `state` is missing or is not the one this client sent (a forged
    /// or replayed callback: CSRF).
    #[error("OAuth callback state is missing or does not match")]
    OAuthStateMismatch,
    /// An OAuth callback's `iss` is missing or names another server (RFC 9207, mix-up).
    #[error("OAuth callback issuer is missing or does not match")]
    OAuthIssuerMismatch,
    /// An authorization server's response (token response, metadata, callback) is not what
    /// the protocol allows.
    #[error("malformed OAuth response: {0}")]
    OAuthMalformed(String),
    /// An OAuth client or server configuration is not usable (a bad URL, an `http` redirect
    /// URI on a non-loopback host, a client without redirect URIs, ...).
    #[error("invalid OAuth configuration: {0}")]
    OAuthConfig(String),
    /// An ID token's `nonce` is missing or is not the one this client sent in the
    /// authorization request (OpenID Connect Core 1.0 section 3.1.3.7: a replayed or
    /// injected token).
    #[error("the ID token's nonce is missing or does not match the authorization request")]
    IdTokenNonceMismatch,
    /// An ID token's `at_hash` does not match the access token it came with (section
    /// 3.1.3.8: the access token was swapped).
    #[error("the ID token's at_hash does not match the access token")]
    IdTokenAccessTokenHashMismatch,
    /// An ID token names several audiences without this client as `azp`, or names another
    /// `azp`.
    #[error("the ID token's authorized party (azp) is not this client")]
    IdTokenAuthorizedPartyMismatch,
    /// An ID token's `iat` is in the future (beyond the leeway).
    #[error("the ID token was issued in the future")]
    IdTokenIssuedInFuture,
    /// An OpenID Connect response answers about another user: a UserInfo response or a
    /// refreshed ID token whose `sub` is not the ID token's (Core 1.0 sections 5.3.2, 12.2).
    #[error("the subject (sub) differs from the ID token's")]
    OpenIdSubjectMismatch,
    /// The UserInfo endpoint refused the access token (RFC 6750 section 3.1), with the
    /// `error` of its `WWW-Authenticate` challenge (`invalid_token`, `insufficient_scope`).
    #[error("the UserInfo endpoint answered {status}{}", error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    UserInfoRefused {
        /// The HTTP status (401, 403, ...).
        status: u16,
        /// The challenge's `error`, if any.
        error: Option<String>,
    },

    /// Too many failed logins for this account or client address.
    #[error("too many failed attempts; try again in {}", wait_text(*retry_after))]
    Throttled {
        /// How long until the next attempt is allowed.
        retry_after: Duration,
    },
    /// Every password hashing slot is taken (see `HashLimiter`): answer 503 with
    /// `Retry-After` rather than queue more argon2 work and memory.
    #[error("too many password checks at once; try again in {}", wait_text(*retry_after))]
    HashingBusy {
        /// A hint for `Retry-After`.
        retry_after: Duration,
    },
}

/// A wait for people: "14 minutes 5 seconds", "1 minute", "40 seconds" (at least 1 second).
fn wait_text(wait: Duration) -> String {
    let secs = wait.as_secs().max(1);
    let (minutes, seconds) = (secs / 60, secs % 60);
    let unit = |n: u64, name: &str| format!("{n} {name}{}", if n == 1 { "" } else { "s" });
    match (minutes, seconds) {
        (0, s) => unit(s, "second"),
        (m, 0) => unit(m, "minute"),
        (m, s) => format!("{} {}", unit(m, "minute"), unit(s, "second")),
    }
}

impl Error {
    /// The HTTP status a client should see for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::PasswordTooLong { .. } | Error::InvalidAuthorization(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::TokenTooLarge { .. }
            | Error::MalformedToken(_)
            | Error::MissingKeyId
            | Error::WrongTokenType
            | Error::OAuthServer { .. }
            | Error::UnknownKey
            | Error::AlgorithmMismatch
            | Error::UnsupportedCritical(_)
            | Error::InvalidSignature
            | Error::Expired
            | Error::NotYetValid
            | Error::MissingClaim(_)
            | Error::InvalidIssuer
            | Error::InvalidAudience
            | Error::RefreshTokenInvalid
            | Error::RefreshTokenReused
            | Error::RefreshTokenExpired => StatusCode::UNAUTHORIZED,
            Error::CsrfTokenInvalid
            | Error::CrossSiteRequest
            | Error::OAuthStateMismatch
            | Error::IdTokenNonceMismatch => StatusCode::FORBIDDEN,
            Error::OAuthIssuerMismatch
            | Error::OAuthMalformed(_)
            | Error::IdTokenAccessTokenHashMismatch
            | Error::IdTokenAuthorizedPartyMismatch
            | Error::IdTokenIssuedInFuture
            | Error::OpenIdSubjectMismatch
            | Error::UserInfoRefused { .. } => StatusCode::BAD_GATEWAY,
            Error::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::StoreUnavailable(_) | Error::StoreFull | Error::HashingBusy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::InvalidPasswordHash(_)
            | Error::InvalidParams(_)
            | Error::Hashing(_)
            | Error::Random
            | Error::Key(_)
            | Error::NoSigningKey
            | Error::OAuthConfig(_)
            | Error::CorruptSession(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// How long the client should wait before trying again, for the errors that say
    /// ([`Error::Throttled`], [`Error::HashingBusy`]): the value of a `Retry-After`
    /// header. `None` for the others.
    ///
    /// ```
    /// use std::time::Duration;
    /// let error = auth_core::Error::Throttled { retry_after: Duration::from_secs(60) };
    /// assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    /// assert_eq!(auth_core::Error::CsrfTokenInvalid.retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { retry_after } | Error::HashingBusy { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// The error as a complete plain-text response: its [`status`](Self::status), its
    /// message as the body, and `Retry-After` (in seconds, at least 1) when it says when to
    /// retry. Messages never hold secrets, so the body is safe to show.
    ///
    /// ```
    /// use std::time::Duration;
    /// let error = auth_core::Error::Throttled { retry_after: Duration::from_secs(60) };
    /// let response: http::Response<String> = error.to_response();
    /// assert_eq!(response.status(), 429);
    /// assert_eq!(response.headers()["retry-after"], "60");
    /// assert_eq!(response.body(), "too many failed attempts; try again in 1 minute\n");
    /// ```
    #[must_use]
    pub fn to_response<B: From<String>>(&self) -> Response<B> {
        let mut response = Response::new(B::from(format!("{self}\n")));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(after) = self.retry_after() {
            headers.insert(RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
        }
        response
    }
}

/// auth-core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_minutes_and_seconds() {
        let wait = |secs| wait_text(Duration::from_secs(secs));
        assert_eq!(wait(0), "1 second");
        assert_eq!(wait(40), "40 seconds");
        assert_eq!(wait(60), "1 minute");
        assert_eq!(wait(61), "1 minute 1 second");
        assert_eq!(wait(845), "14 minutes 5 seconds");
        let throttled = Error::Throttled {
            retry_after: Duration::from_secs(900),
        };
        assert_eq!(
            throttled.to_string(),
            "too many failed attempts; try again in 15 minutes"
        );
    }
}
