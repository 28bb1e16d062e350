//! Byte ranges (RFC 9110 section 14): the one range a request asks for, and the range a
//! stored response holds, so a cache can answer range requests from a stored full or
//! partial (`206`) response.

use bytes::Bytes;
use http::HeaderMap;
use http::header::RANGE;

/// One requested byte range (`Range: bytes=...` with a single range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeSpec {
    /// `first-` or `first-last`.
    From(u64, Option<u64>),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// The single byte range a request asks for; `None` without `Range`, for another unit,
/// several ranges or a malformed value (then the whole representation is served, which
/// RFC 9110 section 14.2 allows).
pub(crate) fn requested(headers: &HeaderMap) -> Option<RangeSpec> {
    let mut values = headers.get_all(RANGE).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (unit, spec) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let number = |t: &str| -> Option<u64> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    if first.is_empty() {
        let n = number(last)?;
        return (n > 0).then_some(RangeSpec::Suffix(n));
    }
    let first = number(first)?;
    if last.is_empty() {
        return Some(RangeSpec::From(first, None));
    }
    let last = number(last)?;
    (last >= first).then_some(RangeSpec::From(first, Some(last)))
}

/// The range a response holds (`Content-Range: bytes first-last/complete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) complete_length: Option<u64>,
}

impl ContentRange {
    /// Parses `bytes first-last/complete` (or `/*`).
    pub(crate) fn parse(value: &str) -> Option<Self> {
        let (unit, rest) = value.trim().split_once(' ')?;
        if !unit.eq_ignore_ascii_case("bytes") {
            return None;
        }
        let (span, complete) = rest.trim().split_once('/')?;
        let (first, last) = span.split_once('-')?;
        let digits = |t: &str| -> Option<u64> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        let (first, last) = (digits(first)?, digits(last)?);
        let complete_length = if complete == "*" {
            None
        } else {
            Some(digits(complete)?)
        };
        if last < first || complete_length.is_some_and(|n| last >= n) {
            return None;
        }
        Some(Self {
            first,
            last,
            complete_length,
        })
    }

    /// A whole representation of `len` bytes.
    pub(crate) fn whole(len: u64) -> Self {
        Self {
            first: 0,
            last: len.saturating_sub(1),
            complete_length: Some(len),
        }
    }

    /// How many bytes it holds.
    pub(crate) fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// `spec` as `(first, last)` within the complete representation; `None` when it is not
    /// satisfiable (or the complete length is unknown).
    fn resolve(&self, spec: RangeSpec) -> Option<(u64, u64)> {
        let complete = self.complete_length?;
        if complete == 0 {
            return None;
        }
        match spec {
            RangeSpec::From(first, last) if first < complete => {
                Some((first, last.map_or(complete - 1, |l| l.min(complete - 1))))
            }
            RangeSpec::From(..) => None,
            RangeSpec::Suffix(n) => Some((complete - n.min(complete), complete - 1)),
        }
    }

    /// Whether the bytes `spec` asks for are all held.
    pub(crate) fn covers(&self, spec: RangeSpec) -> bool {
        self.resolve(spec)
            .is_some_and(|(first, last)| first >= self.first && last <= self.last)
    }

    /// The bytes `spec` asks for, cut from `body` (which holds this range), with their
    /// position; `None` when not satisfiable from what is held.
    pub(crate) fn slice(&self, spec: RangeSpec, body: &Bytes) -> Option<(u64, u64, Bytes)> {
        let (first, last) = self.resolve(spec)?;
        if first < self.first || last > self.last {
            return None;
        }
        let start = usize::try_from(first - self.first).ok()?;
        let end = usize::try_from(last - self.first + 1).ok()?;
        if end > body.len() {
            return None;
        }
        Some((first, last, body.slice(start..end)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn asked(v: &str) -> Option<RangeSpec> {
        let mut h = HeaderMap::new();
        h.insert(RANGE, v.parse().unwrap());
        requested(&h)
    }

    #[test]
    fn parsing() {
        assert_eq!(asked("bytes=0-1"), Some(RangeSpec::From(0, Some(1))));
        assert_eq!(asked("Bytes=5-"), Some(RangeSpec::From(5, None)));
        assert_eq!(asked("bytes=-3"), Some(RangeSpec::Suffix(3)));
        for bad in [
            "bytes=-0",
            "bytes=2-1",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes",
        ] {
            assert_eq!(asked(bad), None, "{bad}");
        }
        let held = ContentRange::parse("bytes 4-9/10").unwrap();
        assert_eq!(held.len(), 6);
        assert!(held.covers(RangeSpec::Suffix(5)));
        assert!(!held.covers(RangeSpec::From(0, Some(4))));
        assert_eq!(ContentRange::parse("bytes 4-10/10"), None);
        assert_eq!(
            ContentRange::parse("bytes 4-9/*").unwrap().complete_length,
            None
        );
        let body = Bytes::from_static(b"01234");
        assert_eq!(
            held.slice(RangeSpec::From(6, Some(8)), &body),
            Some((6, 8, Bytes::from_static(b"234")))
        );
        assert_eq!(
            ContentRange::whole(0).slice(RangeSpec::Suffix(1), &Bytes::new()),
            None
        );
    }
}
