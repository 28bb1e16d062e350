//! Reading a whole request body, bounded: the forms and token requests the examples take.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use bytes::Bytes;
//! use http::Response;
//! use http_body_util::Full;
//!
//! let form = serve::read_form::<Full<Bytes>>(serve::full("user=ada&csrf=t%2B1"), 1024).await;
//! let form = form.unwrap();
//! assert_eq!(form["csrf"], "t+1");
//! let big: Result<_, Response<Full<Bytes>>> = serve::read_body(serve::full("x".repeat(2000)), 1024).await;
//! assert_eq!(big.unwrap_err().status(), 413);
//! # });
//! ```

use std::collections::HashMap;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};

use crate::Body;
use crate::page::text;

/// The whole of `body`, at most `limit` bytes; a larger body (or one that fails while it
/// is read) is answered with a 413 page.
pub async fn read_body<B: From<Bytes>>(body: Body, limit: usize) -> Result<Bytes, Response<B>> {
    Limited::new(body, limit)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))
}

/// An `application/x-www-form-urlencoded` body of at most `limit` bytes as a map from
/// name to value (the last of a repeated name wins); larger is a 413 page as in
/// [`read_body`].
pub async fn read_form<B: From<Bytes>>(
    body: Body,
    limit: usize,
) -> Result<HashMap<String, String>, Response<B>> {
    let bytes = read_body(body, limit).await?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}
