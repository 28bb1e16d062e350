//! Positions graphql-parser does not keep, recovered from the source text when an error
//! needs them: a fragment's type condition and an argument's name.

use crate::error::Location;
use crate::lexer::{Tok, tokens};

fn start_index(toks: &[(Tok<'_>, Location)], at: Location) -> Option<usize> {
    toks.iter().position(|(_, l)| *l == at)
}

/// The location of the type named after `on`, for the fragment or inline fragment whose
/// `fragment`/`...` token is at `at`.
pub(crate) fn type_condition(source: &str, at: Location) -> Option<Location> {
    let toks = tokens(source);
    let start = start_index(&toks, at)?;
    let on = toks
        .iter()
        .skip(start)
        .take(4)
        .position(|(t, _)| matches!(t, Tok::Name("on")))?;
    match toks.get(start + on + 1) {
        Some((Tok::Name(_), l)) => Some(*l),
        _ => None,
    }
}

/// The location of argument `name` of the field or directive whose first token is at `at`.
pub(crate) fn argument(source: &str, at: Location, name: &str) -> Option<Location> {
    let toks = tokens(source);
    let start = start_index(&toks, at)?;
    // Find the `(` that opens this field's or directive's arguments: after the name, an
    // optional alias, or `@`.
    let mut i = start;
    loop {
        match toks.get(i)? {
            (Tok::Punct('('), _) => break,
            (Tok::Name(_) | Tok::Punct(':' | '@'), _) => i += 1,
            _ => return None,
        }
    }
    let mut depth = 0usize;
    for (j, (tok, loc)) in toks.iter().enumerate().skip(i) {
        match tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return None;
                }
            }
            Tok::Name(n)
                if depth == 1
                    && *n == name
                    && matches!(toks.get(j + 1), Some((Tok::Punct(':'), _))) =>
            {
                return Some(*loc);
            }
            _ => {}
        }
    }
    None
}
