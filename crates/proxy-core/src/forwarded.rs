//! Header hygiene for a proxy: hop-by-hop removal, `Forwarded` (RFC 7239), `X-Forwarded-*`
//! and `Via` (RFC 9110 section 7.6.3), read only from a configured chain of trusted proxies.
//!
//! ```
//! use std::net::IpAddr;
//! use http::HeaderMap;
//! use proxy_core::{ForwardContext, ForwardHeaders, TrustedProxies, apply_forwarding, remove_hop_by_hop};
//!
//! let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
//! let mut headers = HeaderMap::new();
//! headers.insert("connection", "close, x-secret".parse().unwrap());
//! headers.insert("x-secret", "1".parse().unwrap());
//! headers.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
//! remove_hop_by_hop(&mut headers);
//! assert!(headers.get("x-secret").is_none());
//!
//! // The peer is not trusted: its X-Forwarded-For is discarded, not extended.
//! let peer: IpAddr = "198.51.100.7".parse().unwrap();
//! let ctx = ForwardContext { peer, proto: "http", host: Some("example.com"), trusted: &trusted, pseudonym: "proxy", version: http::Version::HTTP_11, write: ForwardHeaders::ALL };
//! apply_forwarding(&mut headers, &ctx);
//! assert_eq!(headers["x-forwarded-for"], "198.51.100.7");
//! assert_eq!(headers["forwarded"], "for=198.51.100.7;proto=http;host=example.com");
//! assert_eq!(headers["via"], "1.1 proxy");
//! ```

use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{
    AsHeaderName, CONNECTION, FORWARDED, HeaderName, HeaderValue, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRANSFER_ENCODING, UPGRADE, VIA,
};
use http::{HeaderMap, Version};

use crate::error::{Error, Result};

/// Hop-by-hop headers a proxy never forwards (RFC 9110 section 7.6.1, plus the legacy
/// `Keep-Alive` and `Proxy-Connection`, and the proxy credentials of RFC 9110 section
/// 11.7).
///
/// `Trailer` is not among them: RFC 2616 listed it, RFC 9110 does not. It announces the
/// trailer fields of the message end to end, and an HTTP/1.1 server (hyper's) sends a
/// chunked body's trailer fields only when the head names them in it.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// [`HOP_BY_HOP`] as header names. Looking a header up by `&str` parses the name on every
/// call; these are parsed once, at compile time (a `static`, so using it builds nothing).
static HOP_BY_HOP_NAMES: [HeaderName; 8] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the few names present (comparing standard names is an integer
    // compare) marks the hop-by-hop ones; only those are removed, which is cheaper than
    // eight hashed lookups, most of them for absent names. Nothing is allocated: the marks
    // are bits, and the names `Connection` lists are looked up as `&str`, which parses
    // them on the stack (most responses carry `Connection: keep-alive`).
    let mut present = 0_u16;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP_NAMES.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        // `HOP_BY_HOP_NAMES[0]` is `Connection`. Its values are cheap to clone (shared
        // bytes); a second value is rare, so the list stays unallocated.
        let mut values = headers.get_all(CONNECTION).iter();
        let first = values.next().cloned();
        let rest: Vec<HeaderValue> = values.cloned().collect();
        for value in first.iter().chain(&rest) {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split(',').map(str::trim) {
                headers.remove(token);
            }
        }
    }
    for (i, name) in HOP_BY_HOP_NAMES.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a /32 or /128).
    ///
    /// # Errors
    /// [`Error::Cidr`] when the address or prefix is malformed.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Cidr(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is inside the network (IPv4-mapped IPv6 addresses match IPv4 networks).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Which header [`client_address`] reads the client's address from, when the peer is a
/// trusted proxy. Exactly one is believed: a front that writes one of them may pass the
/// other through from the client unchanged, so falling back from one to the other would let
/// a client choose its own address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAddressHeader {
    /// `X-Forwarded-For` (the default: what most fronts append to).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for` parameters.
    Forwarded,
}

impl ClientAddressHeader {
    /// Parses `x-forwarded-for` or `forwarded` (any case).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(Error::Config(format!(
                "unknown client address header {name:?} (x-forwarded-for, forwarded)"
            ))),
        }
    }
}

/// Request headers that proxies and web frameworks read as the client's address, scheme,
/// host, port, path prefix or original URL, beyond the five that [`apply_forwarding`]
/// writes. [`apply_forwarding`] removes them from an untrusted peer's request (by default;
/// see [`TrustedProxies::with_untrusted_headers`]): an origin or a cache in front of it
/// that believes one of them would let any client steer redirects, links or access checks,
/// or poison cached pages keyed only on host and path.
pub const UNTRUSTED_FORWARDING_HEADERS: [&str; 17] = [
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-forwarded",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "front-end-https",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
];

