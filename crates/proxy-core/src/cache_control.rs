//! `Cache-Control` parsing (RFC 9111 section 5.2).
//!
//! ```
//! use std::time::Duration;
//! use proxy_core::CacheControl;
//!
//! let cc = CacheControl::parse(r#"public, max-age=60, s-maxage="120", no-cache="set-cookie""#);
//! assert_eq!(cc.shared_max_age(), Some(Duration::from_secs(120)));
//! assert_eq!(cc.no_cache_fields, vec!["set-cookie".to_owned()]);
//! assert!(!cc.no_cache);
//! ```

use std::time::Duration;

/// The directives of one or more `Cache-Control` values. Unknown directives are ignored
/// (section 5.2.3); a malformed delta-seconds makes that directive count as absent, except
/// `max-age`/`s-maxage`, whose malformed forms mean "stale" (section 4.2.1) and become 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct CacheControl {
    /// `max-age`.
    pub max_age: Option<u64>,
    /// `s-maxage`.
    pub s_maxage: Option<u64>,
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` without field names.
    pub no_cache: bool,
    /// `no-cache="a, b"` field names, lowercased.
    pub no_cache_fields: Vec<String>,
    /// `private` without field names.
    pub private: bool,
    /// `private="a"` field names, lowercased.
    pub private_fields: Vec<String>,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `must-understand`.
    pub must_understand: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `stale-while-revalidate` (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861).
    pub stale_if_error: Option<u64>,
    /// Request `max-stale` (`Some(u64::MAX)` without a value).
    pub max_stale: Option<u64>,
    /// Request `min-fresh`.
    pub min_fresh: Option<u64>,
    /// Request `only-if-cached`.
    pub only_if_cached: bool,
}

fn delta_seconds(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Section 1.2.2: a value too large saturates to 2^31.
    Some(v.parse::<u64>().unwrap_or(2_147_483_648).min(2_147_483_648))
}

/// Splits on commas outside quoted strings.
fn split_directives(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(value.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value.get(start..).unwrap_or(""));
    out
}

impl CacheControl {
    /// Parses one header value (join several with `,` first).
    #[must_use]
    pub fn parse(value: &str) -> Self {
        let mut cc = Self::default();
        for directive in split_directives(value) {
            let directive = directive.trim();
            if directive.is_empty() {
                continue;
            }
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim().to_ascii_lowercase(), Some(a.trim())),
                None => (directive.to_ascii_lowercase(), None),
            };
            let unquoted = arg.map(|a| {
                a.strip_prefix('"')
                    .and_then(|a| a.strip_suffix('"'))
                    .unwrap_or(a)
                    .replace('\\', "")
            });
            let fields = || -> Vec<String> {
                unquoted
                    .as_deref()
                    .map(|u| {
                        u.split(',')
                            .map(|f| f.trim().to_ascii_lowercase())
                            .filter(|f| !f.is_empty())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let seconds = || unquoted.as_deref().and_then(delta_seconds);
            match name.as_str() {
                "max-age" => {
                    cc.max_age = Some(
                        cc.max_age
                            .map_or(seconds().unwrap_or(0), |p| p.min(seconds().unwrap_or(0))),
                    )
                }
                "s-maxage" => {
                    cc.s_maxage = Some(
                        cc.s_maxage
                            .map_or(seconds().unwrap_or(0), |p| p.min(seconds().unwrap_or(0))),
                    )
                }
                "no-store" => cc.no_store = true,
                "no-cache" if arg.is_none() => cc.no_cache = true,
                "no-cache" => cc.no_cache_fields.extend(fields()),
                "private" if arg.is_none() => cc.private = true,
                "private" => cc.private_fields.extend(fields()),
                "public" => cc.public = true,
                "must-revalidate" => cc.must_revalidate = true,
                "proxy-revalidate" => cc.proxy_revalidate = true,
                "must-understand" => cc.must_understand = true,
                "no-transform" => cc.no_transform = true,
                "immutable" => cc.immutable = true,
                "stale-while-revalidate" => cc.stale_while_revalidate = seconds(),
                "stale-if-error" => cc.stale_if_error = seconds(),
                "max-stale" => {
                    cc.max_stale = Some(if arg.is_some() {
                        seconds().unwrap_or(0)
                    } else {
                        u64::MAX
                    })
                }
                "min-fresh" => cc.min_fresh = seconds(),
                "only-if-cached" => cc.only_if_cached = true,
                _ => {}
            }
        }
        cc
    }

    /// Parses a `CDN-Cache-Control` (or other targeted cache-control, RFC 9213) value: a
    /// Structured Fields dictionary (RFC 8941 section 3.2). `None` when the value does not
    /// parse, in which case a cache ignores the whole field (RFC 9213 section 2.1); a
    /// directive whose value has the wrong type (`max-age="10"`, `no-store=1`) is ignored.
    ///
    /// ```
    /// use proxy_core::CacheControl;
    ///
    /// let cc = CacheControl::parse_targeted("max-age=60, no-cache").unwrap();
    /// assert_eq!((cc.max_age, cc.no_cache), (Some(60), true));
    /// assert_eq!(CacheControl::parse_targeted("max-age=\"60\"").unwrap().max_age, None);
    /// assert!(CacheControl::parse_targeted("max-age=60, &&&").is_none());
    /// ```
    #[must_use]
    pub fn parse_targeted(value: &str) -> Option<Self> {
        let members = structured::dictionary(value)?;
        let mut cc = Self::default();
        for (name, item) in members {
            let seconds = match item {
                structured::Item::Integer(n) => u64::try_from(n).ok().map(|n| n.min(2_147_483_648)),
                _ => None,
            };
            let flag = item == structured::Item::True;
            match name.as_str() {
                "max-age" => cc.max_age = seconds.or(cc.max_age),
                "s-maxage" => cc.s_maxage = seconds.or(cc.s_maxage),
                "stale-while-revalidate" => cc.stale_while_revalidate = seconds,
                "stale-if-error" => cc.stale_if_error = seconds,
                "no-store" => cc.no_store |= flag,
                "no-cache" => cc.no_cache |= flag,
                "private" => cc.private |= flag,
                "public" => cc.public |= flag,
                "must-revalidate" => cc.must_revalidate |= flag,
                "proxy-revalidate" => cc.proxy_revalidate |= flag,
                "must-understand" => cc.must_understand |= flag,
                "no-transform" => cc.no_transform |= flag,
                "immutable" => cc.immutable |= flag,
                _ => {}
            }
        }
        Some(cc)
    }

    /// The freshness lifetime a shared cache uses from directives: `s-maxage`, else
    /// `max-age` (RFC 9111 section 4.2.1).
    #[must_use]
    pub fn shared_max_age(&self) -> Option<Duration> {
        self.s_maxage.or(self.max_age).map(Duration::from_secs)
    }
}

