//! The 30 validation rules of spec section 5, one function each.

use std::collections::{HashMap, HashSet};

use graphql_parser::Pos;
use graphql_parser::query::{
    Definition, Directive, Field, FragmentSpread, Selection, SelectionSet, TypeCondition, Value,
};

use super::{Cx, OpKind, ast_named, duplicate_keys, positions};
use crate::coerce::coerce_literal;
use crate::error::Location;
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
        cx.error(
            format!("There can be only one operation named \"{name}\"."),
            &[a, b],
        );
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
        let mut distinct: Vec<&str> = keys.iter().map(|k| k.0).collect();
        distinct.dedup();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > 1 {
            let positions: Vec<Pos> = keys.iter().skip(1).map(|k| k.2).collect();
            problems.push((
                format!("{name} must select only one top level field."),
                positions,
            ));
        }
        for (_, field, pos) in &keys {
            if field.starts_with("__") {
                problems.push((
                    format!("{name} must not select an introspection top level field."),
                    vec![*pos],
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
                    "Cannot query field \"{}\" on type \"{}\".",
                    f.name,
                    cx.schema.type_name(parent)
                ),
                f.position,
            ));
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
    }
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
                f.position,
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

/// One field of a merge set: its parent type, the selection, its definition.
#[derive(Clone, Copy)]
struct MergeField<'d, 'a, 's> {
    parent: Option<TypeId>,
    field: &'d Field<'a, &'a str>,
    def: Option<&'s FieldDef>,
}

type FieldMap<'d, 'a, 's> = Vec<(&'a str, Vec<MergeField<'d, 'a, 's>>)>;

fn collect_fields_for_merge<'d, 'a, 's>(
    cx: &'s Cx<'d, 'a>,
    parent: Option<TypeId>,
    set: Set<'d, 'a>,
    visited: &mut HashSet<&'a str>,
    out: &mut FieldMap<'d, 'a, 's>,
) {
    for sel in &set.items {
        match sel {
            Selection::Field(f) => {
                let key = f.alias.unwrap_or(f.name);
                let entry = MergeField {
                    parent,
                    field: f,
                    def: parent.and_then(|p| cx.schema.field(p, f.name)),
                };
                match out.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, list)) => list.push(entry),
                    None => out.push((key, vec![entry])),
                }
            }
            Selection::InlineFragment(i) => {
                let ty = match &i.type_condition {
                    Some(TypeCondition::On(on)) => cx.schema.type_index.get(*on).copied(),
                    None => parent,
                };
                collect_fields_for_merge(cx, ty, &i.selection_set, visited, out);
            }
            Selection::FragmentSpread(s) => {
                if !visited.insert(s.fragment_name) {
                    continue;
                }
                if let Some(frag) = cx.fragments.get(s.fragment_name) {
                    let TypeCondition::On(on) = &frag.type_condition;
                    let ty = cx.schema.type_index.get(*on).copied();
                    collect_fields_for_merge(cx, ty, &frag.selection_set, visited, out);
                }
            }
        }
    }
}

struct Merger<'d, 'a, 's> {
    cx: &'s Cx<'d, 'a>,
    compared: HashSet<(usize, usize, bool)>,
    problems: Vec<(String, Vec<Pos>)>,
}

impl<'d, 'a, 's> Merger<'d, 'a, 's> {
    fn can_merge(&mut self, map: &FieldMap<'d, 'a, 's>) {
        for (key, list) in map {
            for (i, a) in list.iter().enumerate() {
                for b in list.iter().skip(i + 1) {
                    self.pair(key, *a, *b);
                }
            }
        }
    }