/// The proxies whose forwarding headers are believed, which header carries the client's
/// address, and which headers an untrusted peer may not pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
    client_header: ClientAddressHeader,
    untrusted: UntrustedNames,
}

/// The headers removed from an untrusted peer's request, with a quick filter in front:
/// most of a request's headers (`Host`, `Accept`, `User-Agent`, ...) differ from every
/// listed name in length or first byte, and are then passed without comparing them with
/// each of the (by default seventeen) names. [`apply_forwarding`] asks this for every
/// header of every request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UntrustedNames {
    names: Vec<HeaderName>,
    /// Bit `n` is set when a listed name is `n` bytes long (bit 63: 63 or longer).
    lengths: u64,
    /// Bit `b` is set when a listed name starts with the byte `b` (names are ASCII).
    firsts: u128,
}

impl UntrustedNames {
    fn new(names: Vec<HeaderName>) -> Self {
        let (mut lengths, mut firsts) = (0_u64, 0_u128);
        for name in &names {
            let text = name.as_str().as_bytes();
            lengths |= 1 << text.len().min(63);
            if let Some(&first) = text.first() {
                firsts |= 1 << (first & 127);
            }
        }
        Self {
            names,
            lengths,
            firsts,
        }
    }

    fn contains(&self, name: &HeaderName) -> bool {
        let text = name.as_str().as_bytes();
        self.lengths & (1 << text.len().min(63)) != 0
            && text
                .first()
                .is_some_and(|&first| self.firsts & (1 << (first & 127)) != 0)
            && self.names.contains(name)
    }
}

impl Default for TrustedProxies {
    fn default() -> Self {
        Self::none()
    }
}

fn default_untrusted() -> Vec<HeaderName> {
    UNTRUSTED_FORWARDING_HEADERS
        .iter()
        .map(|n| HeaderName::from_static(n))
        .collect()
}

impl TrustedProxies {
    /// Trusts nobody: every client is its TCP peer.
    #[must_use]
    pub fn none() -> Self {
        Self {
            blocks: Vec::new(),
            client_header: ClientAddressHeader::default(),
            untrusted: UntrustedNames::new(default_untrusted()),
        }
    }

    /// Parses a list of CIDR blocks. The client's address is then read from
    /// `X-Forwarded-For` ([`Self::with_client_header`] to change it), and
    /// [`UNTRUSTED_FORWARDING_HEADERS`] are removed from other peers' requests.
    ///
    /// # Errors
    /// [`Error::Cidr`] for the first malformed block.
    pub fn parse<'a>(blocks: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let blocks = blocks.into_iter().map(Cidr::parse).collect::<Result<_>>()?;
        Ok(Self {
            blocks,
            ..Self::none()
        })
    }

    /// Reads the client's address from `header` only (see [`client_address`]).
    #[must_use]
    pub fn with_client_header(mut self, header: ClientAddressHeader) -> Self {
        self.client_header = header;
        self
    }

    /// The header the client's address is read from.
    #[must_use]
    pub fn client_header(&self) -> ClientAddressHeader {
        self.client_header
    }

    /// Replaces [`UNTRUSTED_FORWARDING_HEADERS`] by `names`: the headers removed from an
    /// untrusted peer's request by [`apply_forwarding`] (the five it writes always are).
    ///
    /// # Errors
    /// [`Error::Config`] for a name that is not a valid header name.
    pub fn with_untrusted_headers<'a>(
        mut self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self> {
        self.untrusted = UntrustedNames::new(
            names
                .into_iter()
                .map(|n| {
                    HeaderName::from_bytes(n.trim().as_bytes())
                        .map_err(|_| Error::Config(format!("{n:?} is not a header name")))
                })
                .collect::<Result<_>>()?,
        );
        Ok(self)
    }

    /// The headers removed from an untrusted peer's request.
    #[must_use]
    pub fn untrusted_headers(&self) -> &[HeaderName] {
        &self.untrusted.names
    }

    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|c| c.contains(ip))
    }
}

/// One `forwarded-element` of RFC 7239 section 4.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardedElement {
    /// The `for` parameter, unquoted.
    pub for_node: Option<String>,
    /// The `by` parameter, unquoted.
    pub by: Option<String>,
    /// The `host` parameter, unquoted.
    pub host: Option<String>,
    /// The `proto` parameter.
    pub proto: Option<String>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a `Forwarded` header value (RFC 7239 section 4): elements separated by commas,
