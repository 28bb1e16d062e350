//! The 30 validation rules of spec section 5, one function each.

use std::collections::{HashMap, HashSet};

use graphql_parser::Pos;
use graphql_parser::query::{
    Definition, Directive, Field, FragmentSpread, Selection, SelectionSet, TypeCondition, Value,
};

use super::positions::Step;
use super::{Cx, OpKind, ast_named, duplicate_keys, positions, suggestions};
use crate::coerce::coerce_literal;
use crate::error::Location;
use crate::lexer::{Tok, tokens};
use crate::response::GraphQLError;
use crate::schema::SchemaInner;
use crate::types::{DirectiveLocation, FieldDef, InputValueDef, TypeId, TypeKind, TypeRef};

type Set<'d, 'a> = &'d SelectionSet<'a, &'a str>;
type AstValue<'a> = Value<'a, &'a str>;

// ---------------------------------------------------------------------------------------
// Shared walks.

/// Every field selection with the type it is selected on.
fn fields<'c, 'd, 'a>(cx: &'c Cx<'d, 'a>) -> &'c [(Option<TypeId>, &'d Field<'a, &'a str>)] {
    cx.cache.fields.get_or_init(|| compute_fields(cx))
}

fn compute_fields<'d, 'a>(cx: &Cx<'d, 'a>) -> Vec<(Option<TypeId>, &'d Field<'a, &'a str>)> {
    let mut out = Vec::new();
    for (parent, set) in &cx.sets {
        for sel in &set.items {
            if let Selection::Field(f) = sel {
                out.push((*parent, f));
            }
        }
    }
    out
}

/// Every use of directives: the location kind, the directives, where.
fn directive_uses<'c, 'd, 'a>(
    cx: &'c Cx<'d, 'a>,
) -> &'c [(DirectiveLocation, &'d [Directive<'a, &'a str>])] {
    cx.cache
        .directive_uses
        .get_or_init(|| compute_directive_uses(cx))
}

type DirectiveUses<'d, 'a> = Vec<(DirectiveLocation, &'d [Directive<'a, &'a str>])>;

fn compute_directive_uses<'d, 'a>(cx: &Cx<'d, 'a>) -> DirectiveUses<'d, 'a> {
    let mut out = Vec::new();
    for op in &cx.ops {
        let loc = match op.kind {
            OpKind::Query => DirectiveLocation::Query,
            OpKind::Mutation => DirectiveLocation::Mutation,
            OpKind::Subscription => DirectiveLocation::Subscription,
        };
        out.push((loc, op.directives));
    }
    for def in &cx.doc.ast.definitions {
        if let Definition::Fragment(f) = def {
            out.push((
                DirectiveLocation::FragmentDefinition,
                f.directives.as_slice(),
            ));
        }
    }
    for (_, set) in &cx.sets {
        for sel in &set.items {
            match sel {
                Selection::Field(f) => {
                    out.push((DirectiveLocation::Field, f.directives.as_slice()))
                }
                Selection::FragmentSpread(s) => {
                    out.push((DirectiveLocation::FragmentSpread, s.directives.as_slice()));
                }
                Selection::InlineFragment(i) => {
                    out.push((DirectiveLocation::InlineFragment, i.directives.as_slice()));
                }
            }
        }
    }
    out
}

/// A place where arguments are given: a field or a directive.
#[derive(Clone)]
pub(super) struct ArgSite<'d, 'a> {
    defs: Option<&'d [InputValueDef]>,
    given: &'d [(&'a str, AstValue<'a>)],
    position: Pos,
    what: Owner<'d, 'a>,
}

/// What owns arguments, printed only when an error needs it.
#[derive(Clone, Copy)]
struct Owner<'d, 'a> {
    schema: &'d SchemaInner,
    parent: Option<TypeId>,
    field: Option<&'a str>,
    directive: Option<&'a str>,
}

impl std::fmt::Display for Owner<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.field, self.directive) {
            (Some(field), _) => {
                let owner = self.parent.map_or("?", |p| self.schema.type_name(p));
                write!(f, "field \"{owner}.{field}\"")
            }
            (None, Some(d)) => write!(f, "directive \"@{d}\""),
            (None, None) => f.write_str("?"),
        }
    }
}

fn arg_sites<'c, 'd, 'a>(cx: &'c Cx<'d, 'a>) -> &'c [ArgSite<'d, 'a>] {
    cx.cache.arg_sites.get_or_init(|| compute_arg_sites(cx))
}

fn compute_arg_sites<'d, 'a>(cx: &Cx<'d, 'a>) -> Vec<ArgSite<'d, 'a>> {
    let schema: &'d SchemaInner = cx.schema;
    let mut out = Vec::new();
    for (parent, f) in fields(cx).iter().copied() {
        let def = parent.and_then(|p| schema.field(p, f.name));
        out.push(ArgSite {
            defs: def.map(|d| d.args.as_slice()),
            given: &f.arguments,
            position: f.position,
            what: Owner {
                schema,
                parent,
                field: Some(f.name),
                directive: None,
            },
        });
    }
    for (_, directives) in directive_uses(cx).iter().copied() {
        for d in directives {
            let def = schema.directives.iter().find(|x| x.name == d.name);
            out.push(ArgSite {
                defs: def.map(|d| d.args.as_slice()),
                given: &d.arguments,
                position: d.position,
                what: Owner {
                    schema,
                    parent: None,
                    field: None,
                    directive: Some(d.name),
                },
            });
        }
    }
    out
}

