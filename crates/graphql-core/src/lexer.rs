//! A lexer over the source text for what graphql-parser's AST does not keep: the token
//! count (a limit checked before parsing), positions of names, and the shape of input
//! object literals. Punctuators and names are told apart; strings, numbers and the rest
//! are `Other` (`...` is `Punct('.')`); comments and insignificant commas are skipped.
//!
//! ```text
//! query { f(a: "x") }   ->   Name(query) Punct({) Name(f) Punct(() Name(a) Punct(:) Other Punct()) Punct(})
//! ```

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
            b'{' | b'}' | b'(' | b')' | b'[' | b']' | b':' | b'@' | b'$' | b'=' => {
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
                out(Tok::Punct('.'), here);
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
                // `!`, `|`, `&` and anything else: separators for our purpose.
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
