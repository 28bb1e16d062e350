#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod coerce;
mod error;
mod resolver;
mod schema;

pub use error::{Error, Location, Result, SchemaError};
pub use resolver::{
    Args, Context, FieldError, FieldFuture, FieldResult, Resolver, ResolverInput, ScalarCoercion,
    TypeResolver,
};
pub use schema::types::{
    BuiltinScalar, DirectiveDef, DirectiveLocation, EnumValueDef, FieldDef, FieldTable,
    InputValueDef, ScalarDef, TypeDef, TypeId, TypeKind, TypeRef,
};
pub use schema::{Schema, SchemaBuilder};
