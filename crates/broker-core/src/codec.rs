//! Typed payloads: a [`Codec`] turns a value into payload bytes and back, and names the
//! `content-type` it writes.
//!
//! ```
//! use broker_core::{Envelope, Json};
//!
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct Job { id: u32 }
//!
//! let envelope = Envelope::encode(&Json, &Job { id: 7 })?;
//! assert_eq!(envelope.headers().content_type(), Some("application/json"));
//! assert_eq!(envelope.decode::<Job, _>(&Json)?, Job { id: 7 });
//! # Ok::<(), broker_core::Error>(())
//! ```

use bytes::Bytes;

use crate::{Error, Result};

/// Encodes `T` into payload bytes and decodes it back.
pub trait Codec<T: ?Sized> {
    /// The `content-type` header this codec writes.
    fn content_type(&self) -> &'static str;
    /// Encodes a value.
    ///
    /// # Errors
    /// [`Error::Codec`] when the value cannot be represented.
    fn encode(&self, value: &T) -> Result<Bytes>;
    /// Decodes a payload.
    ///
    /// # Errors
    /// [`Error::Codec`] when the bytes are not a valid `T`.
    fn decode(&self, payload: &[u8]) -> Result<T>
    where
        T: Sized;
}

/// JSON through serde (`application/json`), the default codec.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for Json {
    fn content_type(&self) -> &'static str {
        "application/json"
    }
    fn encode(&self, value: &T) -> Result<Bytes> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| Error::Codec {
                codec: "application/json",
                detail: e.to_string(),
            })
    }
    fn decode(&self, payload: &[u8]) -> Result<T> {
        serde_json::from_slice(payload).map_err(|e| Error::Codec {
            codec: "application/json",
            detail: e.to_string(),
        })
    }
}

/// Payload bytes as they are (`application/octet-stream`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawBytes;

impl Codec<Bytes> for RawBytes {
    fn content_type(&self) -> &'static str {
        "application/octet-stream"
    }
    fn encode(&self, value: &Bytes) -> Result<Bytes> {
        Ok(value.clone())
    }
    fn decode(&self, payload: &[u8]) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(payload))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_decode_errors_are_codec_errors() {
        let err = <Json as Codec<Vec<u32>>>::decode(&Json, b"{not json").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Codec {
                    codec: "application/json",
                    ..
                }
            ),
            "{err}"
        );
        let raw = RawBytes.encode(&Bytes::from_static(b"\x00\xff")).unwrap();
        assert_eq!(RawBytes.decode(&raw).unwrap(), raw);
    }
}
