//! permessage-deflate (RFC 7692): offer negotiation and the per-connection compressor and
//! inflater, with a hard bound on the inflated size of a message.
//!
//! ```
//! use ws_core::DeflateConfig;
//! let config = DeflateConfig::default().server_max_window_bits(12);
//! assert_eq!(config.level(), 6);
//! ```

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::{HeaderMap, header};

use crate::error::{Error, Result};

/// The empty stored block that ends a sync flush; stripped when sending and added back
/// before inflating (RFC 7692 section 7.2.1 and 7.2.2).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What the server is willing to negotiate.
#[derive(Debug, Clone)]
pub struct DeflateConfig {
    level: u32,
    server_max_window_bits: u8,
    client_max_window_bits: u8,
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    min_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            level: 6,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            min_size: 64,
        }
    }
}

impl DeflateConfig {
    /// Compression level 0 to 9 (default 6).
    #[must_use]
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Sets the compression level (0 to 9, clamped).
    #[must_use]
    pub fn with_level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// The largest LZ77 window (9 to 15) the server compresses with; smaller saves memory.
    #[must_use]
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits.clamp(9, 15);
        self
    }

    /// Asks clients that allow it to compress with at most this window (8 to 15).
    #[must_use]
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = bits.clamp(8, 15);
        self
    }

    /// Resets the server's compressor after every message (less memory, worse ratio).
    #[must_use]
    pub fn server_no_context_takeover(mut self, yes: bool) -> Self {
        self.server_no_context_takeover = yes;
        self
    }

    /// Asks clients to reset their compressor after every message, so the server's
    /// inflater holds no state between messages.
    #[must_use]
    pub fn client_no_context_takeover(mut self, yes: bool) -> Self {
        self.client_no_context_takeover = yes;
        self
    }

    /// Messages shorter than this are sent uncompressed (default 64 bytes).
    #[must_use]
    pub fn min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }
}

/// The parameters both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window (8 to 15). With 8, which zlib cannot produce for raw
    /// deflate, the server sends every message uncompressed (allowed by RFC 7692 section 6).
    pub server_max_window_bits: u8,
    /// The offer named `server_max_window_bits`, so the response must name it too, even at
    /// 15 (RFC 7692 section 7.1.2.1: a server accepts the parameter by including it).
    pub server_max_window_bits_offered: bool,
    /// The client's window as announced in the response, if it was.
    pub client_max_window_bits: Option<u8>,
    /// Compression level.
    pub level: u32,
    /// Smaller messages are sent uncompressed.
    pub min_size: usize,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value of the response (RFC 7692 section 7.1).
    pub fn response_header(&self) -> String {
        let mut out = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 || self.server_max_window_bits_offered {
            out.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if let Some(bits) = self.client_max_window_bits {
            out.push_str(&format!("; client_max_window_bits={bits}"));
        }
        out
    }
}

/// Picks the first acceptable permessage-deflate offer (RFC 7692 section 5.1); offers with
/// unknown, repeated or out-of-range parameters are declined (section 7.1), not fatal.
pub(crate) fn negotiate(
    headers: &HeaderMap,
    config: &DeflateConfig,
) -> Result<Option<DeflateParams>> {
    for value in headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS) {
        let value = value
            .to_str()
            .map_err(|_| Error::MalformedHeader("Sec-WebSocket-Extensions"))?;
        for offer in value.split(',') {
            let mut items = offer.split(';').map(str::trim);
            if items.next() != Some("permessage-deflate") {
                continue;
            }
            if let Some(params) = accept_offer(items, config) {
                return Ok(Some(params));
            }
        }
    }
    Ok(None)
}

