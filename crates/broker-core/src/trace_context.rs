//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>) for messages: the
//! `traceparent` and `tracestate` headers parsed and validated, a child context for each
//! hop, and the context of the message being handled now ([`TraceContext::current`]),
//! which [`TracedBroker`](crate::TracedBroker) and [`TraceContext::inject_current`] put on
//! the messages published while handling it.
//!
//! ```
//! use broker_core::TraceContext;
//!
//! let parent = TraceContext::parse(
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
//!     Some("congo=t61rcWkgMzE"),
//! )?;
//! let child = parent.child();
//! assert_eq!(child.trace_id(), parent.trace_id());
//! assert_ne!(child.span_id(), parent.span_id());
//! assert!(child.traceparent().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
//! assert_eq!(child.tracestate(), Some("congo=t61rcWkgMzE"));
//! // Upper-case hex, an all-zero id, a bad length: refused (a consumer then starts a new trace).
//! assert!(TraceContext::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None).is_err());
//! # Ok::<(), broker_core::Error>(())
//! ```

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{Envelope, Error, Headers, Result};

/// The most list members a `tracestate` may have (W3C Trace Context §3.3.1.1).
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// One position in a distributed trace: the trace id, the id of the span that is the
/// parent of whatever comes next, the trace flags, and the vendors' `tracestate`.
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    tracestate: Option<String>,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("traceparent", &self.traceparent())
            .field("tracestate", &self.tracestate)
            .finish()
    }
}

fn invalid(name: &str, reason: &'static str) -> Error {
    Error::InvalidHeader {
        name: name.to_owned(),
        reason,
    }
}

/// Lower-case hex only (§3.2.2: "HEXDIGLC").
fn hex_lc<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *slot = (digit(*hi)? << 4) | digit(*lo)?;
    }
    Some(out)
}

fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// §3.3.1.3: `key = simple-key / multi-tenant-key`; simple keys start with a lower-case
/// letter, tenant ids with a letter or digit; then `a-z 0-9 _ - * /`.
fn valid_key(key: &str) -> bool {
    fn part(s: &str, max: usize, first_digit: bool) -> bool {
        let mut bytes = s.bytes();
        let Some(first) = bytes.next() else {
            return false;
        };
        s.len() <= max
            && (first.is_ascii_lowercase() || (first_digit && first.is_ascii_digit()))
            && bytes.all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'*' | b'/')
            })
    }
    match key.split_once('@') {
        None => part(key, 256, false),
        Some((tenant, system)) => part(tenant, 241, true) && part(system, 14, false),
    }
}

/// §3.3.1.3.2: up to 256 printable ASCII characters except `,` and `=`, not ending in a
/// space.
fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

/// A `tracestate` with its list members checked, empty members dropped and optional
/// whitespace around members trimmed (§3.3.1.1); `None` when it is invalid as a whole.
fn normalise_tracestate(text: &str) -> Option<String> {
    let mut members = Vec::new();
    let mut keys = Vec::new();
    for member in text.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=')?;
        if !valid_key(key) || !valid_value(value) || keys.contains(&key) {
            return None;
        }
        keys.push(key);
        members.push(member);
    }
    if members.len() > MAX_TRACESTATE_MEMBERS {
        return None;
    }
    (!members.is_empty()).then(|| members.join(","))
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(uuid::Uuid::now_v7().as_u128() as u64);
    static CURRENT: RefCell<Option<TraceContext>> = const { RefCell::new(None) };
}

