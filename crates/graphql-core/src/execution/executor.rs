//! Execution (spec section 6): collecting fields, resolving them with the sync fast path or
//! the async path, completing values with non-null propagation, and writing the response
//! JSON directly in field order.

use crate::cache_control::{CacheAccumulator, CacheRule};
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use graphql_parser::query::{Field, FragmentDefinition, Selection, SelectionSet, TypeCondition};
use serde_json::{Map, Value};

use crate::coerce::coerce_literal;
use crate::error::Location;
use crate::resolver::{Args, Context, FieldError, ItemResult, Resolver, ResolverInput, TypedList};
use crate::response::{GraphQLError, PathSegment};
use crate::schema::SchemaInner;
use crate::schema::introspection;
use crate::typed_object::{FieldValue, TypedItems};
use crate::types::{BuiltinScalar, FieldDef, TypeDef, TypeId, TypeKind, TypeRef};

static NULL: Value = Value::Null;

/// The most a list reserves of the response buffer ahead, from its first item's size.
const LIST_RESERVE_CAP: usize = 1 << 20;

type BoxFuture<'x, T> = Pin<Box<dyn Future<Output = T> + Send + 'x>>;

/// The errors of the items a list resolver returned failed, by index, ascending (empty for
/// every other resolver): the list value has null in their place.
pub(crate) type ItemErrors = Vec<(usize, FieldError)>;

/// A list resolver's items as the list value (null where an item failed) and its errors.
fn split_items(items: Vec<ItemResult>) -> (Value, ItemErrors) {
    let mut failed = Vec::new();
    let values = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            item.unwrap_or_else(|e| {
                failed.push((i, e));
                Value::Null
            })
        })
        .collect();
    (Value::Array(values), failed)
}

/// The error of item `index`, if the list resolver returned one for it.
pub(crate) fn item_error(failed: &[(usize, FieldError)], index: usize) -> Option<&FieldError> {
    if failed.is_empty() {
        return None;
    }
    failed
        .binary_search_by_key(&index, |(at, _)| *at)
        .ok()
        .and_then(|at| failed.get(at))
        .map(|(_, e)| e)
}

/// A response path kept on the stack; materialized only when an error needs it.
#[derive(Clone, Copy)]
pub(crate) struct Path<'p> {
    prev: Option<&'p Path<'p>>,
    seg: Seg<'p>,
}

#[derive(Clone, Copy)]
enum Seg<'p> {
    Key(&'p str),
    Index(usize),
}

fn path_vec(path: Option<&Path<'_>>) -> Vec<PathSegment> {
    let mut out = Vec::new();
    let mut cur = path;
    while let Some(p) = cur {
        out.push(match p.seg {
            Seg::Key(k) => PathSegment::Key(k.to_owned()),
            Seg::Index(i) => PathSegment::Index(i),
        });
        cur = p.prev;
    }
    out.reverse();
    out
}

/// Why completing a value stopped.
pub(crate) enum Stop<'v> {
    /// An error made this position null; the caller nulls the nearest nullable parent.
    Null,
    /// An asynchronous resolver was reached on the sync path; the value resolved so far for
    /// the field (if any) is handed back so its resolver does not run again.
    NeedsAsync(Option<(Cow<'v, Value>, ItemErrors)>),
}

/// One entry of a collected field set (spec 6.3.2 CollectFields): a response key, the
/// fields merged under it, their definition, arguments coerced once per request, and the
/// sub-plans per concrete object type, computed on first use.
pub(crate) struct Planned<'e, 'a> {
    pub(crate) key: &'a str,
    /// The object type the field is selected on (for error messages).
    parent: TypeId,
    fields: Vec<&'e Field<'a, &'a str>>,
    /// For each of `fields`, the `@defer` it was found under (`None`: not deferred);
    /// its sub-fields are collected under the same one.
    defers: Vec<Option<DeferId>>,
    /// The defer set the field runs under (empty: the initial payload); its sub-plans
    /// are split relative to it.
    set: Vec<DeferId>,
    pub(crate) def: &'e FieldDef,
    pub(crate) args: Result<Args, String>,
    children: Mutex<Vec<(TypeId, Arc<Plan<'e, 'a>>)>>,
    /// Set once this field was found to need the async path (resolver or sub-fields).
    needs_async: AtomicBool,
    /// For a field read from its parent (the default resolver, arguments fine) whose type
    /// is a scalar or enum, non-null or not: that type, so the sync path writes the value
    /// straight away.
    leaf: Option<&'e TypeDef>,
}

/// A `@defer` of the document, as found while collecting: which fragment node, the
/// `@defer` it is nested in, and its label. Ids index [`Exec::defers`].
pub(crate) type DeferId = u32;

/// One `@defer` use (graphql-js 17's "defer usage").
#[derive(Debug, Clone)]
pub(crate) struct DeferUsage {
    /// The address of the fragment spread or inline fragment node (identity only).
    node: usize,
    /// The `@defer` this one is nested in.
    pub(crate) parent: Option<DeferId>,
    pub(crate) label: Option<String>,
}

/// The collected fields of a selection on one object type. With incremental delivery,
/// the fields that belong to a different set of `@defer`s than the selection itself are
/// split off into `groups` (graphql-js 17's deferred grouped field sets), each run later
/// on the same object, so that no field is executed or sent twice.
pub(crate) struct Plan<'e, 'a> {
    fields: Vec<Planned<'e, 'a>>,
    /// The `@defer`s first met in this selection: a deferred fragment starts here.
    new_defers: Vec<DeferId>,
    /// Fields to send later, one plan per defer set (the plan's `set`).
    groups: Vec<Arc<Plan<'e, 'a>>>,
    /// The defer set these fields run under.
    pub(crate) set: Vec<DeferId>,
    /// What resolving these fields does to the cache policy (when cache hints are on).
    cache: CacheRule,
}

impl<'e, 'a> std::ops::Deref for Plan<'e, 'a> {
    type Target = Vec<Planned<'e, 'a>>;
    fn deref(&self) -> &Self::Target {
        &self.fields
    }
}

impl Plan<'_, '_> {
    /// Whether anything of this selection is deferred.
    pub(crate) fn has_deferred(&self) -> bool {
        !self.new_defers.is_empty() || !self.groups.is_empty()
    }
}

impl std::ops::DerefMut for Plan<'_, '_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.fields
    }
}

/// Where a streamed list's remaining items come from.
pub(crate) enum StreamItems {
    /// Already resolved: the items after `initialCount`, with the errors of failed ones
    /// by absolute index.
    Resolved(Vec<Value>, ItemErrors),
    /// An item stream ([`Resolver::item_stream`]): items are taken as they arrive.
    Source(Mutex<crate::resolver::EventStream>),
}

/// Work for a later payload of incremental delivery, with the response path it belongs
/// at (relative to the object or list the execution that found it started from).
pub(crate) enum Record<'e, 'a> {
    /// A `@defer` first met on the object at `path`: a deferred fragment, announced as
    /// pending once the fragment it is nested in completes.
    Fragment {
        usage: DeferId,
        path: Vec<PathSegment>,
    },
    /// Fields of one defer set to run on the object at `path` (`parent` as `object`).
    Group {
        path: Vec<PathSegment>,
        object: TypeId,
        parent: Value,
        plan: Arc<Plan<'e, 'a>>,
    },
    /// The items of a `@stream` list after `initialCount`.
    Stream {
        label: Option<String>,
        path: Vec<PathSegment>,
        fields: Vec<&'e Field<'a, &'a str>>,
        def: &'e FieldDef,
        parent_type: TypeId,
        item: TypeRef,
        items: StreamItems,
        start: usize,
    },
}

impl<'e, 'a> Record<'e, 'a> {
    pub(crate) fn path(&self) -> &[PathSegment] {
        match self {
            Record::Fragment { path, .. }
            | Record::Group { path, .. }
            | Record::Stream { path, .. } => path,
        }
    }

    pub(crate) fn path_mut(&mut self) -> &mut Vec<PathSegment> {
        match self {
            Record::Fragment { path, .. }
            | Record::Group { path, .. }
            | Record::Stream { path, .. } => path,
        }
    }

    /// The field of a stream, to complete its items (`None` otherwise). Items are
    /// completed whole: nothing inside them is deferred by the `@defer`s around the list
    /// (a `@defer` inside the items starts fragments of its own).
    pub(crate) fn stream_field(&self) -> Option<Planned<'e, 'a>> {
        match self {
            Record::Stream {
                fields,
                def,
                parent_type,
                ..
            } => Some(Planned {
                key: fields.first().map_or("", |f| f.alias.unwrap_or(f.name)),
                parent: *parent_type,
                fields: fields.clone(),
                defers: vec![None; fields.len()],
                set: Vec::new(),
                def,
                args: Ok(Args::new()),
                children: Mutex::new(Vec::new()),
                needs_async: AtomicBool::new(false),
                leaf: None,
            }),
            _ => None,
        }
    }