/// Cached walks of the document, shared by the rules that need them.
#[derive(Default)]
pub(super) struct Cache<'d, 'a> {
    fields: std::cell::OnceCell<Vec<(Option<TypeId>, &'d Field<'a, &'a str>)>>,
    directive_uses: std::cell::OnceCell<DirectiveUses<'d, 'a>>,
    arg_sites: std::cell::OnceCell<Vec<ArgSite<'d, 'a>>>,
    var_uses: std::cell::OnceCell<Vec<Vec<VarUse<'a>>>>,
    tokens: std::cell::OnceCell<Vec<(Tok<'a>, Location)>>,
}

/// The document's tokens, read once the first time an error needs a position graphql-parser
/// does not keep (see `positions`).
fn toks<'c, 'a>(cx: &'c Cx<'_, 'a>) -> &'c positions::Tokens<'a> {
    cx.cache.tokens.get_or_init(|| tokens(cx.doc.source))
}

/// Where the `...` of a fragment spread or inline fragment is (graphql-parser places it at
/// the token after `...`).
fn spread_location(cx: &Cx<'_, '_>, p: Pos) -> Location {
    let at = Location::from_pos(p);
    positions::spread(toks(cx), at).unwrap_or(at)
}

/// Where the name of the operation, fragment or variable at `p` is.
fn name_location(cx: &Cx<'_, '_>, p: Pos) -> Location {
    let at = Location::from_pos(p);
    positions::name_after(toks(cx), at).unwrap_or(at)
}

/// Fragment spreads directly inside a selection set (not following fragments).
fn spreads_in<'d, 'a>(set: Set<'d, 'a>, out: &mut Vec<&'d FragmentSpread<'a, &'a str>>) {
    for sel in &set.items {
        match sel {
            Selection::Field(f) => spreads_in(&f.selection_set, out),
            Selection::FragmentSpread(s) => out.push(s),
            Selection::InlineFragment(i) => spreads_in(&i.selection_set, out),
        }
    }
}

/// Names of the fragments an operation uses, transitively.
fn fragments_used_by<'d, 'a>(cx: &Cx<'d, 'a>, set: Set<'d, 'a>) -> Vec<&'a str> {
    let mut seen: Vec<&'a str> = Vec::new();
    let mut stack = Vec::new();
    spreads_in(set, &mut stack);
    while let Some(s) = stack.pop() {
        if seen.contains(&s.fragment_name) {
            continue;
        }
        seen.push(s.fragment_name);
        if let Some(f) = cx.fragments.get(s.fragment_name) {
            spreads_in(&f.selection_set, &mut stack);
        }
    }
    seen
}

fn possible_types(schema: &SchemaInner, id: TypeId) -> Vec<TypeId> {
    match schema.types.get(id.index()).map(|t| &t.kind) {
        Some(TypeKind::Object { .. }) => vec![id],
        Some(TypeKind::Interface { possible_types, .. }) => possible_types.clone(),
        Some(TypeKind::Union { members, .. }) => members.clone(),
        _ => Vec::new(),
    }
}

fn is_composite(schema: &SchemaInner, id: TypeId) -> bool {
    matches!(
        schema.types.get(id.index()).map(|t| &t.kind),
        Some(TypeKind::Object { .. } | TypeKind::Interface { .. } | TypeKind::Union { .. })
    )
}

fn is_leaf(schema: &SchemaInner, id: TypeId) -> bool {
    schema.types.get(id.index()).is_some_and(|t| t.is_leaf())
}

fn tname(cx: &Cx<'_, '_>, ty: &TypeRef) -> String {
    ty.display(&cx.schema.types).to_string()
}

// ---------------------------------------------------------------------------------------
// 5.1 Documents

/// 5.1.1: only operations and fragments. graphql-parser's query grammar cannot read other
/// definitions at all; [`Document::parse`](crate::Document::parse) reports such documents
/// with this rule's message, so a parsed document always passes.
pub(super) fn executable_definitions(_cx: &mut Cx<'_, '_>) {}

// ---------------------------------------------------------------------------------------
// 5.2 Operations

/// 5.2.1.1: the schema has a root type for each operation's type.
pub(super) fn operation_type_existence(cx: &mut Cx<'_, '_>) {
    let missing: Vec<_> = cx
        .ops
        .iter()
        .filter(|op| cx.root_type(op.kind).is_none())
        .map(|op| (op.kind, op.position))
        .collect();
    for (kind, pos) in missing {
        cx.error(
            format!("The schema does not support {} operations.", kind.as_str()),
            &[pos],
        );
    }
}

/// 5.2.2.1: operation names are unique.
pub(super) fn operation_name_uniqueness(cx: &mut Cx<'_, '_>) {
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    let mut found = Vec::new();
    for op in &cx.ops {
        if let Some(name) = op.name {
            if let Some(first) = seen.get(name) {
                found.push((name, *first, op.position));
            } else {
                seen.insert(name, op.position);
            }
        }
    }
    for (name, a, b) in found {
        let at = vec![name_location(cx, a), name_location(cx, b)];
        cx.errors.push(GraphQLError::new(
            format!("There can be only one operation named \"{name}\"."),
            at,
        ));
    }
}

/// 5.2.3.1: an anonymous operation must be alone.
pub(super) fn lone_anonymous_operation(cx: &mut Cx<'_, '_>) {
    if cx.ops.len() > 1 {
        let anonymous: Vec<_> = cx
            .ops
            .iter()
            .filter(|o| o.name.is_none())
            .map(|o| o.position)
            .collect();
        for pos in anonymous {
            cx.error(
                "This anonymous operation must be the only defined operation.".to_owned(),
                &[pos],
            );
        }
    }
}

/// 5.2.4.1: a subscription selects exactly one root field, not an introspection field,
/// without `@skip`/`@include` at the root.
pub(super) fn subscription_single_root_field(cx: &mut Cx<'_, '_>) {
    let Some(root) = cx.schema.subscription else {
        return;
    };
    let mut problems = Vec::new();
    for op in cx.ops.iter().filter(|o| o.kind == OpKind::Subscription) {
        let mut keys: Vec<(&str, &str, Pos)> = Vec::new();
        let mut visited = HashSet::new();
        collect_subscription_fields(
            cx,
            root,
            op.selection_set,
            &mut visited,
            &mut keys,
            &mut problems,
        );
        let name = op.name.map_or("Anonymous Subscription".to_owned(), |n| {
            format!("Subscription \"{n}\"")
        });
        // Fields grouped by response name, in order (as CollectFields groups them).
        let mut grouped: Vec<(&str, &str, Vec<Pos>)> = Vec::new();
        for (key, field, pos) in &keys {
            match grouped.iter_mut().find(|(k, _, _)| k == key) {
                Some((_, _, positions)) => positions.push(*pos),
                None => grouped.push((key, field, vec![*pos])),
            }
        }
        let extra: Vec<Pos> = grouped
            .iter()
            .skip(1)
            .flat_map(|(_, _, p)| p.iter().copied())
            .collect();
        if !extra.is_empty() {
            problems.push((
                format!("{name} must select only one top level field."),
                extra,
            ));
        }
        for (_, field, positions) in &grouped {
            if field.starts_with("__") {
                problems.push((
                    format!("{name} must not select an introspection top level field."),
                    positions.clone(),
                ));
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &p);
    }
}

fn collect_subscription_fields<'d, 'a>(
    cx: &Cx<'d, 'a>,
    root: TypeId,
    set: Set<'d, 'a>,
    visited: &mut HashSet<&'a str>,
    out: &mut Vec<(&'a str, &'a str, Pos)>,
    problems: &mut Vec<(String, Vec<Pos>)>,
) {
    for sel in &set.items {
        let directives = match sel {
            Selection::Field(f) => &f.directives,
            Selection::FragmentSpread(s) => &s.directives,
            Selection::InlineFragment(i) => &i.directives,
        };
        for d in directives
            .iter()
            .filter(|d| d.name == "skip" || d.name == "include")
        {
            problems.push((
                format!(
                    "The @{} directive cannot be used on the root fields of a subscription.",
                    d.name
                ),
                vec![d.position],
            ));
        }
        match sel {
            Selection::Field(f) => out.push((f.alias.unwrap_or(f.name), f.name, f.position)),
            Selection::FragmentSpread(s) => {
                if !visited.insert(s.fragment_name) {
                    continue;
                }
                if let Some(frag) = cx.fragments.get(s.fragment_name) {
                    let TypeCondition::On(on) = &frag.type_condition;
                    if applies(cx, root, on) {
                        collect_subscription_fields(
                            cx,
                            root,
                            &frag.selection_set,
                            visited,
                            out,
                            problems,
                        );
                    }
                }
            }
            Selection::InlineFragment(i) => {
                let ok = match &i.type_condition {
                    Some(TypeCondition::On(on)) => applies(cx, root, on),
                    None => true,
                };
                if ok {
                    collect_subscription_fields(cx, root, &i.selection_set, visited, out, problems);
                }
            }
        }
    }
}

/// DoesFragmentTypeApply for an object type.
fn applies(cx: &Cx<'_, '_>, object: TypeId, condition: &str) -> bool {
    cx.schema
        .type_index
        .get(condition)
        .is_some_and(|&c| possible_types(cx.schema, c).contains(&object))
}

// ---------------------------------------------------------------------------------------
// 5.3 Fields

/// 5.3.1: selected fields exist on the type (`__typename` anywhere on composite types).
pub(super) fn field_selections(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for (parent, f) in fields(cx).iter().copied() {
        let Some(parent) = parent else { continue };
        if cx.schema.field(parent, f.name).is_none() {
            problems.push((
                format!(
                    "Cannot query field \"{}\" on type \"{}\".{}",
                    f.name,
                    cx.schema.type_name(parent),
                    field_hint(cx.schema, parent, f.name)
                ),
                f.position,
            ));
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
    }
}

/// The hint graphql-js gives for an unknown field: the types under an abstract type that
/// have it (most used first), or else fields with a close name.
fn field_hint(schema: &SchemaInner, parent: TypeId, name: &str) -> String {
    let has = |t: TypeId| {
        schema
            .types
            .get(t.index())
            .and_then(|d| d.fields())
            .is_some_and(|f| f.get(name).is_some())
    };
    let is_abstract = matches!(
        schema.types.get(parent.index()).map(|t| &t.kind),
        Some(TypeKind::Interface { .. } | TypeKind::Union { .. })
    );
    if is_abstract {
        // Object types that have the field count once; interfaces once per such object.
        let mut usage: Vec<(TypeId, usize)> = Vec::new();
        for object in possible_types(schema, parent) {
            if !has(object) {
                continue;
            }
            usage.push((object, 1));
            let interfaces = match schema.types.get(object.index()).map(|t| &t.kind) {
                Some(TypeKind::Object { interfaces, .. }) => interfaces.clone(),
                _ => Vec::new(),
            };
            for i in interfaces.into_iter().filter(|&i| has(i)) {
                match usage.iter_mut().find(|(t, _)| *t == i) {
                    Some((_, n)) => *n += 1,
                    None => usage.push((i, 1)),
                }
            }
        }
        let is_interface = |t: TypeId| {
            matches!(
                schema.types.get(t.index()).map(|d| &d.kind),
                Some(TypeKind::Interface { .. })
            )
        };
        let implements = |a: TypeId, b: TypeId| match schema.types.get(b.index()).map(|d| &d.kind) {
            Some(TypeKind::Interface { interfaces, .. }) => interfaces.contains(&a),
            _ => false,
        };
        usage.sort_by(|(a, na), (b, nb)| {
            nb.cmp(na)
                .then_with(|| {
                    if is_interface(*a) && implements(*a, *b) {
                        std::cmp::Ordering::Less
                    } else if is_interface(*b) && implements(*b, *a) {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Equal
                    }
                })
                .then_with(|| {
                    suggestions::natural_compare(schema.type_name(*a), schema.type_name(*b))
                })
        });
        let names: Vec<&str> = usage.iter().map(|(t, _)| schema.type_name(*t)).collect();
        if !names.is_empty() {
            return suggestions::did_you_mean(Some("to use an inline fragment on"), &names);
        }
    }
    let fields = schema
        .types
        .get(parent.index())
        .and_then(|d| d.fields())
        .map(|f| f.fields())
        .unwrap_or_default();
    suggestions::did_you_mean(
        None,
        &suggestions::suggestion_list(name, fields.iter().map(|f| f.name.as_str())),
    )
}

/// The hint graphql-js gives for an unknown type name.
fn type_hint(schema: &SchemaInner, name: &str) -> String {
    suggestions::did_you_mean(
        None,
        &suggestions::suggestion_list(name, schema.types.iter().map(|t| t.name.as_str())),
    )
}

/// 5.3.3: leaf fields have no selection set, composite fields have one.
pub(super) fn leaf_field_selections(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for (parent, f) in fields(cx).iter().copied() {
        let Some(def) = parent.and_then(|p| cx.schema.field(p, f.name)) else {
            continue;
        };
        let named = def.ty.named();
        let has_selection = !f.selection_set.items.is_empty();
        if is_leaf(cx.schema, named) && has_selection {
            problems.push((
                format!(
                    "Field \"{}\" must not have a selection since type \"{}\" has no subfields.",
                    f.name,
                    tname(cx, &def.ty)
                ),
                f.selection_set.span.0,
            ));
        } else if !is_leaf(cx.schema, named) && !has_selection {
            problems.push((
                format!(
                    "Field \"{}\" of type \"{}\" must have a selection of subfields. Did you mean \"{} {{ ... }}\"?",
                    f.name,
                    tname(cx, &def.ty),
                    f.name
                ),
                f.position,
            ));
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
    }
}

/// One field of a selection set, for 5.3.2: its parent type, the selection, its definition.
#[derive(Clone, Copy)]
struct MergeField<'d, 'a, 's> {
    parent: Option<TypeId>,
    field: &'d Field<'a, &'a str>,
    def: Option<&'s FieldDef>,
}

/// The fields of a selection set by response name (inline fragments flattened, in document
/// order), and the names of the fragments it spreads directly.
struct FieldsAndFragments<'d, 'a, 's> {
    fields: Vec<(&'a str, Vec<MergeField<'d, 'a, 's>>)>,
    fragments: Vec<&'a str>,
}

/// Why two fields conflict: a message, or the conflicts of their subfields.
enum Reason<'a> {
    Message(String),
    Subfields(Vec<(&'a str, Reason<'a>)>),
}

impl std::fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Message(m) => f.write_str(m),
            Reason::Subfields(subs) => {
                for (i, (name, reason)) in subs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    write!(f, "subfields \"{name}\" conflict because {reason}")?;
                }
                Ok(())
            }
        }
    }
}

