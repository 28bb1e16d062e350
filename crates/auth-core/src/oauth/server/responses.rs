//! The responses the endpoints send: `303` redirects and JSON bodies, with
//! `Cache-Control: no-store` wherever a code or token may appear, and RFC 6749 section 5.2
//! errors.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::oauth::{ErrorCode, OAuthError};

pub(super) fn see_other(location: &str) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SEE_OTHER;
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(LOCATION, value);
        }
        Err(_) => *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    no_store(&mut response);
    response
}

pub(super) fn no_store<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

pub(super) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    let mut response = Response::new(value.to_string().into_bytes());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(super) fn token_json_response(
    status: StatusCode,
    value: &serde_json::Value,
) -> Response<Vec<u8>> {
    let mut response = json_response(status, value);
    no_store(&mut response);
    response
}

/// An RFC 6749 section 5.2 error response; `invalid_client` carries a Basic challenge.
pub(super) fn error_response(error: &OAuthError) -> Response<Vec<u8>> {
    let mut response = token_json_response(error.code.status(), &error.to_json());
    if error.code == ErrorCode::InvalidClient {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"oauth\", charset=\"UTF-8\""),
        );
    }
    response
}
