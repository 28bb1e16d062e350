//! gRPC over HTTP/2 as a proxy sees it: which requests are gRPC calls, the deadline a call
//! carries (`grpc-timeout`), and the trailers-only answer a proxy gives when it cannot get
//! one from a backend. Follows the "gRPC over HTTP2" protocol document (PROTOCOL-HTTP2.md in
//! the grpc repository). Performs no IO.
//!
//! ```
//! use std::time::Duration;
//! use http::HeaderMap;
//! use proxy_core::{GrpcCode, grpc_timeout, grpc_trailers_only, is_grpc};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("content-type", "application/grpc+proto".parse().unwrap());
//! headers.insert("grpc-timeout", "250m".parse().unwrap());
//! assert!(is_grpc(&headers));
//! assert_eq!(grpc_timeout(&headers), Some(Duration::from_millis(250)));
//!
//! let answer = grpc_trailers_only(GrpcCode::Unavailable, "no upstream available");
//! assert_eq!(answer.status(), 200);
//! assert_eq!(answer.headers()["grpc-status"], "14");
//! assert_eq!(answer.headers()["grpc-message"], "no upstream available");
//! ```

use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response};

/// A gRPC status code (the numbers of `grpc-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcCode {
    /// 0: not an error.
    Ok,
    /// 1: the call was cancelled, usually by the caller.
    Cancelled,
    /// 2: an error with no better code.
    Unknown,
    /// 3: the client sent an invalid argument.
    InvalidArgument,
    /// 4: the deadline passed before the call completed.
    DeadlineExceeded,
    /// 5: the requested entity was not found.
    NotFound,
    /// 6: the entity the client tried to create exists.
    AlreadyExists,
    /// 7: the caller may not perform the call.
    PermissionDenied,
    /// 8: a resource (a quota, a rate limit) ran out.
    ResourceExhausted,
    /// 9: the system is not in the state the call needs.
    FailedPrecondition,
    /// 10: the call was aborted (a concurrency conflict).
    Aborted,
    /// 11: the call went past a valid range.
    OutOfRange,
    /// 12: the method is not implemented or not served here.
    Unimplemented,
    /// 13: an invariant broke.
    Internal,
    /// 14: the service cannot be reached now; a retry may succeed.
    Unavailable,
    /// 15: data was lost or corrupted.
    DataLoss,
    /// 16: the call has no valid credentials.
    Unauthenticated,
}

impl GrpcCode {
    /// The number sent in `grpc-status`.
    #[must_use]
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Cancelled => 1,
            Self::Unknown => 2,
            Self::InvalidArgument => 3,
            Self::DeadlineExceeded => 4,
            Self::NotFound => 5,
            Self::AlreadyExists => 6,
            Self::PermissionDenied => 7,
            Self::ResourceExhausted => 8,
            Self::FailedPrecondition => 9,
            Self::Aborted => 10,
            Self::OutOfRange => 11,
            Self::Unimplemented => 12,
            Self::Internal => 13,
            Self::Unavailable => 14,
            Self::DataLoss => 15,
            Self::Unauthenticated => 16,
        }
    }
}

/// Whether the request is a gRPC call: `content-type` is `application/grpc`, alone or
/// followed by `+FORMAT` or `;PARAMS` (case-insensitive).
#[must_use]
pub fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    let bytes = value.as_bytes();
    let prefix = b"application/grpc";
    match (bytes.get(..prefix.len()), bytes.get(prefix.len())) {
        (Some(start), next) if start.eq_ignore_ascii_case(prefix) => {
            matches!(next, None | Some(b'+' | b';'))
        }
        _ => false,
    }
}

/// The call's deadline from `grpc-timeout`: one to eight ASCII digits then a unit, `H`
/// hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds.
/// `None` when the header is absent or malformed (a proxy then keeps its own timeout).
#[must_use]
pub fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let bytes = headers.get("grpc-timeout")?.as_bytes();
    let (unit, digits) = bytes.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0_u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(value * 3600),
        b'M' => Duration::from_secs(value * 60),
        b'S' => Duration::from_secs(value),
        b'm' => Duration::from_millis(value),
        b'u' => Duration::from_micros(value),
        b'n' => Duration::from_nanos(value),
        _ => return None,
    })
}