fn accept_offer<'a>(
    items: impl Iterator<Item = &'a str>,
    config: &DeflateConfig,
) -> Option<DeflateParams> {
    let mut server_nct = false;
    let mut client_nct = false;
    let mut server_bits: Option<u8> = None;
    let mut client_bits: Option<Option<u8>> = None;
    for item in items {
        let (name, value) = match item.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (item, None),
        };
        match (name, value) {
            ("server_no_context_takeover", None) if !server_nct => server_nct = true,
            ("client_no_context_takeover", None) if !client_nct => client_nct = true,
            ("server_max_window_bits", Some(value)) if server_bits.is_none() => {
                server_bits = Some(window_bits(value)?);
            }
            ("client_max_window_bits", value) if client_bits.is_none() => {
                client_bits = Some(match value {
                    Some(value) => Some(window_bits(value)?),
                    None => None,
                });
            }
            _ => return None,
        }
    }
    let server_max_window_bits = server_bits.unwrap_or(15).min(config.server_max_window_bits);
    // The response may name client_max_window_bits only if the offer had it (section 7.1.2.2).
    let client_max_window_bits = match client_bits {
        Some(offered) => {
            let bits = offered.unwrap_or(15).min(config.client_max_window_bits);
            (bits < 15 || offered.is_some()).then_some(bits)
        }
        None => None,
    };
    Some(DeflateParams {
        server_no_context_takeover: server_nct || config.server_no_context_takeover,
        client_no_context_takeover: client_nct || config.client_no_context_takeover,
        server_max_window_bits,
        server_max_window_bits_offered: server_bits.is_some(),
        client_max_window_bits,
        level: config.level,
        min_size: config.min_size,
    })
}

/// A window-bits value: 1*DIGIT in 8..=15 (RFC 7692 section 7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// The compressor and inflater of one connection. Both are created on first use, and
/// without context takeover they are dropped after each message, so an idle connection
/// holds no zlib state unless context takeover requires it.
pub(crate) struct Codec {
    params: DeflateParams,
    compress: Option<Compress>,
    decompress: Option<Decompress>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("params", &self.params)
            .field("compressor", &self.compress.is_some())
            .field("inflater", &self.decompress.is_some())
            .finish()
    }
}

impl Codec {
    pub(crate) fn new(params: DeflateParams) -> Self {
        Self {
            params,
            compress: None,
            decompress: None,
        }
    }

    /// Whether to compress a message of `len` bytes.
    pub(crate) fn wants(&self, len: usize) -> bool {
        len >= self.params.min_size && self.params.server_max_window_bits >= 9
    }

    /// Compresses one whole message into `out`, without the sync tail (section 7.2.1).
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let params = &self.params;
        let compress = self.compress.get_or_insert_with(|| {
            Compress::new_with_window_bits(
                Compression::new(params.level),
                false,
                params.server_max_window_bits,
            )
        });
        let start_in = compress.total_in();
        out.reserve(input.len() / 2 + 64);
        loop {
            let consumed = usize::try_from(compress.total_in() - start_in).unwrap_or(usize::MAX);
            let rest = input.get(consumed..).unwrap_or_default();
            compress
                .compress_vec(rest, out, FlushCompress::Sync)
                .map_err(|e| Error::Deflate(e.to_string()))?;
            let consumed = usize::try_from(compress.total_in() - start_in).unwrap_or(usize::MAX);
            // The flush is complete once all input is in and zlib left room in `out`.
            if consumed >= input.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if out.ends_with(&SYNC_TAIL) {
            out.truncate(out.len() - SYNC_TAIL.len());
        }
        if self.params.server_no_context_takeover {
            self.compress = None;
        }
        Ok(())
    }

    /// Inflates one fragment's payload into `out`, failing once `out` would exceed `limit`
    /// (so a small frame cannot expand into a large allocation). `last` appends the sync
    /// tail (section 7.2.2).
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<()> {
        let decompress = self
            .decompress
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
        inflate_into(decompress, input, out, limit)?;
        if last {
            inflate_into(decompress, &SYNC_TAIL, out, limit)?;
            if self.params.client_no_context_takeover {
                self.decompress = None;
            }
        }
        Ok(())
    }

    /// The negotiated parameters.
    pub(crate) fn params(&self) -> &DeflateParams {
        &self.params
    }
}