/// pairs by semicolons, values tokens or quoted strings. A repeated parameter in one element
/// is an error (section 4: "each parameter MUST NOT occur more than once").
///
/// # Errors
/// [`Error::Forwarded`] with the offending byte offset.
pub fn parse_forwarded(value: &str) -> Result<Vec<ForwardedElement>> {
    let bytes = value.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let mut element = ForwardedElement::default();
    let skip_ows = |i: &mut usize| {
        while bytes.get(*i).is_some_and(|b| *b == b' ' || *b == b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ows(&mut i);
        let start = i;
        while bytes.get(i).copied().is_some_and(is_tchar) {
            i += 1;
        }
        if i == start {
            return Err(Error::Forwarded(i));
        }
        let name = value
            .get(start..i)
            .ok_or(Error::Forwarded(start))?
            .to_ascii_lowercase();
        if bytes.get(i) != Some(&b'=') {
            return Err(Error::Forwarded(i));
        }
        i += 1;
        let v = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let mut s = String::new();
            loop {
                match bytes.get(i) {
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let c = *bytes.get(i + 1).ok_or(Error::Forwarded(i))?;
                        if !(c == b'\t' || (0x20..0x7f).contains(&c)) {
                            return Err(Error::Forwarded(i + 1));
                        }
                        s.push(char::from(c));
                        i += 2;
                    }
                    Some(&c) if c == b'\t' || (0x20..0x7f).contains(&c) => {
                        s.push(char::from(c));
                        i += 1;
                    }
                    _ => return Err(Error::Forwarded(i)),
                }
            }
            s
        } else {
            let vs = i;
            while bytes.get(i).copied().is_some_and(is_tchar) {
                i += 1;
            }
            if i == vs {
                return Err(Error::Forwarded(i));
            }
            value.get(vs..i).ok_or(Error::Forwarded(vs))?.to_owned()
        };
        let slot = match name.as_str() {
            "for" => Some(&mut element.for_node),
            "by" => Some(&mut element.by),
            "host" => Some(&mut element.host),
            "proto" => Some(&mut element.proto),
            _ => None,
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return Err(Error::Forwarded(start));
            }
            *slot = Some(v);
        }
        skip_ows(&mut i);
        match bytes.get(i) {
            None => {
                out.push(element);
                return Ok(out);
            }
            Some(b';') => i += 1,
            Some(b',') => {
                i += 1;
                out.push(std::mem::take(&mut element));
            }
            Some(_) => return Err(Error::Forwarded(i)),
        }
    }
}

/// The IP address in a `Forwarded` node (`192.0.2.1`, `"[2001:db8::1]:80"`, `1.2.3.4:80`);
/// `None` for `unknown`, obfuscated identifiers and malformed nodes.
#[must_use]
pub fn node_ip(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        let (addr, _) = rest.split_once(']')?;
        return addr.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = node.parse::<std::net::Ipv4Addr>() {
        return Some(IpAddr::V4(ip));
    }
    let (addr, _port) = node.rsplit_once(':')?;
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Parses an `X-Forwarded-For` value: comma-separated IP addresses.
///
/// # Errors
/// [`Error::XForwardedFor`] for the first entry that is not an address.
pub fn parse_x_forwarded_for(value: &str) -> Result<Vec<IpAddr>> {
    value
        .split(',')
        .map(str::trim)
        .map(|e| {
            e.parse::<IpAddr>()
                .ok()
                .or_else(|| node_ip(e))
                .ok_or_else(|| Error::XForwardedFor(e.to_owned()))
        })
        .collect()
}

/// The values of `name` joined with `, `: `None` when absent, `Some(None)` when a value is
/// not visible ASCII (present but unreadable, which is not the same as absent).
fn joined<K: AsHeaderName>(headers: &HeaderMap, name: K) -> Option<Option<String>> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let parts: Option<Vec<&str>> = values.map(|v| v.to_str().ok()).collect();
    Some(parts.map(|p| p.join(", ")))
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// rightmost address that is not itself trusted in the one header the trusted proxies are
/// configured to write ([`TrustedProxies::with_client_header`]; `X-Forwarded-For` by
/// default). The other header is never consulted. A chain that is absent, unreadable (not
/// visible ASCII) or malformed is not believed: the peer is the answer.
#[must_use]
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let chain: Option<Vec<IpAddr>> = match trusted.client_header {
        ClientAddressHeader::XForwardedFor => joined(headers, X_FORWARDED_FOR)
            .flatten()
            .and_then(|xff| parse_x_forwarded_for(&xff).ok()),
        ClientAddressHeader::Forwarded => joined(headers, FORWARDED)
            .flatten()
            .and_then(|fwd| parse_forwarded(&fwd).ok())
            .and_then(|els| {
                els.iter()
                    .map(|e| e.for_node.as_deref().and_then(node_ip))
                    .collect()
            }),
    };
    let Some(chain) = chain else { return peer };
    chain
        .iter()
        .rev()
        .find(|ip| !trusted.contains(**ip))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

/// What [`apply_forwarding`] needs to know about the hop.
#[derive(Debug, Clone)]
pub struct ForwardContext<'a> {
    /// The TCP peer.
    pub peer: IpAddr,
    /// `http` or `https`, as the client reached the proxy.
    pub proto: &'a str,
    /// The `Host` the client asked for.
    pub host: Option<&'a str>,
    /// Whose forwarding headers to keep.
    pub trusted: &'a TrustedProxies,
    /// The proxy's name in `Via`.
    pub pseudonym: &'a str,
    /// The request's HTTP version, for `Via`.
    pub version: Version,
    /// Which headers to write.
    pub write: ForwardHeaders,
}

