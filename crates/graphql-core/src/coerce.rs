//! Input coercion of literals (spec section 3.5 and 3.10 "Input Coercion").
//!
//! Turns a GraphQL literal into the JSON value a resolver receives, checking it against the
//! expected input type and saying precisely what did not fit.

use graphql_parser::query::{Text, Value as Literal};
use serde_json::{Map, Number, Value};

use crate::types::{BuiltinScalar, TypeDef, TypeKind, TypeRef};

/// Where variables come from while coercing a literal; `None` for constant contexts (SDL
/// default values), where a variable is an error.
pub(crate) type Variables<'v> = Option<&'v Map<String, Value>>;

/// Coerces `literal` to `ty`. The error names the path inside the value that failed.
pub(crate) fn coerce_literal<'a, T: Text<'a>>(
    types: &[TypeDef],
    ty: &TypeRef,
    literal: &Literal<'a, T>,
    variables: Variables<'_>,
) -> Result<Value, String> {
    if let Literal::Variable(name) = literal {
        let name = name.as_ref();
        return match variables {
            None => Err(format!(
                "variable ${name} is not allowed in a constant value"
            )),
            // Variable values were coerced when the operation started (spec 6.1.2).
            Some(vars) => match vars.get(name) {
                Some(v) => Ok(v.clone()),
                None if ty.is_non_null() => Err(format!(
                    "variable ${name} was not provided for a non-null position"
                )),
                None => Ok(Value::Null),
            },
        };
    }
    match ty {
        TypeRef::NonNull(inner) => {
            if matches!(literal, Literal::Null) {
                return Err(format!(
                    "expected a non-null {}, found null",
                    ty.display(types)
                ));
            }
            coerce_literal(types, inner, literal, variables)
        }
        _ if matches!(literal, Literal::Null) => Ok(Value::Null),
        TypeRef::List(item) => match literal {
            Literal::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, it) in items.iter().enumerate() {
                    out.push(
                        coerce_literal(types, item, it, variables)
                            .map_err(|e| format!("at index {i}: {e}"))?,
                    );
                }
                Ok(Value::Array(out))
            }
            // A single value where a list is expected is coerced as a list of one.
            other => Ok(Value::Array(vec![coerce_literal(
                types, item, other, variables,
            )?])),
        },
        TypeRef::Named(id) => {
            let Some(def) = types.get(id.index()) else {
                return Err("unknown type".to_owned());
            };
            coerce_named(types, def, literal, variables)
        }
    }
}

