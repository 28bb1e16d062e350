//! The document cache: parsed documents that passed the checks before execution, keyed by
//! their exact text, so that a repeated document (the common case in production, where
//! clients send the same few queries) skips parsing and validation.
//!
//! What is cached depends only on the text and on the schema, which is immutable once
//! built, so an entry never goes stale; each [`Schema`](crate::Schema) has its own cache.
//! Documents that fail to parse, exceed a limit or fail validation are never stored: they
//! are parsed and validated again on every request, so their errors are the same with the
//! cache as without it. Variables and the operation name are not part of the key; they
//! are applied to the cached document on every request.
//!
//! The cache is bounded twice: by the bytes its entries take (the text, graphql-parser's
//! AST as counted by [`ast_bytes`], and the bookkeeping) and by the number of entries.
//! Eviction is CLOCK (second chance): a hit sets the entry's reference bit, and the hand
//! evicts the first entry whose bit is clear, clearing bits as it passes. A hit takes the
//! read lock only, so concurrent requests for cached documents do not serialize.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use graphql_parser::query as q;

use crate::document::{Ast, Document};
use crate::response::GraphQLError;

self_cell::self_cell!(
    /// A document's text and graphql-parser's AST borrowing it, owned together.
    pub(crate) struct OwnedDocument {
        owner: Arc<str>,

        #[not_covariant]
        dependent: Document,
    }
);

impl OwnedDocument {
    /// Parses `text` into an owned document.
    pub(crate) fn parse(text: &str) -> Result<Self, GraphQLError> {
        OwnedDocument::try_new(Arc::from(text), |text| Document::parse(text))
    }
}

/// A cached document and what is known about it.
pub(crate) struct CachedDocument {
    pub(crate) document: OwnedDocument,
    /// Whether it passed validation against the schema (a document first run with
    /// [`Schema::execute_without_validation`](crate::Schema::execute_without_validation)
    /// is cached unvalidated and validated on its first validating run).
    validated: AtomicBool,
    /// The document has no `$`, so the depth, alias and complexity limits, which it
    /// passed before it was stored, cannot measure differently with other variables.
    pub(crate) variable_free: bool,
    /// What the entry costs against the byte budget.
    bytes: usize,
    /// CLOCK's reference bit: set on a hit, cleared by the passing hand.
    referenced: AtomicBool,
}

