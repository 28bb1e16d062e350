//! Positions graphql-parser does not keep, recovered from the source's tokens when an error
//! needs them: the `...` of a fragment spread or inline fragment, a fragment's type
//! condition, the names of operations, fragments and variables, a variable's type, the
//! arguments of a field or directive, and the variables used in them.
//!
//! graphql-parser places an operation at its keyword, a fragment definition at `fragment`, a
//! variable definition at `$`, a field at its alias or name, a directive at `@`, and a fragment
//! spread or inline fragment at the token after `...`; everything here starts from one of
//! those and reads the tokens that follow (or, for `...`, the one before).

use crate::error::Location;
use crate::lexer::Tok;

/// The document's tokens, as [`crate::lexer::tokens`] gives them.
pub(crate) type Tokens<'s> = [(Tok<'s>, Location)];

fn start_index(toks: &Tokens<'_>, at: Location) -> Option<usize> {
    toks.binary_search_by(|(_, l)| l.cmp(&at)).ok()
}

/// The `...` of the fragment spread or inline fragment graphql-parser places at `at`.
pub(crate) fn spread(toks: &Tokens<'_>, at: Location) -> Option<Location> {
    let i = start_index(toks, at)?;
    match toks.get(i.checked_sub(1)?) {
        Some((Tok::Punct('.'), l)) => Some(*l),
        _ => None,
    }
}

/// The name right after the token at `at`: an operation's name after its keyword, a
/// fragment's after `fragment`, a variable's after `$`.
pub(crate) fn name_after(toks: &Tokens<'_>, at: Location) -> Option<Location> {
    let i = start_index(toks, at)?;
    match toks.get(i + 1) {
        Some((Tok::Name(_), l)) => Some(*l),
        _ => None,
    }
}

/// For the variable defined at `at` (`$name: Type`): where its type starts, and where the
/// named type inside it (`Type` in `[Type!]`) is.
pub(crate) fn variable_type(toks: &Tokens<'_>, at: Location) -> Option<(Location, Location)> {
    let i = start_index(toks, at)?;
    let (Some((Tok::Name(_), _)), Some((Tok::Punct(':'), _)), Some((_, start))) =
        (toks.get(i + 1), toks.get(i + 2), toks.get(i + 3))
    else {
        return None;
    };
    let named = toks
        .iter()
        .skip(i + 3)
        .take(64)
        .find_map(|(t, l)| match t {
            Tok::Name(_) => Some(*l),
            _ => None,
        })?;
    Some((*start, named))
}

/// The location of the type named after `on`, for the fragment or inline fragment placed at
/// `at` (its `fragment` token, or the token after `...`).
pub(crate) fn type_condition(toks: &Tokens<'_>, at: Location) -> Option<Location> {
    let start = start_index(toks, at)?;
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

/// The tokens between the parentheses of the arguments of the field or directive whose
/// first token is at `at` (`None` without arguments).
fn argument_tokens<'t, 's>(toks: &'t Tokens<'s>, at: Location) -> Option<&'t Tokens<'s>> {
    let start = start_index(toks, at)?;
    // The `(` that opens this field's or directive's arguments comes after the name, an
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
    for (j, (tok, _)) in toks.iter().enumerate().skip(i) {
        match tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return toks.get(i + 1..j);
                }
            }
            _ => {}
        }
    }
    toks.get(i + 1..)
}

/// Every argument given to the field or directive at `at`: name and location, in order.
pub(crate) fn arguments<'s>(toks: &Tokens<'s>, at: Location) -> Vec<(&'s str, Location)> {
    let Some(inner) = argument_tokens(toks, at) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut depth = 0usize;
    for (j, (tok, loc)) in inner.iter().enumerate() {
        match tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => depth = depth.saturating_sub(1),
            Tok::Name(n)
                if depth == 0 && matches!(inner.get(j + 1), Some((Tok::Punct(':'), _))) =>
            {
                out.push((*n, *loc));
            }
            _ => {}
        }
    }
    out
}

/// The location of argument `name` of the field or directive at `at`.
pub(crate) fn argument(toks: &Tokens<'_>, at: Location, name: &str) -> Option<Location> {
    arguments(toks, at)
        .into_iter()
        .find_map(|(n, l)| (n == name).then_some(l))
}

/// Every variable used in the arguments of the field or directive at `at`: name and the
/// location of its `$`, in source order.
pub(crate) fn variable_uses<'s>(toks: &Tokens<'s>, at: Location) -> Vec<(&'s str, Location)> {
    let Some(inner) = argument_tokens(toks, at) else {
        return Vec::new();
    };
    inner
        .windows(2)
        .filter_map(|w| match w {
            [(Tok::Punct('$'), l), (Tok::Name(n), _)] => Some((*n, *l)),
            _ => None,
        })
        .collect()
}

/// The index of the first token of the value given to argument `name` of the field or
/// directive at `at`.
pub(crate) fn argument_value(toks: &Tokens<'_>, at: Location, name: &str) -> Option<usize> {
    let loc = argument(toks, at, name)?;
    Some(start_index(toks, loc)? + 2)
}

/// The index of the first token of the default value of the variable defined at `at`.
pub(crate) fn default_value(toks: &Tokens<'_>, at: Location) -> Option<usize> {
    let i = start_index(toks, at)?;
    for (j, (tok, _)) in toks.iter().enumerate().skip(i + 1).take(64) {
        match tok {
            Tok::Punct('=') => return Some(j + 1),
            Tok::Punct('$' | ')' | '@') => return None,
            _ => {}
        }
    }
    None
}

/// The index just past the value starting at token `i`.
fn skip_value(toks: &Tokens<'_>, i: usize) -> usize {
    match toks.get(i) {
        Some((Tok::Punct('[' | '{'), _)) => {
            let mut depth = 0usize;
            for (j, (tok, _)) in toks.iter().enumerate().skip(i) {
                match tok {
                    Tok::Punct('[' | '{') => depth += 1,
                    Tok::Punct(']' | '}') => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
            }
            toks.len()
        }
        Some((Tok::Punct('$'), _)) => i + 2,
        _ => i + 1,
    }
}

/// One step from a value into a part of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Step<'v> {
    /// The item at this index of a list.
    Item(usize),
    /// The field of an input object value with this name.
    Field(&'v str),
}

/// Where the part of the value starting at token `i` reached by `path` is: its own first
/// token, and for a path ending in a field, that field's name.
pub(crate) fn value_part(
    toks: &Tokens<'_>,
    mut i: usize,
    path: &[Step<'_>],
) -> Option<(Location, Option<Location>)> {
    let mut name = None;
    for step in path {
        let open = toks.get(i)?;
        let mut j = i + 1;
        match (step, open) {
            (Step::Item(n), (Tok::Punct('['), _)) => {
                for _ in 0..*n {
                    if matches!(toks.get(j), Some((Tok::Punct(']'), _)) | None) {
                        return None;
                    }
                    j = skip_value(toks, j);
                }
                i = j;
                name = None;
            }
            (Step::Field(f), (Tok::Punct('{'), _)) => loop {
                match (toks.get(j), toks.get(j + 1)) {
                    (Some((Tok::Name(k), l)), Some((Tok::Punct(':'), _))) => {
                        if k == f {
                            i = j + 2;
                            name = Some(*l);
                            break;
                        }
                        j = skip_value(toks, j + 2);
                    }
                    _ => return None,
                }
            },
            _ => return None,
        }
    }
    Some((toks.get(i)?.1, name))
}
