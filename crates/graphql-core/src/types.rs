//! The compiled schema: every type, field, argument and directive in indexed tables.
//!
//! Names are resolved once when the schema is built; execution follows [`TypeId`] and field
//! indices and never looks a type up by name on the hot path.

use std::fmt;

use serde_json::Value;

use crate::error::Location;
use crate::resolver::{Resolver, ScalarCoercion, TypeResolver};

/// How an introspection field is answered: plain data stored in the field's table entry
/// ([`FieldDef`]), read by the executor, which asks the schema's introspection module for
/// the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaField {
    /// `Query.__schema`.
    SchemaRoot,
    /// `Query.__type(name:)`.
    TypeByName,
    /// A member of a named `__Type` read from its full description.
    TypeMember(&'static str),
    /// `fields`, `enumValues`, `inputFields` with `includeDeprecated`.
    TypeMemberFiltered(&'static str),
    /// `__Field.args` and `__Directive.args` with `includeDeprecated`.
    ArgsFiltered,
}

/// [`TypeRef::display`].
struct TypeRefDisplay<'a> {
    ty: &'a TypeRef,
    types: &'a [TypeDef],
}

impl fmt::Display for TypeRefDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ty {
            TypeRef::Named(id) => {
                f.write_str(self.types.get(id.index()).map_or("?", |t| t.name.as_str()))
            }
            TypeRef::List(inner) => write!(f, "[{}]", inner.display(self.types)),
            TypeRef::NonNull(inner) => write!(f, "{}!", inner.display(self.types)),
        }
    }
}

/// The index of a named type in the schema's type table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub(crate) u32);

impl TypeId {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// A reference to a type: named, list of, or non-null.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TypeRef {
    /// A named type.
    Named(TypeId),
    /// `[T]`
    List(Box<TypeRef>),
    /// `T!`
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    /// The reference in GraphQL syntax (`[String!]!`), with the names of `types`, the
    /// schema's type table ([`Schema::types`](crate::Schema::types)); an index outside it
    /// prints as `?`.
    pub fn display<'a>(&'a self, types: &'a [TypeDef]) -> impl fmt::Display + 'a {
        TypeRefDisplay { ty: self, types }
    }

    /// The named type at the bottom of the wrappers.
    pub fn named(&self) -> TypeId {
        match self {
            TypeRef::Named(id) => *id,
            TypeRef::List(inner) | TypeRef::NonNull(inner) => inner.named(),
        }
    }

    /// Whether the outermost wrapper is non-null.
    pub fn is_non_null(&self) -> bool {
        matches!(self, TypeRef::NonNull(_))
    }

    /// The type without an outer non-null wrapper.
    pub fn nullable(&self) -> &TypeRef {
        match self {
            TypeRef::NonNull(inner) => inner,
            other => other,
        }
    }

    /// Whether this is a list type (non-null wrapper excluded: `[T]!` is not, `[T]` is).
    pub fn is_list(&self) -> bool {
        matches!(self, TypeRef::List(_))
    }
}

/// The built-in scalars of the spec (section 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinScalar {
    /// 32-bit signed integer.
    Int,
    /// IEEE 754 double.
    Float,
    /// UTF-8 text.
    String,
    /// `true` or `false`.
    Boolean,
    /// An opaque identifier, serialized as a string.
    Id,
}

impl BuiltinScalar {
    pub(crate) const ALL: [BuiltinScalar; 5] = [
        BuiltinScalar::Int,
        BuiltinScalar::Float,
        BuiltinScalar::String,
        BuiltinScalar::Boolean,
        BuiltinScalar::Id,
    ];