/// A conflict between two fields of one response name, with every field it involves on
/// either side (the two fields first, then the subfields that conflict).
struct Conflict<'a> {
    response_name: &'a str,
    reason: Reason<'a>,
    fields1: Vec<Pos>,
    fields2: Vec<Pos>,
}

/// FieldsInSetCanMerge, organised as graphql-js organises it so that each conflict is found
/// once and blamed on the nearest pair of fields that holds it: every selection set is
/// compared within itself, with the fragments it spreads, and those fragments with each
/// other; a pair of fragments (and a set with a fragment) is compared once per document.
struct Merger<'d, 'a, 's> {
    cx: &'s Cx<'d, 'a>,
    /// Fields and fragment names of each selection set seen, by the set's address.
    sets: HashMap<usize, std::rc::Rc<FieldsAndFragments<'d, 'a, 's>>>,
    /// (selection set, fragment) pairs compared, with whether they were mutually exclusive.
    set_and_fragment: HashMap<(usize, &'a str), bool>,
    /// Fragment pairs compared (unordered), with whether they were mutually exclusive.
    fragment_pairs: HashMap<(&'a str, &'a str), bool>,
    /// Field pairs compared: a pair met again (through another path to the same two fields)
    /// was reported the first time, and comparing it again could take exponential time.
    field_pairs: HashSet<(usize, usize, bool)>,
}

type SetKey = usize;

fn set_key(set: Set<'_, '_>) -> SetKey {
    std::ptr::from_ref(set) as usize
}

/// Whether a pair was compared before, as graphql-js's PairSet answers: a pair compared as
/// mutually exclusive does not stand for the stricter, non-exclusive comparison.
fn seen_before<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, bool>,
    key: K,
    exclusive: bool,
) -> bool {
    match map.get(&key) {
        Some(&was) if exclusive || !was => true,
        _ => {
            map.insert(key, exclusive);
            false
        }
    }
}

impl<'d, 'a, 's> Merger<'d, 'a, 's> {
    fn fields_and_fragments(
        &mut self,
        parent: Option<TypeId>,
        set: Set<'d, 'a>,
    ) -> (SetKey, std::rc::Rc<FieldsAndFragments<'d, 'a, 's>>) {
        let key = set_key(set);
        if let Some(found) = self.sets.get(&key) {
            return (key, found.clone());
        }
        let mut out = FieldsAndFragments {
            fields: Vec::new(),
            fragments: Vec::new(),
        };
        self.collect(parent, set, &mut out);
        let out = std::rc::Rc::new(out);
        self.sets.insert(key, out.clone());
        (key, out)
    }

