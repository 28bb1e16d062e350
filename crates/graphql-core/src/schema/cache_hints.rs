//! `@cacheControl` hints read from the SDL (types, fields, and their extensions) and set
//! from code, compiled into each field's [`CacheRule`].

use std::collections::HashMap;

use graphql_parser::schema::{self as ast, Definition, Directive, TypeDefinition, TypeExtension};

use super::SchemaInner;
use crate::cache_control::{CacheHint, CacheRule, CacheScope};
use crate::error::SchemaError;
use crate::types::{TypeId, TypeKind};

/// The directive's name.
pub(crate) const DIRECTIVE: &str = "cacheControl";

/// Whether the SDL defines the `@cacheControl` directive itself.
pub(crate) fn defines_directive(doc: &ast::Document<'static, String>) -> bool {
    doc.definitions
        .iter()
        .any(|d| matches!(d, Definition::DirectiveDefinition(d) if d.name == DIRECTIVE))
}

/// The hint of the first `@cacheControl` among `directives`.
fn hint_of(directives: &[Directive<'static, String>]) -> Option<CacheHint> {
    let d = directives.iter().find(|d| d.name == DIRECTIVE)?;
    let mut hint = CacheHint::default();
    for (name, value) in &d.arguments {
        match (name.as_str(), value) {
            ("maxAge", ast::Value::Int(n)) => {
                let n = n.as_i64().unwrap_or(0);
                hint.max_age = Some(u32::try_from(n.max(0)).unwrap_or(u32::MAX));
            }
            ("scope", ast::Value::Enum(s)) if s == "PRIVATE" => {
                hint.scope = Some(CacheScope::Private);
            }
            ("scope", ast::Value::Enum(s)) if s == "PUBLIC" => {
                hint.scope = Some(CacheScope::Public)
            }
            ("inheritMaxAge", ast::Value::Boolean(b)) => hint.inherit_max_age = *b,
            _ => {}
        }
    }
    Some(hint)
}

type Hints = (
    HashMap<TypeId, CacheHint>,
    HashMap<(TypeId, String), CacheHint>,
);

fn read_sdl(inner: &SchemaInner, doc: &ast::Document<'static, String>) -> Hints {
    let mut types = HashMap::new();
    let mut fields = HashMap::new();
    for def in &doc.definitions {
        let (name, directives, body): (&str, _, &[ast::Field<'static, String>]) = match def {
            Definition::TypeDefinition(TypeDefinition::Object(t)) => {
                (&t.name, &t.directives, &t.fields)
            }
            Definition::TypeDefinition(TypeDefinition::Interface(t)) => {
                (&t.name, &t.directives, &t.fields)
            }
            Definition::TypeDefinition(TypeDefinition::Union(t)) => (&t.name, &t.directives, &[]),
            Definition::TypeExtension(TypeExtension::Object(t)) => {
                (&t.name, &t.directives, &t.fields)
            }
            Definition::TypeExtension(TypeExtension::Interface(t)) => {
                (&t.name, &t.directives, &t.fields)
            }
            Definition::TypeExtension(TypeExtension::Union(t)) => (&t.name, &t.directives, &[]),
            _ => continue,
        };
        let Some(&id) = inner.type_index.get(name) else {
            continue;
        };
        if let Some(hint) = hint_of(directives) {
            types.insert(id, hint);
        }
        for f in body {
            if let Some(hint) = hint_of(&f.directives) {
                fields.insert((id, f.name.clone()), hint);
            }
        }
    }
    (types, fields)
}

/// Compiles every field's [`CacheRule`]: the SDL's hints, then those set from code
/// (`(type, Some(field), hint)` or `(type, None, hint)`), which override them.
pub(crate) fn compile(
    inner: &mut SchemaInner,
    doc: &ast::Document<'static, String>,
    code: &[(String, Option<String>, CacheHint)],
    default_max_age: u32,
) -> Vec<SchemaError> {
    let (mut type_hints, mut field_hints) = read_sdl(inner, doc);
    let mut errors = Vec::new();
    for (type_name, field, hint) in code {
        let id = inner.type_index.get(type_name).copied();
        let ty = id.and_then(|id| inner.types.get(id.index()));
        match (id, ty, field) {
            (Some(id), Some(t), None)
                if matches!(
                    t.kind,
                    TypeKind::Object { .. } | TypeKind::Interface { .. } | TypeKind::Union { .. }
                ) =>
            {
                type_hints.insert(id, *hint);
            }
            (Some(id), Some(t), Some(field))
                if t.fields().is_some_and(|f| f.get(field).is_some()) =>
            {
                field_hints.insert((id, field.clone()), *hint);
            }
            _ => errors.push(SchemaError::new(
                format!(
                    "A cache hint was set for \"{type_name}{}\", which is not an object, interface or union type or a field of one.",
                    field.as_ref().map(|f| format!(".{f}")).unwrap_or_default()
                ),
                vec![],
            )),
        }
    }
    let composite: Vec<bool> = inner
        .types
        .iter()
        .map(|t| {
            matches!(
                t.kind,
                TypeKind::Object { .. } | TypeKind::Interface { .. } | TypeKind::Union { .. }
            )
        })
        .collect();
    let rule = |ty: TypeId, field_hint: Option<&CacheHint>| {
        CacheRule::of_field(
            composite.get(ty.index()).copied().unwrap_or(false),
            type_hints.get(&ty),
            field_hint,
            default_max_age,
        )
    };
    for index in 0..inner.types.len() {
        let id = TypeId(u32::try_from(index).unwrap_or(u32::MAX));
        let Some(t) = inner.types.get_mut(index) else {
            continue;
        };
        if let TypeKind::Object { fields, .. } | TypeKind::Interface { fields, .. } = &mut t.kind {
            for f in &mut fields.fields {
                f.cache = rule(f.ty.named(), field_hints.get(&(id, f.name.clone())));
            }
        }
    }
    for f in [
        &mut inner.typename_field,
        &mut inner.schema_field,
        &mut inner.type_field,
    ] {
        f.cache = rule(f.ty.named(), None);
    }
    inner.cache_control = true;
    errors
}