    fn pair(&mut self, key: &str, a: MergeField<'d, 'a, 's>, b: MergeField<'d, 'a, 's>) {
        let id = |f: &Field<'a, &'a str>| std::ptr::from_ref(f) as usize;
        if !self.compared.insert((id(a.field), id(b.field), true)) {
            return;
        }
        let positions = vec![a.field.position, b.field.position];
        let exclusive = match (a.parent, b.parent) {
            (Some(pa), Some(pb)) => pa != pb && self.is_object(pa) && self.is_object(pb),
            _ => false,
        };
        // Same order of checks as graphql-js, so messages match: names and arguments (only
        // when both can apply to one object), then the response shape.
        if !exclusive {
            if a.field.name != b.field.name {
                self.problems.push((
                    format!(
                        "Fields \"{key}\" conflict because \"{}\" and \"{}\" are different fields. Use different aliases on the fields to fetch both if this was intentional.",
                        a.field.name, b.field.name
                    ),
                    positions,
                ));
                return;
            }
            if !same_arguments(&a.field.arguments, &b.field.arguments) {
                self.problems.push((
                    format!(
                        "Fields \"{key}\" conflict because they have differing arguments. Use different aliases on the fields to fetch both if this was intentional."
                    ),
                    positions,
                ));
                return;
            }
        }
        if let (Some(da), Some(db)) = (a.def, b.def)
            && !self.same_response_shape(&da.ty, &db.ty, a, b)
        {
            self.problems.push((
                format!(
                    "Fields \"{key}\" conflict because they return conflicting types \"{}\" and \"{}\". Use different aliases on the fields to fetch both if this was intentional.",
                    da.ty.display(&self.cx.schema.types),
                    db.ty.display(&self.cx.schema.types)
                ),
                positions,
            ));
            return;
        }
        if exclusive {
            return;
        }
        let merged = self.merged(a, b);
        self.can_merge(&merged);
    }

    fn is_object(&self, id: TypeId) -> bool {
        matches!(
            self.cx.schema.types.get(id.index()).map(|t| &t.kind),
            Some(TypeKind::Object { .. })
        )
    }

    fn merged(&self, a: MergeField<'d, 'a, 's>, b: MergeField<'d, 'a, 's>) -> FieldMap<'d, 'a, 's> {
        let mut map = Vec::new();
        for f in [a, b] {
            let ty = f.def.map(|d| d.ty.named());
            let mut visited = HashSet::new();
            collect_fields_for_merge(self.cx, ty, &f.field.selection_set, &mut visited, &mut map);
        }
        map
    }

    fn same_response_shape(
        &mut self,
        ta: &TypeRef,
        tb: &TypeRef,
        a: MergeField<'d, 'a, 's>,
        b: MergeField<'d, 'a, 's>,
    ) -> bool {
        match (ta, tb) {
            (TypeRef::NonNull(x), TypeRef::NonNull(y)) => self.same_response_shape(x, y, a, b),
            (TypeRef::NonNull(_), _) | (_, TypeRef::NonNull(_)) => false,
            (TypeRef::List(x), TypeRef::List(y)) => self.same_response_shape(x, y, a, b),
            (TypeRef::List(_), _) | (_, TypeRef::List(_)) => false,
            (TypeRef::Named(x), TypeRef::Named(y)) => {
                if is_leaf(self.cx.schema, *x) || is_leaf(self.cx.schema, *y) {
                    return x == y;
                }
                let merged = self.merged(a, b);
                for (_, list) in &merged {
                    for (i, sa) in list.iter().enumerate() {
                        for sb in list.iter().skip(i + 1) {
                            let key = (
                                std::ptr::from_ref(sa.field) as usize,
                                std::ptr::from_ref(sb.field) as usize,
                                false,
                            );
                            if !self.compared.insert(key) {
                                continue;
                            }
                            if let (Some(da), Some(db)) = (sa.def, sb.def)
                                && !self.same_response_shape(&da.ty, &db.ty, *sa, *sb)
                            {
                                return false;
                            }
                        }
                    }
                }
                true
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
    let problems = {
        let mut merger = Merger {
            cx,
            compared: HashSet::new(),
            problems: Vec::new(),
        };
        for (parent, set) in &cx.sets {
            // Plain fields with distinct response names form no pair to compare (their
            // own selection sets are in `cx.sets` too).
            if distinct_plain_fields(set) {
                continue;
            }
            let mut map = Vec::new();
            let mut visited = HashSet::new();
            collect_fields_for_merge(cx, *parent, set, &mut visited, &mut map);
            merger.can_merge(&map);
        }
        merger.problems
    };
    for (m, p) in problems {
        cx.error(m, &p);
    }
}

/// Whether a (small) selection set holds only fields, each with its own response name.
fn distinct_plain_fields<'a>(set: Set<'_, 'a>) -> bool {
    let items = &set.items;
    let key = |sel: &Selection<'a, &'a str>| -> Option<&'a str> {
        match sel {
            Selection::Field(f) => Some(f.alias.unwrap_or(f.name)),
            _ => None,
        }
    };
    items.len() <= 16
        && items.iter().enumerate().all(|(i, sel)| {
            key(sel).is_some_and(|k| items.iter().take(i).all(|o| key(o) != Some(k)))
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
                problems.push((
                    format!("Unknown argument \"{name}\" on {}.", site.what),
                    site.position,
                    *name,
                ));
            }
        }
    }
    for (m, p, name) in problems {
        let at = Location::from_pos(p);
        let at = positions::argument(cx.doc.source, at, name).unwrap_or(at);
        cx.errors.push(GraphQLError::new(m, vec![at]));
    }
}