impl std::fmt::Debug for CachedDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedDocument")
            .field("text", &self.document.borrow_owner())
            .field("validated", &self.validated.load(Ordering::Relaxed))
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl CachedDocument {
    /// An entry for a parsed document, its memory counted.
    pub(crate) fn new(document: OwnedDocument) -> Self {
        let text = document.borrow_owner();
        let variable_free = !text.contains('$');
        let bytes =
            ENTRY_OVERHEAD + text.len() + document.with_dependent(|_, doc| ast_bytes(doc.ast()));
        CachedDocument {
            document,
            validated: AtomicBool::new(false),
            variable_free,
            bytes,
            referenced: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_validated(&self) -> bool {
        self.validated.load(Ordering::Acquire)
    }

    pub(crate) fn mark_validated(&self) {
        self.validated.store(true, Ordering::Release);
    }

    /// The bytes this entry counts against the cache's budget.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// What one entry costs besides its text and AST: the entry itself, its slot, the map's
/// key and bucket (hashbrown keeps about one control byte and 1/8 spare bucket per entry).
const ENTRY_OVERHEAD: usize = size_of::<CachedDocument>()
    + 2 * size_of::<usize>() // Arc counts
    + size_of::<Option<Arc<CachedDocument>>>()
    + 2 * (size_of::<Arc<str>>() + size_of::<usize>())
    + 2 * size_of::<usize>(); // the Arc<str> counts of the shared text

/// The bounded, concurrent document cache of one schema.
#[derive(Debug)]
pub(crate) struct DocumentCache {
    max_bytes: usize,
    max_entries: usize,
    clock: RwLock<Clock>,
}

#[derive(Debug, Default)]
struct Clock {
    /// Text to slot.
    index: HashMap<Arc<str>, usize>,
    /// The ring the hand walks; `None` is a free slot.
    slots: Vec<Option<Arc<CachedDocument>>>,
    free: Vec<usize>,
    hand: usize,
    bytes: usize,
}

impl Default for DocumentCache {
    fn default() -> Self {
        DocumentCache::new(0, 0)
    }
}

impl DocumentCache {
    /// A cache of at most `max_bytes` bytes and `max_entries` documents (either 0: off).
    pub(crate) fn new(max_bytes: usize, max_entries: usize) -> Self {
        DocumentCache {
            max_bytes,
            max_entries,
            clock: RwLock::default(),
        }
    }

    /// Whether documents are cached at all.
    pub(crate) fn is_enabled(&self) -> bool {
        self.max_bytes > 0 && self.max_entries > 0
    }

    /// Whether a text this long could be stored (its entry takes more than the text).
    pub(crate) fn may_hold(&self, text: &str) -> bool {
        self.is_enabled() && text.len().saturating_add(ENTRY_OVERHEAD) <= self.max_bytes
    }

    /// The cached document of `text`, marked as used.
    pub(crate) fn get(&self, text: &str) -> Option<Arc<CachedDocument>> {
        if !self.may_hold(text) {
            return None;
        }
        let clock = self.clock.read().ok()?;
        let slot = *clock.index.get(text)?;
        let entry = clock.slots.get(slot)?.as_ref()?;
        // A relaxed load first: a hot entry's bit is already set, and a store would bounce
        // its cache line between cores for nothing.
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        Some(Arc::clone(entry))
    }

    /// Stores an entry, evicting others until it fits; an entry larger than the whole
    /// budget is not stored. A text already present (stored meanwhile by a concurrent
    /// request) is kept as it is.
    pub(crate) fn insert(&self, entry: Arc<CachedDocument>) {
        if !self.is_enabled() || entry.bytes() > self.max_bytes {
            return;
        }
        let Ok(mut clock) = self.clock.write() else {
            return;
        };
        let text = Arc::clone(entry.document.borrow_owner());
        if clock.index.contains_key(&text) {
            return;
        }
        while clock.bytes.saturating_add(entry.bytes()) > self.max_bytes
            || clock.index.len() >= self.max_entries
        {
            if !clock.evict_one() {
                return;
            }
        }
        clock.bytes = clock.bytes.saturating_add(entry.bytes());
        let slot = match clock.free.pop() {
            Some(slot) => {
                if let Some(s) = clock.slots.get_mut(slot) {
                    *s = Some(entry);
                }
                slot
            }
            None => {
                clock.slots.push(Some(entry));
                clock.slots.len() - 1
            }
        };
        clock.index.insert(text, slot);
    }
}

impl Clock {
    /// Moves the hand to the first entry not used since the hand last passed and evicts
    /// it; `false` when there is nothing to evict.
    fn evict_one(&mut self) -> bool {
        if self.index.is_empty() {
            return false;
        }
        // Two turns at most: the first clears every bit it passes.
        for _ in 0..2 * self.slots.len() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let at = self.hand;
            self.hand += 1;
            let Some(Some(entry)) = self.slots.get(at) else {
                continue;
            };
            if entry.referenced.swap(false, Ordering::Relaxed) {
                continue;
            }
            let bytes = entry.bytes;
            let text = Arc::clone(entry.document.borrow_owner());
            self.index.remove(&text);
            if let Some(slot) = self.slots.get_mut(at) {
                *slot = None;
            }
            self.free.push(at);
            self.bytes = self.bytes.saturating_sub(bytes);
            return true;
        }
        false
    }
}

// ---------------------------------------------------------------------------------------
// Counting the AST's memory: every vector's capacity times its element's size, with the
// heap parts of the elements (strings, boxes, maps) added.

fn vec_bytes<T>(v: &Vec<T>) -> usize {
    if v.capacity() == 0 {
        0
    } else {
        v.capacity() * size_of::<T>() + ALLOCATION
    }
}

/// What an allocator adds to each allocation (header and rounding), about.
const ALLOCATION: usize = 16;

/// The heap bytes of graphql-parser's AST of a document.
pub(crate) fn ast_bytes<'a>(ast: &Ast<'a>) -> usize {
    let mut n = vec_bytes(&ast.definitions);
    for def in &ast.definitions {
        n += match def {
            q::Definition::Operation(op) => match op {
                q::OperationDefinition::SelectionSet(s) => set_bytes(s),
                q::OperationDefinition::Query(o) => {
                    variables_bytes(&o.variable_definitions)
                        + directives_bytes(&o.directives)
                        + set_bytes(&o.selection_set)
                }
                q::OperationDefinition::Mutation(o) => {
                    variables_bytes(&o.variable_definitions)
                        + directives_bytes(&o.directives)
                        + set_bytes(&o.selection_set)
                }
                q::OperationDefinition::Subscription(o) => {
                    variables_bytes(&o.variable_definitions)
                        + directives_bytes(&o.directives)
                        + set_bytes(&o.selection_set)
                }
            },
            q::Definition::Fragment(f) => {
                directives_bytes(&f.directives) + set_bytes(&f.selection_set)
            }
        };
    }
    n
}

type Set<'a> = q::SelectionSet<'a, &'a str>;

fn set_bytes<'a>(set: &Set<'a>) -> usize {
    let mut n = vec_bytes(&set.items);
    for item in &set.items {
        n += match item {
            q::Selection::Field(f) => {
                arguments_bytes(&f.arguments)
                    + directives_bytes(&f.directives)
                    + set_bytes(&f.selection_set)
            }
            q::Selection::FragmentSpread(s) => directives_bytes(&s.directives),
            q::Selection::InlineFragment(i) => {
                directives_bytes(&i.directives) + set_bytes(&i.selection_set)
            }
        };
    }
    n
}