    fn same_as(&self, other: &Record<'_, '_>) -> bool {
        match (self, other) {
            (Record::Fragment { usage: a, path: p }, Record::Fragment { usage: b, path: q }) => {
                a == b && p == q
            }
            (
                Record::Group {
                    plan: a, path: p, ..
                },
                Record::Group {
                    plan: b, path: q, ..
                },
            ) => std::ptr::eq(Arc::as_ptr(a) as *const u8, Arc::as_ptr(b) as *const u8) && p == q,
            (Record::Stream { path: p, .. }, Record::Stream { path: q, .. }) => p == q,
            _ => false,
        }
    }
}

/// The state of one execution.
pub(crate) struct Exec<'e, 'a> {
    pub(crate) schema: &'e SchemaInner,
    pub(crate) fragments: HashMap<&'a str, &'e FragmentDefinition<'a, &'a str>>,
    pub(crate) variables: Map<String, Value>,
    pub(crate) ctx: &'e Context,
    pub(crate) errors: Mutex<Vec<GraphQLError>>,
    /// Whether `@defer` and `@stream` split the response (otherwise they run inline).
    pub(crate) incremental: bool,
    /// Deferred fragments and streams found while executing, for later payloads.
    pub(crate) records: Mutex<Vec<Record<'e, 'a>>>,
    /// The `@defer`s met so far (indexed by [`DeferId`]).
    pub(crate) defers: Mutex<Vec<DeferUsage>>,
    /// Result values produced so far (fields and list items), against
    /// `Limits::max_result_values`.
    values: AtomicUsize,
    /// Bytes of leaf values written so far, against `Limits::max_result_bytes`.
    bytes: AtomicUsize,
    /// When `Limits::max_execution_time` runs out.
    deadline: Option<Instant>,
    /// Set once a cap was reached: every value after it is cut off.
    cut: AtomicBool,
    /// The cache policy so far, when the schema has cache hints on.
    pub(crate) cache: Option<CacheAccumulator>,
}

/// What a synchronous attempt had used, to undo it when it falls back to the async path
/// (which redoes the same work).
#[derive(Clone, Copy)]
pub(crate) struct Usage {
    errors: usize,
    values: usize,
    bytes: usize,
    cut: bool,
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_json(out: &mut Vec<u8>, v: &Value) {
    let _ = serde_json::to_writer(&mut *out, v);
}

impl<'e, 'a> Exec<'e, 'a> {
    /// The state for one execution of `document`.
    pub(crate) fn new(
        schema: &'e SchemaInner,
        document: &'e crate::document::Document<'a>,
        variables: Map<String, Value>,
        ctx: &'e Context,
    ) -> Self {
        let mut fragments = HashMap::new();
        for def in &document.ast.definitions {
            if let graphql_parser::query::Definition::Fragment(f) = def {
                fragments.entry(f.name).or_insert(f);
            }
        }
        Exec {
            schema,
            fragments,
            variables,
            ctx,
            errors: Mutex::new(Vec::new()),
            incremental: false,
            records: Mutex::new(Vec::new()),
            defers: Mutex::new(Vec::new()),
            values: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            deadline: schema
                .limits
                .max_execution_time
                .and_then(|d| Instant::now().checked_add(d)),
            cut: AtomicBool::new(false),
            cache: schema.cache_control.then(CacheAccumulator::new),
        }
    }

    /// Counts `values` result values and `bytes` bytes of leaf text against the limits;
    /// `false` once one is reached (the first time, with a `LIMIT_EXCEEDED` error at this
    /// path), so the caller stops producing values.
    ///
    /// Runs for every value: the common case (under every limit, no clock read due) is
    /// inlined, the rest is in [`Exec::charge_limit`].
    #[inline]
    fn charge(
        &self,
        pf: &Planned<'e, 'a>,
        values: usize,
        bytes: usize,
        path: Option<&Path<'_>>,
    ) -> bool {
        if self.cut.load(Ordering::Relaxed) {
            return false;
        }
        let limits = &self.schema.limits;
        // A load and a store, not a read-modify-write: the futures of one execution are
        // polled by one task, one at a time, so nothing runs in between; this keeps the
        // per-value cost to two plain moves.
        let count = self.values.load(Ordering::Relaxed).saturating_add(values);
        if values > 0 {
            self.values.store(count, Ordering::Relaxed);
        }
        let total = self.bytes.load(Ordering::Relaxed).saturating_add(bytes);
        if bytes > 0 {
            self.bytes.store(total, Ordering::Relaxed);
        }
        // The clock is read on one value in 64: cheap, and still often enough.
        let clock_due = values > 0 && count % 64 == 1 && self.deadline.is_some();
        if count <= limits.max_result_values && total <= limits.max_result_bytes && !clock_due {
            return true;
        }
        self.charge_limit(pf, count, total, clock_due, path)
    }

    /// The rest of [`Exec::charge`]: whether a limit was reached at `count` values and
    /// `total` bytes (or, when `clock_due`, the deadline passed), recording its error.
    #[cold]
    #[inline(never)]
    fn charge_limit(
        &self,
        pf: &Planned<'e, 'a>,
        count: usize,
        total: usize,
        clock_due: bool,
        path: Option<&Path<'_>>,
    ) -> bool {
        let limits = &self.schema.limits;
        let message = if count > limits.max_result_values {
            format!(
                "The response was cut off: it reached the limit of {} result values.",
                limits.max_result_values
            )
        } else if total > limits.max_result_bytes {
            format!(
                "The response was cut off: it reached the limit of {} bytes of values.",
                limits.max_result_bytes
            )
        } else if clock_due && self.deadline.is_some_and(|d| Instant::now() >= d) {
            format!(
                "The response was cut off: execution reached the time limit of {} ms.",
                limits.max_execution_time.map_or(0, |d| d.as_millis())
            )
        } else {
            return true;
        };
        self.cut.store(true, Ordering::Relaxed);
        let mut error = crate::limits::limit_error(message);
        error.locations = pf
            .fields
            .first()
            .map(|f| vec![Location::from_pos(f.position)])
            .unwrap_or_default();
        error.path = Some(path_vec(path));
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(error);
        }
        false
    }

    /// The errors and usage so far (see [`Usage`]).
    pub(crate) fn mark(&self) -> Usage {
        Usage {
            errors: self.errors.lock().map_or(0, |e| e.len()),
            values: self.values.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            cut: self.cut.load(Ordering::Relaxed),
        }
    }

    /// Back to a [`mark`](Self::mark): the errors and usage of a sync attempt are undone.
    pub(crate) fn reset(&self, mark: Usage) {
        if let Ok(mut e) = self.errors.lock() {
            e.truncate(mark.errors);
        }
        self.values.store(mark.values, Ordering::Relaxed);
        self.bytes.store(mark.bytes, Ordering::Relaxed);
        self.cut.store(mark.cut, Ordering::Relaxed);
    }

    fn error(&self, message: String, field: &Field<'a, &'a str>, path: Option<&Path<'_>>) {
        self.error_with(FieldError::new(message), field, path);
    }

