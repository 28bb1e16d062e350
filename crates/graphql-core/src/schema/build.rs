//! Building a [`Schema`] from SDL plus registered resolvers and scalars.

use std::collections::HashMap;
use std::sync::Arc;

use graphql_parser::schema::{
    self as ast, Definition, Directive, Document, TypeDefinition, TypeExtension,
};

use super::{Schema, SchemaInner, cache_hints, validate};
use crate::cache_control::CacheHint;
use crate::coerce::coerce_literal;
use crate::error::{Error, Location, Result, SchemaError};
use crate::federation::Federation;
use crate::limits::Limits;
use crate::names::NameMap;
use crate::resolver::{Resolver, ScalarCoercion, TypeResolver};
use crate::schema::introspection;
use crate::types::MetaField;
use crate::types::{
    BuiltinScalar, DirectiveDef, DirectiveLocation, EnumValueDef, FieldDef, FieldTable,
    InputValueDef, ScalarDef, TypeDef, TypeId, TypeKind, TypeRef,
};

type Literal = ast::Value<'static, String>;

/// The introspection types of spec section 4.2, compiled into every schema.
const INTROSPECTION_SDL: &str = include_str!("introspection.graphql");
type AstType = ast::Type<'static, String>;

/// Collects SDL, resolvers, custom scalars and type resolvers, then compiles them into a
/// [`Schema`] with [`SchemaBuilder::finish`].
#[derive(Debug)]
pub struct SchemaBuilder {
    sdl: String,
    resolvers: Vec<(String, String, Resolver)>,
    scalars: Vec<(String, ScalarCoercion)>,
    type_resolvers: Vec<(String, TypeResolver)>,
    limits: Limits,
    introspection: bool,
    validation_cache: usize,
    document_cache_bytes: usize,
    subscriptions: Vec<(String, crate::resolver::SubscriptionSource)>,
    costs: Vec<(String, String, u32)>,
    list_sizes: Vec<(String, String, u32)>,
    incremental_delivery: bool,
    /// `Some(default maxAge)` when cache hints are on.
    cache_control: Option<u32>,
    cache_hints: Vec<(String, Option<String>, CacheHint)>,
    /// `Some` when the schema is an Apollo Federation subgraph.
    federation: Option<Federation>,
    reference_resolvers: Vec<(String, crate::federation::ReferenceResolver)>,
}

impl SchemaBuilder {
    pub(crate) fn new(sdl: String) -> Self {
        SchemaBuilder {
            sdl,
            resolvers: Vec::new(),
            scalars: Vec::new(),
            type_resolvers: Vec::new(),
            limits: Limits::default(),
            introspection: true,
            validation_cache: 1024,
            document_cache_bytes: 4 << 20,
            subscriptions: Vec::new(),
            costs: Vec::new(),
            list_sizes: Vec::new(),
            incremental_delivery: false,
            cache_control: None,
            cache_hints: Vec::new(),
            federation: None,
            reference_resolvers: Vec::new(),
        }
    }

    /// Makes the schema an Apollo Federation subgraph (v2, or v1 when the SDL has no
    /// federation `@link`): the SDL may `extend schema @link(url:
    /// "https://specs.apollo.dev/federation/v2.x", import: [...])` and use the federation
    /// directives (`@key`, `@external`, `@requires`, `@provides`, `@shareable`, ...) without
    /// defining them, and may `extend type` a type only another subgraph defines. The
    /// schema gets `_service { sdl }` (the SDL exactly as given) and, when some type has a
    /// resolvable `@key`, `_entities(representations:)` with the `_Entity` union; each
    /// representation is resolved by the type's [`SchemaBuilder::entity_resolver`].
    #[must_use]
    pub fn federation(mut self, federation: Federation) -> Self {
        self.federation = Some(federation);
        self
    }

    /// Registers the reference resolver of an entity type (an object or interface type
    /// with a resolvable `@key`) for `_entities`; turns federation on (with the defaults of
    /// [`Federation::new`]) unless [`SchemaBuilder::federation`] configured it. The
    /// resolver's `parent` is the representation the router sent (`__typename`, the key's
    /// fields, and the `@external` fields a `@requires` asked for); it returns the entity as
    /// an object, or null when there is none. The representation's fields the returned
    /// object lacks are added to it, so the entity's field resolvers see them too; its
    /// `__typename` is the representation's unless it names one (an interface entity's
    /// resolver must name the implementing object type). An entity without a reference
    /// resolver is its representation. `Resolver::Default` keeps that behaviour.
    #[must_use]
    pub fn entity_resolver(mut self, type_name: impl Into<String>, resolver: Resolver) -> Self {
        self.reference_resolvers.push((
            type_name.into(),
            crate::federation::ReferenceResolver::One(resolver),
        ));
        self.federation.get_or_insert_with(Federation::default);
        self
    }

    /// Registers a batch reference resolver for an entity type: `_entities` calls it once
    /// per request with every representation of that type (in the order they came), instead
    /// of once per representation. It is a [`Resolver::sync_list`] or
    /// [`Resolver::asynchronous_list`] whose `parent` is the JSON array of those
    /// representations; it returns one item per representation, in the same order: the
    /// entity as an object, null when there is none, or an error for that one. Each
    /// representation is checked first (a `__typename` naming the entity, a key's fields);
    /// one that fails is left out of the batch and gets its own error. An error for the
    /// whole batch, or a list of another length, is an error at each of the batch's
    /// representations. The results are completed as [`SchemaBuilder::entity_resolver`]'s
    /// (representation fields copied in, `__typename` checks) and `_entities` keeps the
    /// representations' order across types. Turns federation on like `entity_resolver`.
    ///
    /// ```
    /// use graphql_core::{Context, FieldError, Request, Resolver, Schema};
    /// use serde_json::{Value, json};
    ///
    /// let schema = Schema::build(r#"
    ///     extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
    ///     type Query { a: Int }
    ///     type Product @key(fields: "upc") { upc: String! name: String }
    /// "#)
    /// // One call for all the products of a request (one database query, say).
    /// .entity_batch_resolver("Product", Resolver::sync_list(|_ctx, representations, _| {
    ///     let upcs = representations.as_array().map(Vec::as_slice).unwrap_or_default();
    ///     Ok(upcs.iter().map(|r| match r["upc"].as_str() {
    ///         Some("1") => Ok(json!({"name": "Table"})),
    ///         Some("2") => Ok(Value::Null),
    ///         _ => Err(FieldError::new("no such product")),
    ///     }).collect())
    /// }))
    /// .finish()?;
    /// let query = r#"{ _entities(representations: [
    ///     {__typename: "Product", upc: "1"}, {__typename: "Product", upc: "2"},
    ///     {__typename: "Product", upc: "3"}]) { ... on Product { upc name } } }"#;
    /// let response = block_on(schema.execute(&Request::new(query), &Context::default()));
    /// let response: Value = serde_json::from_str(&response.to_json()).unwrap();
    /// assert_eq!(
    ///     response["data"]["_entities"],
    ///     json!([{"upc": "1", "name": "Table"}, null, null])
    /// );
    /// assert_eq!(response["errors"][0]["path"], json!(["_entities", 2]));
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     // A schema whose resolvers are all synchronous completes on the first poll.
    /// #     let waker = std::task::Waker::noop();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     match f.as_mut().poll(&mut cx) { std::task::Poll::Ready(v) => v, _ => unreachable!() }
    /// # }
    /// # Ok::<(), graphql_core::Error>(())
    /// ```
    #[must_use]
    pub fn entity_batch_resolver(
        mut self,
        type_name: impl Into<String>,
        resolver: Resolver,
    ) -> Self {
        self.reference_resolvers.push((
            type_name.into(),
            crate::federation::ReferenceResolver::Batch(resolver),
        ));
        self.federation.get_or_insert_with(Federation::default);
        self
    }

