//! Finds repeated field names in input object literals by scanning the source text.
//!
//! graphql-parser stores an object value's fields in a `BTreeMap`, so `{a: 1, a: 2}` reaches
//! us as `{a: 2}` and spec rule 5.6.3 (Input Object Field Uniqueness) cannot be checked on the
//! AST. This lexer reads the text again, tracks whether a `{` opens a selection set or an
//! object value, and reports each repeated key with its position.

use crate::error::Location;
use crate::lexer::{Tok, tokens};

enum Scope<'a> {
    Selection,
    Arguments,
    List,
    Object(Vec<(&'a str, Location)>),
}

/// Each repeated key of an object value: (key, position of its first occurrence, position of
/// the repeat).
pub(crate) fn duplicate_object_keys(source: &str) -> Vec<(String, Location, Location)> {
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
                    match keys.iter().find(|(k, _)| k == name) {
                        Some((_, first)) => found.push(((*name).to_owned(), *first, *loc)),
                        None => keys.push((name, *loc)),
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
            .map(|(k, first, l)| (k.as_str(), first.column, l.line, l.column))
            .collect();
        assert_eq!(keys, [("a", 18, 1, 24), ("b", 9, 2, 26)]);
    }

    #[test]
    fn ignores_strings_and_comments() {
        assert!(
            duplicate_object_keys("{ f(x: {a: \"{a: 1, a: 2}\"}) # {a: 1, a: 1}\n}").is_empty()
        );
        assert_eq!(duplicate_object_keys("{ f(x: [{a: 1 a: 2}]) }").len(), 1);
    }
}
