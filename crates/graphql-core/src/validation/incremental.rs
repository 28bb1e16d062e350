//! The validation rules of incremental delivery (graphql-js 17), run by
//! [`validate`](super::validate) when the schema enables `@defer` and `@stream`: not on
//! root fields of mutations and subscriptions, not in subscription operations (unless `if`
//! can be false), labels static and unique, `@stream` only on list fields.
//! (Directive locations are checked by the spec's rule 5.7.2 like any directive's.)

use std::collections::HashSet;

use graphql_parser::query::{Directive, Selection, SelectionSet, Value as AstValue};

use super::{Cx, OpKind};
use crate::types::{TypeId, TypeRef};

type Dir<'d, 'a> = &'d Directive<'a, &'a str>;

fn find<'d, 'a>(directives: &'d [Directive<'a, &'a str>], name: &str) -> Option<Dir<'d, 'a>> {
    directives.iter().find(|d| d.name == name)
}

/// Whether `if` may be false: a literal `false` or a variable.
fn can_be_disabled<'a>(d: &Directive<'a, &'a str>) -> bool {
    d.arguments
        .iter()
        .any(|(n, v)| *n == "if" && matches!(v, AstValue::Boolean(false) | AstValue::Variable(_)))
}

pub(crate) fn check(cx: &mut Cx<'_, '_>) {
    let mutation = cx.schema.mutation;
    let subscription = cx.schema.subscription;
    let root_kind = |t: Option<TypeId>| -> Option<&'static str> {
        match t {
            Some(t) if Some(t) == mutation => Some("mutation"),
            Some(t) if Some(t) == subscription => Some("subscription"),
            _ => None,
        }
    };
    let mut errors: Vec<(String, graphql_parser::Pos)> = Vec::new();
    let mut labels: HashSet<String> = HashSet::new();
    let mut check_label = |d: Dir<'_, '_>, errors: &mut Vec<(String, graphql_parser::Pos)>| match d
        .arguments
        .iter()
        .find(|(n, _)| *n == "label")
        .map(|(_, v)| v)
    {
        Some(AstValue::String(s)) if !labels.insert(s.clone()) => errors.push((
            "Defer/Stream directive label argument must be unique.".to_owned(),
            d.position,
        )),
        Some(AstValue::Variable(_)) => errors.push((
            "Defer/Stream directive label argument must be static.".to_owned(),
            d.position,
        )),
        _ => {}
    };
    for (parent, set) in &cx.sets {
        let parent_name = parent.map_or(String::new(), |p| cx.schema.type_name(p).to_owned());
        for sel in &set.items {
            match sel {
                Selection::Field(f) => {
                    let Some(d) = find(&f.directives, "stream") else {
                        continue;
                    };
                    check_label(d, &mut errors);
                    if let Some(kind) = root_kind(*parent) {
                        errors.push((
                            format!(
                                "Stream directive cannot be used on root {kind} type \"{parent_name}\"."
                            ),
                            d.position,
                        ));
                    }
                    let def = parent.and_then(|p| cx.schema.field(p, f.name));
                    if let Some(def) = def {
                        let inner = match &def.ty {
                            TypeRef::NonNull(inner) => inner.as_ref(),
                            other => other,
                        };
                        if !matches!(inner, TypeRef::List(_)) {
                            errors.push((
                                format!(
                                    "Stream directive cannot be used on non-list field \"{}\" on type \"{parent_name}\".",
                                    f.name
                                ),
                                d.position,
                            ));
                        }
                    }
                }
                Selection::FragmentSpread(s) => {
                    if let Some(d) = find(&s.directives, "defer") {
                        check_label(d, &mut errors);
                        if let Some(kind) = root_kind(*parent) {
                            errors.push((
                                format!(
                                    "Defer directive cannot be used on root {kind} type \"{parent_name}\"."
                                ),
                                d.position,
                            ));
                        }
                    }
                }
                Selection::InlineFragment(i) => {
                    if let Some(d) = find(&i.directives, "defer") {
                        check_label(d, &mut errors);
                        if let Some(kind) = root_kind(*parent) {
                            errors.push((
                                format!(
                                    "Defer directive cannot be used on root {kind} type \"{parent_name}\"."
                                ),
                                d.position,
                            ));
                        }
                    }
                }
            }
        }
    }
    // Subscription operations: every selection they reach, fragments followed once.
    for op in &cx.ops {
        if op.kind != OpKind::Subscription {
            continue;
        }
        let mut visited = Vec::new();
        subscription_uses(cx, op.selection_set, &mut visited, &mut errors);
    }
    for (message, pos) in errors {
        cx.error(message, &[pos]);
    }
}

fn subscription_uses<'d, 'a>(
    cx: &Cx<'d, 'a>,
    set: &'d SelectionSet<'a, &'a str>,
    visited: &mut Vec<&'a str>,
    errors: &mut Vec<(String, graphql_parser::Pos)>,
) {
    for sel in &set.items {
        let (directive, name, next) = match sel {
            Selection::Field(f) => (
                find(&f.directives, "stream"),
                "Stream",
                Some(&f.selection_set),
            ),
            Selection::InlineFragment(i) => (
                find(&i.directives, "defer"),
                "Defer",
                Some(&i.selection_set),
            ),
            Selection::FragmentSpread(s) => {
                let next = if visited.contains(&s.fragment_name) {
                    None
                } else {
                    visited.push(s.fragment_name);
                    cx.fragments.get(s.fragment_name).map(|f| &f.selection_set)
                };
                (find(&s.directives, "defer"), "Defer", next)
            }
        };
        if let Some(d) = directive
            && !can_be_disabled(d)
        {
            let lower = name.to_ascii_lowercase();
            errors.push((
                format!(
                    "{name} directive not supported on subscription operations. Disable `@{lower}` by setting the `if` argument to `false`."
                ),
                d.position,
            ));
        }
        if let Some(next) = next {
            subscription_uses(cx, next, visited, errors);
        }
    }
}