    /// The scalar's name.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinScalar::Int => "Int",
            BuiltinScalar::Float => "Float",
            BuiltinScalar::String => "String",
            BuiltinScalar::Boolean => "Boolean",
            BuiltinScalar::Id => "ID",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        BuiltinScalar::ALL.into_iter().find(|s| s.name() == name)
    }

    pub(crate) fn description(self) -> &'static str {
        match self {
            BuiltinScalar::Int => {
                "The `Int` scalar type represents non-fractional signed whole numeric values. Int can represent values between -(2^31) and 2^31 - 1."
            }
            BuiltinScalar::Float => {
                "The `Float` scalar type represents signed double-precision fractional values as specified by [IEEE 754](https://en.wikipedia.org/wiki/IEEE_floating_point)."
            }
            BuiltinScalar::String => {
                "The `String` scalar type represents textual data, represented as UTF-8 character sequences. The String type is most often used by GraphQL to represent free-form human-readable text."
            }
            BuiltinScalar::Boolean => "The `Boolean` scalar type represents `true` or `false`.",
            BuiltinScalar::Id => {
                "The `ID` scalar type represents a unique identifier, often used to refetch an object or as key for a cache. The ID type appears in a JSON response as a String; however, it is not intended to be human-readable. When expected as an input type, any string (such as `\"4\"`) or integer (such as `4`) input value will be accepted as an ID."
            }
        }
    }
}

/// A scalar type.
#[derive(Debug, Clone)]
pub struct ScalarDef {
    pub(crate) builtin: Option<BuiltinScalar>,
    pub(crate) specified_by: Option<String>,
    pub(crate) coercion: ScalarCoercion,
}

impl ScalarDef {
    /// Which built-in scalar this is, if any.
    pub fn builtin(&self) -> Option<BuiltinScalar> {
        self.builtin
    }

    /// The `@specifiedBy(url:)` of a custom scalar.
    pub fn specified_by(&self) -> Option<&str> {
        self.specified_by.as_deref()
    }
}

/// An argument or input-object field.
#[derive(Debug, Clone)]
pub struct InputValueDef {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) ty: TypeRef,
    /// The default value already coerced to the type (filled in after validation).
    pub(crate) default_value: Option<Value>,
    /// The default value as written in the SDL, for printing and introspection.
    pub(crate) default_literal: Option<String>,
    pub(crate) deprecation: Option<String>,
    pub(crate) location: Location,
}

impl InputValueDef {
    /// Where the SDL defines it.
    pub fn location(&self) -> Location {
        self.location
    }
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The type.
    pub fn ty(&self) -> &TypeRef {
        &self.ty
    }
    /// The coerced default value.
    pub fn default_value(&self) -> Option<&Value> {
        self.default_value.as_ref()
    }
    /// The default value as GraphQL text.
    pub fn default_literal(&self) -> Option<&str> {
        self.default_literal.as_deref()
    }
    /// The `@deprecated` reason, when deprecated.
    pub fn deprecation(&self) -> Option<&str> {
        self.deprecation.as_deref()
    }
}

/// A field of an object or interface type.
#[derive(Debug, Clone)]
pub struct FieldDef {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) args: Vec<InputValueDef>,
    pub(crate) ty: TypeRef,
    pub(crate) deprecation: Option<String>,
    pub(crate) resolver: Resolver,
    /// Set on introspection fields, which the executor answers from the schema itself.
    pub(crate) meta: Option<MetaField>,
    /// The field's own complexity cost (default 1).
    pub(crate) cost: u32,
    /// The assumed size of a list field in the complexity count (`None`: the limits'
    /// default, `Limits::assumed_list_size`).
    pub(crate) list_size: Option<u32>,
    /// What the field contributes to a response's cache policy (`@cacheControl`).
    pub(crate) cache: crate::cache_control::CacheRule,
    pub(crate) location: Location,
}

impl FieldDef {
    /// Where the SDL defines it.
    pub fn location(&self) -> Location {
        self.location
    }
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The arguments, in definition order.
    pub fn args(&self) -> &[InputValueDef] {
        &self.args
    }
    /// An argument by name.
    pub fn arg(&self, name: &str) -> Option<&InputValueDef> {
        self.args.iter().find(|a| a.name == name)
    }
    /// The type.
    pub fn ty(&self) -> &TypeRef {
        &self.ty
    }
    /// The `@deprecated` reason, when deprecated.
    pub fn deprecation(&self) -> Option<&str> {
        self.deprecation.as_deref()
    }
    /// The resolver.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }
}