    fn collect(
        &self,
        parent: Option<TypeId>,
        set: Set<'d, 'a>,
        out: &mut FieldsAndFragments<'d, 'a, 's>,
    ) {
        for sel in &set.items {
            match sel {
                Selection::Field(f) => {
                    let key = f.alias.unwrap_or(f.name);
                    let entry = MergeField {
                        parent,
                        field: f,
                        def: parent
                            .filter(|&p| self.is_object_or_interface(p))
                            .and_then(|p| self.cx.schema.field(p, f.name)),
                    };
                    match out.fields.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, list)) => list.push(entry),
                        None => out.fields.push((key, vec![entry])),
                    }
                }
                Selection::InlineFragment(i) => {
                    let ty = match &i.type_condition {
                        Some(TypeCondition::On(on)) => self.cx.schema.type_index.get(*on).copied(),
                        None => parent,
                    };
                    self.collect(ty, &i.selection_set, out);
                }
                Selection::FragmentSpread(s) => {
                    if !out.fragments.contains(&s.fragment_name) {
                        out.fragments.push(s.fragment_name);
                    }
                }
            }
        }
    }

    fn fragment(
        &mut self,
        name: &str,
    ) -> Option<(SetKey, std::rc::Rc<FieldsAndFragments<'d, 'a, 's>>)> {
        let cx = self.cx;
        let frag = cx.fragments.get(name)?;
        let TypeCondition::On(on) = &frag.type_condition;
        let ty = cx.schema.type_index.get(*on).copied();
        Some(self.fields_and_fragments(ty, &frag.selection_set))
    }

    fn is_object(&self, id: TypeId) -> bool {
        matches!(
            self.cx.schema.types.get(id.index()).map(|t| &t.kind),
            Some(TypeKind::Object { .. })
        )
    }

    fn is_object_or_interface(&self, id: TypeId) -> bool {
        matches!(
            self.cx.schema.types.get(id.index()).map(|t| &t.kind),
            Some(TypeKind::Object { .. } | TypeKind::Interface { .. })
        )
    }

    /// The conflicts of one selection set of the document.
    fn within_set(&mut self, parent: Option<TypeId>, set: Set<'d, 'a>) -> Vec<Conflict<'a>> {
        let mut conflicts = Vec::new();
        let (key, this) = self.fields_and_fragments(parent, set);
        for (name, list) in &this.fields {
            for (i, a) in list.iter().enumerate() {
                for b in list.iter().skip(i + 1) {
                    if let Some(c) = self.find_conflict(false, name, *a, *b) {
                        conflicts.push(c);
                    }
                }
            }
        }
        for (i, frag) in this.fragments.iter().enumerate() {
            self.set_and_fragment(&mut conflicts, false, key, &this, frag);
            for other in this.fragments.iter().skip(i + 1) {
                self.between_fragments(&mut conflicts, false, frag, other);
            }
        }
        conflicts
    }

    /// Conflicts between the fields of a selection set and those of a fragment (and of the
    /// fragments it spreads).
    fn set_and_fragment(
        &mut self,
        conflicts: &mut Vec<Conflict<'a>>,
        exclusive: bool,
        key: SetKey,
        fields: &FieldsAndFragments<'d, 'a, 's>,
        fragment: &'a str,
    ) {
        if seen_before(&mut self.set_and_fragment, (key, fragment), exclusive) {
            return;
        }
        let Some((key2, other)) = self.fragment(fragment) else {
            return;
        };
        if key == key2 {
            return;
        }
        self.between(conflicts, exclusive, fields, &other);
        for next in &other.fragments {
            self.set_and_fragment(conflicts, exclusive, key, fields, next);
        }
    }

    /// Conflicts between two fragments (and the fragments they spread).
    fn between_fragments(
        &mut self,
        conflicts: &mut Vec<Conflict<'a>>,
        exclusive: bool,
        a: &'a str,
        b: &'a str,
    ) {
        if a == b {
            return;
        }
        let pair = if a < b { (a, b) } else { (b, a) };
        if seen_before(&mut self.fragment_pairs, pair, exclusive) {
            return;
        }
        let (Some((_, fa)), Some((_, fb))) = (self.fragment(a), self.fragment(b)) else {
            return;
        };
        self.between(conflicts, exclusive, &fa, &fb);
        for next in &fb.fragments {
            self.between_fragments(conflicts, exclusive, a, next);
        }
        for next in &fa.fragments {
            self.between_fragments(conflicts, exclusive, next, b);
        }
    }

    /// Conflicts between the fields of two sets, for each response name they share.
    fn between(
        &mut self,
        conflicts: &mut Vec<Conflict<'a>>,
        exclusive: bool,
        a: &FieldsAndFragments<'d, 'a, 's>,
        b: &FieldsAndFragments<'d, 'a, 's>,
    ) {
        for (name, list_a) in &a.fields {
            let Some((_, list_b)) = b.fields.iter().find(|(k, _)| k == name) else {
                continue;
            };
            for fa in list_a {
                for fb in list_b {
                    if let Some(c) = self.find_conflict(exclusive, name, *fa, *fb) {
                        conflicts.push(c);
                    }
                }
            }
        }
    }

    /// Conflicts between the sub-selections of two fields.
    fn between_subselections(
        &mut self,
        exclusive: bool,
        a: (Option<TypeId>, Set<'d, 'a>),
        b: (Option<TypeId>, Set<'d, 'a>),
    ) -> Vec<Conflict<'a>> {
        let mut conflicts = Vec::new();
        let (key_a, fa) = self.fields_and_fragments(a.0, a.1);
        let (key_b, fb) = self.fields_and_fragments(b.0, b.1);
        self.between(&mut conflicts, exclusive, &fa, &fb);
        for frag in &fb.fragments {
            self.set_and_fragment(&mut conflicts, exclusive, key_a, &fa, frag);
        }
        for frag in &fa.fragments {
            self.set_and_fragment(&mut conflicts, exclusive, key_b, &fb, frag);
        }
        for x in &fa.fragments {
            for y in &fb.fragments {
                self.between_fragments(&mut conflicts, exclusive, x, y);
            }
        }
        conflicts
    }

    fn find_conflict(
        &mut self,
        parents_exclusive: bool,
        name: &'a str,
        a: MergeField<'d, 'a, 's>,
        b: MergeField<'d, 'a, 's>,
    ) -> Option<Conflict<'a>> {
        let id = |f: &Field<'a, &'a str>| std::ptr::from_ref(f) as usize;
        let exclusive = parents_exclusive
            || match (a.parent, b.parent) {
                (Some(pa), Some(pb)) => pa != pb && self.is_object(pa) && self.is_object(pb),
                _ => false,
            };
        if !self
            .field_pairs
            .insert((id(a.field), id(b.field), exclusive))
        {
            return None;
        }
        let conflict = |reason: String| Conflict {
            response_name: name,
            reason: Reason::Message(reason),
            fields1: vec![a.field.position],
            fields2: vec![b.field.position],
        };
        // Names and arguments matter only when both fields can apply to one object.
        if !exclusive {
            if a.field.name != b.field.name {
                return Some(conflict(format!(
                    "\"{}\" and \"{}\" are different fields",
                    a.field.name, b.field.name
                )));
            }
            if !same_arguments(&a.field.arguments, &b.field.arguments) {
                return Some(conflict("they have differing arguments".to_owned()));
            }
        }
        if let (Some(da), Some(db)) = (a.def, b.def)
            && self.types_conflict(&da.ty, &db.ty)
        {
            return Some(conflict(format!(
                "they return conflicting types \"{}\" and \"{}\"",
                da.ty.display(&self.cx.schema.types),
                db.ty.display(&self.cx.schema.types)
            )));
        }
        if a.field.selection_set.items.is_empty() || b.field.selection_set.items.is_empty() {
            return None;
        }
        let subs = self.between_subselections(
            exclusive,
            (a.def.map(|d| d.ty.named()), &a.field.selection_set),
            (b.def.map(|d| d.ty.named()), &b.field.selection_set),
        );
        if subs.is_empty() {
            return None;
        }
        let mut fields1 = vec![a.field.position];
        let mut fields2 = vec![b.field.position];
        let mut reasons = Vec::new();
        for c in subs {
            fields1.extend(c.fields1);
            fields2.extend(c.fields2);
            reasons.push((c.response_name, c.reason));
        }
        Some(Conflict {
            response_name: name,
            reason: Reason::Subfields(reasons),
            fields1,
            fields2,
        })
    }

    /// DoTypesConflict: list and non-null wrappers must match, and leaf types be the same;
    /// composite types are compared through their sub-selections instead.
    fn types_conflict(&self, a: &TypeRef, b: &TypeRef) -> bool {
        match (a, b) {
            (TypeRef::List(x), TypeRef::List(y)) | (TypeRef::NonNull(x), TypeRef::NonNull(y)) => {
                self.types_conflict(x, y)
            }
            (TypeRef::List(_), _) | (_, TypeRef::List(_)) => true,
            (TypeRef::NonNull(_), _) | (_, TypeRef::NonNull(_)) => true,
            (TypeRef::Named(x), TypeRef::Named(y)) => {
                (is_leaf(self.cx.schema, *x) || is_leaf(self.cx.schema, *y)) && x != y
            }
        }
    }
}

fn same_arguments<'a>(a: &[(&'a str, AstValue<'a>)], b: &[(&'a str, AstValue<'a>)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(n, v)| b.iter().any(|(m, w)| n == m && v == w))
}

/// 5.3.2: fields with the same response name can merge (FieldsInSetCanMerge).
pub(super) fn field_selection_merging(cx: &mut Cx<'_, '_>) {
    // A set of fields with distinct response names and no fragments has no pair to
    // compare (nested sets are checked on their own): most documents are only such sets.
    if cx.sets.iter().all(|(_, set)| distinct_fields_only(set)) {
        return;
    }
    let problems = {
        let mut merger = Merger {
            cx,
            sets: HashMap::new(),
            set_and_fragment: HashMap::new(),
            fragment_pairs: HashMap::new(),
            field_pairs: HashSet::new(),
        };
        let mut problems = Vec::new();
        for (parent, set) in cx.sets_in_document_order() {
            if distinct_fields_only(set) {
                continue;
            }
            for c in merger.within_set(parent, set) {
                let mut at = c.fields1;
                at.extend(c.fields2);
                problems.push((
                    format!(
                        "Fields \"{}\" conflict because {}. Use different aliases on the fields to fetch both if this was intentional.",
                        c.response_name, c.reason
                    ),
                    at,
                ));
            }
        }
        problems
    };
    for (m, p) in problems {
        cx.error(m, &p);
    }
}

/// Whether `set` holds only fields (no fragment spread, no inline fragment), each with its
/// own response name; larger sets are not checked and count as `false`.
fn distinct_fields_only<'a>(set: &SelectionSet<'a, &'a str>) -> bool {
    fn response_name<'a>(item: &Selection<'a, &'a str>) -> Option<&'a str> {
        match item {
            Selection::Field(f) => Some(f.alias.unwrap_or(f.name)),
            _ => None,
        }
    }
    if set.items.len() > 32 {
        return false;
    }
    set.items.iter().enumerate().all(|(i, item)| {
        response_name(item).is_some_and(|n| {
            set.items
                .iter()
                .take(i)
                .all(|earlier| response_name(earlier) != Some(n))
        })
    })
}

// ---------------------------------------------------------------------------------------
// 5.4 Arguments

/// 5.4.1: arguments are defined by the field or directive.
pub(super) fn argument_names(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for site in arg_sites(cx) {
        let Some(defs) = site.defs else { continue };
        for (name, _) in site.given {
            if !defs.iter().any(|d| d.name == *name) {
                let hint = suggestions::did_you_mean(
                    None,
                    &suggestions::suggestion_list(name, defs.iter().map(|d| d.name.as_str())),
                );
                problems.push((
                    format!("Unknown argument \"{name}\" on {}.{hint}", site.what),
                    site.position,
                    *name,
                ));
            }
        }
    }
    for (m, p, name) in problems {
        let at = Location::from_pos(p);
        let at = positions::argument(toks(cx), at, name).unwrap_or(at);
        cx.errors.push(GraphQLError::new(m, vec![at]));
    }
}

/// 5.4.2: each argument is given at most once; one error per repeated name, at every
/// occurrence.
pub(super) fn argument_uniqueness(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for site in arg_sites(cx) {
        for (i, (name, _)) in site.given.iter().enumerate() {
            let first = site.given.iter().position(|(n, _)| n == name) == Some(i);
            if first && site.given.iter().skip(i + 1).any(|(n, _)| n == name) {
                problems.push((*name, site.position));
            }
        }
    }
    for (name, p) in problems {
        let at = Location::from_pos(p);
        let mut locations: Vec<Location> = positions::arguments(toks(cx), at)
            .into_iter()
            .filter_map(|(n, l)| (n == name).then_some(l))
            .collect();
        if locations.is_empty() {
            locations.push(at);
        }
        cx.errors.push(GraphQLError::new(
            format!("There can be only one argument named \"{name}\"."),
            locations,
        ));
    }
}