    fn error_with(&self, e: FieldError, field: &Field<'a, &'a str>, path: Option<&Path<'_>>) {
        let err = GraphQLError {
            message: e.message,
            locations: vec![Location::from_pos(field.position)],
            path: Some(path_vec(path)),
            extensions: e.extensions,
        };
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(err);
        }
    }

    fn type_def(&self, id: TypeId) -> Option<&'e TypeDef> {
        self.schema.types.get(id.index())
    }

    // -----------------------------------------------------------------------------------
    // CollectFields (6.3.2)

    pub(crate) fn collect(
        &self,
        object: TypeId,
        sets: &[&'e SelectionSet<'a, &'a str>],
    ) -> Plan<'e, 'a> {
        let sources: Vec<_> = sets.iter().map(|s| (*s, None)).collect();
        self.collect_with(object, &sources, &[])
    }

    /// CollectFields over several selection sets, each found under a `@defer` (or none),
    /// for fields that run under the defer set `context`: the fields whose own defer set
    /// differs are split off into groups (graphql-js 17's execution plan).
    fn collect_with(
        &self,
        object: TypeId,
        sources: &[(&'e SelectionSet<'a, &'a str>, Option<DeferId>)],
        context: &[DeferId],
    ) -> Plan<'e, 'a> {
        let mut fields: Vec<Planned<'e, 'a>> = Vec::new();
        let mut new_defers = Vec::new();
        let mut visited = Vec::new();
        for (set, defer) in sources {
            self.collect_into(
                object,
                set,
                *defer,
                &mut visited,
                &mut fields,
                &mut new_defers,
            );
        }
        let mut plan = Plan {
            fields: Vec::with_capacity(fields.len()),
            new_defers,
            groups: Vec::new(),
            set: context.to_vec(),
            cache: CacheRule::default(),
        };
        let mut groups: Vec<Plan<'e, 'a>> = Vec::new();
        for mut pf in fields {
            let set = self.defer_set(&pf.defers);
            if set == context {
                pf.set = plan.set.clone();
                plan.fields.push(pf);
                continue;
            }
            pf.set = set.clone();
            match groups.iter_mut().find(|g| g.set == set) {
                Some(g) => g.fields.push(pf),
                None => groups.push(Plan {
                    fields: vec![pf],
                    new_defers: Vec::new(),
                    groups: Vec::new(),
                    set,
                    cache: CacheRule::default(),
                }),
            }
        }
        if self.cache.is_some() {
            for g in &mut groups {
                g.cache = g
                    .fields
                    .iter()
                    .fold(CacheRule::default(), |rule, pf| rule.and(pf.def.cache));
            }
            plan.cache = plan
                .fields
                .iter()
                .fold(CacheRule::default(), |rule, pf| rule.and(pf.def.cache));
        }
        plan.groups = groups.into_iter().map(Arc::new).collect();
        plan
    }

    /// The defer set of a field from the `@defer`s its nodes were found under: empty when
    /// one node is not deferred, else those `@defer`s without the ones nested in another
    /// of them (graphql-js's filtered defer usage set), sorted.
    fn defer_set(&self, defers: &[Option<DeferId>]) -> Vec<DeferId> {
        let mut set = Vec::new();
        for d in defers {
            match d {
                None => return Vec::new(),
                Some(d) if !set.contains(d) => set.push(*d),
                Some(_) => {}
            }
        }
        if set.len() > 1
            && let Ok(usages) = self.defers.lock()
        {
            let all = set.clone();
            set.retain(|d| {
                let mut cur = usages.get(*d as usize).and_then(|u| u.parent);
                while let Some(p) = cur {
                    if all.contains(&p) {
                        return false;
                    }
                    cur = usages.get(p as usize).and_then(|u| u.parent);
                }
                true
            });
        }
        set.sort_unstable();
        set
    }

    /// The id of the `@defer` on `node` nested in `parent`, registered on first use.
    fn defer_usage(
        &self,
        node: usize,
        parent: Option<DeferId>,
        label: Option<String>,
    ) -> Option<DeferId> {
        let mut usages = self.defers.lock().ok()?;
        if let Some(at) = usages
            .iter()
            .position(|u| u.node == node && u.parent == parent)
        {
            return DeferId::try_from(at).ok();
        }
        let id = DeferId::try_from(usages.len()).ok()?;
        usages.push(DeferUsage {
            node,
            parent,
            label,
        });
        Some(id)
    }

    /// The `@defer` with this id.
    pub(crate) fn defer(&self, id: DeferId) -> Option<DeferUsage> {
        self.defers
            .lock()
            .ok()
            .and_then(|u| u.get(id as usize).cloned())
    }

    fn included(&self, directives: &[graphql_parser::query::Directive<'a, &'a str>]) -> bool {
        for d in directives {
            let expect = match d.name {
                "skip" => false,
                "include" => true,
                _ => continue,
            };
            let value = d
                .arguments
                .iter()
                .find(|(n, _)| *n == "if")
                .and_then(|(_, v)| match v {
                    graphql_parser::query::Value::Boolean(b) => Some(*b),
                    graphql_parser::query::Value::Variable(name) => {
                        self.variables.get(*name).and_then(Value::as_bool)
                    }
                    _ => None,
                })
                .unwrap_or(false);
            if value != expect {
                return false;
            }
        }
        true
    }

    fn applies(&self, object: TypeId, condition: &str) -> bool {
        let Some(&cond) = self.schema.type_index.get(condition) else {
            return false;
        };
        if cond == object {
            return true;
        }
        match self.type_def(cond).map(|t| &t.kind) {
            Some(TypeKind::Interface { possible_types, .. }) => possible_types.contains(&object),
            Some(TypeKind::Union { members, .. }) => members.contains(&object),
            _ => false,
        }
    }

    /// A directive argument's value (literal or variable), `None` when absent.
    fn directive_arg(
        &self,
        d: &graphql_parser::query::Directive<'a, &'a str>,
        name: &str,
    ) -> Option<Value> {
        use graphql_parser::query::Value as V;
        let (_, v) = d.arguments.iter().find(|(n, _)| *n == name)?;
        match v {
            V::Variable(var) => self.variables.get(*var).cloned(),
            V::Boolean(b) => Some(Value::Bool(*b)),
            V::Int(n) => n.as_i64().map(Value::from),
            V::String(s) => Some(Value::String(s.clone())),
            _ => None,
        }
    }

    /// `Some(label)` when these directives defer their fragment (`@defer`, `if` not false,
    /// incremental delivery on).
    fn deferred(
        &self,
        directives: &[graphql_parser::query::Directive<'a, &'a str>],
    ) -> Option<Option<String>> {
        if !self.incremental {
            return None;
        }
        let d = directives.iter().find(|d| d.name == "defer")?;
        if self.directive_arg(d, "if") == Some(Value::Bool(false)) {
            return None;
        }
        Some(
            self.directive_arg(d, "label")
                .and_then(|v| v.as_str().map(str::to_owned)),
        )
    }

    /// `Some((label, initialCount))` when this field's list is streamed.
    fn streamed(&self, pf: &Planned<'e, 'a>) -> Option<Result<(Option<String>, usize), String>> {
        if !self.incremental {
            return None;
        }
        let d = pf
            .fields
            .first()?
            .directives
            .iter()
            .find(|d| d.name == "stream")?;
        if self.directive_arg(d, "if") == Some(Value::Bool(false)) {
            return None;
        }
        let label = self
            .directive_arg(d, "label")
            .and_then(|v| v.as_str().map(str::to_owned));
        let count = match self.directive_arg(d, "initialCount") {
            None | Some(Value::Null) => 0,
            Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(n) => n,
                None => return Some(Err("initialCount must be a positive integer".to_owned())),
            },
        };
        Some(Ok((label, count)))
    }

    fn push_record(&self, record: Record<'e, 'a>) {
        if let Ok(mut records) = self.records.lock() {
            if let Some(existing) = records.iter_mut().find(|r| r.same_as(&record)) {
                *existing = record;
            } else {
                records.push(record);
            }
        }
    }

    /// Records the deferred fragments that start on an object just written and the
    /// fields of it to send later.
    fn record_deferred(
        &self,
        object: TypeId,
        plan: &Plan<'e, 'a>,
        parent: &Value,
        path: Option<&Path<'_>>,
    ) {
        let at = path_vec(path);
        for usage in &plan.new_defers {
            self.push_record(Record::Fragment {
                usage: *usage,
                path: at.clone(),
            });
        }
        for group in &plan.groups {
            self.push_record(Record::Group {
                path: at.clone(),
                object,
                parent: parent.clone(),
                plan: Arc::clone(group),
            });
        }
    }

    /// For a streamed list field: how many items to complete now (recording the rest), or
    /// the error of a bad `initialCount`. `None`: the whole list now.
    fn stream_split(
        &self,
        item: &TypeRef,
        pf: &Planned<'e, 'a>,
        items: &[Value],
        failed: &[(usize, FieldError)],
        path: Option<&Path<'_>>,
    ) -> Result<usize, ()> {
        // Only the field's own list streams, not lists nested in it.
        if !matches!(path.map(|p| p.seg), Some(Seg::Key(_))) {
            return Ok(items.len());
        }
        match self.streamed(pf) {
            None => Ok(items.len()),
            Some(Err(message)) => {
                if let Some(f) = pf.fields.first() {
                    self.error(message, f, path);
                }
                Err(())
            }
            Some(Ok((label, count))) => {
                if items.len() <= count {
                    return Ok(items.len());
                }
                self.push_record(Record::Stream {
                    label,
                    path: path_vec(path),
                    fields: pf.fields.clone(),
                    def: pf.def,
                    parent_type: pf.parent,
                    item: item.clone(),
                    items: StreamItems::Resolved(
                        items.get(count..).unwrap_or_default().to_vec(),
                        failed
                            .iter()
                            .filter(|(at, _)| *at >= count)
                            .cloned()
                            .collect(),
                    ),
                    start: count,
                });
                Ok(count)
            }
        }
    }

    /// Completes one streamed item (sync fast path first), its path relative to the list.
    pub(crate) fn complete_item<'x>(
        &'x self,
        item: &'x TypeRef,
        pf: &'x Planned<'e, 'a>,
        value: &'x Value,
        error: Option<&'x FieldError>,
        index: usize,
    ) -> BoxFuture<'x, Result<Vec<u8>, ()>>
    where
        'e: 'x,
        'a: 'x,
    {
        Box::pin(async move {
            let path = Path {
                prev: None,
                seg: Seg::Index(index),
            };
            if let Some(e) = error {
                if let Some(f) = pf.fields.first() {
                    self.error_with(e.clone(), f, Some(&path));
                }
                return Err(());
            }
            self.complete_async(item, pf, value, &[], Some(&path)).await
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn collect_into(
        &self,
        object: TypeId,
        set: &'e SelectionSet<'a, &'a str>,
        defer: Option<DeferId>,
        visited: &mut Vec<&'a str>,
        fields: &mut Vec<Planned<'e, 'a>>,
        new_defers: &mut Vec<DeferId>,
    ) {
        for sel in &set.items {
            match sel {
                Selection::Field(f) => {
                    if !self.included(&f.directives) {
                        continue;
                    }
                    let key = f.alias.unwrap_or(f.name);
                    if let Some(existing) = fields.iter_mut().find(|p| p.key == key) {
                        existing.fields.push(f);
                        existing.defers.push(defer);
                        continue;
                    }
                    // Validation guarantees the field exists; skip it defensively if not.
                    let Some(def) = self.schema.field(object, f.name) else {
                        continue;
                    };
                    let args = self.coerce_args(def, f);
                    let leaf = self.default_leaf(def, &args);
                    fields.push(Planned {
                        key,
                        parent: object,
                        fields: vec![f],
                        defers: vec![defer],
                        set: Vec::new(),
                        def,
                        args,
                        children: Mutex::new(Vec::new()),
                        needs_async: AtomicBool::new(false),
                        leaf,
                    });
                }
                Selection::FragmentSpread(s) => {
                    if !self.included(&s.directives) {
                        continue;
                    }
                    let Some(frag) = self.fragments.get(s.fragment_name) else {
                        continue;
                    };
                    let TypeCondition::On(on) = &frag.type_condition;
                    if !self.applies(object, on) {
                        continue;
                    }
                    match self.deferred(&s.directives) {
                        // A deferred spread is collected even when the fragment was
                        // already (graphql-js); the marker cuts cycles of deferred spreads.
                        Some(label) => {
                            let marker = s as *const _ as usize;
                            let Some(usage) = self.defer_usage(marker, defer, label) else {
                                continue;
                            };
                            if self.defer_on_stack(usage) {
                                continue;
                            }
                            if !new_defers.contains(&usage) {
                                new_defers.push(usage);
                            }
                            self.collect_into(
                                object,
                                &frag.selection_set,
                                Some(usage),
                                visited,
                                fields,
                                new_defers,
                            );
                        }
                        None => {
                            if visited.contains(&s.fragment_name) {
                                continue;
                            }
                            visited.push(s.fragment_name);
                            self.collect_into(
                                object,
                                &frag.selection_set,
                                defer,
                                visited,
                                fields,
                                new_defers,
                            );
                        }
                    }
                }
                Selection::InlineFragment(i) => {
                    if !self.included(&i.directives) {
                        continue;
                    }
                    if let Some(TypeCondition::On(on)) = &i.type_condition
                        && !self.applies(object, on)
                    {
                        continue;
                    }
                    let mut inner = defer;
                    if let Some(label) = self.deferred(&i.directives) {
                        let Some(usage) = self.defer_usage(i as *const _ as usize, defer, label)
                        else {
                            continue;
                        };
                        if !new_defers.contains(&usage) {
                            new_defers.push(usage);
                        }
                        inner = Some(usage);
                    }
                    self.collect_into(object, &i.selection_set, inner, visited, fields, new_defers);
                }
            }
        }
    }

    /// Whether the `@defer` `usage` is nested in another use of the same node (a cycle of
    /// deferred spreads, possible only in a document that was not validated).
    fn defer_on_stack(&self, usage: DeferId) -> bool {
        let Ok(usages) = self.defers.lock() else {
            return true;
        };
        let Some(node) = usages.get(usage as usize).map(|u| u.node) else {
            return true;
        };
        let mut cur = usages.get(usage as usize).and_then(|u| u.parent);
        let mut depth = 0;
        while let Some(p) = cur {
            depth += 1;
            if depth > 64 || usages.get(p as usize).is_some_and(|u| u.node == node) {
                return true;
            }
            cur = usages.get(p as usize).and_then(|u| u.parent);
        }
        false
    }

    /// CoerceArgumentValues (6.4.1), once per collected field.
    fn coerce_args(&self, def: &FieldDef, field: &Field<'a, &'a str>) -> Result<Args, String> {
        let mut args = Args::new();
        for arg in &def.args {
            let given = field.arguments.iter().find(|(n, _)| *n == arg.name);
            match given {
                Some((_, graphql_parser::query::Value::Variable(var)))
                    if !self.variables.contains_key(*var) =>
                {
                    if let Some(d) = &arg.default_value {
                        args.insert(arg.name.as_str(), d.clone());
                    } else if arg.ty.is_non_null() {
                        return Err(format!(
                            "Argument \"{}\" of required type \"{}\" was provided the variable \"${var}\" which was not provided a runtime value.",
                            arg.name,
                            arg.ty.display(&self.schema.types)
                        ));
                    }
                }
                Some((_, value)) => {
                    let v = coerce_literal(
                        &self.schema.types,
                        &arg.ty,
                        value,
                        Some(&self.variables),
                    )
                    .map_err(|e| format!("Argument \"{}\" has invalid value: {e}", arg.name))?;
                    args.insert(arg.name.as_str(), v);
                }
                None => {
                    if let Some(d) = &arg.default_value {
                        args.insert(arg.name.as_str(), d.clone());
                    } else if arg.ty.is_non_null() {
                        return Err(format!(
                            "Argument \"{}\" of required type \"{}\" was not provided.",
                            arg.name,
                            arg.ty.display(&self.schema.types)
                        ));
                    }
                }
            }
        }
        Ok(args)
    }

    /// The leaf type of a field the sync path may write directly (see [`Planned::leaf`]).
    fn default_leaf(&self, def: &'e FieldDef, args: &Result<Args, String>) -> Option<&'e TypeDef> {
        if !def.resolver.is_default()
            || def.meta.is_some()
            || args.is_err()
            || std::ptr::eq(def, &self.schema.typename_field)
        {
            return None;
        }
        let TypeRef::Named(id) = def.ty.nullable() else {
            return None;
        };
        let ty = self.type_def(*id)?;
        matches!(ty.kind, TypeKind::Scalar(_) | TypeKind::Enum { .. }).then_some(ty)
    }

    fn child_plan(&self, pf: &Planned<'e, 'a>, object: TypeId) -> Arc<Plan<'e, 'a>> {
        if let Ok(children) = pf.children.lock()
            && let Some((_, plan)) = children.iter().find(|(t, _)| *t == object)
        {
            return Arc::clone(plan);
        }
        let sources: Vec<_> = pf
            .fields
            .iter()
            .zip(&pf.defers)
            .map(|(f, d)| (&f.selection_set, *d))
            .collect();
        let plan = Arc::new(self.collect_with(object, &sources, &pf.set));
        if let Ok(mut children) = pf.children.lock() {
            children.push((object, Arc::clone(&plan)));
        }
        plan
    }

    // -----------------------------------------------------------------------------------
    // The synchronous fast path: no future is created.

    pub(crate) fn object_sync<'v>(
        &self,
        out: &mut Vec<u8>,
        object: TypeId,
        plan: &Plan<'e, 'a>,
        parent: &'v Value,
        path: Option<&Path<'_>>,
    ) -> Result<(), Stop<'v>> {
        if let Some(cache) = &self.cache {
            cache.restrict(&plan.cache, path.is_none());
        }
        out.push(b'{');
        for (i, pf) in plan.iter().enumerate() {
            write_key(out, i, pf.key);
            if pf.needs_async.load(Ordering::Relaxed) {
                return Err(Stop::NeedsAsync(None));
            }
            let field_path = Path {
                prev: path,
                seg: Seg::Key(pf.key),
            };
            let mark = out.len();
            let written = match pf.leaf {
                Some(leaf) => self.leaf_sync(out, pf, leaf, parent, &field_path),
                None => self.field_sync(out, object, pf, parent, &field_path),
            };
            match written {
                Ok(()) => {}
                Err(Stop::Null) => {
                    if pf.def.ty.is_non_null() {
                        return Err(Stop::Null);
                    }
                    out.truncate(mark);
                    out.extend_from_slice(b"null");
                }
                Err(Stop::NeedsAsync(_)) => {
                    pf.needs_async.store(true, Ordering::Relaxed);
                    return Err(Stop::NeedsAsync(None));
                }
            }
        }
        out.push(b'}');
        if plan.has_deferred() {
            self.record_deferred(object, plan, parent, path);
        }
        Ok(())
    }

    /// Resolves a field without awaiting; `Err(NeedsAsync)` for async resolvers.
    fn resolve_sync<'v>(
        &self,
        object: TypeId,
        pf: &Planned<'e, 'a>,
        parent: &'v Value,
        path: &Path<'_>,
    ) -> Result<(Cow<'v, Value>, ItemErrors), Stop<'v>>
    where
        'e: 'v,
    {
        let field = pf.fields.first().copied();
        let Some(field) = field else {
            return Err(Stop::Null);
        };
        let args = match &pf.args {
            Ok(a) => a,
            Err(e) => {
                self.error(e.clone(), field, Some(path));
                return Err(Stop::Null);
            }
        };
        if let Some(meta) = pf.def.meta {
            return match introspection::resolve(self.schema, meta, object, parent, args) {
                Ok(v) => Ok((v, Vec::new())),
                Err(e) => {
                    self.error(e, field, Some(path));
                    Err(Stop::Null)
                }
            };
        }
        match &pf.def.resolver {
            Resolver::Default => Ok((
                Cow::Borrowed(parent.get(pf.def.name.as_str()).unwrap_or(&NULL)),
                Vec::new(),
            )),
            Resolver::Sync(f) => match f(self.ctx, parent, args) {
                Ok(v) => Ok((Cow::Owned(v), Vec::new())),
                Err(e) => {
                    self.error_with(e, field, Some(path));
                    Err(Stop::Null)
                }
            },
            Resolver::SyncList(f) => match f(self.ctx, parent, args) {
                Ok(items) => {
                    let (v, failed) = split_items(items);
                    Ok((Cow::Owned(v), failed))
                }
                Err(e) => {
                    self.error_with(e, field, Some(path));
                    Err(Stop::Null)
                }
            },
            // The JSON form, for the paths that complete values (the sync fast path
            // goes through `Exec::typed_list_sync` first).
            Resolver::TypedList(list) => match list.resolve(self.ctx, parent, args) {
                Ok(items) => Ok((Cow::Owned(items.to_json()), Vec::new())),
                Err(e) => {
                    self.error_with(e, field, Some(path));
                    Err(Stop::Null)
                }
            },
            Resolver::Async(_) | Resolver::AsyncList(_) | Resolver::ItemStream(_) => {
                Err(Stop::NeedsAsync(None))
            }
        }
    }

    /// What [`Exec::field_sync`] does for a field with a [`Planned::leaf`]: read it from
    /// the parent and write it.
    fn leaf_sync<'v>(
        &self,
        out: &mut Vec<u8>,
        pf: &Planned<'e, 'a>,
        leaf: &TypeDef,
        parent: &Value,
        path: &Path<'_>,
    ) -> Result<(), Stop<'v>> {
        if !self.charge(pf, 1, 0, Some(path)) {
            return Err(Stop::Null);
        }
        let value = parent.get(pf.def.name.as_str()).unwrap_or(&NULL);
        if value.is_null() {
            if pf.def.ty.is_non_null() {
                self.null_error(pf, Some(path));
                return Err(Stop::Null);
            }
            out.extend_from_slice(b"null");
            return Ok(());
        }
        let start = out.len();
        match write_leaf(out, leaf, value) {
            Ok(()) => {
                let written = out.len().saturating_sub(start);
                if self.charge(pf, 0, written, Some(path)) {
                    Ok(())
                } else {
                    Err(Stop::Null)
                }
            }
            Err(e) => {
                if let Some(f) = pf.fields.first() {
                    self.error(e, f, Some(path));
                }
                Err(Stop::Null)
            }
        }
    }

    fn field_sync<'v>(
        &self,
        out: &mut Vec<u8>,
        object: TypeId,
        pf: &Planned<'e, 'a>,
        parent: &'v Value,
        path: &Path<'_>,
    ) -> Result<(), Stop<'v>>
    where
        'e: 'v,
    {
        if !self.charge(pf, 1, 0, Some(path)) {
            return Err(Stop::Null);
        }
        if std::ptr::eq(pf.def, &self.schema.typename_field) {
            write_str(out, self.type_def(object).map_or("", |t| t.name.as_str()));
            return Ok(());
        }
        let (value, failed) = match &pf.def.resolver {
            Resolver::TypedList(list) if pf.def.meta.is_none() => {
                match self.typed_list_sync(out, pf, list, parent, path)? {
                    Some(value) => (Cow::Owned(value), Vec::new()),
                    None => return Ok(()),
                }
            }
            _ => self.resolve_sync(object, pf, parent, path)?,
        };
        match self.complete_sync(out, &pf.def.ty, pf, &value, &failed, Some(path)) {
            Ok(()) => Ok(()),
            Err(Stop::Null) => Err(Stop::Null),
            Err(Stop::NeedsAsync(_)) => Err(Stop::NeedsAsync(Some((value, failed)))),
        }
    }

    fn complete_sync<'v>(
        &self,
        out: &mut Vec<u8>,
        ty: &TypeRef,
        pf: &Planned<'e, 'a>,
        value: &Value,
        failed: &[(usize, FieldError)],
        path: Option<&Path<'_>>,
    ) -> Result<(), Stop<'v>> {
        match ty {
            TypeRef::NonNull(inner) => {
                if value.is_null() {
                    self.null_error(pf, path);
                    return Err(Stop::Null);
                }
                self.complete_sync(out, inner, pf, value, failed, path)
            }
            _ if value.is_null() => {
                out.extend_from_slice(b"null");
                Ok(())
            }
            TypeRef::List(item) => {
                let Value::Array(items) = value else {
                    self.not_a_list(pf, value, path);
                    return Err(Stop::Null);
                };
                let now = if self.incremental {
                    self.stream_split(item, pf, items, failed, path)
                        .map_err(|()| Stop::Null)?
                } else {
                    items.len()
                };
                // Items of an object type all run the same plan: it is looked up once.
                let item_plan = self.object_item_plan(pf, item);
                out.push(b'[');
                let items_start = out.len();
                for (i, v) in items.iter().take(now).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let item_path = Path {
                        prev: path,
                        seg: Seg::Index(i),
                    };
                    if !self.charge(pf, 1, 0, Some(&item_path)) {
                        return Err(Stop::Null);
                    }
                    let mark = out.len();
                    let completed = match item_error(failed, i) {
                        // Null here, propagated as any field error's null (spec 6.4.4).
                        Some(e) => {
                            if let Some(f) = pf.fields.first() {
                                self.error_with(e.clone(), f, Some(&item_path));
                            }
                            Err(Stop::Null)
                        }
                        None => match &item_plan {
                            // What `complete_sync` does for a non-null object value.
                            Some((object, plan)) if !v.is_null() => self
                                .object_sync(out, *object, plan, v, Some(&item_path))
                                .map_err(|s| match s {
                                    Stop::Null => Stop::Null,
                                    Stop::NeedsAsync(_) => Stop::NeedsAsync(None),
                                }),
                            _ => self.complete_sync(out, item, pf, v, &[], Some(&item_path)),
                        },
                    };
                    list_item_done(out, completed, item, i, now, items_start, mark)?;
                }
                out.push(b']');
                Ok(())
            }
            TypeRef::Named(id) => {
                let Some(def) = self.type_def(*id) else {
                    return Err(Stop::Null);
                };
                match &def.kind {
                    TypeKind::Scalar(_) | TypeKind::Enum { .. } => {
                        let start = out.len();
                        match write_leaf(out, def, value) {
                            Ok(()) => {
                                let written = out.len().saturating_sub(start);
                                if self.charge(pf, 0, written, path) {
                                    Ok(())
                                } else {
                                    Err(Stop::Null)
                                }
                            }
                            Err(e) => {
                                if let Some(f) = pf.fields.first() {
                                    self.error(e, f, path);
                                }
                                Err(Stop::Null)
                            }
                        }
                    }
                    TypeKind::Object { .. } => {
                        let plan = self.child_plan(pf, *id);
                        self.object_sync(out, *id, &plan, value, path)
                            .map_err(|s| match s {
                                Stop::Null => Stop::Null,
                                Stop::NeedsAsync(_) => Stop::NeedsAsync(None),
                            })
                    }
                    TypeKind::Interface { .. } | TypeKind::Union { .. } => {
                        let object = self.resolve_abstract(def, *id, pf, value, path)?;
                        let plan = self.child_plan(pf, object);
                        self.object_sync(out, object, &plan, value, path)
                            .map_err(|s| match s {
                                Stop::Null => Stop::Null,
                                Stop::NeedsAsync(_) => Stop::NeedsAsync(None),
                            })
                    }
                    TypeKind::InputObject { .. } => Err(Stop::Null),
                }
            }
        }
    }

    /// Runs a [`Resolver::TypedList`] and writes the list straight from the typed items
    /// (`Ok(None)`), or hands back the items as JSON (`Ok(Some(_))`) when this list cannot
    /// take the fast path (see [`Exec::typed_fields`]); the caller completes that value.
    fn typed_list_sync<'v>(
        &self,
        out: &mut Vec<u8>,
        pf: &Planned<'e, 'a>,
        list: &TypedList,
        parent: &Value,
        path: &Path<'_>,
    ) -> Result<Option<Value>, Stop<'v>> {
        let Some(field) = pf.fields.first().copied() else {
            return Err(Stop::Null);
        };
        let args = match &pf.args {
            Ok(a) => a,
            Err(e) => {
                self.error(e.clone(), field, Some(path));
                return Err(Stop::Null);
            }
        };
        let items = match list.resolve(self.ctx, parent, args) {
            Ok(items) => items,
            Err(e) => {
                self.error_with(e, field, Some(path));
                return Err(Stop::Null);
            }
        };
        let item_ty = match &pf.def.ty {
            TypeRef::NonNull(inner) => inner.as_ref(),
            ty => ty,
        };
        let fast = match item_ty {
            // A streamed list is split as JSON items (`stream_split`).
            TypeRef::List(item) if self.streamed(pf).is_none() => {
                self.object_item_plan(pf, item).and_then(|(object, plan)| {
                    let fields = self.typed_fields(&plan, items.names())?;
                    Some((item, object, plan, fields))
                })
            }
            _ => None,
        };
        let Some((item, object, plan, fields)) = fast else {
            return Ok(Some(items.to_json()));
        };
        let items = &*items;
        let count = items.len();
        out.push(b'[');
        let items_start = out.len();
        for i in 0..count {
            if i > 0 {
                out.push(b',');
            }
            let item_path = Path {
                prev: Some(path),
                seg: Seg::Index(i),
            };
            if !self.charge(pf, 1, 0, Some(&item_path)) {
                return Err(Stop::Null);
            }
            let mark = out.len();
            let completed =
                self.typed_object_sync(out, object, &plan, &fields, items, i, &item_path);
            list_item_done(out, completed, item, i, count, items_start, mark)?;
        }
        out.push(b']');
        Ok(None)
    }

    /// How each field of `plan` is read from a typed item whose type answers `names`:
    /// matched once per list. `None` when a field needs the JSON form of the item (its own
    /// resolver, an introspection field, an argument error, the async path) or the
    /// selection defers something.
    fn typed_fields(&self, plan: &Plan<'e, 'a>, names: &[&str]) -> Option<Vec<TypedField>> {
        if plan.has_deferred() {
            return None;
        }
        plan.iter()
            .map(|pf| {
                if std::ptr::eq(pf.def, &self.schema.typename_field) {
                    return Some(TypedField::Typename);
                }
                if !pf.def.resolver.is_default()
                    || pf.def.meta.is_some()
                    || pf.args.is_err()
                    || pf.needs_async.load(Ordering::Relaxed)
                {
                    return None;
                }
                let Some(index) = names.iter().position(|n| *n == pf.def.name) else {
                    return Some(TypedField::Absent);
                };
                let scalar = match pf.def.ty.nullable() {
                    TypeRef::Named(id) => match self.type_def(*id).map(|t| &t.kind) {
                        Some(TypeKind::Scalar(s)) => s.builtin,
                        _ => None,
                    },
                    _ => None,
                };
                Some(TypedField::Index(index, scalar))
            })
            .collect()
    }

    /// One typed item as a JSON object: what `object_sync` does for a JSON item.
    #[allow(clippy::too_many_arguments)]
    fn typed_object_sync<'v>(
        &self,
        out: &mut Vec<u8>,
        object: TypeId,
        plan: &Plan<'e, 'a>,
        fields: &[TypedField],
        items: &dyn TypedItems,
        item: usize,
        path: &Path<'_>,
    ) -> Result<(), Stop<'v>> {
        if let Some(cache) = &self.cache {
            cache.restrict(&plan.cache, false);
        }
        out.push(b'{');
        for (i, (pf, how)) in plan.iter().zip(fields).enumerate() {
            write_key(out, i, pf.key);
            let field_path = Path {
                prev: Some(path),
                seg: Seg::Key(pf.key),
            };
            let mark = out.len();
            match self.typed_field_sync(out, object, pf, *how, items, item, &field_path) {
                Ok(()) => {}
                Err(Stop::Null) => {
                    if pf.def.ty.is_non_null() {
                        return Err(Stop::Null);
                    }
                    out.truncate(mark);
                    out.extend_from_slice(b"null");
                }
                Err(Stop::NeedsAsync(_)) => return Err(Stop::NeedsAsync(None)),
            }
        }
        out.push(b'}');
        Ok(())
    }

    /// One field of a typed item: the built-in scalars written directly, everything
    /// else completed from its JSON form as a resolver's value.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn typed_field_sync<'v>(
        &self,
        out: &mut Vec<u8>,
        object: TypeId,
        pf: &Planned<'e, 'a>,
        how: TypedField,
        items: &dyn TypedItems,
        item: usize,
        path: &Path<'_>,
    ) -> Result<(), Stop<'v>> {
        let (index, scalar) = match how {
            TypedField::Index(index, scalar) => (index, scalar),
            TypedField::Typename => {
                if !self.charge(pf, 1, 0, Some(path)) {
                    return Err(Stop::Null);
                }
                write_str(out, self.type_def(object).map_or("", |t| t.name.as_str()));
                return Ok(());
            }
            TypedField::Absent => {
                if !self.charge(pf, 1, 0, Some(path)) {
                    return Err(Stop::Null);
                }
                return self.complete_sync(out, &pf.def.ty, pf, &NULL, &[], Some(path));
            }
        };
        let value = items.field(item, index);
        let start = out.len();
        let direct = match (&value, scalar) {
            (FieldValue::Int(n), Some(BuiltinScalar::Int)) => match i32::try_from(*n) {
                Ok(n) => {
                    let _ = serde_json::to_writer(&mut *out, &n);
                    true
                }
                Err(_) => false,
            },
            (FieldValue::String(s), Some(BuiltinScalar::String | BuiltinScalar::Id)) => {
                write_str(out, s);
                true
            }
            (FieldValue::Boolean(b), Some(BuiltinScalar::Boolean)) => {
                out.extend_from_slice(if *b { b"true" } else { b"false" });
                true
            }
            (FieldValue::Float(f), Some(BuiltinScalar::Float)) if f.is_finite() => {
                let _ = serde_json::to_writer(&mut *out, f);
                true
            }
            _ => false,
        };
        if direct {
            let written = out.len().saturating_sub(start);
            return if self.charge(pf, 1, written, Some(path)) {
                Ok(())
            } else {
                Err(Stop::Null)
            };
        }
        if !self.charge(pf, 1, 0, Some(path)) {
            return Err(Stop::Null);
        }
        let json = match value {
            FieldValue::Json(v) => v,
            other => Cow::Owned(other.to_json()),
        };
        self.complete_sync(out, &pf.def.ty, pf, &json, &[], Some(path))
    }

    /// The plan for the items of a list whose item type is an object type (nullable or
    /// not), `None` for other item types.
    fn object_item_plan(
        &self,
        pf: &Planned<'e, 'a>,
        item: &TypeRef,
    ) -> Option<(TypeId, Arc<Plan<'e, 'a>>)> {
        let named = match item {
            TypeRef::NonNull(inner) => match inner.as_ref() {
                TypeRef::Named(id) => *id,
                _ => return None,
            },
            TypeRef::Named(id) => *id,
            TypeRef::List(_) => return None,
        };
        match self.type_def(named).map(|t| &t.kind) {
            Some(TypeKind::Object { .. }) => Some((named, self.child_plan(pf, named))),
            _ => None,
        }
    }

    fn null_error(&self, pf: &Planned<'e, 'a>, path: Option<&Path<'_>>) {
        if let Some(f) = pf.fields.first() {
            self.error(
                format!(
                    "Cannot return null for non-nullable field {}.",
                    self.field_label(pf)
                ),
                f,
                path,
            );
        }
    }

    fn not_a_list(&self, pf: &Planned<'e, 'a>, value: &Value, path: Option<&Path<'_>>) {
        if let Some(f) = pf.fields.first() {
            self.error(
                format!(
                    "Expected a list for field {}, but got {}.",
                    self.field_label(pf),
                    kind_of(value)
                ),
                f,
                path,
            );
        }
    }

    fn field_label(&self, pf: &Planned<'e, 'a>) -> String {
        format!("{}.{}", self.schema.type_name(pf.parent), pf.def.name)
    }

    /// ResolveAbstractType (6.4.3): the object type of a value of an interface or union.
    fn resolve_abstract<'v>(
        &self,
        def: &TypeDef,
        abstract_id: TypeId,
        pf: &Planned<'e, 'a>,
        value: &Value,
        path: Option<&Path<'_>>,
    ) -> Result<TypeId, Stop<'v>> {
        let resolver = match &def.kind {
            TypeKind::Interface { type_resolver, .. } | TypeKind::Union { type_resolver, .. } => {
                type_resolver
            }
            _ => return Err(Stop::Null),
        };
        let name = resolver.resolve(self.ctx, value);
        let object = name
            .as_deref()
            .and_then(|n| self.schema.type_index.get(n).copied());
        let possible = object.is_some_and(|o| match &def.kind {
            TypeKind::Interface { possible_types, .. } => possible_types.contains(&o),
            TypeKind::Union { members, .. } => members.contains(&o),
            _ => false,
        });
        match object {
            Some(o) if possible => Ok(o),
            _ => {
                if let Some(f) = pf.fields.first() {
                    let message = match name {
                        Some(n) => format!(
                            "Runtime Object type \"{n}\" is not a possible type for \"{}\".",
                            self.schema.type_name(abstract_id)
                        ),
                        None => format!(
                            "Abstract type \"{}\" must resolve to an Object type at runtime for field \"{}\"; give the value a \"__typename\" or register a type resolver.",
                            self.schema.type_name(abstract_id),
                            pf.def.name
                        ),
                    };
                    self.error(message, f, path);
                }
                Err(Stop::Null)
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // The async path: used where an async resolver was found; sibling fields run
    // concurrently (joined), mutation root fields one after another.

    pub(crate) fn object_async<'x>(
        &'x self,
        object: TypeId,
        plan: Arc<Plan<'e, 'a>>,
        parent: &'x Value,
        path: Option<&'x Path<'x>>,
        serial: bool,
    ) -> BoxFuture<'x, Result<Vec<u8>, ()>>
    where
        'e: 'x,
        'a: 'x,
    {
        if let Some(cache) = &self.cache {
            cache.restrict(&plan.cache, path.is_none());
        }
        Box::pin(async move {
            enum Part<'x> {
                Ready(Vec<u8>),
                Null,
                Pending(BoxFuture<'x, Result<Vec<u8>, ()>>),
            }
            let mut parts: Vec<Part<'_>> = Vec::with_capacity(plan.len());
            for index in 0..plan.len() {
                let Some(pf) = plan.get(index) else { continue };
                let field_future = self.field_async(object, Arc::clone(&plan), index, parent, path);
                if serial {
                    parts.push(match field_future.await {
                        Ok(v) => Part::Ready(v),
                        Err(()) => Part::Null,
                    });
                    continue;
                }
                if !pf.needs_async.load(Ordering::Relaxed) {
                    // Try the fast path for this field first.
                    let mut buf = Vec::new();
                    let mark = self.mark();
                    let field_path = Path {
                        prev: path,
                        seg: Seg::Key(pf.key),
                    };
                    match self.field_sync(&mut buf, object, pf, parent, &field_path) {
                        Ok(()) => {
                            parts.push(Part::Ready(buf));
                            continue;
                        }
                        Err(Stop::Null) => {
                            parts.push(Part::Null);
                            continue;
                        }
                        Err(Stop::NeedsAsync(resolved)) => {
                            pf.needs_async.store(true, Ordering::Relaxed);
                            self.reset(mark);
                            if let Some((value, failed)) = resolved {
                                let plan = Arc::clone(&plan);
                                parts.push(Part::Pending(Box::pin(async move {
                                    let Some(pf) = plan.get(index) else {
                                        return Err(());
                                    };
                                    let field_path = Path {
                                        prev: path,
                                        seg: Seg::Key(pf.key),
                                    };
                                    let ty = pf.def.ty.clone();
                                    self.complete_async(&ty, pf, &value, &failed, Some(&field_path))
                                        .await
                                })));
                                continue;
                            }
                        }
                    }
                }
                parts.push(Part::Pending(field_future));
            }
            // Await the pending fields together (parallel execution, spec 6.3.1).
            let mut futures = Vec::new();
            let mut slots: Vec<Option<Result<Vec<u8>, ()>>> = Vec::with_capacity(parts.len());
            for part in parts {
                match part {
                    Part::Ready(v) => slots.push(Some(Ok(v))),
                    Part::Null => slots.push(Some(Err(()))),
                    Part::Pending(f) => {
                        futures.push(f);
                        slots.push(None);
                    }
                }
            }
            let mut results = futures_util::future::join_all(futures).await.into_iter();
            let mut out = Vec::new();
            out.push(b'{');
            for (i, (pf, slot)) in plan.iter().zip(slots).enumerate() {
                write_key(&mut out, i, pf.key);
                let result = match slot {
                    Some(r) => r,
                    None => results.next().unwrap_or(Err(())),
                };
                match result {
                    Ok(v) => out.extend_from_slice(&v),
                    Err(()) if pf.def.ty.is_non_null() => return Err(()),
                    Err(()) => out.extend_from_slice(b"null"),
                }
            }
            out.push(b'}');
            if plan.has_deferred() {
                self.record_deferred(object, &plan, parent, path);
            }
            Ok(out)
        })
    }

    /// Reads the items of an item stream ([`Resolver::item_stream`]): all of them, or,
    /// when the field is streamed, the first `initialCount` (the rest are recorded, to be
    /// sent as they arrive). At most `Limits::max_result_values` items are read.
    async fn read_item_stream(
        &self,
        pf: &Planned<'e, 'a>,
        mut source: crate::resolver::EventStream,
        path: &Path<'_>,
    ) -> Result<(Value, ItemErrors), ()> {
        use futures_util::StreamExt;
        let streamed = if self.incremental {
            match self.streamed(pf) {
                None => None,
                Some(Ok(s)) => Some(s),
                Some(Err(message)) => {
                    if let Some(f) = pf.fields.first() {
                        self.error(message, f, Some(path));
                    }
                    return Err(());
                }
            }
        } else {
            None
        };
        let cap = streamed.as_ref().map_or(
            self.schema.limits.max_result_values.saturating_add(1),
            |(_, count)| *count,
        );
        let mut items = Vec::new();
        let mut failed = Vec::new();
        let mut ended = false;
        while items.len() < cap {
            match source.next().await {
                Some(Ok(v)) => items.push(v),
                Some(Err(e)) => {
                    failed.push((items.len(), e));
                    items.push(Value::Null);
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if let Some((label, count)) = streamed
            && !ended
            && let Some(item) = list_item(&pf.def.ty)
        {
            self.push_record(Record::Stream {
                label,
                path: path_vec(Some(path)),
                fields: pf.fields.clone(),
                def: pf.def,
                parent_type: pf.parent,
                item: item.clone(),
                items: StreamItems::Source(Mutex::new(source)),
                start: count,
            });
        }
        Ok((Value::Array(items), failed))
    }

    fn field_async<'x>(
        &'x self,
        object: TypeId,
        plan: Arc<Plan<'e, 'a>>,
        index: usize,
        parent: &'x Value,
        path: Option<&'x Path<'x>>,
    ) -> BoxFuture<'x, Result<Vec<u8>, ()>>
    where
        'e: 'x,
        'a: 'x,
    {
        Box::pin(async move {
            let Some(pf) = plan.get(index) else {
                return Err(());
            };
            let field_path = Path {
                prev: path,
                seg: Seg::Key(pf.key),
            };
            if !self.charge(pf, 1, 0, Some(&field_path)) {
                return Err(());
            }
            if std::ptr::eq(pf.def, &self.schema.typename_field) {
                let mut out = Vec::new();
                write_str(
                    &mut out,
                    self.type_def(object).map_or("", |t| t.name.as_str()),
                );
                return Ok(out);
            }
            let (value, failed): (Cow<'_, Value>, ItemErrors) =
                match (&pf.def.resolver, pf.def.meta) {
                    (
                        Resolver::Async(_) | Resolver::AsyncList(_) | Resolver::ItemStream(_),
                        None,
                    ) => {
                        // No reference into the AST is held across the await: a local of type
                        // `&Field<'a, &'a str>` would make the future's `Send` unprovable.
                        let args = match &pf.args {
                            Ok(args) => args,
                            Err(e) => {
                                if let Some(field) = pf.fields.first() {
                                    self.error(e.clone(), field, Some(&field_path));
                                }
                                return Err(());
                            }
                        };
                        let input = ResolverInput {
                            ctx: self.ctx,
                            parent,
                            args,
                        };
                        let resolved = match &pf.def.resolver {
                            Resolver::Async(f) => {
                                f(input).await.map(|v| (Cow::Owned(v), Vec::new()))
                            }
                            Resolver::AsyncList(f) => f(input).await.map(|items| {
                                let (v, failed) = split_items(items);
                                (Cow::Owned(v), failed)
                            }),
                            Resolver::ItemStream(f) => {
                                let source = f(self.ctx, parent, args);
                                let (v, failed) =
                                    self.read_item_stream(pf, source, &field_path).await?;
                                Ok((Cow::Owned(v), failed))
                            }
                            _ => return Err(()),
                        };
                        match resolved {
                            Ok(resolved) => resolved,
                            Err(e) => {
                                if let Some(field) = pf.fields.first() {
                                    self.error_with(e, field, Some(&field_path));
                                }
                                return Err(());
                            }
                        }
                    }
                    _ => match self.resolve_sync(object, pf, parent, &field_path) {
                        Ok(v) => v,
                        Err(_) => return Err(()),
                    },
                };
            let ty = pf.def.ty.clone();
            self.complete_async(&ty, pf, &value, &failed, Some(&field_path))
                .await
        })
    }

    fn complete_async<'x>(
        &'x self,
        ty: &'x TypeRef,
        pf: &'x Planned<'e, 'a>,
        value: &'x Value,
        failed: &'x [(usize, FieldError)],
        path: Option<&'x Path<'x>>,
    ) -> BoxFuture<'x, Result<Vec<u8>, ()>>
    where
        'e: 'x,
        'a: 'x,
    {
        Box::pin(async move {
            // The fast path first; only the parts that need it go async.
            let mut out = Vec::new();
            let mark = self.mark();
            match self.complete_sync(&mut out, ty, pf, value, failed, path) {
                Ok(()) => return Ok(out),
                Err(Stop::Null) => return Err(()),
                Err(Stop::NeedsAsync(_)) => self.reset(mark),
            }
            match ty {
                TypeRef::NonNull(inner) => {
                    if value.is_null() {
                        self.null_error(pf, path);
                        return Err(());
                    }
                    self.complete_async(inner, pf, value, failed, path).await
                }
                _ if value.is_null() => Ok(b"null".to_vec()),
                TypeRef::List(item) => {
                    let Value::Array(items) = value else {
                        self.not_a_list(pf, value, path);
                        return Err(());
                    };
                    let now = if self.incremental {
                        self.stream_split(item, pf, items, failed, path)?
                    } else {
                        items.len()
                    };
                    let items = items.get(..now).unwrap_or_default();
                    let paths: Vec<Path<'x>> = (0..items.len())
                        .map(|i| Path {
                            prev: path,
                            seg: Seg::Index(i),
                        })
                        .collect();
                    for p in &paths {
                        if !self.charge(pf, 1, 0, Some(p)) {
                            return Err(());
                        }
                    }
                    let futures = items.iter().zip(&paths).enumerate().map(|(i, (v, p))| {
                        match item_error(failed, i) {
                            Some(e) => {
                                if let Some(f) = pf.fields.first() {
                                    self.error_with(e.clone(), f, Some(p));
                                }
                                Box::pin(std::future::ready(Err(())))
                                    as BoxFuture<'x, Result<Vec<u8>, ()>>
                            }
                            None => self.complete_async(item, pf, v, &[], Some(p)),
                        }
                    });
                    let results = futures_util::future::join_all(futures).await;
                    let mut out = vec![b'['];
                    for (i, r) in results.into_iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        match r {
                            Ok(v) => out.extend_from_slice(&v),
                            Err(()) if item.is_non_null() => return Err(()),
                            Err(()) => out.extend_from_slice(b"null"),
                        }
                    }
                    out.push(b']');
                    Ok(out)
                }
                TypeRef::Named(id) => {
                    let Some(def) = self.type_def(*id) else {
                        return Err(());
                    };
                    let object = match &def.kind {
                        TypeKind::Object { .. } => *id,
                        TypeKind::Interface { .. } | TypeKind::Union { .. } => {
                            match self.resolve_abstract(def, *id, pf, value, path) {
                                Ok(o) => o,
                                Err(_) => return Err(()),
                            }
                        }
                        _ => return Err(()),
                    };
                    let plan = self.child_plan(pf, object);
                    self.object_async(object, plan, value, path, false).await
                }
            }
        })
    }
}

/// How the executor reads one selected field of a typed item (see [`Exec::typed_fields`]).
#[derive(Clone, Copy)]
enum TypedField {
    /// Field number `.0` of the item type's `FIELDS`; `.1` is the field's type when it
    /// is a built-in scalar (nullable or not), which the matching value is written as.
    Index(usize, Option<BuiltinScalar>),
    /// `__typename`.
    Typename,
    /// A field the item type does not answer: null.
    Absent,
}

/// The item type of a list type (nullable or not).
fn list_item(ty: &TypeRef) -> Option<&TypeRef> {
    match ty {
        TypeRef::NonNull(inner) => list_item(inner),
        TypeRef::List(item) => Some(item),
        TypeRef::Named(_) => None,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Serializes a leaf value (spec 3.5 result coercion, 3.9 for enums).
pub(crate) fn write_leaf(out: &mut Vec<u8>, def: &TypeDef, value: &Value) -> Result<(), String> {
    match &def.kind {
        TypeKind::Scalar(s) => match s.builtin {
            Some(BuiltinScalar::Int) => {
                let n = value.as_i64().or_else(|| {
                    value
                        .as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 2_147_483_648.0)
                        .map(|f| f as i64)
                });
                match n.and_then(|n| i32::try_from(n).ok()) {
                    Some(n) => {
                        // serde_json writes integers with itoa, without `fmt`'s machinery.
                        let _ = serde_json::to_writer(&mut *out, &n);
                        Ok(())
                    }
                    None => Err(format!(
                        "Int cannot represent non 32-bit signed integer value: {value}"
                    )),
                }
            }
            Some(BuiltinScalar::Float) => match value {
                Value::Number(_) => {
                    write_json(out, value);
                    Ok(())
                }
                _ => Err(format!("Float cannot represent non numeric value: {value}")),
            },
            Some(BuiltinScalar::String) => match value {
                Value::String(s) => {
                    write_str(out, s);
                    Ok(())
                }
                Value::Bool(_) | Value::Number(_) => {
                    write_str(out, &value.to_string());
                    Ok(())
                }
                _ => Err(format!("String cannot represent value: {value}")),
            },
            Some(BuiltinScalar::Boolean) => match value {
                Value::Bool(b) => {
                    out.extend_from_slice(if *b { b"true" } else { b"false" });
                    Ok(())
                }
                _ => Err(format!(
                    "Boolean cannot represent a non boolean value: {value}"
                )),
            },
            Some(BuiltinScalar::Id) => match value {
                Value::String(s) => {
                    write_str(out, s);
                    Ok(())
                }
                Value::Number(n) if n.is_i64() || n.is_u64() => {
                    write_str(out, &n.to_string());
                    Ok(())
                }
                _ => Err(format!("ID cannot represent value: {value}")),
            },
            None => {
                let v = s
                    .coercion
                    .serialize_value(value)
                    .map_err(|e| format!("{}: {e}", def.name))?;
                write_json(out, &v);
                Ok(())
            }
        },
        TypeKind::Enum { values } => match value {
            Value::String(s) if values.iter().any(|v| v.name == *s) => {
                write_str(out, s);
                Ok(())
            }
            _ => Err(format!(
                "Enum \"{}\" cannot represent value: {value}",
                def.name
            )),
        },
        _ => Err("not a leaf type".to_owned()),
    }
}

/// Writes the response key of an object's field `i` (a comma before all but the first):
/// `"key":`. Keys are names or aliases, which need no escaping.
#[inline]
fn write_key(out: &mut Vec<u8>, i: usize, key: &str) {
    if i > 0 {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// What follows writing item `i` of a list of `count` into `out` (the item from `mark`, the
/// list's items from `items_start`). After the first item, room for the rest is reserved
/// from its size: the buffer grows once instead of doubling ten times. A null item stays
/// null where the item type is nullable, else the null goes to the list; a switch to the
/// async path is passed on without a value (the list is resolved again there).
#[inline]
fn list_item_done<'v>(
    out: &mut Vec<u8>,
    completed: Result<(), Stop<'_>>,
    item: &TypeRef,
    i: usize,
    count: usize,
    items_start: usize,
    mark: usize,
) -> Result<(), Stop<'v>> {
    match completed {
        Ok(()) if i == 0 && count > 1 => {
            let estimate = out.len().saturating_sub(items_start).saturating_add(1);
            out.reserve(estimate.saturating_mul(count - 1).min(LIST_RESERVE_CAP));
            Ok(())
        }
        Ok(()) => Ok(()),
        Err(Stop::Null) if !item.is_non_null() => {
            out.truncate(mark);
            out.extend_from_slice(b"null");
            Ok(())
        }
        Err(Stop::Null) => Err(Stop::Null),
        Err(Stop::NeedsAsync(_)) => Err(Stop::NeedsAsync(None)),
    }
}