/// The fields of an object or interface type, with a name index used while validating.
#[derive(Debug, Clone, Default)]
pub struct FieldTable {
    pub(crate) fields: Vec<FieldDef>,
    pub(crate) by_name: crate::names::NameMap<u32>,
}

impl FieldTable {
    pub(crate) fn push(&mut self, field: FieldDef) -> bool {
        if self.by_name.contains_key(&field.name) {
            return false;
        }
        let index = u32::try_from(self.fields.len()).unwrap_or(u32::MAX);
        self.by_name.insert(field.name.clone(), index);
        self.fields.push(field);
        true
    }

    /// The fields in definition order.
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// The index of a field.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// A field by name.
    pub fn get(&self, name: &str) -> Option<&FieldDef> {
        self.index_of(name)
            .and_then(|i| self.fields.get(i as usize))
    }

    /// A field by index.
    pub fn at(&self, index: u32) -> Option<&FieldDef> {
        self.fields.get(index as usize)
    }
}

/// An enum value.
#[derive(Debug, Clone)]
pub struct EnumValueDef {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) deprecation: Option<String>,
    pub(crate) location: Location,
}

impl EnumValueDef {
    /// Where the SDL defines it.
    pub fn location(&self) -> Location {
        self.location
    }
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The `@deprecated` reason, when deprecated.
    pub fn deprecation(&self) -> Option<&str> {
        self.deprecation.as_deref()
    }
}

/// What kind of type a named type is, with its kind-specific tables.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TypeKind {
    /// A scalar.
    Scalar(ScalarDef),
    /// An object type.
    Object {
        /// Fields.
        fields: FieldTable,
        /// Interfaces it implements (directly, as written).
        interfaces: Vec<TypeId>,
    },
    /// An interface.
    Interface {
        /// Fields.
        fields: FieldTable,
        /// Interfaces it implements.
        interfaces: Vec<TypeId>,
        /// Object types that implement it (directly or through another interface).
        possible_types: Vec<TypeId>,
        /// How a value's object type is found.
        type_resolver: TypeResolver,
    },
    /// A union.
    Union {
        /// Member object types.
        members: Vec<TypeId>,
        /// How a value's object type is found.
        type_resolver: TypeResolver,
    },
    /// An enum.
    Enum {
        /// Values in definition order.
        values: Vec<EnumValueDef>,
    },
    /// An input object.
    InputObject {
        /// Fields in definition order.
        fields: Vec<InputValueDef>,
        /// Whether it carries `@oneOf`.
        one_of: bool,
    },
}

/// A named type of the schema.
#[derive(Debug, Clone)]
pub struct TypeDef {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) kind: TypeKind,
    pub(crate) location: Location,
}

impl TypeDef {
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The kind and its tables.
    pub fn kind(&self) -> &TypeKind {
        &self.kind
    }
    /// Where the SDL defines it (1:1 for built-ins).
    pub fn location(&self) -> Location {
        self.location
    }
    /// The fields of an object or interface.
    pub fn fields(&self) -> Option<&FieldTable> {
        match &self.kind {
            TypeKind::Object { fields, .. } | TypeKind::Interface { fields, .. } => Some(fields),
            _ => None,
        }
    }
    /// Whether values of this type can be inputs (scalars, enums, input objects).
    pub fn is_input(&self) -> bool {
        matches!(
            self.kind,
            TypeKind::Scalar(_) | TypeKind::Enum { .. } | TypeKind::InputObject { .. }
        )
    }
    /// Whether values of this type can be outputs (everything but input objects).
    pub fn is_output(&self) -> bool {
        !matches!(self.kind, TypeKind::InputObject { .. })
    }
    /// Whether this is a leaf type (scalar or enum).
    pub fn is_leaf(&self) -> bool {
        matches!(self.kind, TypeKind::Scalar(_) | TypeKind::Enum { .. })
    }
    /// Whether this is an interface or a union.
    pub fn is_abstract(&self) -> bool {
        matches!(
            self.kind,
            TypeKind::Interface { .. } | TypeKind::Union { .. }
        )
    }
    /// The spec's `__TypeKind` name of this type.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            TypeKind::Scalar(_) => "SCALAR",
            TypeKind::Object { .. } => "OBJECT",
            TypeKind::Interface { .. } => "INTERFACE",
            TypeKind::Union { .. } => "UNION",
            TypeKind::Enum { .. } => "ENUM",
            TypeKind::InputObject { .. } => "INPUT_OBJECT",
        }
    }
}