    /// Turns cache hints on: every response of [`Schema::execute`] gets a
    /// [`CachePolicy`](crate::CachePolicy) (`Response::cache_policy`), which
    /// [`write_http_response`](crate::write_http_response) sends as `Cache-Control`.
    /// `default_max_age` is the `maxAge` of root fields and of fields returning a composite
    /// type that have no hint (Apollo Server's `defaultMaxAge`; 0, not cacheable, is the
    /// usual choice). Adds [`CACHE_CONTROL_SDL`](crate::CACHE_CONTROL_SDL) to the schema when
    /// the SDL does not define `@cacheControl`. An SDL that defines it turns cache hints on
    /// by itself, with a default of 0.
    #[must_use]
    pub fn cache_control(mut self, default_max_age: u32) -> Self {
        self.cache_control = Some(default_max_age);
        self
    }

    /// Sets the cache hint of `type_name.field_name` from code, as `@cacheControl` on the
    /// field would (it replaces the SDL's hint); turns cache hints on (default `maxAge` 0)
    /// unless [`SchemaBuilder::cache_control`] set another.
    #[must_use]
    pub fn cache_hint(
        mut self,
        type_name: impl Into<String>,
        field_name: impl Into<String>,
        hint: CacheHint,
    ) -> Self {
        self.cache_hints
            .push((type_name.into(), Some(field_name.into()), hint));
        self.cache_control.get_or_insert(0);
        self
    }

    /// Sets the cache hint of an object, interface or union type from code, as
    /// `@cacheControl` on the type would; turns cache hints on like
    /// [`SchemaBuilder::cache_hint`].
    #[must_use]
    pub fn type_cache_hint(mut self, type_name: impl Into<String>, hint: CacheHint) -> Self {
        self.cache_hints.push((type_name.into(), None, hint));
        self.cache_control.get_or_insert(0);
        self
    }

    /// Enables incremental delivery: adds the `@defer` and `@stream` directives (as
    /// graphql-js 17 defines them) to the schema, validates their uses, and lets
    /// [`Schema::execute_incremental`] deliver deferred fragments and streamed list items
    /// in later payloads. Off by default, so a schema without it introspects as before.
    #[must_use]
    pub fn incremental_delivery(mut self, enabled: bool) -> Self {
        self.incremental_delivery = enabled;
        self
    }

    /// Sets the complexity cost of `type_name.field_name` (default 1), counted by
    /// [`Limits::max_complexity`](crate::Limits) before execution.
    #[must_use]
    pub fn cost(
        mut self,
        type_name: impl Into<String>,
        field_name: impl Into<String>,
        cost: u32,
    ) -> Self {
        self.costs.push((type_name.into(), field_name.into(), cost));
        self
    }

    /// Sets how many items the list field `type_name.field_name` is assumed to return in
    /// the complexity count when the query gives no `first`/`last`/`limit` argument
    /// (default [`Limits::assumed_list_size`](crate::Limits)); e.g. the cap on a
    /// collection the application enforces.
    #[must_use]
    pub fn list_size(
        mut self,
        type_name: impl Into<String>,
        field_name: impl Into<String>,
        size: u32,
    ) -> Self {
        self.list_sizes
            .push((type_name.into(), field_name.into(), size));
        self
    }

    /// Registers the event source of a field of the subscription root type: each event it
    /// yields is that field's value for one response of [`Schema::subscribe`].
    #[must_use]
    pub fn subscription(
        mut self,
        field_name: impl Into<String>,
        source: crate::resolver::SubscriptionSource,
    ) -> Self {
        self.subscriptions.push((field_name.into(), source));
        self
    }

    /// How many distinct documents the document cache holds at most (default 1024; 0
    /// turns the cache off). See [`SchemaBuilder::document_cache`].
    #[must_use]
    pub fn validation_cache(mut self, documents: usize) -> Self {
        self.validation_cache = documents;
        self
    }

    /// The memory budget of the document cache, in bytes (default 4 MiB; 0 turns the cache
    /// off). A document that parsed and passed the limits and validation is kept, parsed,
    /// under its exact text, so that the same text again skips parsing and validation
    /// (variables and the operation name are applied on every request). Each entry counts
    /// its text, its syntax tree and its bookkeeping against the budget; when full, the
    /// least recently used entries go first (CLOCK). Documents that fail are never kept.
    /// [`SchemaBuilder::validation_cache`] bounds the number of entries too.
    #[must_use]
    pub fn document_cache(mut self, bytes: usize) -> Self {
        self.document_cache_bytes = bytes;
        self
    }

    /// Sets the request limits checked before execution (see [`Limits`]).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Enables or disables introspection (`__schema`, `__type`; `__typename` always works).
    /// Enabled by default.
    #[must_use]
    pub fn introspection(mut self, enabled: bool) -> Self {
        self.introspection = enabled;
        self
    }

    /// Registers the resolver of `type_name.field_name` (an object type's field). Fields
    /// without one use [`Resolver::Default`].
    #[must_use]
    pub fn resolver(
        mut self,
        type_name: impl Into<String>,
        field_name: impl Into<String>,
        resolver: Resolver,
    ) -> Self {
        self.resolvers
            .push((type_name.into(), field_name.into(), resolver));
        self
    }

    /// Registers the coercion of a custom scalar the SDL declares.
    #[must_use]
    pub fn scalar(mut self, name: impl Into<String>, coercion: ScalarCoercion) -> Self {
        self.scalars.push((name.into(), coercion));
        self
    }

    /// Registers how values of an interface or union find their object type (the default
    /// reads `__typename`).
    #[must_use]
    pub fn type_resolver(mut self, name: impl Into<String>, resolver: TypeResolver) -> Self {
        self.type_resolvers.push((name.into(), resolver));
        self
    }