/// 5.4.2.1: non-null arguments without a default are given, and not as `null`.
pub(super) fn required_arguments(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for site in arg_sites(cx) {
        let Some(defs) = site.defs else { continue };
        for def in defs {
            if !def.ty.is_non_null() || def.default_literal.is_some() {
                continue;
            }
            match site.given.iter().find(|(n, _)| *n == def.name) {
                None => problems.push((
                    match (site.what.field, site.what.directive) {
                        (Some(field), _) => format!(
                            "Field \"{field}\" argument \"{}\" of type \"{}\" is required, but it was not provided.",
                            def.name,
                            tname(cx, &def.ty),
                        ),
                        (None, directive) => format!(
                            "Directive \"@{}\" argument \"{}\" of type \"{}\" is required, but it was not provided.",
                            directive.unwrap_or("?"),
                            def.name,
                            tname(cx, &def.ty),
                        ),
                    },
                    site.position,
                )),
                Some((_, Value::Null)) => problems.push((
                    format!(
                        "Argument \"{}\" of non-null type \"{}\" on {} must not be null.",
                        def.name,
                        tname(cx, &def.ty),
                        site.what
                    ),
                    site.position,
                )),
                Some(_) => {}
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
    }
}

// ---------------------------------------------------------------------------------------
// 5.5 Fragments

/// 5.5.1.1: fragment names are unique.
pub(super) fn fragment_name_uniqueness(cx: &mut Cx<'_, '_>) {
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    let mut problems = Vec::new();
    for def in &cx.doc.ast.definitions {
        if let Definition::Fragment(f) = def {
            if let Some(first) = seen.get(f.name) {
                problems.push((
                    format!("There can be only one fragment named \"{}\".", f.name),
                    [*first, f.position],
                ));
            } else {
                seen.insert(f.name, f.position);
            }
        }
    }
    for (m, [a, b]) in problems {
        let at = vec![name_location(cx, a), name_location(cx, b)];
        cx.errors.push(GraphQLError::new(m, at));
    }
}

/// Type conditions of fragment definitions and inline fragments, with positions.
fn type_conditions<'d, 'a>(cx: &Cx<'d, 'a>) -> Vec<(&'a str, Pos, Option<&'a str>)> {
    let mut out = Vec::new();
    for def in &cx.doc.ast.definitions {
        if let Definition::Fragment(f) = def {
            let TypeCondition::On(on) = &f.type_condition;
            out.push((*on, f.position, Some(f.name)));
        }
    }
    for (_, set) in &cx.sets {
        for sel in &set.items {
            if let Selection::InlineFragment(i) = sel
                && let Some(TypeCondition::On(on)) = &i.type_condition
            {
                out.push((*on, i.position, None));
            }
        }
    }
    out
}

/// 5.5.1.2: type conditions name types of the schema.
pub(super) fn fragment_spread_type_existence(cx: &mut Cx<'_, '_>) {
    let problems: Vec<_> = type_conditions(cx)
        .into_iter()
        .filter(|(on, _, _)| !cx.schema.type_index.contains_key(*on))
        .map(|(on, pos, _)| {
            let hint = type_hint(cx.schema, on);
            (format!("Unknown type \"{on}\".{hint}"), pos)
        })
        .collect();
    for (m, p) in problems {
        let at = type_condition_location(cx, p);
        cx.errors.push(GraphQLError::new(m, vec![at]));
    }
}

/// 5.5.1.3: type conditions name object, interface or union types.
pub(super) fn fragments_on_composite_types(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for (on, pos, name) in type_conditions(cx) {
        if let Some(&id) = cx.schema.type_index.get(on)
            && !is_composite(cx.schema, id)
        {
            let m = match name {
                Some(n) => {
                    format!("Fragment \"{n}\" cannot condition on non composite type \"{on}\".")
                }
                None => format!("Fragment cannot condition on non composite type \"{on}\"."),
            };
            problems.push((m, pos));
        }
    }
    for (m, p) in problems {
        let at = type_condition_location(cx, p);
        cx.errors.push(GraphQLError::new(m, vec![at]));
    }
}

/// Where a fragment's type condition is (graphql-parser only keeps the `fragment` or `...`
/// position; the source is scanned again).
fn type_condition_location(cx: &Cx<'_, '_>, p: Pos) -> Location {
    let at = Location::from_pos(p);
    positions::type_condition(toks(cx), at).unwrap_or(at)
}

/// 5.5.1.4: every fragment is used by some operation.
pub(super) fn fragments_must_be_used(cx: &mut Cx<'_, '_>) {
    let mut used = HashSet::new();
    for op in &cx.ops {
        used.extend(fragments_used_by(cx, op.selection_set));
    }
    let mut problems = Vec::new();
    for def in &cx.doc.ast.definitions {
        if let Definition::Fragment(f) = def
            && !used.contains(f.name)
        {
            problems.push((
                format!("Fragment \"{}\" is never used.", f.name),
                f.position,
            ));
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
    }
}

fn all_spreads<'d, 'a>(cx: &Cx<'d, 'a>) -> Vec<(Option<TypeId>, &'d FragmentSpread<'a, &'a str>)> {
    let mut out = Vec::new();
    for (parent, set) in &cx.sets {
        for sel in &set.items {
            if let Selection::FragmentSpread(s) = sel {
                out.push((*parent, s));
            }
        }
    }
    out
}

/// 5.5.2.1: spread fragments are defined.
pub(super) fn fragment_spread_target_defined(cx: &mut Cx<'_, '_>) {
    let problems: Vec<_> = all_spreads(cx)
        .into_iter()
        .filter(|(_, s)| !cx.fragments.contains_key(s.fragment_name))
        .map(|(_, s)| {
            (
                format!("Unknown fragment \"{}\".", s.fragment_name),
                s.position,
            )
        })
        .collect();
    for (m, p) in problems {
        cx.error(m, &[p]);
    }
}

/// 5.5.2.2: fragments do not spread themselves, directly or not. One depth-first walk over
/// the fragments in document order, as graphql-js walks, reports every cycle it closes, with
/// the spreads along it.
pub(super) fn fragment_spreads_must_not_form_cycles(cx: &mut Cx<'_, '_>) {
    let mut walk = CycleWalk {
        cx,
        visited: HashSet::new(),
        path: Vec::new(),
        index_on_path: HashMap::new(),
        problems: Vec::new(),
    };
    for def in &cx.doc.ast.definitions {
        if let Definition::Fragment(frag) = def {
            walk.visit(frag.name, &frag.selection_set);
        }
    }
    let problems = walk.problems;
    for (m, p) in problems {
        let at = p.into_iter().map(|p| spread_location(cx, p)).collect();
        cx.errors.push(GraphQLError::new(m, at));
    }
}

struct CycleWalk<'c, 'd, 'a> {
    cx: &'c Cx<'d, 'a>,
    visited: HashSet<&'a str>,
    /// The spreads followed from the fragment the walk started at.
    path: Vec<&'d FragmentSpread<'a, &'a str>>,
    /// For each fragment on the path, how many spreads led to it.
    index_on_path: HashMap<&'a str, usize>,
    problems: Vec<(String, Vec<Pos>)>,
}

impl<'d, 'a> CycleWalk<'_, 'd, 'a> {
    fn visit(&mut self, name: &'a str, set: Set<'d, 'a>) {
        if !self.visited.insert(name) {
            return;
        }
        let spreads = spreads_stack_order(set);
        if spreads.is_empty() {
            return;
        }
        self.index_on_path.insert(name, self.path.len());
        for spread in spreads {
            let target = spread.fragment_name;
            let cycle_start = self.index_on_path.get(target).copied();
            self.path.push(spread);
            match cycle_start {
                None => {
                    if let Some(frag) = self.cx.fragments.get(target) {
                        self.visit(target, &frag.selection_set);
                    }
                }
                Some(start) => {
                    let cycle = self.path.get(start..).unwrap_or_default();
                    let via: Vec<String> = cycle
                        .iter()
                        .take(cycle.len().saturating_sub(1))
                        .map(|s| format!("\"{}\"", s.fragment_name))
                        .collect();
                    let message = if via.is_empty() {
                        format!("Cannot spread fragment \"{target}\" within itself.")
                    } else {
                        format!(
                            "Cannot spread fragment \"{target}\" within itself via {}.",
                            via.join(", ")
                        )
                    };
                    let at = cycle.iter().map(|s| s.position).collect();
                    self.problems.push((message, at));
                }
            }
            self.path.pop();
        }
        self.index_on_path.remove(name);
    }
}

/// The fragment spreads anywhere in a selection set, in the order graphql-js lists them: a
/// set's own spreads in order, then the sets inside it, the last one first.
fn spreads_stack_order<'d, 'a>(set: Set<'d, 'a>) -> Vec<&'d FragmentSpread<'a, &'a str>> {
    let mut out = Vec::new();
    let mut stack = vec![set];
    while let Some(set) = stack.pop() {
        for sel in &set.items {
            match sel {
                Selection::FragmentSpread(s) => out.push(s),
                Selection::Field(f) => {
                    if !f.selection_set.items.is_empty() {
                        stack.push(&f.selection_set);
                    }
                }
                Selection::InlineFragment(i) => stack.push(&i.selection_set),
            }
        }
    }
    out
}

