//! Finds repeated field names in input object literals by scanning the source text.
//!
//! graphql-parser stores an object value's fields in a `BTreeMap`, so `{a: 1, a: 2}` reaches
//! us as `{a: 2}` and spec rule 5.6.3 (Input Object Field Uniqueness) cannot be checked on the
//! AST. This lexer reads the text again, tracks whether a `{` opens a selection set or an
//! object value, and reports each repeated key with its position.

use crate::error::Location;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tok<'a> {
    Punct(char),
    Name(&'a str),
    Other,
}

pub(crate) fn tokens(source: &str) -> Vec<(Tok<'_>, Location)> {
    let mut out = Vec::new();
    scan(source, |tok, loc| out.push((tok, loc)));
    out
}

/// How many tokens `source` has, as [`tokens`] counts them, without building the list.
pub(crate) fn count_tokens(source: &str) -> usize {
    let mut count = 0usize;
    scan(source, |_, _| count += 1);
    count
}

/// The lexer behind [`tokens`]: calls `out` with each token and where it starts.
fn scan<'a>(source: &'a str, mut out: impl FnMut(Tok<'a>, Location)) {
    let bytes = source.as_bytes();
    let (mut i, mut line, mut line_start) = (0usize, 1u32, 0usize);
    let col = |i: usize, line_start: usize| u32::try_from(i - line_start + 1).unwrap_or(u32::MAX);
    while let Some(&b) = bytes.get(i) {
        let here = Location {
            line,
            column: col(i, line_start),
        };
        match b {
            b'\n' => {
                i += 1;
                line += 1;
                line_start = i;
            }
            b'\r' => {
                i += 1;
                if bytes.get(i) != Some(&b'\n') {
                    line += 1;
                    line_start = i;
                }
            }
            b' ' | b'\t' | b',' => i += 1,
            b'#' => {
                while bytes.get(i).is_some_and(|&c| c != b'\n' && c != b'\r') {
                    i += 1;
                }
            }
            b'"' if bytes.get(i..i + 3) == Some(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && bytes.get(i..i + 3) != Some(b"\"\"\"") {
                    if bytes.get(i..i + 4) == Some(b"\\\"\"\"") {
                        i += 4;
                        continue;
                    }
                    if bytes.get(i) == Some(&b'\n') {
                        line += 1;
                        line_start = i + 1;
                    }
                    i += 1;
                }
                i += 3;
                out(Tok::Other, here);
            }
            b'"' => {
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    i += 1;
                    match c {
                        b'\\' => i += 1,
                        b'"' | b'\n' => break,
                        _ => {}
                    }
                }
                out(Tok::Other, here);
            }
            b'{' | b'}' | b'(' | b')' | b'[' | b']' | b':' | b'@' | b'$' => {
                out(Tok::Punct(b as char), here);
                i += 1;
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                let start = i;
                while bytes
                    .get(i)
                    .is_some_and(|&c| c == b'_' || c.is_ascii_alphanumeric())
                {
                    i += 1;
                }
                out(Tok::Name(source.get(start..i).unwrap_or("")), here);
            }
            b'.' if bytes.get(i..i + 3) == Some(b"...") => {
                i += 3;
                out(Tok::Other, here);
            }
            c if c == b'-' || c.is_ascii_digit() => {
                i += 1;
                while bytes.get(i).is_some_and(|&c| {
                    c.is_ascii_alphanumeric() || c == b'.' || c == b'+' || c == b'-'
                }) {
                    i += 1;
                }
                out(Tok::Other, here);
            }
            _ => {
                // `$`, `!`, `=`, `@`, `|`, `&` and anything else: separators for our purpose.
                // Multi-byte characters are skipped whole.
                i += 1;
                while bytes.get(i).is_some_and(|&c| (c & 0xC0) == 0x80) {
                    i += 1;
                }
                out(Tok::Other, here);
            }
        }
    }
}

enum Scope<'a> {
    Selection,
    Arguments,
    List,
    Object(Vec<&'a str>),
}

/// Each repeated key of an object value: (key, position of the repeat).
pub(crate) fn duplicate_object_keys(source: &str) -> Vec<(String, Location)> {
    let toks = tokens(source);
    let mut stack: Vec<Scope<'_>> = Vec::new();
    let mut found = Vec::new();
    for (i, (tok, loc)) in toks.iter().enumerate() {
        match tok {
            Tok::Punct('{') => {
                let in_value = matches!(
                    stack.last(),
                    Some(Scope::Arguments | Scope::List | Scope::Object(_))
                );
                stack.push(if in_value {
                    Scope::Object(Vec::new())
                } else {
                    Scope::Selection
                });
            }
            Tok::Punct('(') => stack.push(Scope::Arguments),
            Tok::Punct('[') => stack.push(Scope::List),
            Tok::Punct('}' | ')' | ']') => {
                stack.pop();
            }
            Tok::Name(name) => {
                let is_key = matches!(toks.get(i + 1), Some((Tok::Punct(':'), _)));
                if let (true, Some(Scope::Object(keys))) = (is_key, stack.last_mut()) {
                    if keys.contains(name) {
                        found.push(((*name).to_owned(), *loc));
                    } else {
                        keys.push(name);
                    }
                }
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::duplicate_object_keys;

    #[test]
    fn finds_repeated_keys_in_object_values_only() {
        let found = duplicate_object_keys(
            "query Q($v: I = {a: 1, a: 2}) {\n  f(x: {b: 1, c: {b: 2}, b: 3}) { a: f b: f a: g }\n}",
        );
        let keys: Vec<_> = found
            .iter()
            .map(|(k, l)| (k.as_str(), l.line, l.column))
            .collect();
        assert_eq!(keys, [("a", 1, 24), ("b", 2, 26)]);
    }

    #[test]
    fn ignores_strings_and_comments() {
        assert!(
            duplicate_object_keys("{ f(x: {a: \"{a: 1, a: 2}\"}) # {a: 1, a: 1}\n}").is_empty()
        );
        assert_eq!(duplicate_object_keys("{ f(x: [{a: 1 a: 2}]) }").len(), 1);
    }
}