fn coerce_named<'a, T: Text<'a>>(
    types: &[TypeDef],
    def: &TypeDef,
    literal: &Literal<'a, T>,
    variables: Variables<'_>,
) -> Result<Value, String> {
    let mismatch = || {
        format!(
            "expected a value of type {}, found {}",
            def.name,
            describe(literal)
        )
    };
    match &def.kind {
        TypeKind::Scalar(scalar) => match scalar.builtin {
            Some(BuiltinScalar::Int) => match literal {
                Literal::Int(n) => n
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .map(Value::from)
                    .ok_or_else(|| {
                        format!(
                            "Int cannot represent a non 32-bit signed integer value: {}",
                            describe(literal)
                        )
                    }),
                _ => Err(mismatch()),
            },
            Some(BuiltinScalar::Float) => match literal {
                Literal::Int(n) => Ok(Value::from(n.as_i64().unwrap_or(0) as f64)),
                Literal::Float(f) => Number::from_f64(*f)
                    .map(Value::Number)
                    .ok_or_else(|| "Float cannot represent a non-finite value".to_owned()),
                _ => Err(mismatch()),
            },
            Some(BuiltinScalar::String) => match literal {
                Literal::String(s) => Ok(Value::String(s.clone())),
                _ => Err(mismatch()),
            },
            Some(BuiltinScalar::Boolean) => match literal {
                Literal::Boolean(b) => Ok(Value::Bool(*b)),
                _ => Err(mismatch()),
            },
            Some(BuiltinScalar::Id) => match literal {
                Literal::String(s) => Ok(Value::String(s.clone())),
                Literal::Int(n) => Ok(Value::String(n.as_i64().unwrap_or(0).to_string())),
                _ => Err(mismatch()),
            },
            None => {
                let raw = literal_to_json(literal, variables)?;
                scalar
                    .coercion
                    .parse_value(&raw)
                    .map_err(|e| format!("{}: {e}", def.name))
            }
        },
        TypeKind::Enum { values } => match literal {
            Literal::Enum(name) if values.iter().any(|v| v.name == name.as_ref()) => {
                Ok(Value::String(name.as_ref().to_owned()))
            }
            Literal::Enum(name) => Err(format!(
                "value {} does not exist in enum {}",
                name.as_ref(),
                def.name
            )),
            _ => Err(mismatch()),
        },
        TypeKind::InputObject { fields, one_of } => {
            let Literal::Object(given) = literal else {
                return Err(mismatch());
            };
            for key in given.keys() {
                if !fields.iter().any(|f| f.name == key.as_ref()) {
                    return Err(format!(
                        "field {} is not defined by input object {}",
                        key.as_ref(),
                        def.name
                    ));
                }
            }
            let mut out = Map::new();
            for field in fields {
                match given.get(field.name.as_str()) {
                    Some(Literal::Variable(var))
                        if variables.is_some_and(|vars| !vars.contains_key(var.as_ref())) =>
                    {
                        // An absent variable behaves as if the field were absent.
                        if let Some(default) = &field.default_value {
                            out.insert(field.name.clone(), default.clone());
                        } else if field.ty.is_non_null() {
                            return Err(format!(
                                "field {}.{} of required type was given the unset variable ${}",
                                def.name,
                                field.name,
                                var.as_ref()
                            ));
                        }
                    }
                    Some(v) => {
                        let coerced = coerce_literal(types, &field.ty, v, variables)
                            .map_err(|e| format!("in field {}.{}: {e}", def.name, field.name))?;
                        out.insert(field.name.clone(), coerced);
                    }
                    None => {
                        if let Some(default) = &field.default_value {
                            out.insert(field.name.clone(), default.clone());
                        } else if field.ty.is_non_null() {
                            return Err(format!(
                                "field {}.{} of required type {} was not provided",
                                def.name,
                                field.name,
                                field.ty.display(types)
                            ));
                        }
                    }
                }
            }
            if *one_of {
                check_one_of(&def.name, &out)?;
            }
            Ok(Value::Object(out))
        }
        TypeKind::Object { .. } | TypeKind::Interface { .. } | TypeKind::Union { .. } => {
            Err(format!("{} is not an input type", def.name))
        }
    }
}

/// `@oneOf` input objects need exactly one field, and it must not be null (spec 3.10.1).
pub(crate) fn check_one_of(name: &str, fields: &Map<String, Value>) -> Result<(), String> {
    if fields.len() != 1 {
        return Err(format!(
            "OneOf input object {name} must specify exactly one field, found {}",
            fields.len()
        ));
    }
    if fields.values().any(Value::is_null) {
        return Err(format!(
            "OneOf input object {name}: the given field must be non-null"
        ));
    }
    Ok(())
}