/// Just enough of Structured Fields (RFC 8941) to read a dictionary of cache directives:
/// keys, bare items and parameters; inner lists are parsed and read as "not a directive".
mod structured {
    /// A member's value, reduced to what cache directives use.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) enum Item {
        Integer(i64),
        True,
        Other,
    }

    struct Cursor<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl Cursor<'_> {
        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.at).copied()
        }
        fn bump(&mut self) -> Option<u8> {
            let b = self.peek()?;
            self.at += 1;
            Some(b)
        }
        fn skip(&mut self, set: &[u8]) {
            while self.peek().is_some_and(|b| set.contains(&b)) {
                self.at += 1;
            }
        }
    }

    /// Section 4.2.2: the members in order, a later duplicate key replacing an earlier one.
    pub(super) fn dictionary(value: &str) -> Option<Vec<(String, Item)>> {
        let mut c = Cursor {
            bytes: value.as_bytes(),
            at: 0,
        };
        c.skip(b" \t");
        let mut members: Vec<(String, Item)> = Vec::new();
        if c.peek().is_none() {
            return Some(members);
        }
        loop {
            let name = key(&mut c)?;
            let item = if c.peek() == Some(b'=') {
                c.at += 1;
                if c.peek() == Some(b'(') {
                    inner_list(&mut c)?;
                    Item::Other
                } else {
                    bare_item(&mut c)?
                }
            } else {
                Item::True
            };
            parameters(&mut c)?;
            members.retain(|(n, _)| *n != name);
            members.push((name, item));
            c.skip(b" \t");
            match c.bump() {
                None => return Some(members),
                Some(b',') => {}
                Some(_) => return None,
            }
            c.skip(b" \t");
            c.peek()?;
        }
    }

    fn key(c: &mut Cursor<'_>) -> Option<String> {
        let start = c.at;
        let first = c.peek()?;
        if !(first.is_ascii_lowercase() || first == b'*') {
            return None;
        }
        while c
            .peek()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b))
        {
            c.at += 1;
        }
        let bytes = c.bytes.get(start..c.at)?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    }

    fn parameters(c: &mut Cursor<'_>) -> Option<()> {
        while c.peek() == Some(b';') {
            c.at += 1;
            c.skip(b" ");
            key(c)?;
            if c.peek() == Some(b'=') {
                c.at += 1;
                bare_item(c)?;
            }
        }
        Some(())
    }

    fn inner_list(c: &mut Cursor<'_>) -> Option<()> {
        c.bump()?;
        loop {
            c.skip(b" ");
            if c.peek() == Some(b')') {
                c.at += 1;
                return parameters(c);
            }
            bare_item(c)?;
            parameters(c)?;
            if !matches!(c.peek(), Some(b' ' | b')')) {
                return None;
            }
        }
    }

    fn bare_item(c: &mut Cursor<'_>) -> Option<Item> {
        match c.peek()? {
            b'-' | b'0'..=b'9' => number(c),
            b'"' => {
                c.at += 1;
                loop {
                    match c.bump()? {
                        b'\\' => {
                            if !matches!(c.bump()?, b'"' | b'\\') {
                                return None;
                            }
                        }
                        b'"' => return Some(Item::Other),
                        0x20..=0x7e => {}
                        _ => return None,
                    }
                }
            }
            b'?' => {
                c.at += 1;
                match c.bump()? {
                    b'1' => Some(Item::True),
                    b'0' => Some(Item::Other),
                    _ => None,
                }
            }
            b':' => {
                c.at += 1;
                while c.peek()? != b':' {
                    let b = c.bump()?;
                    if !(b.is_ascii_alphanumeric() || b"+/=".contains(&b)) {
                        return None;
                    }
                }
                c.at += 1;
                Some(Item::Other)
            }
            b if b.is_ascii_alphabetic() || b == b'*' => {
                while c
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
                {
                    c.at += 1;
                }
                Some(Item::Other)
            }
            _ => None,
        }
    }

    /// Section 4.2.4: an integer of at most 15 digits, or a decimal (read as "other").
    fn number(c: &mut Cursor<'_>) -> Option<Item> {
        let negative = c.peek() == Some(b'-');
        if negative {
            c.at += 1;
        }
        let start = c.at;
        while c.peek().is_some_and(|b| b.is_ascii_digit()) {
            c.at += 1;
        }
        let int_len = c.at - start;
        if int_len == 0 || int_len > 15 {
            return None;
        }
        if c.peek() == Some(b'.') {
            c.at += 1;
            let frac = c.at;
            while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                c.at += 1;
            }
            if int_len > 12 || c.at == frac || c.at - frac > 3 {
                return None;
            }
            return Some(Item::Other);
        }
        let text = std::str::from_utf8(c.bytes.get(start..c.at)?).ok()?;
        let n: i64 = text.parse().ok()?;
        Some(Item::Integer(if negative { -n } else { n }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives() {
        let cc = CacheControl::parse(
            "no-store, MAX-AGE=10, max-age=5, private=\"a,B\", stale-while-revalidate=30, junk=\"x,y\"",
        );
        assert!(cc.no_store);
        assert_eq!(
            cc.max_age,
            Some(5),
            "the most restrictive of repeated max-age"
        );
        assert_eq!(cc.private_fields, vec!["a", "b"]);
        assert!(!cc.private);
        assert_eq!(cc.stale_while_revalidate, Some(30));
        assert_eq!(CacheControl::parse("max-age=-1").max_age, Some(0));
        assert_eq!(
            CacheControl::parse("max-age=99999999999999999999").max_age,
            Some(2_147_483_648)
        );
        assert_eq!(CacheControl::parse("max-stale").max_stale, Some(u64::MAX));
        assert_eq!(CacheControl::parse(",,,"), CacheControl::default());
    }
}