fn inflate_into(
    decompress: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<()> {
    let start_in = decompress.total_in();
    loop {
        let consumed = usize::try_from(decompress.total_in() - start_in).unwrap_or(usize::MAX);
        let rest = input.get(consumed..).unwrap_or_default();
        // Never reserve past limit + 1: one byte over is enough to know the limit is hit.
        let room = limit.saturating_add(1).saturating_sub(out.len());
        if room == 0 {
            return Err(Error::MessageTooLarge { limit });
        }
        if out.capacity() == out.len() {
            out.reserve_exact(room.min(rest.len().saturating_mul(4).clamp(256, 64 * 1024)));
        }
        let before_out = out.len();
        let status = decompress
            .decompress_vec(rest, out, FlushDecompress::Sync)
            .map_err(|e| Error::Inflate(e.to_string()))?;
        if out.len() > limit {
            return Err(Error::MessageTooLarge { limit });
        }
        let consumed_now = usize::try_from(decompress.total_in() - start_in).unwrap_or(usize::MAX);
        let progressed = consumed_now != consumed || out.len() != before_out;
        if consumed_now >= input.len() && out.len() < out.capacity() {
            return Ok(());
        }
        if status == Status::StreamEnd {
            // A final deflate block: RFC 7692 allows it, but nothing may follow in this
            // message's data within the same stream.
            if consumed_now >= input.len() {
                return Ok(());
            }
            return Err(Error::Inflate("data after the final deflate block".into()));
        }
        if !progressed && out.len() < out.capacity() {
            return Err(Error::Inflate("inflater made no progress".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use http::HeaderValue;

    fn offer(value: &'static str) -> Option<DeflateParams> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(value),
        );
        negotiate(&headers, &DeflateConfig::default()).unwrap()
    }

    #[test]
    fn plain_offer_is_accepted_with_defaults() {
        let params = offer("permessage-deflate").unwrap();
        assert_eq!(params.response_header(), "permessage-deflate");
    }

    #[test]
    fn browser_offer_is_accepted() {
        let params = offer("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(params.response_header(), "permessage-deflate");
        let params = offer("permessage-deflate; client_max_window_bits=10").unwrap();
        assert_eq!(
            params.response_header(),
            "permessage-deflate; client_max_window_bits=10"
        );
    }

    /// RFC 7692 section 7.1.2.1: an accepted `server_max_window_bits` offer is answered with
    /// the parameter, with the same or a smaller value, even when it is the default 15.
    #[test]
    fn offered_server_max_window_bits_is_echoed() {
        let params = offer("permessage-deflate; server_max_window_bits=15").unwrap();
        assert_eq!(
            params.response_header(),
            "permessage-deflate; server_max_window_bits=15"
        );
        let params = offer("permessage-deflate; server_max_window_bits=10").unwrap();
        assert_eq!(
            params.response_header(),
            "permessage-deflate; server_max_window_bits=10"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static("permessage-deflate; server_max_window_bits=15"),
        );
        let config = DeflateConfig::default().server_max_window_bits(12);
        let params = negotiate(&headers, &config).unwrap().unwrap();
        assert_eq!(
            params.response_header(),
            "permessage-deflate; server_max_window_bits=12"
        );
    }

    #[test]
    fn bad_offer_is_declined_and_the_next_one_taken() {
        let params = offer(
            "permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=10; server_no_context_takeover",
        )
        .unwrap();
        assert_eq!(params.server_max_window_bits, 10);
        assert!(params.server_no_context_takeover);
        assert!(offer("permessage-deflate; foo").is_none());
        assert!(offer("permessage-deflate; server_max_window_bits").is_none());
        assert!(offer("x-webkit-deflate-frame").is_none());
    }

    #[test]
    fn round_trip_with_context_takeover() {
        let params = offer("permessage-deflate").unwrap();
        let mut ours = Codec::new(params.clone());
        let mut theirs = Codec::new(params);
        for round in 0..3 {
            let message = format!("hello hello hello hello {round}").repeat(20);
            let mut wire = Vec::new();
            ours.compress(message.as_bytes(), &mut wire).unwrap();
            assert!(wire.len() < message.len());
            let mut back = Vec::new();
            theirs.inflate(&wire, true, &mut back, 1 << 20).unwrap();
            assert_eq!(back, message.as_bytes());
        }
    }

    #[test]
    fn inflate_bomb_stops_at_the_limit() {
        let params = offer("permessage-deflate").unwrap();
        let mut ours = Codec::new(params.clone());
        let zeros = vec![0u8; 10 << 20];
        let mut wire = Vec::new();
        ours.compress(&zeros, &mut wire).unwrap();
        assert!(wire.len() < 20_000, "10 MiB of zeros deflate small");
        let mut theirs = Codec::new(params);
        let mut back = Vec::new();
        let error = theirs
            .inflate(&wire, true, &mut back, 64 * 1024)
            .unwrap_err();
        assert!(matches!(error, Error::MessageTooLarge { limit: 65536 }));
        assert!(back.capacity() <= 64 * 1024 + 1);
    }
}