    /// Parses and validates the SDL, attaches the registrations and compiles the tables.
    ///
    /// # Errors
    ///
    /// [`Error::SdlSyntax`] when the SDL does not parse; [`Error::InvalidSchema`] listing every
    /// rule of the spec's type system (section 3) the SDL breaks, and every registration that
    /// names a type or field the SDL does not define.
    pub fn finish(self) -> Result<Schema> {
        let subgraph = match &self.federation {
            Some(_) => Some(crate::federation::prepare(&self.sdl)?),
            None => None,
        };
        let source: &str = subgraph.as_ref().map_or(&self.sdl, |s| &s.text);
        let mut doc = graphql_parser::parse_schema::<String>(source)
            .map_err(|e| Error::SdlSyntax(e.to_string()))?
            .into_static();
        let mut cache_control = self.cache_control;
        if cache_hints::defines_directive(&doc) {
            cache_control.get_or_insert(0);
        } else if cache_control.is_some() {
            let sdl = format!("{source}\n{}", crate::cache_control::CACHE_CONTROL_SDL);
            doc = graphql_parser::parse_schema::<String>(&sdl)
                .map_err(|e| Error::SdlSyntax(e.to_string()))?
                .into_static();
        }
        let mut resolvers = self.resolvers;
        if let (Some(subgraph), Some(config)) = (&subgraph, &self.federation) {
            resolvers.extend(subgraph.augment(&mut doc, config, self.reference_resolvers)?);
        }
        let introspection = graphql_parser::parse_schema::<String>(INTROSPECTION_SDL)
            .map_err(|e| Error::SdlSyntax(e.to_string()))?
            .into_static();
        let mut compiler = Compiler {
            incremental_delivery: self.incremental_delivery,
            ..Compiler::default()
        };
        compiler.compile(&introspection, &doc);
        if !compiler.errors.is_empty() {
            return Err(Error::InvalidSchema(compiler.errors));
        }
        let (mut inner, pending) = compiler.into_inner();
        let mut errors = validate::validate(&inner);
        // Registrations first: custom scalars' parse functions coerce SDL default values.
        errors.extend(attach(
            &mut inner,
            resolvers,
            self.scalars,
            self.type_resolvers,
        ));
        errors.extend(check_typed_lists(&inner));
        errors.extend(coerce_defaults(&mut inner, pending));
        if !errors.is_empty() {
            return Err(Error::InvalidSchema(errors));
        }
        set_introspection_resolvers(&mut inner);
        inner.introspection = introspection::build(&inner);
        inner.introspection_enabled = self.introspection;
        inner.incremental_delivery = self.incremental_delivery;
        inner.limits = self.limits;
        inner.documents = crate::document_cache::DocumentCache::new(
            self.document_cache_bytes,
            self.validation_cache,
        );
        let mut unknown = Vec::new();
        for (field, _) in &self.subscriptions {
            let known = inner
                .subscription
                .and_then(|id| inner.types.get(id.index()))
                .and_then(|t| t.fields())
                .is_some_and(|f| f.get(field).is_some());
            if !known {
                unknown.push(SchemaError::new(
                    format!(
                        "A subscription source was registered for \"{field}\", which is not a field of the subscription root type."
                    ),
                    vec![],
                ));
            }
        }
        let costs = self.costs.iter().map(|(t, f, n)| (t, f, n, false));
        let sizes = self.list_sizes.iter().map(|(t, f, n)| (t, f, n, true));
        for (type_name, field_name, value, is_size) in costs.chain(sizes) {
            let field = inner
                .type_index
                .get(type_name)
                .copied()
                .and_then(|id| inner.types.get_mut(id.index()))
                .and_then(|t| match &mut t.kind {
                    TypeKind::Object { fields, .. } | TypeKind::Interface { fields, .. } => {
                        let i = fields.index_of(field_name)?;
                        fields.fields.get_mut(i as usize)
                    }
                    _ => None,
                });
            match field {
                Some(f) if is_size => f.list_size = Some(*value),
                Some(f) => f.cost = *value,
                None => unknown.push(SchemaError::new(
                    format!(
                        "A {} was set for \"{type_name}.{field_name}\", which the schema does not define.",
                        if is_size { "list size" } else { "cost" }
                    ),
                    vec![],
                )),
            }
        }
        // The introspection types' lists are as long as the schema makes them, not as
        // the data grows: they count 1 (depth and the executor's caps still apply).
        for t in &mut inner.types {
            if t.name.starts_with("__")
                && let TypeKind::Object { fields, .. } = &mut t.kind
            {
                for f in &mut fields.fields {
                    f.list_size = Some(1);
                }
            }
        }
        if !unknown.is_empty() {
            return Err(Error::InvalidSchema(unknown));
        }
        if let Some(default_max_age) = cache_control {
            let errors = cache_hints::compile(&mut inner, &doc, &self.cache_hints, default_max_age);
            if !errors.is_empty() {
                return Err(Error::InvalidSchema(errors));
            }
        }
        inner.subscription_sources = self.subscriptions;
        Ok(Schema {
            inner: Arc::new(inner),
        })
    }
}

/// Default values are kept as literals until every type exists, then coerced once.
#[derive(Debug)]
enum DefaultSlot {
    Field {
        ty: TypeId,
        field: usize,
        arg: usize,
    },
    InputField {
        ty: TypeId,
        field: usize,
    },
    Directive {
        directive: usize,
        arg: usize,
    },
}

#[derive(Default)]
struct Compiler {
    errors: Vec<SchemaError>,
    types: Vec<TypeDef>,
    index: NameMap<TypeId>,
    directives: Vec<DirectiveDef>,
    directive_index: NameMap<usize>,
    defaults: Vec<(DefaultSlot, Literal)>,
    query: Option<TypeId>,
    mutation: Option<TypeId>,
    subscription: Option<TypeId>,
    /// Applied directives to check once all directive definitions are known.
    applied: Vec<(Vec<Directive<'static, String>>, DirectiveLocation)>,
    /// Whether `@defer` and `@stream` are defined.
    incremental_delivery: bool,
}

fn loc(pos: graphql_parser::Pos) -> Location {
    Location::from_pos(pos)
}

impl Compiler {
    fn error(&mut self, message: impl Into<String>, locations: Vec<Location>) {
        self.errors.push(SchemaError::new(message, locations));
    }

    fn add_type(&mut self, def: TypeDef) -> TypeId {
        let id = TypeId(u32::try_from(self.types.len()).unwrap_or(u32::MAX));
        self.index.insert(def.name.clone(), id);
        self.types.push(def);
        id
    }