/// 5.5.2.3: a fragment can apply where it is spread (its possible types overlap the
/// parent's).
pub(super) fn fragment_spread_is_possible(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    let overlap = |a: TypeId, b: TypeId| {
        let pa = possible_types(cx.schema, a);
        let pb = possible_types(cx.schema, b);
        pa.iter().any(|t| pb.contains(t))
    };
    for (parent, set) in &cx.sets {
        let Some(parent) = *parent else { continue };
        if !is_composite(cx.schema, parent) {
            continue;
        }
        for sel in &set.items {
            match sel {
                Selection::FragmentSpread(s) => {
                    let Some(frag) = cx.fragments.get(s.fragment_name) else {
                        continue;
                    };
                    let TypeCondition::On(on) = &frag.type_condition;
                    let Some(&ty) = cx.schema.type_index.get(*on) else {
                        continue;
                    };
                    if is_composite(cx.schema, ty) && !overlap(parent, ty) {
                        problems.push((
                            format!(
                                "Fragment \"{}\" cannot be spread here as objects of type \"{}\" can never be of type \"{on}\".",
                                s.fragment_name,
                                cx.schema.type_name(parent)
                            ),
                            s.position,
                        ));
                    }
                }
                Selection::InlineFragment(i) => {
                    let Some(TypeCondition::On(on)) = &i.type_condition else {
                        continue;
                    };
                    let Some(&ty) = cx.schema.type_index.get(*on) else {
                        continue;
                    };
                    if is_composite(cx.schema, ty) && !overlap(parent, ty) {
                        problems.push((
                            format!(
                                "Fragment cannot be spread here as objects of type \"{}\" can never be of type \"{on}\".",
                                cx.schema.type_name(parent)
                            ),
                            i.position,
                        ));
                    }
                }
                Selection::Field(_) => {}
            }
        }
    }
    for (m, p) in problems {
        let at = spread_location(cx, p);
        cx.errors.push(GraphQLError::new(m, vec![at]));
    }
}

// ---------------------------------------------------------------------------------------
// 5.6 Values

/// Which value rule a walk reports for.
#[derive(Clone, Copy, PartialEq)]
enum ValueRule {
    CorrectType,
    FieldNames,
    RequiredFields,
}

/// Where a literal is given: an argument of a field or directive, or a variable's default.
#[derive(Clone, Copy)]
enum ValueSite<'a> {
    Argument(&'a str),
    VariableDefault,
}

/// Every literal given to an argument (fields, directives) or as a variable default, with its
/// expected type, the position of its field, directive or variable definition, and where in
/// it the literal is.
fn typed_values<'d, 'a>(cx: &Cx<'d, 'a>) -> Vec<(TypeRef, &'d AstValue<'a>, Pos, ValueSite<'a>)> {
    let mut out = Vec::new();
    for site in arg_sites(cx) {
        let Some(defs) = site.defs else { continue };
        for (name, value) in site.given {
            if let Some(def) = defs.iter().find(|d| d.name == *name) {
                out.push((
                    def.ty.clone(),
                    value,
                    site.position,
                    ValueSite::Argument(name),
                ));
            }
        }
    }
    for op in &cx.ops {
        for v in op.variables {
            if let (Some(default), Some(ty)) = (&v.default_value, cx.type_ref(&v.var_type)) {
                out.push((ty, default, v.position, ValueSite::VariableDefault));
            }
        }
    }
    out
}

/// One problem with a literal: the message, the part of the literal it is about, and whether
/// it points at that part's field name (an unknown input field) rather than its value.
struct ValueProblem<'v> {
    message: String,
    path: Vec<Step<'v>>,
    at_name: bool,
}

/// Checks literals as graphql-js's ValuesOfCorrectType does, with its messages.
struct ValueCheck<'s, 'v, 'a: 'v> {
    schema: &'s SchemaInner,
    rule: ValueRule,
    /// Variables some operation defines with a non-null type (for OneOf input objects).
    non_null_variables: &'s HashSet<&'s str>,
    path: Vec<Step<'v>>,
    out: Vec<ValueProblem<'v>>,
    text: std::marker::PhantomData<&'a str>,
}

impl<'v, 'a: 'v> ValueCheck<'_, 'v, 'a> {
    fn report(&mut self, message: String) {
        self.out.push(ValueProblem {
            message,
            path: self.path.clone(),
            at_name: false,
        });
    }

    fn check(&mut self, ty: &TypeRef, value: &'v AstValue<'a>) {
        match value {
            Value::Variable(_) => {} // 5.8.5 checks variables.
            Value::Null => {
                if ty.is_non_null() && self.rule == ValueRule::CorrectType {
                    let shown = ty.display(&self.schema.types).to_string();
                    self.report(format!("Expected value of type \"{shown}\", found null."));
                }
            }
            Value::List(items) => match ty.nullable() {
                TypeRef::List(item) => {
                    for (i, it) in items.iter().enumerate() {
                        self.path.push(Step::Item(i));
                        self.check(item, it);
                        self.path.pop();
                    }
                }
                _ => self.leaf(ty, value),
            },
            Value::Object(given) => {
                let id = ty.named();
                match self
                    .schema
                    .types
                    .get(id.index())
                    .map(|d| (&d.name, &d.kind))
                {
                    Some((name, TypeKind::InputObject { fields, one_of })) => {
                        self.object(name, fields, *one_of, given);
                    }
                    _ => self.leaf(ty, value),
                }
            }
            _ => self.leaf(ty, value),
        }
    }

    fn object(
        &mut self,
        name: &str,
        fields: &[InputValueDef],
        one_of: bool,
        given: &'v std::collections::BTreeMap<&'a str, AstValue<'a>>,
    ) {
        if self.rule == ValueRule::RequiredFields {
            for f in fields {
                if f.ty.is_non_null()
                    && f.default_literal.is_none()
                    && !given.contains_key(f.name.as_str())
                {
                    let shown = f.ty.display(&self.schema.types).to_string();
                    self.report(format!(
                        "Field \"{name}.{}\" of required type \"{shown}\" was not provided.",
                        f.name
                    ));
                }
            }
        }
        if one_of && self.rule == ValueRule::CorrectType {
            let mut entries = given.iter();
            match (entries.next(), entries.next()) {
                (Some((key, value)), None) => match value {
                    Value::Null => {
                        self.report(format!("Field \"{name}.{key}\" must be non-null."));
                    }
                    Value::Variable(v) if !self.non_null_variables.contains(v) => {
                        self.report(format!(
                            "Variable \"{v}\" must be non-nullable to be used for OneOf Input Object \"{name}\"."
                        ));
                    }
                    _ => {}
                },
                _ => self.report(format!(
                    "OneOf Input Object \"{name}\" must specify exactly one key."
                )),
            }
        }
        for (k, v) in given {
            self.path.push(Step::Field(k));
            match fields.iter().find(|f| f.name == *k) {
                Some(f) => self.check(&f.ty, v),
                None if self.rule == ValueRule::FieldNames => {
                    let hint = suggestions::did_you_mean(
                        None,
                        &suggestions::suggestion_list(k, fields.iter().map(|f| f.name.as_str())),
                    );
                    self.out.push(ValueProblem {
                        message: format!("Field \"{k}\" is not defined by type \"{name}\".{hint}"),
                        path: self.path.clone(),
                        at_name: true,
                    });
                }
                None => {}
            }
            self.path.pop();
        }
    }

    /// A value where a leaf type is expected (or a list or object given to the wrong type).
    fn leaf(&mut self, ty: &TypeRef, value: &'v AstValue<'a>) {
        if self.rule != ValueRule::CorrectType {
            return;
        }
        let Some(def) = self.schema.types.get(ty.named().index()) else {
            return;
        };
        let shown = show(value);
        if !def.is_leaf() {
            let expected = ty.display(&self.schema.types).to_string();
            self.report(format!(
                "Expected value of type \"{expected}\", found {shown}."
            ));
            return;
        }
        if let TypeKind::Enum { values } = &def.kind {
            let names = || values.iter().map(|v| v.name.as_str());
            let hint = |input: &str| {
                suggestions::did_you_mean(
                    Some("the enum value"),
                    &suggestions::suggestion_list(input, names()),
                )
            };
            match value {
                Value::Enum(e) if names().any(|n| n == *e) => {}
                Value::Enum(e) => self.report(format!(
                    "Value \"{e}\" does not exist in \"{}\" enum.{}",
                    def.name,
                    hint(e)
                )),
                _ => self.report(format!(
                    "Enum \"{}\" cannot represent non-enum value: {shown}.{}",
                    def.name,
                    hint(&shown)
                )),
            }
            return;
        }
        // The built-in scalars' own messages (graphql-js reports them as they are).
        let builtin = match (def.name.as_str(), value) {
            ("Int", Value::Int(n)) => match n.as_i64() {
                Some(n) if i32::try_from(n).is_ok() => Some(None),
                _ => Some(Some(format!(
                    "Int cannot represent non 32-bit signed integer value: {shown}"
                ))),
            },
            ("Int", _) => Some(Some(format!(
                "Int cannot represent non-integer value: {shown}"
            ))),
            ("Float", Value::Int(_) | Value::Float(_))
            | ("String", Value::String(_))
            | ("Boolean", Value::Boolean(_))
            | ("ID", Value::String(_) | Value::Int(_)) => Some(None),
            ("Float", _) => Some(Some(format!(
                "Float cannot represent non numeric value: {shown}"
            ))),
            ("String", _) => Some(Some(format!(
                "String cannot represent a non string value: {shown}"
            ))),
            ("Boolean", _) => Some(Some(format!(
                "Boolean cannot represent a non boolean value: {shown}"
            ))),
            ("ID", _) => Some(Some(format!(
                "ID cannot represent a non-string and non-integer value: {shown}"
            ))),
            _ => None,
        };
        match builtin {
            Some(Some(message)) => self.report(message),
            Some(None) => {}
            None => {
                if let Err(e) = coerce_literal(
                    &self.schema.types,
                    &TypeRef::Named(ty.named()),
                    value,
                    Some(&serde_json::Map::new()),
                ) {
                    let expected = ty.display(&self.schema.types).to_string();
                    self.report(format!(
                        "Expected value of type \"{expected}\", found {shown}; {e}"
                    ));
                }
            }
        }
    }
}

