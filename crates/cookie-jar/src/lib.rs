#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
mod cookie_date;
mod delta;
mod error;
mod keys;
#[cfg(feature = "tower")]
mod layer;
mod request;
mod set_cookie;
#[cfg(feature = "client")]
mod store;

#[cfg(feature = "client")]
pub use cookie_date::{format_http_date, parse_cookie_date};
pub use delta::DeltaJar;
pub use error::{Error, Result};
pub use keys::{Key, KeyRing};
#[cfg(feature = "tower")]
pub use layer::{CookieLayer, CookieService, Cookies};
pub use request::{MAX_REQUEST_COOKIE_BYTES, MAX_REQUEST_COOKIES, RequestCookies};
pub use set_cookie::{
    MAX_ATTRIBUTE_BYTES, MAX_COOKIE_AGE, MAX_NAME_VALUE_BYTES, SameSite, SetCookie,
    SetCookieBuilder,
};
#[cfg(feature = "client")]
pub use store::{CookieStore, Limits, Mode, RequestContext, SameSitePolicy, StoredCookie};
