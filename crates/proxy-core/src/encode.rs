//! Streaming response compression: [`prepare_compression`] decides and rewrites the head
//! (`Content-Encoding`, `Vary`, a weakened `ETag`, no `Content-Length`), and an [`Encoder`]
//! compresses the body chunk by chunk as it arrives, never holding it whole. The encoder is
//! plain synchronous code over byte slices; the caller moves the chunks (any body type,
//! any runtime). The codecs are behind the `gzip`, `brotli` and `zstd` features.
//!
//! ```
//! # #[cfg(feature = "gzip")] {
//! use http::{HeaderMap, Response};
//! use proxy_core::{Coding, Encoder, prepare_compression};
//!
//! let mut request = HeaderMap::new();
//! request.insert("accept-encoding", "gzip".parse().unwrap());
//! let (mut head, ()) = Response::builder()
//!     .header("content-type", "text/plain")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! let coding = prepare_compression(&request, &mut head, None, 0, &[Coding::Gzip]).unwrap();
//! assert_eq!(head.headers["content-encoding"], "gzip");
//!
//! let mut encoder = Encoder::new(coding).unwrap();
//! let mut out = Vec::new();
//! for chunk in [&b"hello "[..], b"world"] {
//!     out.extend_from_slice(&encoder.encode(chunk).unwrap());
//! }
//! out.extend_from_slice(&encoder.finish().unwrap());
//! assert_eq!(&out[..2], b"\x1f\x8b"); // a gzip member
//! # }
//! ```

use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, ETAG, VARY};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::{Coding, negotiate_encoding, should_compress};

/// Whether and how to compress a response to a request with `request` headers: `None`
/// (head untouched) for a status without content (1xx, 204, 206, 304), when
/// [`should_compress`] says no, or when the client accepts none of `supported`. Otherwise
/// the coding, with the head rewritten for it: `Content-Encoding` set, `Content-Length`
/// removed, `Accept-Encoding` added to `Vary`, a strong `ETag` made weak (the encoded
/// bytes differ from the identity ones).
#[must_use]
pub fn prepare_compression(
    request: &HeaderMap,
    head: &mut http::response::Parts,
    known_len: Option<u64>,
    min_len: u64,
    supported: &[Coding],
) -> Option<Coding> {
    let status = head.status;
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT
    {
        return None;
    }
    let accept = request.get(ACCEPT_ENCODING)?.to_str().ok()?;
    if !should_compress(&head.headers, known_len, min_len) {
        return None;
    }
    let coding = negotiate_encoding(accept, supported)?;
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
    if let Some(etag) = head
        .headers
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|e| !e.starts_with("W/"))
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}"))
    {
        head.headers.insert(ETAG, weak);
    }
    Some(coding)
}

/// The codings this build can produce, in the server's order of preference (br, zstd,
/// gzip), as enabled by the `brotli`, `zstd` and `gzip` features.
#[must_use]
pub fn available_codings() -> Vec<Coding> {
    let mut codings = Vec::new();
    if cfg!(feature = "brotli") {
        codings.push(Coding::Brotli);
    }
    if cfg!(feature = "zstd") {
        codings.push(Coding::Zstd);
    }
    if cfg!(feature = "gzip") {
        codings.push(Coding::Gzip);
    }
    codings
}

#[cfg(any(feature = "gzip", feature = "brotli", feature = "zstd"))]
pub use codec::Encoder;

#[cfg(any(feature = "gzip", feature = "brotli", feature = "zstd"))]
mod codec {
    use std::io::Write as _;

    use bytes::Bytes;

    use crate::{Coding, Error};

    /// A streaming compressor for one response body. Feed chunks to
    /// [`Encoder::encode`]; each call returns the compressed bytes ready so far (often none
    /// until the codec's block fills); [`Encoder::flush`] forces out what is buffered (for
    /// streamed events); [`Encoder::finish`] ends the stream.
    pub struct Encoder {
        kind: Kind,
    }

    enum Kind {
        #[cfg(feature = "gzip")]
        Gzip(flate2::write::GzEncoder<Vec<u8>>),
        #[cfg(feature = "brotli")]
        Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
        #[cfg(feature = "zstd")]
        Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    }