fn variables_bytes<'a>(vars: &Vec<q::VariableDefinition<'a, &'a str>>) -> usize {
    let mut n = vec_bytes(vars);
    for v in vars {
        n += type_bytes(&v.var_type) + v.default_value.as_ref().map_or(0, value_bytes);
    }
    n
}

fn type_bytes<'a>(ty: &q::Type<'a, &'a str>) -> usize {
    match ty {
        q::Type::NamedType(_) => 0,
        q::Type::ListType(inner) | q::Type::NonNullType(inner) => {
            size_of::<q::Type<'a, &'a str>>() + ALLOCATION + type_bytes(inner)
        }
    }
}

fn directives_bytes<'a>(directives: &Vec<q::Directive<'a, &'a str>>) -> usize {
    let mut n = vec_bytes(directives);
    for d in directives {
        n += arguments_bytes(&d.arguments);
    }
    n
}

fn arguments_bytes<'a>(arguments: &Vec<(&'a str, q::Value<'a, &'a str>)>) -> usize {
    let mut n = vec_bytes(arguments);
    for (_, v) in arguments {
        n += value_bytes(v);
    }
    n
}

fn value_bytes<'a>(value: &q::Value<'a, &'a str>) -> usize {
    match value {
        q::Value::String(s) if s.capacity() > 0 => s.capacity() + ALLOCATION,
        q::Value::List(items) => vec_bytes(items) + items.iter().map(value_bytes).sum::<usize>(),
        q::Value::Object(fields) => {
            // A B-tree keeps up to 11 entries per node; count each entry and a node's
            // overhead per 5 entries (nodes are about half full).
            let entry = size_of::<&str>() + size_of::<q::Value<'a, &'a str>>();
            fields.len() * entry
                + fields.len().div_ceil(5) * (ALLOCATION + 4 * size_of::<usize>())
                + fields.values().map(value_bytes).sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl DocumentCache {
        /// How many documents and bytes are held now.
        pub(crate) fn usage(&self) -> (usize, usize) {
            self.clock
                .read()
                .map_or((0, 0), |c| (c.index.len(), c.bytes))
        }

        /// Whether `text` is cached (without marking it used).
        pub(crate) fn contains(&self, text: &str) -> bool {
            self.clock.read().is_ok_and(|c| c.index.contains_key(text))
        }
    }

    fn entry(text: &str) -> Arc<CachedDocument> {
        Arc::new(CachedDocument::new(
            OwnedDocument::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}")),
        ))
    }

    #[test]
    fn counts_text_and_ast() {
        let small = entry("{ a }");
        let large = entry("{ a b c d e f g h(x: [1, 2, 3], y: {z: \"long string value\"}) { i } }");
        assert!(small.bytes() > ENTRY_OVERHEAD + 5, "{}", small.bytes());
        assert!(
            large.bytes() > small.bytes() + 500,
            "{} vs {}",
            large.bytes(),
            small.bytes()
        );
    }

    #[test]
    fn hit_after_insert_and_miss_for_other_text() {
        let cache = DocumentCache::new(1 << 20, 100);
        assert!(cache.get("{ a }").is_none());
        cache.insert(entry("{ a }"));
        assert!(cache.get("{ a }").is_some());
        // The exact text is the key: a space more is another document.
        assert!(cache.get("{ a  }").is_none());
        assert!(cache.get("{ b }").is_none());
    }

    #[test]
    fn evicts_by_bytes_unreferenced_first() {
        let one = entry("{ a }").bytes();
        // Room for three entries of this size.
        let cache = DocumentCache::new(3 * one + one / 2, 100);
        for t in ["{ a }", "{ b }", "{ c }"] {
            cache.insert(entry(t));
        }
        assert_eq!(cache.usage(), (3, 3 * one));
        // `{ a }` and `{ c }` are used again; `{ b }` is not: it goes first.
        assert!(cache.get("{ a }").is_some());
        assert!(cache.get("{ c }").is_some());
        cache.insert(entry("{ d }"));
        assert!(!cache.contains("{ b }"));
        assert!(cache.contains("{ a }") && cache.contains("{ c }") && cache.contains("{ d }"));
        let (count, bytes) = cache.usage();
        assert_eq!(count, 3);
        assert!(bytes <= 3 * one + one / 2);
    }

    #[test]
    fn a_large_document_evicts_several() {
        let one = entry("{ f000 }").bytes();
        let big_text = "{ a b c d e f g h i j k l m n o p }";
        let big_bytes = entry(big_text).bytes();
        assert!(big_bytes > 2 * one, "{big_bytes} vs {one}");
        let budget = big_bytes + one + one / 2;
        let cache = DocumentCache::new(budget, 1000);
        let smalls = budget / one;
        for i in 0..smalls {
            cache.insert(entry(&format!("{{ f{i:03} }}")));
        }
        assert_eq!(cache.usage(), (smalls, smalls * one));
        cache.insert(entry(big_text));
        // Only one small document still fits beside the large one.
        let (count, bytes) = cache.usage();
        assert_eq!(count, 2);
        assert!(bytes <= budget);
        assert!(cache.contains(big_text));
    }

    #[test]
    fn an_entry_over_the_budget_is_not_stored() {
        let cache = DocumentCache::new(ENTRY_OVERHEAD + 8, 100);
        cache.insert(entry("{ a b c d e f g h }"));
        assert_eq!(cache.usage(), (0, 0));
    }

    #[test]
    fn bounded_by_entries_too() {
        let cache = DocumentCache::new(1 << 20, 2);
        for t in ["{ a }", "{ b }", "{ c }"] {
            cache.insert(entry(t));
        }
        assert_eq!(cache.usage().0, 2);
        assert!(cache.contains("{ c }"));
    }

    #[test]
    fn off_when_either_bound_is_zero() {
        for cache in [DocumentCache::new(0, 10), DocumentCache::new(1 << 20, 0)] {
            cache.insert(entry("{ a }"));
            assert!(cache.get("{ a }").is_none());
            assert_eq!(cache.usage(), (0, 0));
        }
    }

    #[test]
    fn many_threads_share_it() {
        let cache = Arc::new(DocumentCache::new(20 * entry("{ f0 }").bytes(), 1000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let text = format!("{{ f{} }}", (i * 7 + t) % 40);
                        match cache.get(&text) {
                            Some(e) => assert_eq!(&**e.document.borrow_owner(), text),
                            None => cache.insert(entry(&text)),
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        let (count, bytes) = cache.usage();
        assert!(count <= 20 && count > 0, "{count}");
        assert!(bytes <= 20 * entry("{ f0 }").bytes());
    }
}

/// The cache as `Schema::execute` uses it: what is stored, and that answers do not change.
#[cfg(test)]
mod execution_tests {
    use serde_json::{Map, Value, json};

    use crate::{Context, Limits, Request, Resolver, Schema};

    const SDL: &str =
        "type Query { hello(name: String = \"world\"): String! list(first: Int): [Item!]! }
                       type Item { id: Int! }";

    fn schema_with(bytes: usize, documents: usize, limits: Limits) -> Schema {
        Schema::build(SDL)
            .resolver(
                "Query",
                "hello",
                Resolver::sync(|_, _, args| {
                    Ok(json!(format!(
                        "hello {}",
                        args.get("name").and_then(Value::as_str).unwrap_or("?")
                    )))
                }),
            )
            .resolver(
                "Query",
                "list",
                Resolver::sync(|_, _, _| Ok(json!([{"id": 1}, {"id": 2}]))),
            )
            .limits(limits)
            .document_cache(bytes)
            .validation_cache(documents)
            .finish()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn cached() -> Schema {
        schema_with(1 << 20, 100, Limits::default())
    }

    fn uncached() -> Schema {
        schema_with(0, 100, Limits::default())
    }

    fn run(schema: &Schema, request: &Request) -> Value {
        let ctx = Context::default();
        futures_util::FutureExt::now_or_never(schema.execute(request, &ctx))
            .map_or(Value::Null, |r| r.to_value())
    }

    fn run_unvalidated(schema: &Schema, request: &Request) -> Value {
        let ctx = Context::default();
        futures_util::FutureExt::now_or_never(schema.execute_without_validation(request, &ctx))
            .map_or(Value::Null, |r| r.to_value())
    }

    fn vars(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_valid_document_is_stored_and_answers_the_same_from_the_cache() {
        let schema = cached();
        let request = Request::new("{ hello }");
        let first = run(&schema, &request);
        assert_eq!(first, json!({"data": {"hello": "hello world"}}));
        assert!(schema.inner.documents.contains("{ hello }"));
        assert_eq!(run(&schema, &request), first);
        assert_eq!(schema.inner.documents.usage().0, 1);
    }

    #[test]
    fn failing_documents_are_not_stored_and_their_errors_do_not_change() {
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        let with = schema_with(1 << 20, 100, limits.clone());
        let without = schema_with(0, 100, limits);
        for text in [
            "{ hello(",                            // syntax
            "type T { a: Int }",                   // type-system definition
            "{ nope }",                            // validation
            "{ hello(name: 1) }",                  // validation (value)
            "query A { hello } query A { hello }", // validation (names)
            "{ list { id } list { id } }",         // valid: merged
            "{ a: list { b: list { id } } }",      // validation and depth
        ] {
            let request = Request::new(text);
            let expected = run(&without, &request);
            for _ in 0..3 {
                assert_eq!(run(&with, &request), expected, "{text}");
            }
            let valid = expected.get("errors").is_none();
            assert_eq!(
                with.inner.documents.contains(text),
                valid,
                "{text}: {expected}"
            );
        }
    }

    #[test]
    fn variables_and_operation_name_apply_on_every_request() {
        let schema = cached();
        let text = "query A($n: String) { hello(name: $n) } query B { list { id } }";
        let a = |n: &str| {
            Request::new(text)
                .operation_name("A")
                .variables(vars(json!({"n": n})))
        };
        assert_eq!(run(&schema, &a("x")), json!({"data": {"hello": "hello x"}}));
        assert_eq!(run(&schema, &a("y")), json!({"data": {"hello": "hello y"}}));
        assert_eq!(
            run(&schema, &Request::new(text).operation_name("B")),
            json!({"data": {"list": [{"id": 1}, {"id": 2}]}})
        );
        let unnamed = run(&schema, &Request::new(text));
        assert_eq!(
            unnamed["errors"][0]["message"],
            "Must provide operation name if query contains multiple operations."
        );
        let bad = run(
            &schema,
            &Request::new(text)
                .operation_name("A")
                .variables(vars(json!({"n": 3}))),
        );
        assert!(
            bad["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("$n"))
        );
        assert_eq!(schema.inner.documents.usage().0, 1);
    }

    #[test]
    fn limits_that_depend_on_variables_are_checked_on_every_request() {
        let limits = Limits {
            max_complexity: 20,
            ..Limits::default()
        };
        let schema = schema_with(1 << 20, 100, limits);
        let text = "query($n: Int) { list(first: $n) { id } }";
        let small = Request::new(text).variables(vars(json!({"n": 2})));
        let large = Request::new(text).variables(vars(json!({"n": 1000})));
        assert!(run(&schema, &small).get("errors").is_none());
        assert!(schema.inner.documents.contains(text));
        let r = run(&schema, &large);
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED",
            "{r}"
        );
        assert!(run(&schema, &small).get("errors").is_none());
    }

    #[test]
    fn a_document_stored_without_validation_is_validated_before_a_validating_run() {
        let schema = cached();
        let text = "{ hello nope }";
        // Trusted path: the unknown field is skipped.
        let trusted = run_unvalidated(&schema, &Request::new(text));
        assert_eq!(trusted, json!({"data": {"hello": "hello world"}}));
        assert!(schema.inner.documents.contains(text));
        let checked = run(&schema, &Request::new(text));
        assert_eq!(checked, run(&uncached(), &Request::new(text)));
        assert!(
            checked["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nope"))
        );
        // Still refused the next time.
        assert_eq!(run(&schema, &Request::new(text)), checked);
    }

    #[test]
    fn each_schema_has_its_own_cache() {
        let other = Schema::build("type Query { other: Int }")
            .finish()
            .unwrap_or_else(|e| panic!("{e}"));
        let ours = cached();
        assert!(
            run(&ours, &Request::new("{ hello }"))
                .get("errors")
                .is_none()
        );
        let r = run(&other, &Request::new("{ hello }"));
        assert_eq!(
            r["errors"][0]["message"],
            "Cannot query field \"hello\" on type \"Query\"."
        );
    }

    #[test]
    fn the_byte_budget_bounds_what_execution_stores() {
        let probe = cached();
        run(&probe, &Request::new("{ a0: hello }"));
        let one = probe.inner.documents.usage().1;
        let schema = schema_with(3 * one, 100, Limits::default());
        for i in 0..10 {
            let text = format!("{{ a{i}: hello }}");
            assert_eq!(
                run(&schema, &Request::new(text.as_str())),
                json!({"data": {format!("a{i}"): "hello world"}})
            );
        }
        let (count, bytes) = schema.inner.documents.usage();
        assert_eq!(count, 3);
        assert!(bytes <= 3 * one);
        assert!(schema.inner.documents.contains("{ a9: hello }"));
    }

    #[test]
    fn disabled_introspection_is_refused_from_the_cache_too() {
        let schema = Schema::build(SDL)
            .introspection(false)
            .finish()
            .unwrap_or_else(|e| panic!("{e}"));
        let request = Request::new("{ __schema { queryType { name } } }");
        let first = run(&schema, &request);
        assert!(
            first["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("introspection has been disabled"))
        );
        assert_eq!(run(&schema, &request), first);
    }
}
