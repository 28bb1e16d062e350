//! The validation rules of incremental delivery (graphql-js 17), run by
//! [`validate`](super::validate) when the schema enables `@defer` and `@stream`: not on
//! root fields of mutations and subscriptions, not in subscription operations (unless `if`
//! can be false), labels static and unique, `@stream` only on list fields.
//! (Directive locations are checked by the spec's rule 5.7.2 like any directive's.)

use std::collections::HashMap;

use graphql_parser::query::{
    Definition, Directive, FragmentSpread, InlineFragment, Selection, SelectionSet,
    Value as AstValue,
};

use super::{Cx, OpKind};
use crate::types::{TypeId, TypeRef};

type Dir<'d, 'a> = &'d Directive<'a, &'a str>;

fn all<'d, 'a>(
    directives: &'d [Directive<'a, &'a str>],
    name: &'d str,
) -> impl Iterator<Item = Dir<'d, 'a>> {
    directives.iter().filter(move |d| d.name == name)
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
    let mut errors: Vec<(String, Vec<graphql_parser::Pos>)> = Vec::new();
    for (parent, set) in &cx.sets {
        let parent_name = parent.map_or(String::new(), |p| cx.schema.type_name(p).to_owned());
        for sel in &set.items {
            match sel {
                Selection::Field(f) => {
                    for d in all(&f.directives, "stream") {
                        if let Some(kind) = root_kind(*parent) {
                            errors.push((
                                format!(
                                    "Stream directive cannot be used on root {kind} type \"{parent_name}\"."
                                ),
                                vec![d.position],
                            ));
                        }
                        let def = parent.and_then(|p| cx.schema.field(p, f.name));
                        if let Some(def) = def
                            && !matches!(def.ty.nullable(), TypeRef::List(_))
                        {
                            errors.push((
                                format!(
                                    "Directive \"@stream\" cannot be used on non-list field \"{parent_name}.{}\".",
                                    f.name
                                ),
                                vec![d.position],
                            ));
                        }
                    }
                }
                Selection::FragmentSpread(FragmentSpread { directives, .. })
                | Selection::InlineFragment(InlineFragment { directives, .. }) => {
                    for d in all(directives, "defer") {
                        if let Some(kind) = root_kind(*parent) {
                            errors.push((
                                format!(
                                    "Defer directive cannot be used on root {kind} type \"{parent_name}\"."
                                ),
                                vec![d.position],
                            ));
                        }
                    }
                }
            }
        }
    }
    labels(cx, &mut errors);
    // Subscription operations: every selection they reach, each fragment followed once in
    // the document (a fragment two subscriptions use is reported once).
    let mut visited = Vec::new();
    for op in &cx.ops {
        if op.kind != OpKind::Subscription {
            continue;
        }
        subscription_uses(cx, op.selection_set, &mut visited, &mut errors);
    }
    for (message, positions) in errors {
        cx.error(message, &positions);
    }
}

/// Every `@defer` and `@stream` of the document, in document order.
fn defer_and_stream<'d, 'a>(cx: &Cx<'d, 'a>) -> Vec<Dir<'d, 'a>> {
    fn in_set<'d, 'a>(set: &'d SelectionSet<'a, &'a str>, out: &mut Vec<Dir<'d, 'a>>) {
        for sel in &set.items {
            let (directives, inner) = match sel {
                Selection::Field(f) => (&f.directives, &f.selection_set),
                Selection::FragmentSpread(s) => {
                    out.extend(s.directives.iter());
                    continue;
                }
                Selection::InlineFragment(i) => (&i.directives, &i.selection_set),
            };
            out.extend(directives.iter());
            in_set(inner, out);
        }
    }
    let mut out = Vec::new();
    for def in &cx.doc.ast.definitions {
        match def {
            Definition::Operation(op) => {
                let op = super::op_of(op);
                out.extend(op.directives.iter());
                in_set(op.selection_set, &mut out);
            }
            Definition::Fragment(f) => {
                out.extend(f.directives.iter());
                in_set(&f.selection_set, &mut out);
            }
        }
    }
    out.retain(|d| d.name == "defer" || d.name == "stream");
    out
}

/// Labels are static strings, unique across every `@defer` and `@stream` of the document.
fn labels(cx: &Cx<'_, '_>, errors: &mut Vec<(String, Vec<graphql_parser::Pos>)>) {
    let mut known: HashMap<&str, graphql_parser::Pos> = HashMap::new();
    for d in defer_and_stream(cx) {
        match d.arguments.iter().find(|(n, _)| *n == "label").map(|(_, v)| v) {
            Some(AstValue::String(s)) => match known.get(s.as_str()) {
                Some(first) => errors.push((
                    "Value for arguments \"defer(label:)\" and \"stream(label:)\" must be unique across all Defer/Stream directive usages.".to_owned(),
                    vec![*first, d.position],
                )),
                None => {
                    known.insert(s, d.position);
                }
            },
            Some(AstValue::Null) | None => {}
            Some(_) => errors.push((
                format!("Argument \"@{}(label:)\" must be a static string.", d.name),
                vec![d.position],
            )),
        }
    }
}

fn subscription_uses<'d, 'a>(
    cx: &Cx<'d, 'a>,
    set: &'d SelectionSet<'a, &'a str>,
    visited: &mut Vec<&'a str>,
    errors: &mut Vec<(String, Vec<graphql_parser::Pos>)>,
) {
    for sel in &set.items {
        let (directives, name, next) = match sel {
            Selection::Field(f) => (&f.directives, "stream", Some(&f.selection_set)),
            Selection::InlineFragment(i) => (&i.directives, "defer", Some(&i.selection_set)),
            Selection::FragmentSpread(s) => {
                let next = if visited.contains(&s.fragment_name) {
                    None
                } else {
                    visited.push(s.fragment_name);
                    cx.fragments.get(s.fragment_name).map(|f| &f.selection_set)
                };
                (&s.directives, "defer", next)
            }
        };
        for d in all(directives, name).filter(|d| !can_be_disabled(d)) {
            let title = if name == "stream" { "Stream" } else { "Defer" };
            errors.push((
                format!(
                    "{title} directive not supported on subscription operations. Disable `@{name}` by setting the `if` argument to `false`."
                ),
                vec![d.position],
            ));
        }
        if let Some(next) = next {
            subscription_uses(cx, next, visited, errors);
        }
    }
}