/// SplitMix64 on a per-thread state seeded from a UUIDv7's random bits: ids that are
/// unique enough for tracing, not for secrets.
fn random_u64() -> u64 {
    RNG.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

fn random_span_id() -> [u8; 8] {
    loop {
        let id = random_u64();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

fn random_trace_id() -> [u8; 16] {
    loop {
        let id = (u128::from(random_u64()) << 64) | u128::from(random_u64());
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

impl TraceContext {
    /// Parses `traceparent` (and `tracestate`) per W3C Trace Context §3.2 and §3.3:
    /// version `00` is exactly `00-<32 hex>-<16 hex>-<2 hex>` in lower case; a later
    /// version may append `-…` fields, which are ignored; version `ff`, an all-zero
    /// trace id or parent id are invalid. An invalid `tracestate` is dropped, the
    /// `traceparent` kept (§3.3.1.1).
    ///
    /// # Errors
    /// [`Error::InvalidHeader`] naming `traceparent` and what was wrong.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<Self> {
        const NAME: &str = "traceparent";
        let text = traceparent.trim_matches([' ', '\t']);
        let version = text
            .get(..2)
            .and_then(hex_lc::<1>)
            .ok_or_else(|| invalid(NAME, "version is not two lower-case hex digits"))?;
        if version == [0xff] {
            return Err(invalid(NAME, "version ff is invalid"));
        }
        let head = text
            .get(..55)
            .ok_or_else(|| invalid(NAME, "shorter than 55 characters (or not ASCII)"))?;
        match text.len() {
            55 => {}
            _ if version == [0] => {
                return Err(invalid(NAME, "version 00 is exactly 55 characters"));
            }
            // A later version may add fields after a dash (§4.3).
            _ if text.as_bytes().get(55) == Some(&b'-') => {}
            _ => {
                return Err(invalid(
                    NAME,
                    "a later version's extra fields must follow a dash",
                ));
            }
        }
        let mut fields = head.split('-');
        let (Some(_), Some(trace), Some(parent), Some(flags), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(invalid(NAME, "not four dash-separated fields"));
        };
        let trace_id = hex_lc::<16>(trace)
            .ok_or_else(|| invalid(NAME, "trace-id is not 32 lower-case hex digits"))?;
        let span_id = hex_lc::<8>(parent)
            .ok_or_else(|| invalid(NAME, "parent-id is not 16 lower-case hex digits"))?;
        let [flags] = hex_lc::<1>(flags)
            .ok_or_else(|| invalid(NAME, "trace-flags is not two lower-case hex digits"))?;
        if trace_id == [0; 16] {
            return Err(invalid(NAME, "trace-id is all zeros"));
        }
        if span_id == [0; 8] {
            return Err(invalid(NAME, "parent-id is all zeros"));
        }
        Ok(Self {
            trace_id,
            span_id,
            // Version 00 defines only the sampled bit; the others are passed on as zero.
            flags: if version == [0] { flags & 0x01 } else { flags },
            tracestate: tracestate.and_then(normalise_tracestate),
        })
    }

    /// The context in a message's headers; `None` when there is no `traceparent` or it is
    /// invalid (then the consumer starts a new trace; the message is handled all the same).
    #[must_use]
    pub fn from_headers(headers: &Headers) -> Option<Self> {
        Self::parse(headers.traceparent()?, headers.tracestate()).ok()
    }

    /// A new trace: random trace id and span id, sampled, no `tracestate`.
    #[must_use]
    pub fn new_root() -> Self {
        Self {
            trace_id: random_trace_id(),
            span_id: random_span_id(),
            flags: 0x01,
            tracestate: None,
        }
    }

    /// The next hop: the same trace, flags and `tracestate`, a new span id (whose parent
    /// is this context's span).
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            span_id: random_span_id(),
            ..self.clone()
        }
    }

    /// The trace id as 32 lower-case hex digits.
    #[must_use]
    pub fn trace_id(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    #[must_use]
    pub fn span_id(&self) -> String {
        to_hex(&self.span_id)
    }

    /// Whether the caller sampled this trace (flag `01`).
    #[must_use]
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 != 0
    }

    /// The `traceparent` header value (version 00).
    #[must_use]
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id(),
            self.span_id(),
            self.flags
        )
    }

    /// The vendors' `tracestate`, passed on unchanged (members normalised).
    #[must_use]
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// Writes `traceparent` and `tracestate` (or removes a stale `tracestate`).
    ///
    /// # Errors
    /// [`Error::InvalidHeader`] when the headers are full (64 names).
    pub fn inject(&self, headers: &mut Headers) -> Result<()> {
        headers.insert("traceparent", self.traceparent())?;
        match &self.tracestate {
            Some(state) => {
                headers.insert("tracestate", state.clone())?;
            }
            None => {
                headers.remove("tracestate");
            }
        }
        Ok(())
    }

    /// The context of the message being handled on this task now (inside a
    /// [`TraceLayer`](crate::TraceLayer), or a future run with [`scope`](Self::scope)).
    #[must_use]
    pub fn current() -> Option<Self> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Gives `envelope` a context for its publication: a child of the
    /// [current](Self::current) one, so the consumer's span continues this trace. Outside
    /// any context, a `traceparent` the envelope already has is kept and otherwise a new
    /// trace starts. Returns the context written.
    ///
    /// # Errors
    /// [`Error::InvalidHeader`] when the headers are full (64 names).
    pub fn inject_current(envelope: &mut Envelope) -> Result<Self> {
        let context = match Self::current() {
            Some(current) => current.child(),
            None => match Self::from_headers(envelope.headers()) {
                Some(existing) => return Ok(existing),
                None => Self::new_root(),
            },
        };
        context.inject(envelope.headers_mut())?;
        Ok(context)
    }

    /// Runs `future` with this context as [`current`](Self::current) while it is polled.
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            context: Some(self),
            future: Box::pin(future),
        }
    }
}

