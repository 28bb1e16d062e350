//! Type-system validation (spec section 3): the rules a schema must satisfy beyond what the
//! builder checks while resolving names (unique names, known types, known directives).
//!
//! Each rule is a function over the compiled tables that appends what it finds.

use std::collections::HashSet;

use super::SchemaInner;
use crate::error::SchemaError;
use crate::types::{FieldTable, TypeDef, TypeId, TypeKind, TypeRef};

pub(super) fn validate(schema: &SchemaInner) -> Vec<SchemaError> {
    let mut errors = Vec::new();
    root_types(schema, &mut errors);
    for (i, ty) in schema.types.iter().enumerate() {
        let id = TypeId(u32::try_from(i).unwrap_or(u32::MAX));
        match &ty.kind {
            TypeKind::Object { fields, interfaces }
            | TypeKind::Interface {
                fields, interfaces, ..
            } => {
                fields_rules(schema, ty, fields, &mut errors);
                implementations(schema, id, ty, fields, interfaces, &mut errors);
            }
            TypeKind::Union { members, .. } => union_members(schema, ty, members, &mut errors),
            TypeKind::Enum { values } if values.is_empty() => errors.push(SchemaError::new(
                format!("Enum type \"{}\" must define one or more values.", ty.name),
                vec![ty.location],
            )),
            TypeKind::InputObject { .. } => input_object(schema, id, ty, &mut errors),
            _ => {}
        }
    }
    directive_definitions(schema, &mut errors);
    errors
}

/// Spec 3.3.1: the query root must exist; each root must be an object type; roots differ.
fn root_types(schema: &SchemaInner, errors: &mut Vec<SchemaError>) {
    let roots = [
        ("query", Some(schema.query)),
        ("mutation", schema.mutation),
        ("subscription", schema.subscription),
    ];
    let mut seen: Vec<(TypeId, &str)> = Vec::new();
    for (op, id) in roots {
        let Some(id) = id else { continue };
        let Some(ty) = schema.types.get(id.index()) else {
            continue;
        };
        if !matches!(ty.kind, TypeKind::Object { .. }) {
            errors.push(SchemaError::new(
                format!(
                    "The {op} root type must be an Object type, \"{}\" is not.",
                    ty.name
                ),
                vec![ty.location],
            ));
        }
        if let Some((_, other)) = seen.iter().find(|(s, _)| *s == id) {
            errors.push(SchemaError::new(
                format!(
                    "The {other} and {op} root types must be different types, both are \"{}\".",
                    ty.name
                ),
                vec![ty.location],
            ));
        }
        seen.push((id, op));
    }
}

fn named<'s>(schema: &'s SchemaInner, ty: &TypeRef) -> Option<&'s TypeDef> {
    schema.types.get(ty.named().index())
}

fn is_required(ty: &TypeRef, has_default: bool) -> bool {
    ty.is_non_null() && !has_default
}

/// Spec 3.6: at least one field; output field types; input argument types; required
/// arguments not deprecated.
fn fields_rules(
    schema: &SchemaInner,
    ty: &TypeDef,
    fields: &FieldTable,
    errors: &mut Vec<SchemaError>,
) {
    let kind = if matches!(ty.kind, TypeKind::Object { .. }) {
        "Object"
    } else {
        "Interface"
    };
    if fields.fields.is_empty() {
        errors.push(SchemaError::new(
            format!(
                "{kind} type \"{}\" must define one or more fields.",
                ty.name
            ),
            vec![ty.location],
        ));
    }
    for field in &fields.fields {
        if named(schema, &field.ty).is_some_and(|t| !t.is_output()) {
            errors.push(SchemaError::new(
                format!(
                    "The type of \"{}.{}\" must be an output type, but got \"{}\".",
                    ty.name,
                    field.name,
                    field.ty.display(&schema.types)
                ),
                vec![field.location],
            ));
        }
        for arg in &field.args {
            if named(schema, &arg.ty).is_some_and(|t| !t.is_input()) {
                errors.push(SchemaError::new(
                    format!(
                        "The type of \"{}.{}({}:)\" must be an input type, but got \"{}\".",
                        ty.name,
                        field.name,
                        arg.name,
                        arg.ty.display(&schema.types)
                    ),
                    vec![arg.location],
                ));
            }
            if arg.deprecation.is_some() && is_required(&arg.ty, arg.default_literal.is_some()) {
                errors.push(SchemaError::new(
                    format!(
                        "Required argument \"{}.{}({}:)\" cannot be deprecated.",
                        ty.name, field.name, arg.name
                    ),
                    vec![arg.location],
                ));
            }
        }
    }
}