/// Which forwarding headers [`apply_forwarding`] writes for a hop. All by default.
///
/// A header left out is still removed when it comes from an untrusted peer, so the origin
/// never sees a client's forged value; from a trusted peer it passes unchanged. Leaving out
/// `Via` departs from RFC 9110 section 7.6.3 (a proxy must send it); it is allowed because
/// deployments hide their proxies, as nginx does by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // one switch per header, named as the header
pub struct ForwardHeaders {
    /// `Forwarded` (RFC 7239).
    pub forwarded: bool,
    /// `X-Forwarded-For`.
    pub x_forwarded_for: bool,
    /// `X-Forwarded-Proto`.
    pub x_forwarded_proto: bool,
    /// `X-Forwarded-Host`.
    pub x_forwarded_host: bool,
    /// `Via` (RFC 9110 section 7.6.3).
    pub via: bool,
}

impl ForwardHeaders {
    /// Every header.
    pub const ALL: Self = Self {
        forwarded: true,
        x_forwarded_for: true,
        x_forwarded_proto: true,
        x_forwarded_host: true,
        via: true,
    };
    /// No header (untrusted values are still removed).
    pub const NONE: Self = Self {
        forwarded: false,
        x_forwarded_for: false,
        x_forwarded_proto: false,
        x_forwarded_host: false,
        via: false,
    };

    /// How many headers [`apply_forwarding`] adds at most with this set, so that a caller
    /// adding fields of its own can make room for all of them at once.
    #[must_use]
    pub fn count(self) -> usize {
        [
            self.forwarded,
            self.x_forwarded_for,
            self.x_forwarded_proto,
            self.x_forwarded_host,
            self.via,
        ]
        .into_iter()
        .filter(|on| *on)
        .count()
    }

    /// The set named by header names (`forwarded`, `x-forwarded-for`, `x-forwarded-proto`,
    /// `x-forwarded-host`, `via`; any case).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming an unknown header.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut set = Self::NONE;
        for name in names {
            let switch = match name.to_ascii_lowercase().as_str() {
                "forwarded" => &mut set.forwarded,
                "x-forwarded-for" => &mut set.x_forwarded_for,
                "x-forwarded-proto" => &mut set.x_forwarded_proto,
                "x-forwarded-host" => &mut set.x_forwarded_host,
                "via" => &mut set.via,
                _ => {
                    return Err(Error::Config(format!(
                        "unknown forwarding header {name:?} (forwarded, x-forwarded-for, \
                         x-forwarded-proto, x-forwarded-host, via)"
                    )));
                }
            };
            *switch = true;
        }
        Ok(set)
    }
}

impl Default for ForwardHeaders {
    fn default() -> Self {
        Self::ALL
    }
}

/// Appends the dotted-decimal form of `ip`, as `Display` writes it but without the
/// formatting machinery, which cost more than the rest of [`apply_forwarding`].
fn push_ipv4(out: &mut String, ip: std::net::Ipv4Addr) {
    // Digits and dots only: always UTF-8.
    if let Ok(text) = std::str::from_utf8(&ipv4_text(ip)) {
        out.push_str(text);
    }
}

/// The dotted-decimal form of `ip`, at most 15 bytes, on the stack.
fn ipv4_text(ip: std::net::Ipv4Addr) -> ArrayText {
    let mut text = [0u8; 15];
    let mut len = 0;
    let mut put = |b: u8| {
        if let Some(slot) = text.get_mut(len) {
            *slot = b;
            len += 1;
        }
    };
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            put(b'.');
        }
        if octet >= 100 {
            put(b'0' + octet / 100);
        }
        if octet >= 10 {
            put(b'0' + octet / 10 % 10);
        }
        put(b'0' + octet % 10);
    }
    ArrayText { text, len }
}

