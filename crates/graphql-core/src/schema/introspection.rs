//! Introspection (spec section 4): `__schema`, `__type` and the `__Type` family, answered
//! from a JSON description of the schema built once with the schema, borrowed (not cloned)
//! by every request.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::resolver::Args;
use crate::schema::SchemaInner;
use crate::types::{
    DirectiveDef, EnumValueDef, FieldDef, InputValueDef, MetaField, TypeId, TypeKind, TypeRef,
};

/// The introspection data of a schema.
#[derive(Debug, Clone, Default)]
pub(crate) struct Data {
    schema: Value,
    /// Index of each type's full description in `schema.types`.
    by_name: crate::names::NameMap<usize>,
}

impl Data {
    fn full_type(&self, name: &str) -> Option<&Value> {
        let i = *self.by_name.get(name)?;
        self.schema.get("types")?.get(i)
    }
}

/// Which `__Type` fields need the schema, and how (spec 4.2.3).
pub(crate) fn meta_for(type_name: &str, field: &str) -> Option<MetaField> {
    use MetaField::*;
    Some(match (type_name, field) {
        (
            "__Type",
            "description" | "specifiedByURL" | "isOneOf" | "interfaces" | "possibleTypes",
        ) => TypeMember(match field {
            "description" => "description",
            "specifiedByURL" => "specifiedByURL",
            "isOneOf" => "isOneOf",
            "interfaces" => "interfaces",
            _ => "possibleTypes",
        }),
        ("__Type", "fields") => TypeMemberFiltered("fields"),
        ("__Type", "enumValues") => TypeMemberFiltered("enumValues"),
        ("__Type", "inputFields") => TypeMemberFiltered("inputFields"),
        ("__Field" | "__Directive", "args") => ArgsFiltered,
        _ => return None,
    })
}

fn type_ref(schema: &SchemaInner, ty: &TypeRef) -> Value {
    match ty {
        TypeRef::NonNull(inner) => {
            json!({"kind": "NON_NULL", "name": null, "ofType": type_ref(schema, inner)})
        }
        TypeRef::List(inner) => {
            json!({"kind": "LIST", "name": null, "ofType": type_ref(schema, inner)})
        }
        TypeRef::Named(id) => named_ref(schema, *id),
    }
}

fn named_ref(schema: &SchemaInner, id: TypeId) -> Value {
    let t = schema.types.get(id.index());
    json!({
        "kind": t.map_or("SCALAR", |t| t.kind_name()),
        "name": t.map(|t| t.name.as_str()),
        "ofType": null,
    })
}

fn deprecation(reason: Option<&str>) -> (Value, Value) {
    (
        Value::Bool(reason.is_some()),
        reason.map_or(Value::Null, |r| Value::String(r.to_owned())),
    )
}

fn input_value(schema: &SchemaInner, v: &InputValueDef) -> Value {
    let (is, reason) = deprecation(v.deprecation.as_deref());
    json!({
        "name": v.name,
        "description": v.description,
        "type": type_ref(schema, &v.ty),
        "defaultValue": v.default_literal,
        "isDeprecated": is,
        "deprecationReason": reason,
    })
}

fn field(schema: &SchemaInner, f: &FieldDef) -> Value {
    let (is, reason) = deprecation(f.deprecation.as_deref());
    json!({
        "name": f.name,
        "description": f.description,
        "args": f.args.iter().map(|a| input_value(schema, a)).collect::<Vec<_>>(),
        "type": type_ref(schema, &f.ty),
        "isDeprecated": is,
        "deprecationReason": reason,
    })
}

fn enum_value(v: &EnumValueDef) -> Value {
    let (is, reason) = deprecation(v.deprecation.as_deref());
    json!({
        "name": v.name,
        "description": v.description,
        "isDeprecated": is,
        "deprecationReason": reason,
    })
}

fn directive(schema: &SchemaInner, d: &DirectiveDef) -> Value {
    json!({
        "name": d.name,
        "description": d.description,
        "locations": d.locations.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
        "args": d.args.iter().map(|a| input_value(schema, a)).collect::<Vec<_>>(),
        "isRepeatable": d.repeatable,
    })
}

fn refs(schema: &SchemaInner, ids: &[TypeId]) -> Value {
    Value::Array(ids.iter().map(|id| named_ref(schema, *id)).collect())
}

/// Built-in scalars are listed only when something refers to them, as graphql-js does
/// (`String` and `Boolean` always are, by the introspection types).
fn referenced(schema: &SchemaInner) -> HashSet<TypeId> {
    let mut out = HashSet::new();
    let mut add = |ty: &TypeRef| {
        out.insert(ty.named());
    };
    for t in &schema.types {
        match &t.kind {
            TypeKind::Object { fields, .. } | TypeKind::Interface { fields, .. } => {
                for f in &fields.fields {
                    add(&f.ty);
                    f.args.iter().for_each(|a| add(&a.ty));
                }
            }
            TypeKind::InputObject { fields, .. } => fields.iter().for_each(|f| add(&f.ty)),
            _ => {}
        }
    }
    for d in &schema.directives {
        d.args.iter().for_each(|a| add(&a.ty));
    }
    out
}