fn show(value: &AstValue<'_>) -> String {
    let mut s = String::new();
    crate::literal::write_literal(&mut s, value);
    s
}

fn value_rule(cx: &mut Cx<'_, '_>, rule: ValueRule) {
    let mut non_null_variables: HashSet<&str> = HashSet::new();
    for op in &cx.ops {
        for v in op.variables {
            if matches!(v.var_type, graphql_parser::query::Type::NonNullType(_)) {
                non_null_variables.insert(v.name);
            }
        }
    }
    let mut problems = Vec::new();
    for (ty, value, pos, site) in typed_values(cx) {
        let mut check = ValueCheck {
            schema: cx.schema,
            rule,
            non_null_variables: &non_null_variables,
            path: Vec::new(),
            out: Vec::new(),
            text: std::marker::PhantomData,
        };
        check.check(&ty, value);
        for p in check.out {
            let at = Location::from_pos(pos);
            let start = match site {
                ValueSite::Argument(name) => positions::argument_value(toks(cx), at, name),
                ValueSite::VariableDefault => positions::default_value(toks(cx), at),
            };
            let found = start.and_then(|i| positions::value_part(toks(cx), i, &p.path));
            let at = match found {
                Some((_, Some(name))) if p.at_name => name,
                Some((value, _)) => value,
                None => at,
            };
            problems.push((p.message, at));
        }
    }
    for (m, at) in problems {
        cx.errors.push(GraphQLError::new(m, vec![at]));
    }
}

/// 5.6.1: literals are coercible to their expected type (OneOf objects included).
pub(super) fn values_of_correct_type(cx: &mut Cx<'_, '_>) {
    value_rule(cx, ValueRule::CorrectType);
}

/// 5.6.2: object literals name only fields of the input object.
pub(super) fn input_object_field_names(cx: &mut Cx<'_, '_>) {
    value_rule(cx, ValueRule::FieldNames);
}

/// 5.6.3: an object literal names each field once. graphql-parser collapses repeated keys,
/// so this rule reads the source text again (see `duplicate_keys`).
pub(super) fn input_object_field_uniqueness(cx: &mut Cx<'_, '_>) {
    fn has_object(v: &AstValue<'_>) -> bool {
        match v {
            Value::Object(_) => true,
            Value::List(items) => items.iter().any(has_object),
            _ => false,
        }
    }
    // Only documents with an object literal can repeat a key: skip the rescan otherwise.
    let any_object = arg_sites(cx)
        .iter()
        .any(|s| s.given.iter().any(|(_, v)| has_object(v)))
        || cx.ops.iter().any(|op| {
            op.variables
                .iter()
                .any(|v| v.default_value.as_ref().is_some_and(has_object))
        });
    if !any_object {
        return;
    }
    for (key, first, repeat) in duplicate_keys::duplicate_object_keys(cx.doc.source) {
        cx.errors.push(GraphQLError::new(
            format!("There can be only one input field named \"{key}\"."),
            vec![first, repeat],
        ));
    }
}

/// 5.6.4: required input fields are given.
pub(super) fn input_object_required_fields(cx: &mut Cx<'_, '_>) {
    value_rule(cx, ValueRule::RequiredFields);
}

// ---------------------------------------------------------------------------------------
// 5.7 Directives