    fn compile(
        &mut self,
        introspection: &Document<'static, String>,
        doc: &Document<'static, String>,
    ) {
        for scalar in BuiltinScalar::ALL {
            self.add_type(TypeDef {
                name: scalar.name().to_owned(),
                description: Some(scalar.description().to_owned()),
                kind: TypeKind::Scalar(ScalarDef {
                    builtin: Some(scalar),
                    specified_by: None,
                    coercion: ScalarCoercion::any(),
                }),
                location: Location::default(),
            });
        }
        self.add_builtin_directives();

        // Pass 1: names, so that every reference can be resolved in pass 2.
        let mut bodies: Vec<(TypeId, &TypeDefinition<'static, String>)> = Vec::new();
        let definitions = introspection
            .definitions
            .iter()
            .map(|d| (true, d))
            .chain(doc.definitions.iter().map(|d| (false, d)));
        for (builtin, def) in definitions {
            match def {
                Definition::TypeDefinition(t) => {
                    let (name, pos) = type_def_name(t);
                    if !builtin {
                        check_reserved_name(&mut self.errors, name, "type", pos);
                    }
                    if let Some(&existing) = self.index.get(name) {
                        let is_builtin_scalar = BuiltinScalar::from_name(name).is_some()
                            && matches!(t, TypeDefinition::Scalar(_));
                        if is_builtin_scalar {
                            // Re-declaring a built-in scalar is harmless: keep the built-in.
                            continue;
                        }
                        let first = self.types.get(existing.index()).map(|t| t.location);
                        self.error(
                            format!("There can be only one type named \"{name}\"."),
                            first.into_iter().chain([loc(pos)]).collect(),
                        );
                        continue;
                    }
                    let kind = match t {
                        TypeDefinition::Scalar(_) => TypeKind::Scalar(ScalarDef {
                            builtin: None,
                            specified_by: None,
                            coercion: ScalarCoercion::any(),
                        }),
                        TypeDefinition::Object(_) => TypeKind::Object {
                            fields: FieldTable::default(),
                            interfaces: Vec::new(),
                        },
                        TypeDefinition::Interface(_) => TypeKind::Interface {
                            fields: FieldTable::default(),
                            interfaces: Vec::new(),
                            possible_types: Vec::new(),
                            type_resolver: TypeResolver::default(),
                        },
                        TypeDefinition::Union(_) => TypeKind::Union {
                            members: Vec::new(),
                            type_resolver: TypeResolver::default(),
                        },
                        TypeDefinition::Enum(_) => TypeKind::Enum { values: Vec::new() },
                        TypeDefinition::InputObject(_) => TypeKind::InputObject {
                            fields: Vec::new(),
                            one_of: false,
                        },
                    };
                    let id = self.add_type(TypeDef {
                        name: name.to_owned(),
                        description: type_def_description(t).map(str::to_owned),
                        kind,
                        location: loc(pos),
                    });
                    bodies.push((id, t));
                }
                Definition::DirectiveDefinition(d) => self.add_directive(d),
                Definition::SchemaDefinition(_) | Definition::TypeExtension(_) => {}
            }
        }

        // Pass 2: bodies and extensions.
        for (id, def) in bodies {
            self.fill_type(id, def);
        }
        for def in &doc.definitions {
            if let Definition::TypeExtension(ext) = def {
                self.extend_type(ext);
            }
        }
        let directive_defs: Vec<_> = doc
            .definitions
            .iter()
            .filter_map(|d| match d {
                Definition::DirectiveDefinition(d) => Some(d),
                _ => None,
            })
            .collect();
        for d in directive_defs {
            self.fill_directive_args(d);
        }
        self.roots(doc);
        self.check_applied_directives();
        self.possible_types();
    }

    /// `__typename`, `__schema` and `__type` (spec 4.1): fields every query can select
    /// without them being part of any type's field table.
    fn meta_fields(&self) -> [FieldDef; 3] {
        let named = |name: &str| TypeRef::Named(self.index.get(name).copied().unwrap_or(TypeId(0)));
        let non_null = |t: TypeRef| TypeRef::NonNull(Box::new(t));
        let field = |name: &str, ty: TypeRef, args: Vec<InputValueDef>| FieldDef {
            name: name.to_owned(),
            description: None,
            args,
            ty,
            deprecation: None,
            resolver: Resolver::Default,
            cost: 1,
            list_size: None,
            cache: Default::default(),
            meta: match name {
                "__schema" => Some(MetaField::SchemaRoot),
                "__type" => Some(MetaField::TypeByName),
                _ => None,
            },
            location: Location::default(),
        };
        [
            field("__typename", non_null(named("String")), vec![]),
            field("__schema", non_null(named("__Schema")), vec![]),
            field(
                "__type",
                named("__Type"),
                vec![InputValueDef {
                    name: "name".to_owned(),
                    description: None,
                    ty: non_null(named("String")),
                    default_value: None,
                    default_literal: None,
                    deprecation: None,
                    location: Location::default(),
                }],
            ),
        ]
    }

    fn add_builtin_directives(&mut self) {
        let string = TypeRef::Named(TypeId(2));
        let boolean = TypeRef::NonNull(Box::new(TypeRef::Named(TypeId(3))));
        let arg =
            |name: &str, description: &str, ty: TypeRef, default: Option<&str>| InputValueDef {
                name: name.to_owned(),
                description: Some(description.to_owned()),
                ty,
                default_value: default
                    .map(|d| serde_json::Value::String(d.trim_matches('"').to_owned())),
                default_literal: default.map(str::to_owned),
                deprecation: None,
                location: Location::default(),
            };
        use DirectiveLocation as L;
        let defs = [
            (
                "include",
                "Directs the executor to include this field or fragment only when the `if` argument is true.",
                vec![arg("if", "Included when true.", boolean.clone(), None)],
                vec![L::Field, L::FragmentSpread, L::InlineFragment],
            ),
            (
                "skip",
                "Directs the executor to skip this field or fragment when the `if` argument is true.",
                vec![arg("if", "Skipped when true.", boolean, None)],
                vec![L::Field, L::FragmentSpread, L::InlineFragment],
            ),
            (
                "deprecated",
                "Marks an element of a GraphQL schema as no longer supported.",
                vec![arg(
                    "reason",
                    "Explains why this element was deprecated, usually also including a suggestion for how to access supported similar data. Formatted using the Markdown syntax, as specified by [CommonMark](https://commonmark.org/).",
                    string.clone(),
                    Some("\"No longer supported\""),
                )],
                vec![
                    L::FieldDefinition,
                    L::ArgumentDefinition,
                    L::InputFieldDefinition,
                    L::EnumValue,
                ],
            ),
            (
                "specifiedBy",
                "Exposes a URL that specifies the behavior of this scalar.",
                vec![arg(
                    "url",
                    "The URL that specifies the behavior of this scalar.",
                    TypeRef::NonNull(Box::new(string)),
                    None,
                )],
                vec![L::Scalar],
            ),
            (
                "oneOf",
                "Indicates exactly one field must be supplied and this field must not be `null`.",
                vec![],
                vec![L::InputObject],
            ),
        ];
        let mut defs = defs.to_vec();
        if self.incremental_delivery {
            let with_default = |mut a: InputValueDef, value: serde_json::Value, literal: &str| {
                a.default_value = Some(value);
                a.default_literal = Some(literal.to_owned());
                a
            };
            let boolean = TypeRef::NonNull(Box::new(TypeRef::Named(TypeId(3))));
            let string = TypeRef::Named(TypeId(2));
            let int = TypeRef::NonNull(Box::new(TypeRef::Named(TypeId(0))));
            defs.push((
                "defer",
                "Directs the executor to defer this fragment when the `if` argument is true or undefined.",
                vec![
                    with_default(
                        arg("if", "Deferred when true or undefined.", boolean.clone(), None),
                        serde_json::Value::Bool(true),
                        "true",
                    ),
                    arg("label", "Unique name", string.clone(), None),
                ],
                vec![L::FragmentSpread, L::InlineFragment],
            ));
            defs.push((
                "stream",
                "Directs the executor to stream plural fields when the `if` argument is true or undefined.",
                vec![
                    with_default(
                        arg("if", "Stream when true or undefined.", boolean, None),
                        serde_json::Value::Bool(true),
                        "true",
                    ),
                    arg("label", "Unique name", string, None),
                    with_default(
                        arg("initialCount", "Number of items to return immediately", int, None),
                        serde_json::Value::from(0),
                        "0",
                    ),
                ],
                vec![L::Field],
            ));
        }
        for (name, description, args, locations) in defs {
            self.directive_index
                .insert(name.to_owned(), self.directives.len());
            self.directives.push(DirectiveDef {
                name: name.to_owned(),
                description: Some(description.to_owned()),
                args,
                repeatable: false,
                locations,
                builtin: true,
                location: Location::default(),
            });
        }
    }

    fn add_directive(&mut self, d: &ast::DirectiveDefinition<'static, String>) {
        check_reserved_name(&mut self.errors, &d.name, "directive", d.position);
        if let Some(&existing) = self.directive_index.get(&d.name) {
            let builtin = self.directives.get(existing).is_some_and(|d| d.builtin);
            let message = if builtin {
                format!(
                    "Directive \"@{}\" is built in and cannot be redefined.",
                    d.name
                )
            } else {
                format!("There can be only one directive named \"@{}\".", d.name)
            };
            self.error(message, vec![loc(d.position)]);
            return;
        }
        self.directive_index
            .insert(d.name.clone(), self.directives.len());
        self.directives.push(DirectiveDef {
            name: d.name.clone(),
            description: d.description.clone(),
            args: Vec::new(),
            repeatable: d.repeatable,
            locations: d
                .locations
                .iter()
                .map(DirectiveLocation::from_parser)
                .collect(),
            builtin: false,
            location: loc(d.position),
        });
    }

    fn fill_directive_args(&mut self, d: &ast::DirectiveDefinition<'static, String>) {
        let Some(&index) = self.directive_index.get(&d.name) else {
            return;
        };
        if self
            .directives
            .get(index)
            .is_none_or(|def| def.builtin || def.location != loc(d.position))
        {
            return;
        }
        let owner = format!("@{}", d.name);
        let args = self.input_values(
            &owner,
            &d.arguments,
            "argument",
            DirectiveLocation::ArgumentDefinition,
        );
        for (i, (arg, default)) in args.into_iter().enumerate() {
            if let Some(default) = default {
                self.defaults.push((
                    DefaultSlot::Directive {
                        directive: index,
                        arg: i,
                    },
                    default,
                ));
            }
            if let Some(def) = self.directives.get_mut(index) {
                def.args.push(arg);
            }
        }
    }

    fn type_ref(&mut self, ty: &AstType, pos: graphql_parser::Pos) -> Option<TypeRef> {
        Some(match ty {
            ast::Type::NamedType(name) => match self.index.get(name.as_str()) {
                Some(id) => TypeRef::Named(*id),
                None => {
                    self.error(format!("Unknown type \"{name}\"."), vec![loc(pos)]);
                    return None;
                }
            },
            ast::Type::ListType(inner) => TypeRef::List(Box::new(self.type_ref(inner, pos)?)),
            ast::Type::NonNullType(inner) => TypeRef::NonNull(Box::new(self.type_ref(inner, pos)?)),
        })
    }

    /// Arguments or input fields; returns them with their default literals.
    fn input_values(
        &mut self,
        owner: &str,
        values: &[ast::InputValue<'static, String>],
        what: &str,
        location: DirectiveLocation,
    ) -> Vec<(InputValueDef, Option<Literal>)> {
        let mut out: Vec<(InputValueDef, Option<Literal>)> = Vec::new();
        for v in values {
            check_reserved_name(&mut self.errors, &v.name, what, v.position);
            if out.iter().any(|(o, _)| o.name == v.name) {
                self.error(
                    format!(
                        "{owner}: there can be only one {what} named \"{}\".",
                        v.name
                    ),
                    vec![loc(v.position)],
                );
                continue;
            }
            self.applied.push((v.directives.clone(), location));
            let Some(ty) = self.type_ref(&v.value_type, v.position) else {
                continue;
            };
            let default_literal = v.default_value.as_ref().map(|d| {
                let mut s = String::new();
                crate::literal::write_literal(&mut s, d);
                s
            });
            out.push((
                InputValueDef {
                    name: v.name.clone(),
                    description: v.description.clone(),
                    ty,
                    default_value: None,
                    default_literal,
                    deprecation: deprecation(&v.directives),
                    location: loc(v.position),
                },
                v.default_value.clone(),
            ));
        }
        out
    }

    fn fields(
        &mut self,
        id: TypeId,
        table: &mut FieldTable,
        fields: &[ast::Field<'static, String>],
    ) {
        let owner = self
            .types
            .get(id.index())
            .map(|t| t.name.clone())
            .unwrap_or_default();
        for f in fields {
            check_reserved_name(&mut self.errors, &f.name, "field", f.position);
            self.applied
                .push((f.directives.clone(), DirectiveLocation::FieldDefinition));
            let Some(ty) = self.type_ref(&f.field_type, f.position) else {
                continue;
            };
            let field_owner = format!("{owner}.{}", f.name);
            let args = self.input_values(
                &field_owner,
                &f.arguments,
                "argument",
                DirectiveLocation::ArgumentDefinition,
            );
            let field_index = table.fields.len();
            let mut defs = Vec::with_capacity(args.len());
            for (i, (arg, default)) in args.into_iter().enumerate() {
                if let Some(default) = default {
                    self.defaults.push((
                        DefaultSlot::Field {
                            ty: id,
                            field: field_index,
                            arg: i,
                        },
                        default,
                    ));
                }
                defs.push(arg);
            }
            let pushed = table.push(FieldDef {
                name: f.name.clone(),
                description: f.description.clone(),
                args: defs,
                ty,
                deprecation: deprecation(&f.directives),
                resolver: Resolver::Default,
                meta: None,
                cost: 1,
                list_size: None,
                cache: Default::default(),
                location: loc(f.position),
            });
            if !pushed {
                // Drop the defaults recorded for the rejected duplicate.
                self.defaults.retain(|(slot, _)| {
                    !matches!(slot, DefaultSlot::Field { ty, field, .. } if *ty == id && *field == field_index)
                });
                self.error(
                    format!("Field \"{owner}.{}\" can only be defined once.", f.name),
                    vec![loc(f.position)],
                );
            }
        }
    }

    fn named_list(&mut self, names: &[String], pos: graphql_parser::Pos) -> Vec<TypeId> {
        let mut out = Vec::new();
        for name in names {
            match self.index.get(name.as_str()) {
                Some(id) => out.push(*id),
                None => self.error(format!("Unknown type \"{name}\"."), vec![loc(pos)]),
            }
        }
        out
    }

    fn take_kind(&mut self, id: TypeId) -> Option<TypeKind> {
        self.types
            .get_mut(id.index())
            .map(|t| std::mem::replace(&mut t.kind, TypeKind::Enum { values: Vec::new() }))
    }

    fn put_kind(&mut self, id: TypeId, kind: TypeKind) {
        if let Some(t) = self.types.get_mut(id.index()) {
            t.kind = kind;
        }
    }

    fn fill_type(&mut self, id: TypeId, def: &TypeDefinition<'static, String>) {
        let directives = type_def_directives(def);
        let location = match def {
            TypeDefinition::Scalar(_) => DirectiveLocation::Scalar,
            TypeDefinition::Object(_) => DirectiveLocation::Object,
            TypeDefinition::Interface(_) => DirectiveLocation::Interface,
            TypeDefinition::Union(_) => DirectiveLocation::Union,
            TypeDefinition::Enum(_) => DirectiveLocation::Enum,
            TypeDefinition::InputObject(_) => DirectiveLocation::InputObject,
        };
        self.applied.push((directives.to_vec(), location));
        let body = TypeBody::from_definition(def);
        self.apply_body(id, &body);
    }

    fn extend_type(&mut self, ext: &TypeExtension<'static, String>) {
        let body = TypeBody::from_extension(ext);
        let Some(&id) = self.index.get(body.name) else {
            self.error(
                format!(
                    "Cannot extend type \"{}\" because it is not defined.",
                    body.name
                ),
                vec![loc(body.position)],
            );
            return;
        };
        let matches_kind = matches!(
            (ext, self.types.get(id.index()).map(|t| &t.kind)),
            (TypeExtension::Scalar(_), Some(TypeKind::Scalar(_)))
                | (TypeExtension::Object(_), Some(TypeKind::Object { .. }))
                | (
                    TypeExtension::Interface(_),
                    Some(TypeKind::Interface { .. })
                )
                | (TypeExtension::Union(_), Some(TypeKind::Union { .. }))
                | (TypeExtension::Enum(_), Some(TypeKind::Enum { .. }))
                | (
                    TypeExtension::InputObject(_),
                    Some(TypeKind::InputObject { .. })
                )
        );
        if !matches_kind {
            self.error(
                format!(
                    "Cannot extend \"{}\": the extension is of a different kind than the type.",
                    body.name
                ),
                vec![loc(body.position)],
            );
            return;
        }
        if self
            .types
            .get(id.index())
            .is_some_and(|t| matches!(&t.kind, TypeKind::Scalar(s) if s.builtin.is_some()))
        {
            self.error(
                format!("Cannot extend the built-in scalar \"{}\".", body.name),
                vec![loc(body.position)],
            );
            return;
        }
        let location = match ext {
            TypeExtension::Scalar(_) => DirectiveLocation::Scalar,
            TypeExtension::Object(_) => DirectiveLocation::Object,
            TypeExtension::Interface(_) => DirectiveLocation::Interface,
            TypeExtension::Union(_) => DirectiveLocation::Union,
            TypeExtension::Enum(_) => DirectiveLocation::Enum,
            TypeExtension::InputObject(_) => DirectiveLocation::InputObject,
        };
        self.applied.push((body.directives.to_vec(), location));
        self.apply_body(id, &body);
    }

    /// Adds the members of a definition or an extension to type `id`.
    fn apply_body(&mut self, id: TypeId, body: &TypeBody<'_>) {
        let Some(mut kind) = self.take_kind(id) else {
            return;
        };
        let type_name = body.name.to_owned();
        match &mut kind {
            TypeKind::Scalar(scalar) => {
                if let Some(url) = directive_string_arg(body.directives, "specifiedBy", "url") {
                    scalar.specified_by = Some(url);
                }
            }
            TypeKind::Object { fields, interfaces }
            | TypeKind::Interface {
                fields, interfaces, ..
            } => {
                self.fields(id, fields, body.fields);
                for iface in self.named_list(body.interfaces, body.position) {
                    if interfaces.contains(&iface) {
                        let name = self
                            .types
                            .get(iface.index())
                            .map(|t| t.name.clone())
                            .unwrap_or_default();
                        self.error(
                            format!("Type \"{type_name}\" can only implement \"{name}\" once."),
                            vec![loc(body.position)],
                        );
                    } else {
                        interfaces.push(iface);
                    }
                }
            }
            TypeKind::Union { members, .. } => {
                for member in self.named_list(body.members, body.position) {
                    if members.contains(&member) {
                        let name = self
                            .types
                            .get(member.index())
                            .map(|t| t.name.clone())
                            .unwrap_or_default();
                        self.error(
                            format!(
                                "Union type \"{type_name}\" can only include type \"{name}\" once."
                            ),
                            vec![loc(body.position)],
                        );
                    } else {
                        members.push(member);
                    }
                }
            }
            TypeKind::Enum { values } => {
                for v in body.values {
                    check_reserved_name(&mut self.errors, &v.name, "enum value", v.position);
                    self.applied
                        .push((v.directives.clone(), DirectiveLocation::EnumValue));
                    if matches!(v.name.as_str(), "true" | "false" | "null") {
                        self.error(
                            format!("Enum \"{type_name}\" cannot include value: {}.", v.name),
                            vec![loc(v.position)],
                        );
                        continue;
                    }
                    if values.iter().any(|e| e.name == v.name) {
                        self.error(
                            format!(
                                "Enum value \"{type_name}.{}\" can only be defined once.",
                                v.name
                            ),
                            vec![loc(v.position)],
                        );
                        continue;
                    }
                    values.push(EnumValueDef {
                        name: v.name.clone(),
                        description: v.description.clone(),
                        deprecation: deprecation(&v.directives),
                        location: loc(v.position),
                    });
                }
            }
            TypeKind::InputObject { fields, one_of } => {
                if body.directives.iter().any(|d| d.name == "oneOf") {
                    *one_of = true;
                }
                let start = fields.len();
                let values = self.input_values(
                    &type_name,
                    body.input_fields,
                    "input field",
                    DirectiveLocation::InputFieldDefinition,
                );
                for (offset, (field, default)) in values.into_iter().enumerate() {
                    if fields.iter().any(|f| f.name == field.name) {
                        self.error(
                            format!(
                                "Input field \"{type_name}.{}\" can only be defined once.",
                                field.name
                            ),
                            vec![field.location],
                        );
                        continue;
                    }
                    if let Some(default) = default {
                        self.defaults.push((
                            DefaultSlot::InputField {
                                ty: id,
                                field: start + offset,
                            },
                            default,
                        ));
                    }
                    fields.push(field);
                }
            }
        }
        self.put_kind(id, kind);
    }

    fn roots(&mut self, doc: &Document<'static, String>) {
        let schema_defs: Vec<_> = doc
            .definitions
            .iter()
            .filter_map(|d| match d {
                Definition::SchemaDefinition(s) => Some(s),
                _ => None,
            })
            .collect();
        if let [first, rest @ ..] = schema_defs.as_slice() {
            for extra in rest {
                self.error(
                    "Must provide only one schema definition.",
                    vec![loc(first.position), loc(extra.position)],
                );
            }
            self.applied
                .push((first.directives.clone(), DirectiveLocation::Schema));
            let mut root = |name: &Option<String>, op: &str| -> Option<TypeId> {
                let name = name.as_ref()?;
                match self.index.get(name.as_str()) {
                    Some(id) => Some(*id),
                    None => {
                        self.errors.push(SchemaError::new(
                            format!("Unknown type \"{name}\" for the {op} root operation."),
                            vec![loc(first.position)],
                        ));
                        None
                    }
                }
            };
            self.query = root(&first.query, "query");
            self.mutation = root(&first.mutation, "mutation");
            self.subscription = root(&first.subscription, "subscription");
            if first.query.is_none() {
                self.error(
                    "The schema definition must name a query root operation type.",
                    vec![loc(first.position)],
                );
            }
        } else {
            // Without a schema definition, the default names are used (spec 3.3.1).
            let by_name = |name: &str| self.index.get(name).copied();
            self.query = by_name("Query");
            self.mutation = by_name("Mutation");
            self.subscription = by_name("Subscription");
            if self.query.is_none() {
                self.error("Query root type must be provided.", vec![]);
            }
        }
    }

    fn check_applied_directives(&mut self) {
        let applied = std::mem::take(&mut self.applied);
        for (directives, location) in &applied {
            for (i, d) in directives.iter().enumerate() {
                let Some(def) = self
                    .directive_index
                    .get(&d.name)
                    .and_then(|&i| self.directives.get(i))
                else {
                    self.error(
                        format!("Unknown directive \"@{}\".", d.name),
                        vec![loc(d.position)],
                    );
                    continue;
                };
                let mut problems = Vec::new();
                if !def.locations.contains(location) {
                    problems.push(format!(
                        "Directive \"@{}\" may not be used on {location}.",
                        d.name
                    ));
                }
                if !def.repeatable && directives.iter().take(i).any(|o| o.name == d.name) {
                    problems.push(format!(
                        "The directive \"@{}\" can only be used once at this location.",
                        d.name
                    ));
                }
                for (name, value) in &d.arguments {
                    match def.args.iter().find(|a| &a.name == name) {
                        None => problems.push(format!(
                            "Unknown argument \"{name}\" on directive \"@{}\".",
                            d.name
                        )),
                        Some(arg) => {
                            if let Err(e) = coerce_literal(&self.types, &arg.ty, value, None) {
                                problems.push(format!(
                                    "Argument \"@{}({name}:)\" has an invalid value: {e}",
                                    d.name
                                ));
                            }
                        }
                    }
                }
                for arg in &def.args {
                    if arg.ty.is_non_null()
                        && arg.default_literal.is_none()
                        && !d.arguments.iter().any(|(n, _)| *n == arg.name)
                    {
                        problems.push(format!(
                            "Argument \"@{}({}:)\" of type \"{}\" is required, but it was not provided.",
                            d.name,
                            arg.name,
                            arg.ty.display(&self.types)
                        ));
                    }
                }
                for p in problems {
                    self.error(p, vec![loc(d.position)]);
                }
            }
        }
    }

    fn possible_types(&mut self) {
        let mut implementations: HashMap<TypeId, Vec<TypeId>> = HashMap::new();
        for (i, t) in self.types.iter().enumerate() {
            if let TypeKind::Object { interfaces, .. } = &t.kind {
                let id = TypeId(u32::try_from(i).unwrap_or(u32::MAX));
                for iface in interfaces {
                    implementations.entry(*iface).or_default().push(id);
                }
            }
        }
        for (iface, objects) in implementations {
            if let Some(TypeKind::Interface { possible_types, .. }) =
                self.types.get_mut(iface.index()).map(|t| &mut t.kind)
            {
                *possible_types = objects;
            }
        }
    }

    fn into_inner(self) -> (SchemaInner, Vec<(DefaultSlot, Literal)>) {
        let [typename_field, schema_field, type_field] = self.meta_fields();
        let inner = SchemaInner {
            introspection: introspection::Data::default(),
            introspection_enabled: true,
            incremental_delivery: false,
            limits: Limits::default(),
            documents: crate::document_cache::DocumentCache::default(),
            subscription_sources: Vec::new(),
            cache_control: false,
            typename_field,
            schema_field,
            type_field,
            types: self.types,
            type_index: self.index,
            directives: self.directives,
            query: self.query.unwrap_or(TypeId(0)),
            mutation: self.mutation,
            subscription: self.subscription,
        };
        (inner, self.defaults)
    }
}

/// The members of a type definition or extension, seen the same way.
struct TypeBody<'d> {
    name: &'d str,
    position: graphql_parser::Pos,
    directives: &'d [Directive<'static, String>],
    fields: &'d [ast::Field<'static, String>],
    interfaces: &'d [String],
    members: &'d [String],
    values: &'d [ast::EnumValue<'static, String>],
    input_fields: &'d [ast::InputValue<'static, String>],
}

