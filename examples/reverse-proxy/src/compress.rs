//! Streaming response compression: br, zstd or gzip as `Accept-Encoding` allows
//! (negotiation and skip rules from proxy-core), encoded chunk by chunk as the upstream body
//! arrives, never buffered whole.

use std::pin::Pin;

use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, ETAG, VARY};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::{Body as _, Frame};
use proxy_core::{Coding, negotiate_encoding, should_compress};
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::{BoxError, ProxyBody};

/// Codings in the server's order of preference.
const SUPPORTED: [Coding; 3] = [Coding::Brotli, Coding::Zstd, Coding::Gzip];

pub(crate) fn compress(
    request: &HeaderMap,
    head_request: bool,
    response: Response<ProxyBody>,
    min_len: u64,
) -> Response<ProxyBody> {
    let status = response.status();
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT
    {
        return response;
    }
    let Some(accept) = request.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()) else {
        return response;
    };
    if !should_compress(
        response.headers(),
        response.body().size_hint().exact(),
        min_len,
    ) {
        return response;
    }
    let Some(coding) = negotiate_encoding(accept, &SUPPORTED) else {
        return response;
    };
    let (mut head, body) = response.into_parts();
    head.headers.remove(CONTENT_LENGTH);
    head.headers
        .insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
    let varies = head
        .headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("accept-encoding") || t.trim() == "*");
    if !varies {
        head.headers
            .append(VARY, HeaderValue::from_static("accept-encoding"));
    }
    // The encoded bytes differ from the identity ones: a strong validator would lie.
    if let Some(etag) = head
        .headers
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|e| !e.starts_with("W/"))
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}"))
    {
        head.headers.insert(ETAG, weak);
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = StreamReader::new(stream);
    let encoder: Pin<Box<dyn AsyncRead + Send + Sync>> = match coding {
        Coding::Brotli => Box::pin(BrotliEncoder::with_quality(reader, Level::Precise(4))),
        Coding::Zstd => Box::pin(ZstdEncoder::with_quality(reader, Level::Precise(3))),
        Coding::Gzip => Box::pin(GzipEncoder::with_quality(reader, Level::Precise(5))),
    };
    let frames = ReaderStream::new(encoder)
        .map_ok(|chunk: Bytes| Frame::data(chunk))
        .map_err(BoxError::from);
    Response::from_parts(head, StreamBody::new(frames).boxed())
}