/// Text of at most 15 bytes held on the stack.
struct ArrayText {
    text: [u8; 15],
    len: usize,
}

impl std::ops::Deref for ArrayText {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.text.get(..self.len).unwrap_or_default()
    }
}

/// Appends `v` to `out` as a `Forwarded` value (RFC 7239 section 4): a token as it is,
/// anything else as a quoted string with `"` and `\\` escaped and controls but HTAB dropped.
fn push_forwarded_value(out: &mut String, v: &str) {
    if !v.is_empty() && v.bytes().all(is_tchar) {
        out.push_str(v);
    } else if v
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        // Nothing to escape or drop (a `host:port`, say): copied in one piece.
        out.push('"');
        out.push_str(v);
        out.push('"');
    } else {
        out.push('"');
        for c in v.chars().filter(|c| *c == '\t' || (' '..='~').contains(c)) {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
}

/// One of the four forwarding headers [`apply_forwarding`] removes from an untrusted peer.
fn is_forwarding_name(name: &HeaderName) -> bool {
    *name == FORWARDED
        || *name == X_FORWARDED_FOR
        || *name == X_FORWARDED_PROTO
        || *name == X_FORWARDED_HOST
}

/// Writes `Forwarded`, `X-Forwarded-For`, `-Proto`, `-Host` and `Via` for this hop. From an
/// untrusted peer, incoming forwarding headers are discarded first (a client cannot forge
/// its address), and so are [`TrustedProxies::untrusted_headers`] (`X-Real-IP`,
/// `X-Forwarded-Prefix`, `X-Original-URL`, ...); from a trusted one, they are kept and
/// extended (a malformed `Forwarded` is dropped rather than extended).
pub fn apply_forwarding(headers: &mut HeaderMap, ctx: &ForwardContext<'_>) {
    let trusted = ctx.trusted.contains(ctx.peer);
    // One pass over the few names present instead of a hashed removal per listed name
    // (seventeen by default, most of them absent): this runs for every request.
    let mut forwarding_present = false;
    if !trusted {
        let untrusted: Vec<HeaderName> = headers
            .keys()
            .inspect(|name| forwarding_present |= is_forwarding_name(name))
            .filter(|name| ctx.trusted.untrusted.contains(name))
            .cloned()
            .collect();
        for name in untrusted {
            headers.remove(name);
        }
    }
    let write = ctx.write;
    // Each value is built in one string and handed to the map without another copy; the
    // proxy runs this for every request.
    let forwarded = write.forwarded.then(|| {
        let mut forwarded = match trusted
            .then(|| joined(headers, FORWARDED))
            .flatten()
            .flatten()
        {
            Some(prev) if trusted && parse_forwarded(&prev).is_ok() => prev + ", ",
            _ => String::with_capacity(64),
        };
        match ctx.peer {
            IpAddr::V4(v4) => {
                forwarded.push_str("for=");
                push_ipv4(&mut forwarded, v4);
            }
            IpAddr::V6(v6) => {
                let _ = write!(forwarded, "for=\"[{v6}]\"");
            }
        }
        forwarded.push_str(";proto=");
        push_forwarded_value(&mut forwarded, ctx.proto);
        if let Some(h) = ctx.host {
            forwarded.push_str(";host=");
            push_forwarded_value(&mut forwarded, h);
        }
        HeaderValue::try_from(forwarded).ok()
    });
    let xff = write.x_forwarded_for.then(|| {
        let extends = trusted && headers.contains_key(X_FORWARDED_FOR);
        if let (false, IpAddr::V4(v4)) = (extends, ctx.peer) {
            // The common case, a client's own request: the address alone, copied once into
            // its value (a `String` made into a value costs a second allocation).
            return HeaderValue::from_bytes(&ipv4_text(v4)).ok();
        }
        let mut xff = match trusted
            .then(|| joined(headers, X_FORWARDED_FOR))
            .flatten()
            .flatten()
        {
            Some(prev) if trusted && parse_x_forwarded_for(&prev).is_ok() => prev + ", ",
            _ => String::with_capacity(16),
        };
        match ctx.peer {
            IpAddr::V4(v4) => push_ipv4(&mut xff, v4),
            IpAddr::V6(v6) => {
                let _ = write!(xff, "{v6}");
            }
        }
        HeaderValue::try_from(xff).ok()
    });
    // From a trusted peer, its first X-Forwarded-Proto / -Host value is kept (as text);
    // otherwise the hop's own.
    let kept = |name: &HeaderName| {
        headers
            .get(name)
            .filter(|v| trusted && v.to_str().is_ok())
            .cloned()
    };
    let proto = write
        .x_forwarded_proto
        .then(|| kept(&X_FORWARDED_PROTO).or_else(|| HeaderValue::from_str(ctx.proto).ok()));
    let host = write.x_forwarded_host.then(|| {
        kept(&X_FORWARDED_HOST).or_else(|| ctx.host.and_then(|h| HeaderValue::from_str(h).ok()))
    });
    let via = write.via.then(|| {
        let protocol = match ctx.version {
            Version::HTTP_10 => "1.0",
            Version::HTTP_2 => "2",
            Version::HTTP_3 => "3",
            _ => "1.1",
        };
        let mut via = match joined(headers, VIA).flatten() {
            Some(prev) => prev + ", ",
            None => String::with_capacity(protocol.len() + 1 + ctx.pseudonym.len()),
        };
        via.push_str(protocol);
        via.push(' ');
        via.push_str(ctx.pseudonym);
        HeaderValue::try_from(via).ok()
    });
    for (name, value) in [
        (FORWARDED, forwarded),
        (X_FORWARDED_FOR, xff),
        (X_FORWARDED_PROTO, proto),
        (X_FORWARDED_HOST, host),
        (VIA, via),
    ] {
        match value {
            // `insert` replaces every earlier value of the header.
            Some(Some(v)) => {
                headers.insert(name, v);
            }
            // Written but empty (an unusable value): nothing of the client's is left.
            Some(None) => {
                headers.remove(name);
            }
            // Not written: a trusted peer's value passes, an untrusted one's is dropped
            // (`Via` describes the chain and passes from anyone, as before).
            None if !trusted && forwarding_present && name != VIA => {
                headers.remove(name);
            }
            None => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_includes_connection_named() {
        let mut h = HeaderMap::new();
        h.append("connection", "keep-alive, X-Foo".parse().unwrap());
        h.append("connection", "x-bar".parse().unwrap());
        for n in [
            "x-foo",
            "x-bar",
            "keep-alive",
            "te",
            "upgrade",
            "proxy-authorization",
            "x-keep",
        ] {
            h.insert(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                "1".parse().unwrap(),
            );
        }
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));

        // `Trailer` is end to end (RFC 9110 section 6.6.2): kept unless `Connection` names
        // it.
        let mut h = HeaderMap::new();
        h.insert("trailer", "x-sum".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["trailer"], "x-sum");
        h.insert("connection", "trailer".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn the_untrusted_filter_decides_as_the_plain_list() {
        let long = "x-".repeat(40);
        let custom = ["x-a", "9-digits-first", long.as_str(), "accept-language"];
        let lists = [
            TrustedProxies::none(),
            TrustedProxies::none()
                .with_untrusted_headers(custom)
                .unwrap(),
            TrustedProxies::none().with_untrusted_headers([]).unwrap(),
        ];
        let mut probes: Vec<String> = UNTRUSTED_FORWARDING_HEADERS
            .iter()
            .map(|n| (*n).to_owned())
            .collect();
        probes.extend(custom.iter().map(|n| (*n).to_owned()));
        probes.extend(
            [
                "host",
                "accept",
                "accept-encoding",
                "cookie",
                "x-hosts",
                "x-real-iq",
                "y-real-ip",
                "x-b",
                "9-digits-firsT",
                "content-type",
                "forwarded",
                "x-forwarded-for",
                "te",
                "x",
            ]
            .map(str::to_owned),
        );
        probes.push("x-".repeat(41));
        probes.push(format!("{long}-"));
        for list in &lists {
            for probe in &probes {
                let name = HeaderName::from_bytes(probe.as_bytes()).unwrap();
                assert_eq!(
                    list.untrusted.contains(&name),
                    list.untrusted_headers().contains(&name),
                    "{probe}"
                );
            }
        }
        // And it does say yes.
        assert!(
            lists[0]
                .untrusted
                .contains(&HeaderName::from_static("x-real-ip"))
        );
        assert!(
            lists[1]
                .untrusted
                .contains(&HeaderName::from_bytes(long.as_bytes()).unwrap())
        );
    }

    #[test]
    fn cidr() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8:1::1".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn forwarded_grammar() {
        let e = parse_forwarded(r#"for="_gazonk", For="[2001:db8:cafe::17]:4711";proto=https, for=192.0.2.43;by=203.0.113.60"#).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].for_node.as_deref(), Some("[2001:db8:cafe::17]:4711"));
        assert_eq!(e[1].proto.as_deref(), Some("https"));
        assert_eq!(
            node_ip(e[1].for_node.as_deref().unwrap()),
            Some("2001:db8:cafe::17".parse().unwrap())
        );
        assert_eq!(node_ip("_gazonk"), None);
        for bad in [
            "for",
            "for=",
            "for=a;for=b",
            "for=\"open",
            "for=a b",
            ",",
            "for=a,",
            "=x",
        ] {
            assert!(parse_forwarded(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_forwarded(r#"for="a\"b""#).unwrap()[0]
                .for_node
                .as_deref(),
            Some("a\"b")
        );
    }

    #[test]
    fn client_address_walks_trusted_chain() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.5, 10.0.0.7".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            client_address(proxy, &h, &trusted),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_address(stranger, &h, &trusted), stranger);
        h.insert("x-forwarded-for", "junk".parse().unwrap());
        assert_eq!(client_address(proxy, &h, &trusted), proxy);
        h.remove("x-forwarded-for");
        h.insert("forwarded", "for=192.0.2.9, for=10.1.1.1".parse().unwrap());
        let trusted = trusted.with_client_header(ClientAddressHeader::Forwarded);
        assert_eq!(
            client_address(proxy, &h, &trusted),
            "192.0.2.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn unreadable_x_forwarded_for_means_the_peer() {
        // Issue 14 finding 4: a front appends to X-Forwarded-For; the client sent a value
        // that is not visible ASCII plus a Forwarded naming an address of its choice.
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\x80, 203.0.113.5").unwrap(),
        );
        h.insert("forwarded", "for=192.0.2.77".parse().unwrap());
        assert_eq!(client_address(proxy, &h, &trusted), proxy);
        // A second, unreadable value among readable ones: still the peer.
        h.insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
        h.append("x-forwarded-for", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(client_address(proxy, &h, &trusted), proxy);
        // Absent X-Forwarded-For: Forwarded is not consulted unless configured.
        h.remove("x-forwarded-for");
        assert_eq!(client_address(proxy, &h, &trusted), proxy);
        let by_forwarded = trusted.with_client_header(ClientAddressHeader::Forwarded);
        assert_eq!(
            client_address(proxy, &h, &by_forwarded),
            "192.0.2.77".parse::<IpAddr>().unwrap()
        );
        // Then X-Forwarded-For is ignored, and an unreadable Forwarded means the peer.
        h.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        assert_eq!(
            client_address(proxy, &h, &by_forwarded),
            "192.0.2.77".parse::<IpAddr>().unwrap()
        );
        h.insert("forwarded", HeaderValue::from_bytes(b"for=\x80").unwrap());
        assert_eq!(client_address(proxy, &h, &by_forwarded), proxy);
        assert_eq!(
            ClientAddressHeader::from_name("Forwarded").unwrap(),
            ClientAddressHeader::Forwarded
        );
        assert!(ClientAddressHeader::from_name("x-real-ip").is_err());
    }

    #[test]
    fn untrusted_peers_lose_unkeyed_forwarding_headers() {
        // Issue 14 finding 9.
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let incoming = || {
            let mut h = HeaderMap::new();
            for name in UNTRUSTED_FORWARDING_HEADERS {
                h.insert(
                    HeaderName::from_static(name),
                    "//evil.example".parse().unwrap(),
                );
            }
            h.insert("x-kept", "1".parse().unwrap());
            h
        };
        let ctx = |peer: &str| ForwardContext {
            peer: peer.parse().unwrap(),
            proto: "http",
            host: Some("example.com"),
            trusted: &trusted,
            pseudonym: "p",
            version: Version::HTTP_11,
            write: ForwardHeaders::NONE,
        };
        let mut h = incoming();
        apply_forwarding(&mut h, &ctx("198.51.100.7"));
        for name in UNTRUSTED_FORWARDING_HEADERS {
            assert!(
                h.get(name).is_none(),
                "{name} passed from an untrusted peer"
            );
        }
        assert_eq!(h["x-kept"], "1");
        // From a trusted front they pass.
        let mut h = incoming();
        apply_forwarding(&mut h, &ctx("10.0.0.1"));
        assert_eq!(h["x-real-ip"], "//evil.example");
        // The list is configurable.
        let custom = trusted
            .clone()
            .with_untrusted_headers(["X-Custom-Ip"])
            .unwrap();
        assert!(
            trusted
                .clone()
                .with_untrusted_headers(["bad name"])
                .is_err()
        );
        let mut h = incoming();
        h.insert("x-custom-ip", "6.6.6.6".parse().unwrap());
        apply_forwarding(
            &mut h,
            &ForwardContext {
                trusted: &custom,
                ..ctx("198.51.100.7")
            },
        );
        assert!(h.get("x-custom-ip").is_none());
        assert_eq!(h["x-real-ip"], "//evil.example");
    }

    #[test]
    fn trusted_peer_chain_is_extended() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
        h.insert("forwarded", "for=203.0.113.5".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert("via", "1.1 edge".parse().unwrap());
        let ctx = ForwardContext {
            peer: "::1".parse().unwrap(),
            proto: "http",
            host: Some("a b"),
            trusted: &trusted,
            pseudonym: "mid",
            version: Version::HTTP_10,
            write: ForwardHeaders::ALL,
        };
        // ::1 is not trusted: everything restarts.
        let mut h2 = h.clone();
        apply_forwarding(&mut h2, &ctx);
        assert_eq!(h2["forwarded"], r#"for="[::1]";proto=http;host="a b""#);
        assert_eq!(h2["x-forwarded-proto"], "http");
        assert_eq!(h2["via"], "1.1 edge, 1.0 mid");
        let ctx = ForwardContext {
            peer: "10.0.0.3".parse().unwrap(),
            ..ctx
        };
        apply_forwarding(&mut h, &ctx);
        assert_eq!(h["x-forwarded-for"], "203.0.113.5, 10.0.0.3");
        assert_eq!(
            h["forwarded"],
            r#"for=203.0.113.5, for=10.0.0.3;proto=http;host="a b""#
        );
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn forwarded_values_are_quoted_and_host_follows_trust() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-host", "kept.example".parse().unwrap());
        h.append("x-forwarded-proto", "https".parse().unwrap());
        h.append("x-forwarded-proto", "http".parse().unwrap());
        let ctx = ForwardContext {
            peer: "10.0.0.3".parse().unwrap(),
            proto: "http",
            host: Some("q\"b\\s\tx"),
            trusted: &trusted,
            pseudonym: "p",
            version: Version::HTTP_11,
            write: ForwardHeaders::ALL,
        };
        let mut from_trusted = h.clone();
        apply_forwarding(&mut from_trusted, &ctx);
        assert_eq!(
            from_trusted["forwarded"],
            "for=10.0.0.3;proto=http;host=\"q\\\"b\\\\s\tx\""
        );
        assert_eq!(from_trusted["x-forwarded-host"], "kept.example");
        // Several values collapse to the trusted peer's first one.
        assert_eq!(from_trusted.get_all("x-forwarded-proto").iter().count(), 1);
        assert_eq!(from_trusted["x-forwarded-proto"], "https");
        // From an untrusted peer without a Host, its X-Forwarded-Host is dropped.
        let ctx = ForwardContext {
            peer: "192.0.2.1".parse().unwrap(),
            host: None,
            ..ctx
        };
        apply_forwarding(&mut h, &ctx);
        assert!(h.get("x-forwarded-host").is_none());
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["forwarded"], "for=192.0.2.1;proto=http");
        assert_eq!(h["via"], "1.1 p");
    }

    #[test]
    fn ipv4_is_written_as_display_writes_it() {
        for ip in [
            "0.0.0.0",
            "10.0.9.99",
            "100.200.255.1",
            "127.0.0.1",
            "255.255.255.255",
        ] {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            let mut out = String::new();
            push_ipv4(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
    }

    #[test]
    fn chosen_headers_only_and_untrusted_leftovers_dropped() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let write = ForwardHeaders::from_names(["X-Forwarded-For", "via"]).unwrap();
        assert!(write.x_forwarded_for && write.via && !write.forwarded);
        assert_eq!(write.count(), 2);
        assert_eq!(ForwardHeaders::ALL.count(), 5);
        assert_eq!(ForwardHeaders::NONE.count(), 0);
        assert!(ForwardHeaders::from_names(["x-real-ip"]).is_err());
        let incoming = || {
            let mut h = HeaderMap::new();
            h.insert("forwarded", "for=192.0.2.1".parse().unwrap());
            h.insert("x-forwarded-proto", "https".parse().unwrap());
            h.insert("x-forwarded-for", "192.0.2.1".parse().unwrap());
            h
        };
        let ctx = |peer: &str| ForwardContext {
            peer: peer.parse().unwrap(),
            proto: "http",
            host: Some("example.com"),
            trusted: &trusted,
            pseudonym: "p",
            version: Version::HTTP_11,
            write,
        };
        // Untrusted: the chosen headers are written, the others removed.
        let mut h = incoming();
        apply_forwarding(&mut h, &ctx("198.51.100.7"));
        assert_eq!(h["x-forwarded-for"], "198.51.100.7");
        assert_eq!(h["via"], "1.1 p");
        assert!(h.get("forwarded").is_none() && h.get("x-forwarded-proto").is_none());
        assert!(h.get("x-forwarded-host").is_none());
        // Trusted: the others pass unchanged.
        let mut h = incoming();
        apply_forwarding(&mut h, &ctx("10.1.2.3"));
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 10.1.2.3");
        assert_eq!(h["forwarded"], "for=192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}
