#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authorization;
mod csrf;
mod either;
mod error;
mod jwt;
mod key_config;
mod memory_store;
#[cfg(feature = "tower")]
mod middleware;
#[cfg(feature = "oauth")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth")))]
pub mod oauth;
mod password;
mod password_policy;
mod random;
#[cfg(feature = "redis")]
mod redis_refresh;
#[cfg(feature = "redis")]
mod redis_store;
mod refresh;
mod session;
mod session_cookie;
mod throttle;

pub use authorization::{
    BearerChallenge, BearerError, Credentials, MAX_AUTHORIZATION_BYTES, basic_challenge,
    bearer_token, credentials,
};
pub use csrf::{
    CSRF_SESSION_KEY, DoubleSubmit, LoginCsrf, OriginCheck, session_csrf_token, synchronizer_token,
    verify_session_csrf, verify_synchronizer,
};
pub use either::Either;
pub use error::{Error, Result};
pub use jwt::{
    Algorithm, Audience, Claims, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, JwtIssuer, JwtVerifier,
    Key, KeySet,
};
pub use memory_store::{DEFAULT_CAPACITY, MemoryStore};
#[cfg(feature = "tower")]
pub use middleware::{
    BearerAuth, BearerAuthLayer, ResponseFuture, SessionHandle, SessionLayer, SessionService,
};
pub use password::{DEFAULT_MAX_PASSWORD_BYTES, HashLimiter, HashPermit, Passwords, Verification};
pub use password_policy::{PasswordPolicy, WeakPassword, normalize_password};
#[cfg(feature = "redis")]
pub use redis_refresh::RedisRefreshStore;
#[cfg(feature = "redis")]
pub use redis_store::{RedisStore, shared_secret};
pub use refresh::{
    MemoryRefreshStore, RefreshRecord, RefreshStore, RefreshToken, RefreshTokens, TokenHash,
};
pub use session::{
    Session, SessionChange, SessionConfig, SessionId, SessionRecord, SessionStore, Sessions,
};
pub use session_cookie::SessionCookie;
#[cfg(feature = "redis")]
pub use throttle::RedisAttemptStore;
pub use throttle::{
    Attempt, AttemptCount, AttemptStore, DEFAULT_ATTEMPT_CAPACITY, LoginThrottle,
    MemoryAttemptStore, Reservation, ThrottlePolicy,
};