/// 5.4.2: each argument is given at most once.
pub(super) fn argument_uniqueness(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for site in arg_sites(cx) {
        for (i, (name, _)) in site.given.iter().enumerate() {
            if site.given.iter().take(i).any(|(n, _)| n == name) {
                problems.push((
                    format!(
                        "There can be only one argument named \"{name}\" on {}.",
                        site.what
                    ),
                    site.position,
                ));
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
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
                    format!(
                        "Argument \"{}\" of type \"{}\" is required on {}, but it was not provided.",
                        def.name,
                        tname(cx, &def.ty),
                        site.what
                    ),
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
                    vec![*first, f.position],
                ));
            } else {
                seen.insert(f.name, f.position);
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &p);
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
        .map(|(on, pos, _)| (format!("Unknown type \"{on}\"."), pos))
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
    positions::type_condition(cx.doc.source, at).unwrap_or(at)
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

/// 5.5.2.2: fragments do not spread themselves, directly or not.
pub(super) fn fragment_spreads_must_not_form_cycles(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    let mut reported: HashSet<&str> = HashSet::new();
    for def in &cx.doc.ast.definitions {
        let Definition::Fragment(frag) = def else {
            continue;
        };
        if reported.contains(frag.name) {
            continue;
        }
        // Depth-first search from each fragment; `path` holds the spreads followed.
        let mut path: Vec<(&str, Pos)> = Vec::new();
        let mut visited = HashSet::new();
        if find_cycle(cx, frag.name, &frag.selection_set, &mut path, &mut visited) {
            reported.extend(path.iter().map(|(n, _)| *n));
            let via: Vec<&str> = path.iter().take(path.len() - 1).map(|(n, _)| *n).collect();
            let message = if via.is_empty() {
                format!("Cannot spread fragment \"{}\" within itself.", frag.name)
            } else {
                format!(
                    "Cannot spread fragment \"{}\" within itself via \"{}\".",
                    frag.name,
                    via.join("\", \"")
                )
            };
            problems.push((message, path.iter().map(|(_, p)| *p).collect::<Vec<_>>()));
        }
    }
    for (m, p) in problems {
        cx.error(m, &p);
    }
}

fn find_cycle<'d, 'a>(
    cx: &Cx<'d, 'a>,
    target: &'a str,
    set: Set<'d, 'a>,
    path: &mut Vec<(&'a str, Pos)>,
    visited: &mut HashSet<&'a str>,
) -> bool {
    let mut spreads = Vec::new();
    spreads_in(set, &mut spreads);
    for s in spreads {
        path.push((s.fragment_name, s.position));
        if s.fragment_name == target {
            return true;
        }
        if visited.insert(s.fragment_name)
            && let Some(f) = cx.fragments.get(s.fragment_name)
            && find_cycle(cx, target, &f.selection_set, path, visited)
        {
            return true;
        }
        path.pop();
    }
    false
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
        cx.error(m, &[p]);
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

/// Every literal given to an argument (fields, directives) or as a variable default, with its
/// expected type and the position to report (graphql-parser keeps no positions on values,
/// so the enclosing field, directive or variable definition is used).
fn typed_values<'d, 'a>(
    cx: &Cx<'d, 'a>,
) -> Vec<(TypeRef, &'d AstValue<'a>, Pos, ValueSite<'d, 'a>)> {
    let mut out = Vec::new();
    for site in arg_sites(cx) {
        let Some(defs) = site.defs else { continue };
        for (name, value) in site.given {
            if let Some(def) = defs.iter().find(|d| d.name == *name) {
                out.push((
                    def.ty.clone(),
                    value,
                    site.position,
                    ValueSite::Argument(name, site.what),
                ));
            }
        }
    }
    for op in &cx.ops {
        for v in op.variables {
            if let (Some(default), Some(ty)) = (&v.default_value, cx.type_ref(&v.var_type)) {
                out.push((ty, default, v.position, ValueSite::VariableDefault(v.name)));
            }
        }
    }
    out
}

/// Where a literal is given, printed only when an error needs it.
#[derive(Clone, Copy)]
enum ValueSite<'d, 'a> {
    Argument(&'a str, Owner<'d, 'a>),
    VariableDefault(&'a str),
}

impl std::fmt::Display for ValueSite<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueSite::Argument(name, owner) => write!(f, "argument \"{name}\" of {owner}"),
            ValueSite::VariableDefault(name) => {
                write!(f, "the default value of variable \"${name}\"")
            }
        }
    }
}

fn check_value(
    schema: &SchemaInner,
    ty: &TypeRef,
    value: &AstValue<'_>,
    rule: ValueRule,
    out: &mut Vec<String>,
) {
    if let Value::Variable(_) = value {
        return; // 5.8.5 checks variables.
    }
    match ty {
        TypeRef::NonNull(inner) => {
            if matches!(value, Value::Null) {
                if rule == ValueRule::CorrectType {
                    out.push(format!(
                        "Expected value of type \"{}\", found null.",
                        ty.display(&schema.types)
                    ));
                }
                return;
            }
            check_value(schema, inner, value, rule, out);
        }
        _ if matches!(value, Value::Null) => {}
        TypeRef::List(item) => match value {
            Value::List(items) => {
                for it in items {
                    check_value(schema, item, it, rule, out);
                }
            }
            other => check_value(schema, item, other, rule, out),
        },
        TypeRef::Named(id) => {
            let Some(def) = schema.types.get(id.index()) else {
                return;
            };
            match &def.kind {
                TypeKind::InputObject { fields, one_of } => {
                    let Value::Object(given) = value else {
                        if rule == ValueRule::CorrectType {
                            out.push(format!(
                                "Expected value of type \"{}\", found {}.",
                                def.name,
                                show(value)
                            ));
                        }
                        return;
                    };
                    for (k, v) in given {
                        match fields.iter().find(|f| f.name == *k) {
                            Some(f) => check_value(schema, &f.ty, v, rule, out),
                            None if rule == ValueRule::FieldNames => out.push(format!(
                                "Field \"{k}\" is not defined by type \"{}\".",
                                def.name
                            )),
                            None => {}
                        }
                    }
                    if rule == ValueRule::RequiredFields {
                        for f in fields {
                            if f.ty.is_non_null()
                                && f.default_literal.is_none()
                                && !given.contains_key(f.name.as_str())
                            {
                                out.push(format!(
                                    "Field \"{}.{}\" of required type \"{}\" was not provided.",
                                    def.name,
                                    f.name,
                                    f.ty.display(&schema.types)
                                ));
                            }
                        }
                    }
                    if *one_of && rule == ValueRule::CorrectType {
                        if given.len() != 1 {
                            out.push(format!(
                                "OneOf Input Object \"{}\" must specify exactly one key.",
                                def.name
                            ));
                        } else if given.values().any(|v| matches!(v, Value::Null)) {
                            out.push(format!(
                                "Field \"{}.{}\" must be non-null.",
                                def.name,
                                given.keys().next().map_or("", |k| *k)
                            ));
                        }
                    }
                }
                _ if rule == ValueRule::CorrectType => {
                    if let Err(e) =
                        coerce_literal(&schema.types, ty, value, Some(&serde_json::Map::new()))
                    {
                        out.push(format!(
                            "Expected value of type \"{}\", found {}; {e}",
                            def.name,
                            show(value)
                        ));
                    }
                }
                _ => {}
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
    let mut problems = Vec::new();
    for (ty, value, pos, what) in typed_values(cx) {
        let mut out = Vec::new();
        check_value(cx.schema, &ty, value, rule, &mut out);
        for m in out {
            problems.push((format!("{m} (in {what})"), pos));
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
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
    for (key, loc) in duplicate_keys::duplicate_object_keys(cx.doc.source) {
        cx.errors.push(GraphQLError::new(
            format!("There can be only one input field named \"{key}\"."),
            vec![loc],
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
            if !repeatable && ds.iter().take(i).any(|o| o.name == d.name) {
                problems.push((
                    format!(
                        "The directive \"@{}\" can only be used once at this location.",
                        d.name
                    ),
                    d.position,
                ));
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
    }
}

// ---------------------------------------------------------------------------------------
// 5.8 Variables

/// 5.8.1: variable names are unique per operation.
pub(super) fn variable_uniqueness(cx: &mut Cx<'_, '_>) {
    let mut problems = Vec::new();
    for op in &cx.ops {
        for (i, v) in op.variables.iter().enumerate() {
            if let Some(first) = op.variables.iter().take(i).find(|o| o.name == v.name) {
                problems.push((
                    format!("There can be only one variable named \"${}\".", v.name),
                    vec![first.position, v.position],
                ));
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &p);
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
                )),
                None => problems.push((format!("Unknown type \"{named}\"."), v.position)),
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &[p]);
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
    position: Pos,
}

fn var_uses_in_value<'a>(
    schema: &SchemaInner,
    ty: Option<&TypeRef>,
    value: &AstValue<'a>,
    location_default: bool,
    in_one_of: bool,
    position: Pos,
    out: &mut Vec<VarUse<'a>>,
) {
    match value {
        Value::Variable(name) => out.push(VarUse {
            name,
            expected: ty.cloned(),
            location_default,
            in_one_of,
            position,
        }),
        Value::List(items) => {
            let item = match ty.map(TypeRef::nullable) {
                Some(TypeRef::List(item)) => Some(item.as_ref()),
                other => other,
            };
            for it in items {
                var_uses_in_value(schema, item, it, false, false, position, out);
            }
        }
        Value::Object(fields) => {
            let def = ty.and_then(|t| schema.types.get(t.named().index()));
            let (defs, one_of) = match def.map(|d| &d.kind) {
                Some(TypeKind::InputObject { fields, one_of }) => (Some(fields), *one_of),
                _ => (None, false),
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
                for (name, value) in &f.arguments {
                    let arg = def.and_then(|d| d.args.iter().find(|a| a.name == *name));
                    var_uses_in_value(
                        cx.schema,
                        arg.map(|a| &a.ty),
                        value,
                        arg.is_some_and(|a| a.default_literal.is_some()),
                        false,
                        f.position,
                        out,
                    );
                }
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
        for (name, value) in &d.arguments {
            let arg = def.and_then(|d| d.args.iter().find(|a| a.name == *name));
            var_uses_in_value(
                cx.schema,
                arg.map(|a| &a.ty),
                value,
                arg.is_some_and(|a| a.default_literal.is_some()),
                false,
                d.position,
                out,
            );
        }
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
                uses.extend(fu.iter().map(|u| VarUse {
                    name: u.name,
                    expected: u.expected.clone(),
                    location_default: u.location_default,
                    in_one_of: u.in_one_of,
                    position: u.position,
                }));
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
        let mut reported = HashSet::new();
        for u in uses {
            if !op.variables.iter().any(|v| v.name == u.name) && reported.insert(u.name) {
                let m = match op.name {
                    Some(n) => format!(
                        "Variable \"${}\" is not defined by operation \"{n}\".",
                        u.name
                    ),
                    None => format!("Variable \"${}\" is not defined.", u.name),
                };
                problems.push((m, vec![u.position, op.position]));
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &p);
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
                let shown = if u.in_one_of && !loc_ty.is_non_null() {
                    format!("{}!", tname(cx, loc_ty))
                } else {
                    tname(cx, loc_ty)
                };
                problems.push((
                    format!(
                        "Variable \"${}\" of type \"{}\" used in position expecting type \"{shown}\".",
                        u.name,
                        tname(cx, &var_ty)
                    ),
                    vec![def.position, u.position],
                ));
            }
        }
    }
    for (m, p) in problems {
        cx.error(m, &p);
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
