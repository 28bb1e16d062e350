//! The executable schema: built from SDL plus resolvers, validated, compiled into tables.

mod build;
pub(crate) mod cache_hints;
pub(crate) mod introspection;
pub(crate) mod print;
mod validate;

use std::fmt;
use std::sync::Arc;

use crate::types::{DirectiveDef, FieldDef, TypeDef, TypeId, TypeKind};
pub use build::SchemaBuilder;

/// An executable GraphQL schema. Cloning is cheap (one `Arc`).
///
/// Built from SDL with [`Schema::build`]; the SDL is validated against the type-system rules
/// of the spec (section 3) and compiled into indexed tables of types and fields, with each
/// object field's [`Resolver`](crate::Resolver) stored in its table entry.
#[derive(Clone)]
pub struct Schema {
    pub(crate) inner: Arc<SchemaInner>,
}

pub(crate) struct SchemaInner {
    pub(crate) types: Vec<TypeDef>,
    pub(crate) type_index: crate::names::NameMap<TypeId>,
    pub(crate) directives: Vec<DirectiveDef>,
    pub(crate) query: TypeId,
    pub(crate) mutation: Option<TypeId>,
    pub(crate) subscription: Option<TypeId>,
    pub(crate) typename_field: FieldDef,
    pub(crate) schema_field: FieldDef,
    pub(crate) type_field: FieldDef,
    pub(crate) introspection: crate::schema::introspection::Data,
    pub(crate) introspection_enabled: bool,
    /// Whether `@defer` and `@stream` are defined and executed.
    pub(crate) incremental_delivery: bool,
    pub(crate) limits: crate::limits::Limits,
    /// Parsed documents (by their exact text) that passed the checks against this schema.
    pub(crate) documents: crate::document_cache::DocumentCache,
    /// Event sources of the subscription root's fields, by field name.
    pub(crate) subscription_sources: Vec<(String, crate::resolver::SubscriptionSource)>,
    /// Whether responses get a cache policy (`@cacheControl`, `SchemaBuilder::cache_control`).
    pub(crate) cache_control: bool,
}

impl SchemaInner {
    /// The definition of field `name` selected on type `parent`, including the meta fields
    /// (`__typename` anywhere, `__schema` and `__type` on the query root).
    pub(crate) fn field(&self, parent: TypeId, name: &str) -> Option<&FieldDef> {
        if let Some(meta) = name.strip_prefix("__") {
            return match meta {
                "typename" => Some(&self.typename_field),
                "schema" if parent == self.query => Some(&self.schema_field),
                "type" if parent == self.query => Some(&self.type_field),
                _ => None,
            };
        }
        self.types.get(parent.index())?.fields()?.get(name)
    }

    pub(crate) fn type_name(&self, id: TypeId) -> &str {
        self.types.get(id.index()).map_or("?", |t| t.name.as_str())
    }
}

impl Schema {
    /// Starts building a schema from SDL text.
    pub fn build(sdl: impl Into<String>) -> SchemaBuilder {
        SchemaBuilder::new(sdl.into())
    }

    /// A named type.
    pub fn type_by_name(&self, name: &str) -> Option<&TypeDef> {
        self.type_id(name).and_then(|id| self.type_at(id))
    }

    /// The table index of a named type.
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.inner.type_index.get(name).copied()
    }

    /// The type at an index.
    pub fn type_at(&self, id: TypeId) -> Option<&TypeDef> {
        self.inner.types.get(id.index())
    }

    /// Every named type: the built-in scalars, the introspection types (`__Schema`, ...),
    /// then the SDL's types in order.
    pub fn types(&self) -> &[TypeDef] {
        &self.inner.types
    }

    /// Every directive, built-in ones first.
    pub fn directives(&self) -> &[DirectiveDef] {
        &self.inner.directives
    }

    /// A directive by name (without `@`).
    pub fn directive(&self, name: &str) -> Option<&DirectiveDef> {
        self.inner.directives.iter().find(|d| d.name == name)
    }

    /// The query root type.
    pub fn query_type(&self) -> TypeId {
        self.inner.query
    }

    /// The mutation root type, if any.
    pub fn mutation_type(&self) -> Option<TypeId> {
        self.inner.mutation
    }

    /// The subscription root type, if any.
    pub fn subscription_type(&self) -> Option<TypeId> {
        self.inner.subscription
    }

    /// Whether object type `object` is a possible type of `abstract_type` (itself when
    /// `abstract_type` is an object, a member of a union, an implementation of an interface).
    pub fn is_possible_type(&self, abstract_type: TypeId, object: TypeId) -> bool {
        match self.type_at(abstract_type).map(|t| &t.kind) {
            Some(TypeKind::Object { .. }) => abstract_type == object,
            Some(TypeKind::Interface { possible_types, .. }) => possible_types.contains(&object),
            Some(TypeKind::Union { members, .. }) => members.contains(&object),
            _ => false,
        }
    }

    /// The schema printed back as SDL (built-in scalars and directives omitted, the schema
    /// definition printed only when the root names are not the defaults).
    pub fn to_sdl(&self) -> String {
        print::print_schema(&self.inner)
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema")
            .field("types", &self.inner.types.len())
            .field("directives", &self.inner.directives.len())
            .finish()
    }
}