impl<'d> TypeBody<'d> {
    fn empty(
        name: &'d str,
        position: graphql_parser::Pos,
        directives: &'d [Directive<'static, String>],
    ) -> Self {
        TypeBody {
            name,
            position,
            directives,
            fields: &[],
            interfaces: &[],
            members: &[],
            values: &[],
            input_fields: &[],
        }
    }

    fn from_definition(def: &'d TypeDefinition<'static, String>) -> Self {
        match def {
            TypeDefinition::Scalar(t) => Self::empty(&t.name, t.position, &t.directives),
            TypeDefinition::Object(t) => TypeBody {
                fields: &t.fields,
                interfaces: &t.implements_interfaces,
                ..Self::empty(&t.name, t.position, &t.directives)
            },
            TypeDefinition::Interface(t) => TypeBody {
                fields: &t.fields,
                interfaces: &t.implements_interfaces,
                ..Self::empty(&t.name, t.position, &t.directives)
            },
            TypeDefinition::Union(t) => TypeBody {
                members: &t.types,
                ..Self::empty(&t.name, t.position, &t.directives)
            },
            TypeDefinition::Enum(t) => TypeBody {
                values: &t.values,
                ..Self::empty(&t.name, t.position, &t.directives)
            },
            TypeDefinition::InputObject(t) => TypeBody {
                input_fields: &t.fields,
                ..Self::empty(&t.name, t.position, &t.directives)
            },
        }
    }

    fn from_extension(ext: &'d TypeExtension<'static, String>) -> Self {
        match ext {
            TypeExtension::Scalar(t) => Self::empty(&t.name, t.position, &t.directives),
            TypeExtension::Object(t) => TypeBody {
                fields: &t.fields,
                interfaces: &t.implements_interfaces,
                ..Self::empty(&t.name, t.position, &t.directives)
            },
            TypeExtension::Interface(t) => TypeBody {
                fields: &t.fields,
                interfaces: &t.implements_interfaces,
                ..Self::empty(&t.name, t.position, &t.directives)
            },
            TypeExtension::Union(t) => TypeBody {
                members: &t.types,
                ..Self::empty(&t.name, t.position, &t.directives)
            },
            TypeExtension::Enum(t) => TypeBody {
                values: &t.values,
                ..Self::empty(&t.name, t.position, &t.directives)
            },
            TypeExtension::InputObject(t) => TypeBody {
                input_fields: &t.fields,
                ..Self::empty(&t.name, t.position, &t.directives)
            },
        }
    }
}