/// 5.7.1: directives are defined by the schema.
pub(super) fn directives_are_defined(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for (_, ds) in directive_uses(cx).iter().copied() {
        for d in ds {
            if !cx.schema.directives.iter().any(|x| x.name == d.name) {
                problems.push((format!("Unknown directive \"@{}\".", d.name), d.position));
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
    }
}

/// 5.7.2: directives appear only where their definition allows.
pub(super) fn directives_are_in_valid_locations(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for (loc, ds) in directive_uses(cx).iter().copied() {
        for d in ds {
            if let Some(def) = cx.schema.directives.iter().find(|x| x.name == d.name)
                && !def.locations.contains(&loc)
            {
                problems.push((
                    format!("Directive \"@{}\" may not be used on {loc}.", d.name),
                    d.position,
                ));
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
    }
}

/// 5.7.3: non-repeatable directives appear once per location.
pub(super) fn directives_are_unique_per_location(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for &(_, ds) in directive_uses(cx) {
        for (i, d) in ds.iter().enumerate() {
            let repeatable = cx
                .schema
                .directives
                .iter()
                .find(|x| x.name == d.name)
                .is_some_and(|x| x.repeatable);
            if repeatable {
                continue;
            }
            if let Some(seen) = ds.iter().take(i).find(|o| o.name == d.name) {
                problems.push((
                    format!(
                        "The directive \"@{}\" can only be used once at this location.",
                        d.name
                    ),
                    [seen.position, d.position],
                ));
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &p);
    }
}

// ---------------------------------------------------------------------------------------
// 5.8 Variables

/// 5.8.1: variable names are unique per operation.
pub(super) fn variable_uniqueness(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for op in &cx.ops {
        for (i, v) in op.variables.iter().enumerate() {
            let first = op.variables.iter().position(|o| o.name == v.name) == Some(i);
            let all: Vec<Pos> = op
                .variables
                .iter()
                .filter(|o| o.name == v.name)
                .map(|o| o.position)
                .collect();
            if first && all.len() > 1 {
                problems.push((
                    format!("There can be only one variable named \"${}\".", v.name),
                    all,
                ));
            }
        }
    }
    for (m, p) in problems {
        let at = p.into_iter().map(|p| name_location(cx, p)).collect();
        cx.errors.push(GraphQLError::new(m, at));
    }
}

/// 5.8.2: variables are of input types (and of known types).
pub(super) fn variables_are_input_types(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for op in &cx.ops {
        for v in op.variables {
            let named = ast_named(&v.var_type);
            let is_input = cx
                .schema
                .type_index
                .get(named)
                .and_then(|id| cx.schema.types.get(id.index()))
                .map(|t| t.is_input());
            match is_input {
                Some(true) => {}
                Some(false) => problems.push((
                    format!(
                        "Variable \"${}\" cannot be non-input type \"{}\".",
                        v.name, v.var_type
                    ),
                    v.position,
                    false,
                )),
                None => problems.push((
                    format!("Unknown type \"{named}\".{}", type_hint(cx.schema, named)),
                    v.position,
                    true,
                )),
            }
        }
    }
    // At the type (the named type inside it for an unknown name), as graphql-js reports.
    for (m, p, unknown) in problems {
        let at = Location::from_pos(p);
        let at = match positions::variable_type(toks(cx), at) {
            Some((ty, named)) => {
                if unknown {
                    named
                } else {
                    ty
                }
            }
            None => at,
        };
        cx.errors.push(GraphQLError::new(m, vec![at]));
    }
}

/// One use of a variable, with what the spec needs to judge it.
#[derive(Clone)]
pub(super) struct VarUse<'a> {
    name: &'a str,
    /// The type expected where it is used (`None` if unknown).
    expected: Option<TypeRef>,
    /// The argument or input field has a default value.
    location_default: bool,
    /// The variable is an input field of a OneOf input object.
    in_one_of: bool,
    /// The OneOf input object it is a field of (for the message).
    one_of_type: Option<TypeId>,
    /// The field or directive whose arguments use it.
    position: Pos,
    /// How many uses of the same variable come before it in those arguments.
    nth: usize,
}

/// Numbers the uses of each variable in one field's or directive's arguments (`out[start..]`).
fn number_uses(out: &mut [VarUse<'_>], start: usize) {
    let Some(site) = out.get_mut(start..) else {
        return;
    };
    for i in 0..site.len() {
        let Some(name) = site.get(i).map(|u| u.name) else {
            continue;
        };
        let nth = site.iter().take(i).filter(|u| u.name == name).count();
        if let Some(u) = site.get_mut(i) {
            u.nth = nth;
        }
    }
}

/// Where a variable use is: its `$` in the arguments of its field or directive.
fn use_location(cx: &Cx<'_, '_>, u: &VarUse<'_>) -> Location {
    let at = Location::from_pos(u.position);
    positions::variable_uses(toks(cx), at)
        .into_iter()
        .filter(|(n, _)| *n == u.name)
        .nth(u.nth)
        .map_or(at, |(_, l)| l)
}

fn var_uses_in_value<'a>(
    schema: &SchemaInner,
    ty: Option<&TypeRef>,
    value: &AstValue<'a>,
    location_default: bool,
    one_of: Option<TypeId>,
    position: Pos,
    out: &mut Vec<VarUse<'a>>,
) {
    match value {
        Value::Variable(name) => out.push(VarUse {
            name,
            expected: ty.cloned(),
            location_default,
            in_one_of: one_of.is_some(),
            one_of_type: one_of,
            position,
            nth: 0,
        }),
        Value::List(items) => {
            let item = match ty.map(TypeRef::nullable) {
                Some(TypeRef::List(item)) => Some(item.as_ref()),
                other => other,
            };
            for it in items {
                var_uses_in_value(schema, item, it, false, None, position, out);
            }
        }
        Value::Object(fields) => {
            let def = ty.and_then(|t| schema.types.get(t.named().index()));
            let (defs, one_of) = match def.map(|d| &d.kind) {
                Some(TypeKind::InputObject { fields, one_of }) => (
                    Some(fields),
                    if *one_of {
                        ty.map(TypeRef::named)
                    } else {
                        None
                    },
                ),
                _ => (None, None),
            };
            for (k, v) in fields {
                let f = defs.and_then(|d| d.iter().find(|f| f.name == *k));
                var_uses_in_value(
                    schema,
                    f.map(|f| &f.ty),
                    v,
                    f.is_some_and(|f| f.default_literal.is_some()),
                    one_of,
                    position,
                    out,
                );
            }
        }
        _ => {}
    }
}

/// Variable uses directly in a selection set and its nested fields (not following spreads).
fn var_uses_in_set<'d, 'a>(
    cx: &Cx<'d, 'a>,
    parent: Option<TypeId>,
    set: Set<'d, 'a>,
    out: &mut Vec<VarUse<'a>>,
) {
    for sel in &set.items {
        let (directives, inner, ty) = match sel {
            Selection::Field(f) => {
                let def = parent.and_then(|p| cx.schema.field(p, f.name));
                let start = out.len();
                for (name, value) in &f.arguments {
                    let arg = def.and_then(|d| d.args.iter().find(|a| a.name == *name));
                    var_uses_in_value(
                        cx.schema,
                        arg.map(|a| &a.ty),
                        value,
                        arg.is_some_and(|a| a.default_literal.is_some()),
                        None,
                        f.position,
                        out,
                    );
                }
                number_uses(out, start);
                (
                    &f.directives,
                    Some(&f.selection_set),
                    def.map(|d| d.ty.named()),
                )
            }
            Selection::InlineFragment(i) => {
                let ty = match &i.type_condition {
                    Some(TypeCondition::On(on)) => cx.schema.type_index.get(*on).copied(),
                    None => parent,
                };
                (&i.directives, Some(&i.selection_set), ty)
            }
            Selection::FragmentSpread(s) => (&s.directives, None, None),
        };
        var_uses_in_directives(cx, directives, out);
        if let Some(inner) = inner {
            var_uses_in_set(cx, ty, inner, out);
        }
    }
}

fn var_uses_in_directives<'a>(
    cx: &Cx<'_, 'a>,
    directives: &[Directive<'a, &'a str>],
    out: &mut Vec<VarUse<'a>>,
) {
    for d in directives {
        let def = cx.schema.directives.iter().find(|x| x.name == d.name);
        let start = out.len();
        for (name, value) in &d.arguments {
            let arg = def.and_then(|d| d.args.iter().find(|a| a.name == *name));
            var_uses_in_value(
                cx.schema,
                arg.map(|a| &a.ty),
                value,
                arg.is_some_and(|a| a.default_literal.is_some()),
                None,
                d.position,
                out,
            );
        }
        number_uses(out, start);
    }
}

/// All variable uses of each operation, following fragments transitively.
fn operation_var_uses<'c, 'd, 'a>(cx: &'c Cx<'d, 'a>) -> &'c [Vec<VarUse<'a>>] {
    cx.cache
        .var_uses
        .get_or_init(|| compute_operation_var_uses(cx))
}

fn compute_operation_var_uses<'d, 'a>(cx: &Cx<'d, 'a>) -> Vec<Vec<VarUse<'a>>> {
    // Every variable use is written `$name`: a document without a `$` has none.
    if !cx.doc.source.contains('$') {
        return cx.ops.iter().map(|_| Vec::new()).collect();
    }
    let mut per_fragment: HashMap<&'a str, Vec<VarUse<'a>>> = HashMap::new();
    for (&name, frag) in &cx.fragments {
        let TypeCondition::On(on) = &frag.type_condition;
        let mut uses = Vec::new();
        var_uses_in_directives(cx, &frag.directives, &mut uses);
        var_uses_in_set(
            cx,
            cx.schema.type_index.get(*on).copied(),
            &frag.selection_set,
            &mut uses,
        );
        per_fragment.insert(name, uses);
    }
    let mut out = Vec::new();
    for op in &cx.ops {
        let mut uses = Vec::new();
        var_uses_in_directives(cx, op.directives, &mut uses);
        var_uses_in_set(cx, cx.root_type(op.kind), op.selection_set, &mut uses);
        for frag in fragments_used_by(cx, op.selection_set) {
            if let Some(fu) = per_fragment.get(frag) {
                uses.extend(fu.iter().cloned());
            }
        }
        out.push(uses);
    }
    out
}

/// 5.8.3: variables used are defined by the operation.
pub(super) fn all_variable_uses_defined(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for (op, uses) in cx.ops.iter().zip(operation_var_uses(cx)) {
        for u in uses {
            if !op.variables.iter().any(|v| v.name == u.name) {
                let m = match op.name {
                    Some(n) => format!(
                        "Variable \"${}\" is not defined by operation \"{n}\".",
                        u.name
                    ),
                    None => format!("Variable \"${}\" is not defined.", u.name),
                };
                problems.push((m, use_location(cx, u), op.position));
            }
        }
    }
    for (m, at, op) in problems {
        cx.errors
            .push(GraphQLError::new(m, vec![at, Location::from_pos(op)]));
    }
}

/// 5.8.4: variables defined are used.
pub(super) fn all_variables_used(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for (op, uses) in cx.ops.iter().zip(operation_var_uses(cx)) {
        for v in op.variables {
            if !uses.iter().any(|u| u.name == v.name) {
                let m = match op.name {
                    Some(n) => format!(
                        "Variable \"${}\" is never used in operation \"{n}\".",
                        v.name
                    ),
                    None => format!("Variable \"${}\" is never used.", v.name),
                };
                problems.push((m, v.position));
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
    }
}

/// 5.8.5: each use fits the variable's type (IsVariableUsageAllowed).
pub(super) fn all_variable_usages_are_allowed(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for (op, uses) in cx.ops.iter().zip(operation_var_uses(cx)) {
        for u in uses {
            let Some(def) = op.variables.iter().find(|v| v.name == u.name) else {
                continue;
            };
            let (Some(var_ty), Some(loc_ty)) = (cx.type_ref(&def.var_type), u.expected.as_ref())
            else {
                continue;
            };
            let allowed = if (loc_ty.is_non_null() || u.in_one_of) && !var_ty.is_non_null() {
                let var_default = def
                    .default_value
                    .as_ref()
                    .is_some_and(|d| !matches!(d, Value::Null));
                if u.in_one_of && !loc_ty.is_non_null() {
                    // OneOf fields: only a non-null variable may be used (IsNonNullPosition).
                    var_default && types_compatible(&var_ty, loc_ty.nullable())
                } else {
                    (var_default || u.location_default)
                        && types_compatible(&var_ty, loc_ty.nullable())
                }
            } else {
                types_compatible(&var_ty, loc_ty)
            };
            if !allowed {
                let message = match u.one_of_type {
                    Some(one_of) if !loc_ty.is_non_null() => format!(
                        "Variable \"${}\" is of type \"{}\" but must be non-nullable to be used for OneOf Input Object \"{}\".",
                        u.name,
                        tname(cx, &var_ty),
                        cx.schema.type_name(one_of)
                    ),
                    _ => format!(
                        "Variable \"${}\" of type \"{}\" used in position expecting type \"{}\".",
                        u.name,
                        tname(cx, &var_ty),
                        tname(cx, loc_ty)
                    ),
                };
                problems.push((message, def.position, use_location(cx, u)));
            }
        }
    }
    for (m, def, at) in problems {
        cx.errors
            .push(GraphQLError::new(m, vec![Location::from_pos(def), at]));
    }
}

/// AreTypesCompatible (spec 5.8.5).
fn types_compatible(var: &TypeRef, loc: &TypeRef) -> bool {
    match (var, loc) {
        (TypeRef::NonNull(v), TypeRef::NonNull(l)) => types_compatible(v, l),
        (_, TypeRef::NonNull(_)) => false,
        (TypeRef::NonNull(v), l) => types_compatible(v, l),
        (TypeRef::List(v), TypeRef::List(l)) => types_compatible(v, l),
        (_, TypeRef::List(_)) | (TypeRef::List(_), _) => false,
        (TypeRef::Named(a), TypeRef::Named(b)) => a == b,
    }
}