/// Spec 3.6 / 3.7 "Type Validation": implemented types are interfaces, not the type
/// itself, transitively declared, and each is a valid implementation (IsValidImplementation).
fn implementations(
    schema: &SchemaInner,
    id: TypeId,
    ty: &TypeDef,
    fields: &FieldTable,
    interfaces: &[TypeId],
    errors: &mut Vec<SchemaError>,
) {
    for &iface_id in interfaces {
        let Some(iface) = schema.types.get(iface_id.index()) else {
            continue;
        };
        if iface_id == id {
            errors.push(SchemaError::new(
                format!("Type \"{}\" cannot implement itself.", ty.name),
                vec![ty.location],
            ));
            continue;
        }
        let TypeKind::Interface {
            fields: iface_fields,
            interfaces: iface_interfaces,
            ..
        } = &iface.kind
        else {
            errors.push(SchemaError::new(
                format!(
                    "Type \"{}\" must only implement Interface types, it cannot implement \"{}\".",
                    ty.name, iface.name
                ),
                vec![ty.location],
            ));
            continue;
        };
        // 1. Interfaces the implemented interface implements must be declared too.
        for transitive in iface_interfaces {
            if !interfaces.contains(transitive) {
                let t = schema
                    .types
                    .get(transitive.index())
                    .map_or("?", |t| &t.name);
                let message = if *transitive == id {
                    format!(
                        "Type \"{}\" cannot implement \"{}\" because it would create a circular reference.",
                        ty.name, iface.name
                    )
                } else {
                    format!(
                        "Type \"{}\" must implement \"{t}\" because it is implemented by \"{}\".",
                        ty.name, iface.name
                    )
                };
                errors.push(SchemaError::new(message, vec![ty.location]));
            }
        }
        // 2. Every interface field is present, with compatible arguments and type.
        for iface_field in &iface_fields.fields {
            let Some(field) = fields.get(&iface_field.name) else {
                errors.push(SchemaError::new(
                    format!(
                        "Interface field \"{}.{}\" expected but \"{}\" does not provide it.",
                        iface.name, iface_field.name, ty.name
                    ),
                    vec![iface_field.location, ty.location],
                ));
                continue;
            };
            if !is_valid_implementation_field_type(schema, &field.ty, &iface_field.ty) {
                errors.push(SchemaError::new(
                    format!(
                        "Interface field \"{}.{}\" expects type \"{}\" but \"{}.{}\" is type \"{}\".",
                        iface.name,
                        iface_field.name,
                        iface_field.ty.display(&schema.types),
                        ty.name,
                        field.name,
                        field.ty.display(&schema.types)
                    ),
                    vec![iface_field.location, field.location],
                ));
            }
            for iface_arg in &iface_field.args {
                match field.arg(&iface_arg.name) {
                    None => errors.push(SchemaError::new(
                        format!(
                            "Interface field argument \"{}.{}({}:)\" expected but \"{}.{}\" does not provide it.",
                            iface.name, iface_field.name, iface_arg.name, ty.name, field.name
                        ),
                        vec![iface_arg.location, field.location],
                    )),
                    Some(arg) if arg.ty != iface_arg.ty => errors.push(SchemaError::new(
                        format!(
                            "Interface field argument \"{}.{}({}:)\" expects type \"{}\" but \"{}.{}({}:)\" is type \"{}\".",
                            iface.name,
                            iface_field.name,
                            iface_arg.name,
                            iface_arg.ty.display(&schema.types),
                            ty.name,
                            field.name,
                            arg.name,
                            arg.ty.display(&schema.types)
                        ),
                        vec![iface_arg.location, arg.location],
                    )),
                    Some(_) => {}
                }
            }
            for arg in &field.args {
                if iface_field.arg(&arg.name).is_none()
                    && is_required(&arg.ty, arg.default_literal.is_some())
                {
                    errors.push(SchemaError::new(
                        format!(
                            "Argument \"{}.{}({}:)\" must not be required type \"{}\" if not provided by the Interface field \"{}.{}\".",
                            ty.name,
                            field.name,
                            arg.name,
                            arg.ty.display(&schema.types),
                            iface.name,
                            iface_field.name
                        ),
                        vec![arg.location, iface_field.location],
                    ));
                }
            }
        }
    }
}

/// IsValidImplementationFieldType (spec 3.6): covariant return types.
fn is_valid_implementation_field_type(
    schema: &SchemaInner,
    field: &TypeRef,
    implemented: &TypeRef,
) -> bool {
    match (field, implemented) {
        (TypeRef::NonNull(inner), TypeRef::NonNull(impl_inner)) => {
            is_valid_implementation_field_type(schema, inner, impl_inner)
        }
        (TypeRef::NonNull(inner), other) => {
            is_valid_implementation_field_type(schema, inner, other)
        }
        (TypeRef::List(inner), TypeRef::List(impl_inner)) => {
            is_valid_implementation_field_type(schema, inner, impl_inner)
        }
        (TypeRef::List(_), _) | (_, TypeRef::NonNull(_) | TypeRef::List(_)) => false,
        (TypeRef::Named(a), TypeRef::Named(b)) if a == b => true,
        (TypeRef::Named(a), TypeRef::Named(b)) => {
            let (Some(sub), Some(sup)) = (schema.types.get(a.index()), schema.types.get(b.index()))
            else {
                return false;
            };
            match (&sub.kind, &sup.kind) {
                (TypeKind::Object { .. }, TypeKind::Union { members, .. }) => members.contains(a),
                (
                    TypeKind::Object { interfaces, .. } | TypeKind::Interface { interfaces, .. },
                    TypeKind::Interface { .. },
                ) => interfaces.contains(b),
                _ => false,
            }
        }
    }
}