fn type_def_name<'d>(t: &'d TypeDefinition<'static, String>) -> (&'d str, graphql_parser::Pos) {
    match t {
        TypeDefinition::Scalar(t) => (&t.name, t.position),
        TypeDefinition::Object(t) => (&t.name, t.position),
        TypeDefinition::Interface(t) => (&t.name, t.position),
        TypeDefinition::Union(t) => (&t.name, t.position),
        TypeDefinition::Enum(t) => (&t.name, t.position),
        TypeDefinition::InputObject(t) => (&t.name, t.position),
    }
}

fn type_def_description<'d>(t: &'d TypeDefinition<'static, String>) -> Option<&'d str> {
    match t {
        TypeDefinition::Scalar(t) => t.description.as_deref(),
        TypeDefinition::Object(t) => t.description.as_deref(),
        TypeDefinition::Interface(t) => t.description.as_deref(),
        TypeDefinition::Union(t) => t.description.as_deref(),
        TypeDefinition::Enum(t) => t.description.as_deref(),
        TypeDefinition::InputObject(t) => t.description.as_deref(),
    }
}

fn type_def_directives<'d>(
    t: &'d TypeDefinition<'static, String>,
) -> &'d [Directive<'static, String>] {
    match t {
        TypeDefinition::Scalar(t) => &t.directives,
        TypeDefinition::Object(t) => &t.directives,
        TypeDefinition::Interface(t) => &t.directives,
        TypeDefinition::Union(t) => &t.directives,
        TypeDefinition::Enum(t) => &t.directives,
        TypeDefinition::InputObject(t) => &t.directives,
    }
}