/// Builds the introspection data once, when the schema is built.
pub(crate) fn build(schema: &SchemaInner) -> Data {
    let used = referenced(schema);
    let mut types = Vec::new();
    let mut by_name = crate::names::NameMap::default();
    for (i, t) in schema.types.iter().enumerate() {
        let id = TypeId(u32::try_from(i).unwrap_or(u32::MAX));
        if matches!(&t.kind, TypeKind::Scalar(s) if s.builtin.is_some()) && !used.contains(&id) {
            continue;
        }
        let mut obj = Map::new();
        obj.insert("kind".into(), t.kind_name().into());
        obj.insert("name".into(), t.name.clone().into());
        obj.insert("description".into(), t.description.clone().into());
        let (specified_by, one_of) = match &t.kind {
            TypeKind::Scalar(s) => (s.specified_by.clone().into(), Value::Null),
            TypeKind::InputObject { one_of, .. } => (Value::Null, Value::Bool(*one_of)),
            _ => (Value::Null, Value::Null),
        };
        obj.insert("specifiedByURL".into(), specified_by);
        obj.insert("isOneOf".into(), one_of);
        let (fields, interfaces) = match &t.kind {
            TypeKind::Object { fields, interfaces }
            | TypeKind::Interface {
                fields, interfaces, ..
            } => (
                Value::Array(fields.fields.iter().map(|f| field(schema, f)).collect()),
                refs(schema, interfaces),
            ),
            _ => (Value::Null, Value::Null),
        };
        obj.insert("fields".into(), fields);
        obj.insert("interfaces".into(), interfaces);
        obj.insert(
            "possibleTypes".into(),
            match &t.kind {
                TypeKind::Interface { possible_types, .. } => refs(schema, possible_types),
                TypeKind::Union { members, .. } => refs(schema, members),
                _ => Value::Null,
            },
        );
        obj.insert(
            "enumValues".into(),
            match &t.kind {
                TypeKind::Enum { values } => Value::Array(values.iter().map(enum_value).collect()),
                _ => Value::Null,
            },
        );
        obj.insert(
            "inputFields".into(),
            match &t.kind {
                TypeKind::InputObject { fields, .. } => {
                    Value::Array(fields.iter().map(|f| input_value(schema, f)).collect())
                }
                _ => Value::Null,
            },
        );
        obj.insert("ofType".into(), Value::Null);
        by_name.insert(t.name.clone(), types.len());
        types.push(Value::Object(obj));
    }
    let root = |id: Option<TypeId>| id.map_or(Value::Null, |id| named_ref(schema, id));
    let schema_json = json!({
        "description": null,
        "types": types,
        "queryType": root(Some(schema.query)),
        "mutationType": root(schema.mutation),
        "subscriptionType": root(schema.subscription),
        "directives": schema.directives.iter().map(|d| directive(schema, d)).collect::<Vec<_>>(),
    });
    Data {
        schema: schema_json,
        by_name,
    }
}

fn filtered<'v>(list: &'v Value, args: &Args) -> Cow<'v, Value> {
    let include = args
        .get("includeDeprecated")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match list {
        Value::Array(items)
            if !include
                && items
                    .iter()
                    .any(|i| i.get("isDeprecated") == Some(&Value::Bool(true))) =>
        {
            Cow::Owned(Value::Array(
                items
                    .iter()
                    .filter(|i| i.get("isDeprecated") != Some(&Value::Bool(true)))
                    .cloned()
                    .collect(),
            ))
        }
        other => Cow::Borrowed(other),
    }
}

static NULL: Value = Value::Null;

/// Answers an introspection field for `parent`.
pub(crate) fn resolve<'v>(
    schema: &'v SchemaInner,
    meta: MetaField,
    _object: TypeId,
    parent: &'v Value,
    args: &Args,
) -> Result<Cow<'v, Value>, String> {
    let data = &schema.introspection;
    let full = || -> &'v Value {
        let kind = parent.get("kind").and_then(Value::as_str);
        if matches!(kind, Some("LIST" | "NON_NULL")) {
            return parent;
        }
        parent
            .get("name")
            .and_then(Value::as_str)
            .and_then(|n| data.full_type(n))
            .unwrap_or(parent)
    };
    Ok(match meta {
        MetaField::SchemaRoot => Cow::Borrowed(&data.schema),
        MetaField::TypeByName => {
            let name = args.get("name").and_then(Value::as_str).unwrap_or("");
            Cow::Borrowed(data.full_type(name).unwrap_or(&NULL))
        }
        MetaField::TypeMember(m) => Cow::Borrowed(full().get(m).unwrap_or(&NULL)),
        MetaField::TypeMemberFiltered(m) => filtered(full().get(m).unwrap_or(&NULL), args),
        MetaField::ArgsFiltered => filtered(parent.get("args").unwrap_or(&NULL), args),
    })
}