/// Spec 3.8: a union has members, and they are object types.
fn union_members(
    schema: &SchemaInner,
    ty: &TypeDef,
    members: &[TypeId],
    errors: &mut Vec<SchemaError>,
) {
    if members.is_empty() {
        errors.push(SchemaError::new(
            format!(
                "Union type \"{}\" must define one or more member types.",
                ty.name
            ),
            vec![ty.location],
        ));
    }
    for m in members {
        if let Some(member) = schema.types.get(m.index())
            && !matches!(member.kind, TypeKind::Object { .. })
        {
            errors.push(SchemaError::new(
                format!(
                    "Union type \"{}\" can only include Object types, it cannot include \"{}\".",
                    ty.name, member.name
                ),
                vec![ty.location],
            ));
        }
    }
}

/// Spec 3.10: fields exist and are input types; required fields are not deprecated; no
/// unbreakable chain of non-null input fields back to the same type; `@oneOf` fields are
/// nullable without defaults.
fn input_object(schema: &SchemaInner, id: TypeId, ty: &TypeDef, errors: &mut Vec<SchemaError>) {
    let TypeKind::InputObject { fields, one_of } = &ty.kind else {
        return;
    };
    if fields.is_empty() {
        errors.push(SchemaError::new(
            format!(
                "Input Object type \"{}\" must define one or more fields.",
                ty.name
            ),
            vec![ty.location],
        ));
    }
    for f in fields {
        if named(schema, &f.ty).is_some_and(|t| !t.is_input()) {
            errors.push(SchemaError::new(
                format!(
                    "The type of \"{}.{}\" must be an input type, but got \"{}\".",
                    ty.name,
                    f.name,
                    f.ty.display(&schema.types)
                ),
                vec![f.location],
            ));
        }
        if f.deprecation.is_some() && is_required(&f.ty, f.default_literal.is_some()) {
            errors.push(SchemaError::new(
                format!(
                    "Required input field \"{}.{}\" cannot be deprecated.",
                    ty.name, f.name
                ),
                vec![f.location],
            ));
        }
        if *one_of {
            if f.ty.is_non_null() {
                errors.push(SchemaError::new(
                    format!(
                        "OneOf input field \"{}.{}\" must be nullable.",
                        ty.name, f.name
                    ),
                    vec![f.location],
                ));
            }
            if f.default_literal.is_some() {
                errors.push(SchemaError::new(
                    format!(
                        "OneOf input field \"{}.{}\" cannot have a default value.",
                        ty.name, f.name
                    ),
                    vec![f.location],
                ));
            }
        }
    }
    if let Some(path) = non_null_cycle(schema, id, id, &mut HashSet::new()) {
        errors.push(SchemaError::new(
            format!(
                "Cannot reference Input Object \"{}\" within itself through a series of non-null fields: \"{}\".",
                ty.name,
                path.join(".")
            ),
            vec![ty.location],
        ));
    }
}

/// A path of non-null, non-list input fields from `current` back to `target`.
fn non_null_cycle(
    schema: &SchemaInner,
    target: TypeId,
    current: TypeId,
    visited: &mut HashSet<TypeId>,
) -> Option<Vec<String>> {
    if !visited.insert(current) {
        return None;
    }
    let TypeKind::InputObject { fields, .. } = &schema.types.get(current.index())?.kind else {
        return None;
    };
    for f in fields {
        let TypeRef::NonNull(inner) = &f.ty else {
            continue;
        };
        let TypeRef::Named(next) = inner.as_ref() else {
            continue;
        };
        if *next == target {
            return Some(vec![f.name.clone()]);
        }
        if let Some(mut rest) = non_null_cycle(schema, target, *next, visited) {
            rest.insert(0, f.name.clone());
            return Some(rest);
        }
    }
    None
}

/// Spec 3.13: directive arguments are input types; a directive has at least one location.
fn directive_definitions(schema: &SchemaInner, errors: &mut Vec<SchemaError>) {
    for d in schema.directives.iter().filter(|d| !d.builtin) {
        if d.locations.is_empty() {
            errors.push(SchemaError::new(
                format!(
                    "Directive \"@{}\" must define at least one location.",
                    d.name
                ),
                vec![d.location],
            ));
        }
        for arg in &d.args {
            if named(schema, &arg.ty).is_some_and(|t| !t.is_input()) {
                errors.push(SchemaError::new(
                    format!(
                        "The type of \"@{}({}:)\" must be an input type, but got \"{}\".",
                        d.name,
                        arg.name,
                        arg.ty.display(&schema.types)
                    ),
                    vec![arg.location],
                ));
            }
            if arg.deprecation.is_some() && is_required(&arg.ty, arg.default_literal.is_some()) {
                errors.push(SchemaError::new(
                    format!(
                        "Required argument \"@{}({}:)\" cannot be deprecated.",
                        d.name, arg.name
                    ),
                    vec![arg.location],
                ));
            }
        }
    }
}