/// Names starting with `__` are reserved for introspection (spec 3.1, "Names").
fn check_reserved_name(
    errors: &mut Vec<SchemaError>,
    name: &str,
    what: &str,
    pos: graphql_parser::Pos,
) {
    if name.starts_with("__") {
        errors.push(SchemaError::new(
            format!(
                "Name \"{name}\" must not begin with \"__\", which is reserved by GraphQL introspection ({what})."
            ),
            vec![loc(pos)],
        ));
    }
}

fn directive_string_arg(
    directives: &[Directive<'static, String>],
    directive: &str,
    arg: &str,
) -> Option<String> {
    directives
        .iter()
        .find(|d| d.name == directive)?
        .arguments
        .iter()
        .find(|(n, _)| n == arg)
        .and_then(|(_, v)| match v {
            ast::Value::String(s) => Some(s.clone()),
            _ => None,
        })
}

/// The `@deprecated` reason, with the spec's default when `reason` is omitted.
fn deprecation(directives: &[Directive<'static, String>]) -> Option<String> {
    let d = directives.iter().find(|d| d.name == "deprecated")?;
    Some(
        d.arguments
            .iter()
            .find(|(n, _)| n == "reason")
            .and_then(|(_, v)| match v {
                ast::Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "No longer supported".to_owned()),
    )
}

/// Coerces every SDL default value to its type (spec 3.6 "Field Arguments": a default value
/// must be compatible with the argument's type).
fn coerce_defaults(
    inner: &mut SchemaInner,
    pending: Vec<(DefaultSlot, Literal)>,
) -> Vec<SchemaError> {
    let mut errors = Vec::new();
    // Input-object defaults first: other defaults may omit fields that have defaults.
    let (input_fields, others): (Vec<_>, Vec<_>) = pending
        .into_iter()
        .partition(|(slot, _)| matches!(slot, DefaultSlot::InputField { .. }));
    for (slot, literal) in input_fields.into_iter().chain(others) {
        let (ty, owner) = match &slot {
            DefaultSlot::Field { ty, field, arg } => {
                let Some(t) = inner.types.get(ty.index()) else {
                    continue;
                };
                let Some(a) = t
                    .fields()
                    .and_then(|f| f.fields.get(*field))
                    .and_then(|f| f.args.get(*arg).map(|a| (f, a)))
                else {
                    continue;
                };
                (
                    a.1.ty.clone(),
                    format!("{}.{}({}:)", t.name, a.0.name, a.1.name),
                )
            }
            DefaultSlot::InputField { ty, field } => {
                let Some(t) = inner.types.get(ty.index()) else {
                    continue;
                };
                let TypeKind::InputObject { fields, .. } = &t.kind else {
                    continue;
                };
                let Some(f) = fields.get(*field) else {
                    continue;
                };
                (f.ty.clone(), format!("{}.{}", t.name, f.name))
            }
            DefaultSlot::Directive { directive, arg } => {
                let Some(d) = inner.directives.get(*directive) else {
                    continue;
                };
                let Some(a) = d.args.get(*arg) else { continue };
                (a.ty.clone(), format!("@{}({}:)", d.name, a.name))
            }
        };
        let value = match coerce_literal(&inner.types, &ty, &literal, None) {
            Ok(v) => v,
            Err(e) => {
                errors.push(SchemaError::new(
                    format!("Default value of {owner} is invalid: {e}"),
                    vec![],
                ));
                continue;
            }
        };
        let target = match slot {
            DefaultSlot::Field { ty, field, arg } => inner
                .types
                .get_mut(ty.index())
                .and_then(|t| match &mut t.kind {
                    TypeKind::Object { fields, .. } | TypeKind::Interface { fields, .. } => {
                        fields.fields.get_mut(field)
                    }
                    _ => None,
                })
                .and_then(|f| f.args.get_mut(arg)),
            DefaultSlot::InputField { ty, field } => {
                inner
                    .types
                    .get_mut(ty.index())
                    .and_then(|t| match &mut t.kind {
                        TypeKind::InputObject { fields, .. } => fields.get_mut(field),
                        _ => None,
                    })
            }
            DefaultSlot::Directive { directive, arg } => inner
                .directives
                .get_mut(directive)
                .and_then(|d| d.args.get_mut(arg)),
        };
        if let Some(target) = target {
            target.default_value = Some(value);
        }
    }
    errors
}

/// Attaches resolvers, scalar coercions and type resolvers to the tables.
fn attach(
    inner: &mut SchemaInner,
    resolvers: Vec<(String, String, Resolver)>,
    scalars: Vec<(String, ScalarCoercion)>,
    type_resolvers: Vec<(String, TypeResolver)>,
) -> Vec<SchemaError> {
    let mut errors = Vec::new();
    for (type_name, field_name, resolver) in resolvers {
        let ty = inner
            .type_index
            .get(&type_name)
            .and_then(|id| inner.types.get_mut(id.index()));
        match ty.map(|t| &mut t.kind) {
            Some(TypeKind::Object { fields, .. }) => {
                let index = fields.index_of(&field_name);
                match index.and_then(|i| fields.fields.get_mut(i as usize)) {
                    Some(field) => field.resolver = resolver,
                    None => errors.push(SchemaError::new(
                        format!(
                            "A resolver was registered for \"{type_name}.{field_name}\", but type \"{type_name}\" has no such field."
                        ),
                        vec![],
                    )),
                }
            }
            Some(_) => errors.push(SchemaError::new(
                format!(
                    "A resolver was registered for \"{type_name}.{field_name}\", but \"{type_name}\" is not an object type."
                ),
                vec![],
            )),
            None => errors.push(SchemaError::new(
                format!("A resolver was registered for unknown type \"{type_name}\"."),
                vec![],
            )),
        }
    }
    for (name, coercion) in scalars {
        let ty = inner
            .type_index
            .get(&name)
            .and_then(|id| inner.types.get_mut(id.index()));
        match ty.map(|t| &mut t.kind) {
            Some(TypeKind::Scalar(s)) if s.builtin.is_none() => s.coercion = coercion,
            _ => errors.push(SchemaError::new(
                format!("Scalar coercion registered for \"{name}\", which is not a custom scalar of the schema."),
                vec![],
            )),
        }
    }
    for (name, resolver) in type_resolvers {
        let ty = inner
            .type_index
            .get(&name)
            .and_then(|id| inner.types.get_mut(id.index()));
        match ty.map(|t| &mut t.kind) {
            Some(
                TypeKind::Interface { type_resolver, .. } | TypeKind::Union { type_resolver, .. },
            ) => *type_resolver = resolver,
            _ => errors.push(SchemaError::new(
                format!("Type resolver registered for \"{name}\", which is not an interface or union of the schema."),
                vec![],
            )),
        }
    }
    errors
}

/// Every [`Resolver::TypedList`] sits on a field whose type is a list of an object type
/// that has each field the items name.
fn check_typed_lists(inner: &SchemaInner) -> Vec<SchemaError> {
    let mut errors = Vec::new();
    for t in &inner.types {
        let TypeKind::Object { fields, .. } = &t.kind else {
            continue;
        };
        for f in &fields.fields {
            let Resolver::TypedList(list) = &f.resolver else {
                continue;
            };
            let item = match f.ty.nullable() {
                TypeRef::List(item) => match item.nullable() {
                    TypeRef::Named(id) => inner.types.get(id.index()),
                    _ => None,
                },
                _ => None,
            };
            let Some(TypeKind::Object {
                fields: item_fields,
                ..
            }) = item.map(|i| &i.kind)
            else {
                errors.push(SchemaError::new(
                    format!(
                        "The typed list resolver of \"{}.{}\" needs a list of an object type, not {}.",
                        t.name,
                        f.name,
                        f.ty.display(&inner.types)
                    ),
                    vec![f.location],
                ));
                continue;
            };
            let item_name = item.map_or("", |i| i.name.as_str());
            for name in list.field_names() {
                if item_fields.index_of(name).is_none() {
                    errors.push(SchemaError::new(
                        format!(
                            "The typed list resolver of \"{}.{}\" names a field \"{name}\" that \"{item_name}\" does not have.",
                            t.name, f.name
                        ),
                        vec![f.location],
                    ));
                }
            }
        }
    }
    errors
}

/// Marks the fields of the introspection types the executor answers from the schema.
fn set_introspection_resolvers(inner: &mut SchemaInner) {
    for t in &mut inner.types {
        if !t.name.starts_with("__") {
            continue;
        }
        let type_name = t.name.clone();
        if let TypeKind::Object { fields, .. } = &mut t.kind {
            for f in &mut fields.fields {
                f.meta = introspection::meta_for(&type_name, &f.name);
            }
        }
    }
}