/// `timeout` as a `grpc-timeout` value, for a proxy that passes on what is left of a
/// call's deadline: at most eight digits in the finest unit that holds it (`n`, `u`, `m`,
/// `S`, `M`, `H`), rounded up to a whole unit (so at most a hundred-thousandth more);
/// a timeout beyond 99,999,999 hours is sent as that.
#[must_use]
pub fn encode_grpc_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let (value, unit) = units
        .iter()
        .map(|&(size, unit)| (nanos.div_ceil(size), unit))
        .find(|&(value, _)| value <= MAX)
        .unwrap_or((MAX, 'H'));
    // Digits and an ASCII letter: always a valid header value.
    HeaderValue::from_str(&format!("{value}{unit}")).unwrap_or(HeaderValue::from_static("0n"))
}

/// `message` as `grpc-message` carries it: UTF-8 with every byte outside `0x20..=0x7E`, and
/// `%`, percent-encoded.
#[must_use]
pub fn encode_grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The status fields that end a call: `grpc-status` and, unless `message` is empty,
/// `grpc-message`. Sent as trailers, or in a trailers-only response's head.
#[must_use]
pub fn grpc_status_fields(code: GrpcCode, message: &str) -> HeaderMap {
    let mut fields = HeaderMap::new();
    fields.insert("grpc-status", HeaderValue::from(u16::from(code.as_u8())));
    if !message.is_empty()
        && let Ok(value) = HeaderValue::from_str(&encode_grpc_message(message))
    {
        fields.insert("grpc-message", value);
    }
    fields
}

/// A trailers-only response: `200` with `content-type: application/grpc` and the status
/// fields in the head, and no body (so an HTTP/2 server ends the stream on HEADERS). This
/// is how a proxy reports its own failures to a gRPC client, instead of an HTTP error page
/// that the client could only map to a generic code.
#[must_use]
pub fn grpc_trailers_only(code: GrpcCode, message: &str) -> Response<()> {
    let mut response = Response::new(());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.extend(grpc_status_fields(code, message));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        headers
    }

    #[test]
    fn grpc_content_types() {
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC+json",
            "application/grpc;charset=utf-8",
        ] {
            assert!(is_grpc(&with("content-type", yes)), "{yes}");
        }
        for no in [
            "application/grpc-web",
            "application/grpcx",
            "text/plain",
            "",
        ] {
            assert!(!is_grpc(&with("content-type", no)), "{no}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn timeouts() {
        let t = |v| grpc_timeout(&with("grpc-timeout", v));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("2M"), Some(Duration::from_secs(120)));
        assert_eq!(t("3S"), Some(Duration::from_secs(3)));
        assert_eq!(t("250m"), Some(Duration::from_millis(250)));
        assert_eq!(t("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(t("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "m", "123456789m", "1.5S", "-1S", "10x", "10 m", "10"] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn timeouts_are_encoded_in_the_finest_unit_that_fits() {
        let e = |d| encode_grpc_timeout(d).to_str().unwrap().to_owned();
        assert_eq!(e(Duration::ZERO), "0n");
        assert_eq!(e(Duration::from_nanos(99_999_999)), "99999999n");
        assert_eq!(e(Duration::from_nanos(100_000_001)), "100001u");
        assert_eq!(e(Duration::from_millis(250)), "250000u");
        assert_eq!(e(Duration::from_secs(1000)), "1000000m");
        assert_eq!(e(Duration::from_secs(200_000)), "200000S");
        assert_eq!(e(Duration::from_secs(u64::MAX)), "99999999H");
        // What is encoded parses back to at least the timeout, and at most one unit more,
        // which eight digits keep below a hundred-thousandth of it.
        for nanos in [1, 999, 1_000_001, 123_456_789_012, 7_000_000_000_000] {
            let timeout = Duration::from_nanos(nanos);
            let mut headers = HeaderMap::new();
            headers.insert("grpc-timeout", encode_grpc_timeout(timeout));
            let back = grpc_timeout(&headers).unwrap();
            assert!(back >= timeout, "{nanos}: {back:?}");
            assert!(back - timeout <= timeout / 100_000, "{nanos}: {back:?}");
        }
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(encode_grpc_message("plain text"), "plain text");
        assert_eq!(encode_grpc_message("100%"), "100%25");
        assert_eq!(encode_grpc_message("a\nb"), "a%0Ab");
        assert_eq!(encode_grpc_message("é"), "%C3%A9");
    }

    #[test]
    fn trailers_only_answer() {
        let response = grpc_trailers_only(GrpcCode::DeadlineExceeded, "");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], "4");
        assert!(!response.headers().contains_key("grpc-message"));
        assert_eq!(GrpcCode::Unauthenticated.as_u8(), 16);
    }
}
