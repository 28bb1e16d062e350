#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod jwt;
mod password;
mod random;

pub use error::{Error, Result};
pub use jwt::{
    Algorithm, Audience, Claims, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, JwtIssuer, JwtVerifier,
    Key, KeySet,
};
pub use password::{DEFAULT_MAX_PASSWORD_BYTES, Passwords, Verification};