    impl std::fmt::Debug for Encoder {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let name = match &self.kind {
                #[cfg(feature = "gzip")]
                Kind::Gzip(_) => "gzip",
                #[cfg(feature = "brotli")]
                Kind::Brotli(_) => "br",
                #[cfg(feature = "zstd")]
                Kind::Zstd(_) => "zstd",
            };
            f.debug_struct("Encoder").field("coding", &name).finish()
        }
    }

    fn io(error: std::io::Error) -> Error {
        Error::Compression(error.to_string())
    }

    impl Encoder {
        /// An encoder for `coding` at a level suited to responses compressed on the fly
        /// (brotli 4, zstd 3, gzip 5).
        ///
        /// # Errors
        ///
        /// [`Error::Compression`] when this build lacks the coding's feature or the codec
        /// cannot start.
        pub fn new(coding: Coding) -> Result<Self, Error> {
            let kind = match coding {
                #[cfg(feature = "gzip")]
                Coding::Gzip => Kind::Gzip(flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::new(5),
                )),
                #[cfg(feature = "brotli")]
                Coding::Brotli => Kind::Brotli(Box::new(brotli::CompressorWriter::new(
                    Vec::new(),
                    16 * 1024,
                    4,
                    22,
                ))),
                #[cfg(feature = "zstd")]
                Coding::Zstd => {
                    Kind::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3).map_err(io)?)
                }
                #[allow(unreachable_patterns)]
                other => {
                    return Err(Error::Compression(format!(
                        "{} is not enabled in this build",
                        other.token()
                    )));
                }
            };
            Ok(Self { kind })
        }

        fn output(&mut self) -> &mut Vec<u8> {
            match &mut self.kind {
                #[cfg(feature = "gzip")]
                Kind::Gzip(e) => e.get_mut(),
                #[cfg(feature = "brotli")]
                Kind::Brotli(e) => e.get_mut(),
                #[cfg(feature = "zstd")]
                Kind::Zstd(e) => e.get_mut(),
            }
        }

        fn take(&mut self) -> Bytes {
            Bytes::from(std::mem::take(self.output()))
        }

        /// Compresses `chunk`; returns the compressed bytes ready so far.
        ///
        /// # Errors
        ///
        /// [`Error::Compression`] when the codec fails.
        pub fn encode(&mut self, chunk: &[u8]) -> Result<Bytes, Error> {
            match &mut self.kind {
                #[cfg(feature = "gzip")]
                Kind::Gzip(e) => e.write_all(chunk),
                #[cfg(feature = "brotli")]
                Kind::Brotli(e) => e.write_all(chunk),
                #[cfg(feature = "zstd")]
                Kind::Zstd(e) => e.write_all(chunk),
            }
            .map_err(io)?;
            Ok(self.take())
        }

        /// Forces out everything buffered so far (a sync point; costs some ratio).
        ///
        /// # Errors
        ///
        /// [`Error::Compression`] when the codec fails.
        pub fn flush(&mut self) -> Result<Bytes, Error> {
            match &mut self.kind {
                #[cfg(feature = "gzip")]
                Kind::Gzip(e) => e.flush(),
                #[cfg(feature = "brotli")]
                Kind::Brotli(e) => e.flush(),
                #[cfg(feature = "zstd")]
                Kind::Zstd(e) => e.flush(),
            }
            .map_err(io)?;
            Ok(self.take())
        }

        /// Ends the stream: the last compressed bytes (trailer included).
        ///
        /// # Errors
        ///
        /// [`Error::Compression`] when the codec fails.
        pub fn finish(self) -> Result<Bytes, Error> {
            let out = match self.kind {
                #[cfg(feature = "gzip")]
                Kind::Gzip(e) => e.finish().map_err(io)?,
                #[cfg(feature = "brotli")]
                Kind::Brotli(e) => e.into_inner(),
                #[cfg(feature = "zstd")]
                Kind::Zstd(e) => e.finish().map_err(io)?,
            };
            Ok(Bytes::from(out))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn head_rewrite() {
        let mut request = HeaderMap::new();
        request.insert(ACCEPT_ENCODING, "br, gzip".parse().unwrap());
        let (mut head, ()) = http::Response::builder()
            .header("content-type", "application/json")
            .header("content-length", "5000")
            .header("etag", "\"x\"")
            .header("vary", "Origin")
            .body(())
            .unwrap()
            .into_parts();
        let coding =
            prepare_compression(&request, &mut head, Some(5000), 256, &[Coding::Gzip]).unwrap();
        assert_eq!(coding, Coding::Gzip);
        assert!(!head.headers.contains_key(CONTENT_LENGTH));
        assert_eq!(head.headers[ETAG], "W/\"x\"");
        assert_eq!(head.headers.get_all(VARY).iter().count(), 2);
        let (mut partial, ()) = http::Response::builder()
            .status(206)
            .header("content-type", "text/plain")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(
            prepare_compression(&request, &mut partial, None, 0, &[Coding::Gzip]),
            None
        );
    }

    #[cfg(all(feature = "gzip", feature = "brotli", feature = "zstd"))]
    #[test]
    fn every_codec_round_trips_through_its_reference_decoder() {
        use std::io::Read as _;
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
            let mut encoder = Encoder::new(coding).unwrap();
            let mut out = Vec::new();
            for chunk in text.chunks(1000) {
                out.extend_from_slice(&encoder.encode(chunk).unwrap());
            }
            out.extend_from_slice(&encoder.flush().unwrap());
            out.extend_from_slice(&encoder.finish().unwrap());
            assert!(out.len() < text.len() / 3, "{coding:?} compresses");
            let mut back = Vec::new();
            match coding {
                Coding::Gzip => {
                    flate2::read::GzDecoder::new(&out[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Coding::Brotli => {
                    brotli::Decompressor::new(&out[..], 4096)
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Coding::Zstd => back = zstd::stream::decode_all(&out[..]).unwrap(),
            }
            assert_eq!(back, text, "{coding:?}");
        }
    }
}