/// A literal as plain JSON (for custom scalars, which receive JSON).
pub(crate) fn literal_to_json<'a, T: Text<'a>>(
    literal: &Literal<'a, T>,
    variables: Variables<'_>,
) -> Result<Value, String> {
    Ok(match literal {
        Literal::Variable(name) => match variables {
            None => {
                return Err(format!(
                    "variable ${} is not allowed in a constant value",
                    name.as_ref()
                ));
            }
            Some(vars) => vars.get(name.as_ref()).cloned().unwrap_or(Value::Null),
        },
        Literal::Int(n) => Value::from(n.as_i64().unwrap_or(0)),
        Literal::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Literal::String(s) => Value::String(s.clone()),
        Literal::Boolean(b) => Value::Bool(*b),
        Literal::Null => Value::Null,
        Literal::Enum(e) => Value::String(e.as_ref().to_owned()),
        Literal::List(items) => Value::Array(
            items
                .iter()
                .map(|i| literal_to_json(i, variables))
                .collect::<Result<_, _>>()?,
        ),
        Literal::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.as_ref().to_owned(), literal_to_json(v, variables)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn describe<'a, T: Text<'a>>(literal: &Literal<'a, T>) -> String {
    let mut out = String::new();
    crate::literal::write_literal(&mut out, literal);
    out
}

/// Coerces a JSON input value (a variable's value) to `ty` (spec 3.5 and 3.10 "Input
/// Coercion"). The error says what did not fit, with the path inside the value.
pub(crate) fn coerce_input_value(
    types: &[TypeDef],
    ty: &TypeRef,
    value: &Value,
) -> Result<Value, String> {
    match ty {
        TypeRef::NonNull(inner) => {
            if value.is_null() {
                return Err(format!(
                    "Expected non-nullable type \"{}\" not to be null.",
                    ty.display(types)
                ));
            }
            coerce_input_value(types, inner, value)
        }
        _ if value.is_null() => Ok(Value::Null),
        TypeRef::List(item) => match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    coerce_input_value(types, item, v).map_err(|e| format!("{e} At index [{i}]."))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(Value::Array(vec![coerce_input_value(types, item, other)?])),
        },
        TypeRef::Named(id) => {
            let Some(def) = types.get(id.index()) else {
                return Err("unknown type".to_owned());
            };
            let mismatch = |what: &str| {
                format!(
                    "{} cannot represent {what}: {}",
                    def.name,
                    truncate_json(value)
                )
            };
            match &def.kind {
                TypeKind::Scalar(scalar) => match scalar.builtin {
                    Some(BuiltinScalar::Int) => {
                        match value.as_i64().and_then(|n| i32::try_from(n).ok()) {
                            Some(n) => Ok(Value::from(n)),
                            None if value.is_number() => {
                                Err(mismatch("non 32-bit signed integer value"))
                            }
                            None => Err(mismatch("non-integer value")),
                        }
                    }
                    Some(BuiltinScalar::Float) => match value.as_f64() {
                        Some(f) if value.is_number() => Ok(Value::from(f)),
                        _ => Err(mismatch("non numeric value")),
                    },
                    Some(BuiltinScalar::String) => match value {
                        Value::String(_) => Ok(value.clone()),
                        _ => Err(mismatch("a non string value")),
                    },
                    Some(BuiltinScalar::Boolean) => match value {
                        Value::Bool(_) => Ok(value.clone()),
                        _ => Err(mismatch("a non boolean value")),
                    },
                    Some(BuiltinScalar::Id) => match value {
                        Value::String(_) => Ok(value.clone()),
                        Value::Number(n) if n.is_i64() || n.is_u64() => {
                            Ok(Value::String(n.to_string()))
                        }
                        _ => Err(mismatch("value")),
                    },
                    None => scalar
                        .coercion
                        .parse_value(value)
                        .map_err(|e| format!("{}: {e}", def.name)),
                },
                TypeKind::Enum { values } => match value {
                    Value::String(s) if values.iter().any(|v| v.name == *s) => Ok(value.clone()),
                    Value::String(s) => Err(format!(
                        "Value \"{s}\" does not exist in \"{}\" enum.",
                        def.name
                    )),
                    _ => Err(format!(
                        "Enum \"{}\" cannot represent non-string value: {}.",
                        def.name,
                        truncate_json(value)
                    )),
                },
                TypeKind::InputObject { fields, one_of } => {
                    let Value::Object(given) = value else {
                        return Err(format!("Expected type \"{}\" to be an object.", def.name));
                    };
                    for key in given.keys() {
                        if !fields.iter().any(|f| f.name == *key) {
                            return Err(format!(
                                "Field \"{key}\" is not defined by type \"{}\".",
                                def.name
                            ));
                        }
                    }
                    let mut out = Map::new();
                    for field in fields {
                        match given.get(&field.name) {
                            Some(v) => {
                                let c = coerce_input_value(types, &field.ty, v)
                                    .map_err(|e| format!("{e} At \"{}\".", field.name))?;
                                out.insert(field.name.clone(), c);
                            }
                            None => {
                                if let Some(d) = &field.default_value {
                                    out.insert(field.name.clone(), d.clone());
                                } else if field.ty.is_non_null() {
                                    return Err(format!(
                                        "Field \"{}\" of required type \"{}\" was not provided.",
                                        field.name,
                                        field.ty.display(types)
                                    ));
                                }
                            }
                        }
                    }
                    if *one_of {
                        check_one_of(&def.name, &out)?;
                    }
                    Ok(Value::Object(out))
                }
                TypeKind::Object { .. } | TypeKind::Interface { .. } | TypeKind::Union { .. } => {
                    Err(format!("\"{}\" is not an input type.", def.name))
                }
            }
        }
    }
}

/// A JSON value for an error message, cut at 100 characters.
fn truncate_json(value: &Value) -> String {
    let mut s = value.to_string();
    if s.len() > 100 {
        let mut end = 100;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}
