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

/// Splits `source` for graphql-parser 0.4, whose grammar lacks `extend schema`: the main
/// text with every top-level `extend schema ...` blanked out, and for each of them a text
/// with only that extension, rewritten as a schema definition (`extend` blanked, an
/// operation-type body added at the end when it has none). Everything else is replaced by
/// spaces with newlines kept, so positions are unchanged in every text.
pub(crate) fn split_schema_extensions(source: &str) -> (String, Vec<String>) {
    let toks = tokens(source);
    let mut line_starts = vec![0usize];
    line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |loc: &Location| -> Option<usize> {
        let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
        let column = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        line_starts.get(line)?.checked_add(column)
    };
    let mut spans = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some((tok, loc)) = toks.get(i) {
        match tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => depth = depth.saturating_sub(1),
            Tok::Name("extend")
                if depth == 0 && matches!(toks.get(i + 1), Some((Tok::Name("schema"), _))) =>
            {
                // Directives (`@name`, optional arguments), then an optional `{ ... }`.
                let mut j = i + 2;
                let mut has_body = false;
                loop {
                    match toks.get(j) {
                        Some((Tok::Punct('@'), _)) => {
                            j += 2;
                            if matches!(toks.get(j), Some((Tok::Punct('('), _))) {
                                j = after_group(&toks, j);
                            }
                        }
                        Some((Tok::Punct('{'), _)) => {
                            has_body = true;
                            j = after_group(&toks, j);
                            break;
                        }
                        _ => break,
                    }
                }
                let end = toks
                    .get(j)
                    .and_then(|(_, l)| offset(l))
                    .unwrap_or(source.len());
                if let Some(start) = offset(loc) {
                    spans.push((start, end, has_body));
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let blank = |text: &str| -> String {
        text.chars()
            .map(|c| if c == '\n' || c == '\r' { c } else { ' ' })
            .collect()
    };
    let mut main = String::with_capacity(source.len());
    let mut extensions = Vec::new();
    let mut at = 0;
    for &(start, end, has_body) in &spans {
        let (Some(before), Some(span), Some(rest)) = (
            source.get(at..start),
            source.get(start..end),
            source.get(end..),
        ) else {
            continue;
        };
        main.push_str(before);
        main.push_str(&blank(span));
        at = end;
        let mut ext = blank(source.get(..start).unwrap_or(""));
        ext.push_str("      ");
        ext.push_str(span.get(6..).unwrap_or(""));
        if !has_body {
            ext.push_str(" { query: Query }");
        }
        ext.push_str(&blank(rest));
        extensions.push(ext);
    }
    main.push_str(source.get(at..).unwrap_or(""));
    (main, extensions)
}

/// The index after the bracket group opening at `open`.
fn after_group(toks: &[(Tok<'_>, Location)], open: usize) -> usize {
    let mut depth = 0usize;
    let mut j = open;
    while let Some((tok, _)) = toks.get(j) {
        j += 1;
        match tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    j
}