/// A directive definition (built-in or from the SDL).
#[derive(Debug, Clone)]
pub struct DirectiveDef {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) args: Vec<InputValueDef>,
    pub(crate) repeatable: bool,
    pub(crate) locations: Vec<DirectiveLocation>,
    pub(crate) builtin: bool,
    pub(crate) location: Location,
}

impl DirectiveDef {
    /// The name (without `@`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The arguments.
    pub fn args(&self) -> &[InputValueDef] {
        &self.args
    }
    /// Whether it may appear more than once at one location.
    pub fn is_repeatable(&self) -> bool {
        self.repeatable
    }
    /// Where it may appear.
    pub fn locations(&self) -> &[DirectiveLocation] {
        &self.locations
    }
    /// Whether the spec defines it.
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }
}

/// Where a directive may appear (spec section 3.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum DirectiveLocation {
    Query,
    Mutation,
    Subscription,
    Field,
    FragmentDefinition,
    FragmentSpread,
    InlineFragment,
    VariableDefinition,
    Schema,
    Scalar,
    Object,
    FieldDefinition,
    ArgumentDefinition,
    Interface,
    Union,
    Enum,
    EnumValue,
    InputObject,
    InputFieldDefinition,
}

impl DirectiveLocation {
    /// The spec's name, e.g. `FIELD_DEFINITION`.
    pub fn as_str(self) -> &'static str {
        use DirectiveLocation::*;
        match self {
            Query => "QUERY",
            Mutation => "MUTATION",
            Subscription => "SUBSCRIPTION",
            Field => "FIELD",
            FragmentDefinition => "FRAGMENT_DEFINITION",
            FragmentSpread => "FRAGMENT_SPREAD",
            InlineFragment => "INLINE_FRAGMENT",
            VariableDefinition => "VARIABLE_DEFINITION",
            Schema => "SCHEMA",
            Scalar => "SCALAR",
            Object => "OBJECT",
            FieldDefinition => "FIELD_DEFINITION",
            ArgumentDefinition => "ARGUMENT_DEFINITION",
            Interface => "INTERFACE",
            Union => "UNION",
            Enum => "ENUM",
            EnumValue => "ENUM_VALUE",
            InputObject => "INPUT_OBJECT",
            InputFieldDefinition => "INPUT_FIELD_DEFINITION",
        }
    }

    pub(crate) fn from_parser(loc: &graphql_parser::schema::DirectiveLocation) -> Self {
        use graphql_parser::schema::DirectiveLocation as P;
        match loc {
            P::Query => Self::Query,
            P::Mutation => Self::Mutation,
            P::Subscription => Self::Subscription,
            P::Field => Self::Field,
            P::FragmentDefinition => Self::FragmentDefinition,
            P::FragmentSpread => Self::FragmentSpread,
            P::InlineFragment => Self::InlineFragment,
            P::VariableDefinition => Self::VariableDefinition,
            P::Schema => Self::Schema,
            P::Scalar => Self::Scalar,
            P::Object => Self::Object,
            P::FieldDefinition => Self::FieldDefinition,
            P::ArgumentDefinition => Self::ArgumentDefinition,
            P::Interface => Self::Interface,
            P::Union => Self::Union,
            P::Enum => Self::Enum,
            P::EnumValue => Self::EnumValue,
            P::InputObject => Self::InputObject,
            P::InputFieldDefinition => Self::InputFieldDefinition,
        }
    }
}

impl fmt::Display for DirectiveLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