/// A future that runs with a [`TraceContext`] as the current one: [`TraceContext::scope`].
pub struct Scoped<F> {
    context: Option<TraceContext>,
    future: Pin<Box<F>>,
}

impl<F> fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// Puts the previous context back even when the inner poll panics.
struct Restore<'a> {
    slot: &'a mut Option<TraceContext>,
    previous: Option<TraceContext>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        *self.slot = CURRENT.with(|c| c.replace(previous));
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let previous = CURRENT.with(|c| c.replace(this.context.take()));
        let restore = Restore {
            slot: &mut this.context,
            previous,
        };
        let output = this.future.as_mut().poll(cx);
        drop(restore);
        output
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_validation_follows_the_spec() {
        let ok = TraceContext::parse(PARENT, None).unwrap();
        assert_eq!(ok.traceparent(), PARENT);
        assert!(ok.sampled());
        let unsampled = TraceContext::parse(&PARENT.replace("-01", "-00"), None).unwrap();
        assert!(!unsampled.sampled());
        // Version 00 passes on only the sampled flag.
        let flags = TraceContext::parse(&PARENT.replace("-01", "-ff"), None).unwrap();
        assert!(flags.traceparent().ends_with("-01"));
        for bad in [
            String::new(),
            "00".to_owned(),
            PARENT.to_uppercase(),
            PARENT.replace("4bf92f", "4bf92g"),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".to_owned(),
            PARENT.replacen("00-", "ff-", 1),
            format!("{PARENT}-extra"),
            PARENT.replace('-', "_"),
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01".to_owned(),
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        ] {
            assert!(TraceContext::parse(&bad, None).is_err(), "{bad:?} accepted");
        }
        // A later version may carry more fields after a dash, but not glued on.
        let later = PARENT.replacen("00-", "01-", 1);
        assert!(TraceContext::parse(&format!("{later}-what-ever"), None).is_ok());
        assert!(TraceContext::parse(&format!("{later}x"), None).is_err());
    }

    #[test]
    fn tracestate_is_kept_normalised_or_dropped() {
        let state = |s: &str| {
            TraceContext::parse(PARENT, Some(s))
                .unwrap()
                .tracestate()
                .map(str::to_owned)
        };
        assert_eq!(
            state("rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE,,"),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".to_owned())
        );
        assert_eq!(
            state("tenant1@vendor=x").as_deref(),
            Some("tenant1@vendor=x")
        );
        assert_eq!(state("Upper=x"), None);
        assert_eq!(state("a=1,a=2"), None);
        assert_eq!(state("a=b=c"), None);
        assert_eq!(state("a=x\u{7f}"), None);
        // Spaces inside a value are allowed; around a member they are whitespace.
        assert_eq!(state(" a=b c ").as_deref(), Some("a=b c"));
        assert_eq!(state(""), None);
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(state(&many.join(",")), None);
        assert!(state(&many[..32].join(",")).is_some());
    }

    #[test]
    fn children_keep_the_trace_and_scope_sets_current() {
        let root = TraceContext::new_root();
        assert_eq!(root.trace_id().len(), 32);
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.span_id(), root.span_id());
        assert!(TraceContext::current().is_none());
        let seen = std::pin::pin!(root.clone().scope(async { TraceContext::current() }));
        let waker = std::task::Waker::noop();
        let Poll::Ready(inside) = seen.poll(&mut Context::from_waker(waker)) else {
            panic!("pending");
        };
        assert_eq!(inside, Some(root));
        assert!(TraceContext::current().is_none());
    }
}
