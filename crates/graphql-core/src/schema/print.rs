//! Printing a schema back as SDL.

use std::fmt::Write as _;

use super::SchemaInner;
use crate::literal::write_string;
use crate::types::{InputValueDef, TypeDef, TypeKind};

fn write_description(out: &mut String, description: Option<&str>, indent: &str) {
    let Some(d) = description else { return };
    out.push_str(indent);
    let escaped = d.replace("\"\"\"", "\\\"\"\"");
    let single_line = !d.contains('\n') && !d.ends_with('"') && !d.ends_with('\\');
    if single_line {
        out.push_str("\"\"\"");
        out.push_str(&escaped);
        out.push_str("\"\"\"\n");
    } else {
        out.push_str("\"\"\"\n");
        for line in escaped.split('\n') {
            if !line.is_empty() {
                out.push_str(indent);
            }
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(indent);
        out.push_str("\"\"\"\n");
    }
}

fn write_deprecated(out: &mut String, reason: Option<&str>) {
    match reason {
        None => {}
        Some("No longer supported") => out.push_str(" @deprecated"),
        Some(reason) => {
            out.push_str(" @deprecated(reason: ");
            write_string(out, reason);
            out.push(')');
        }
    }
}

fn write_input_value(out: &mut String, schema: &SchemaInner, v: &InputValueDef) {
    out.push_str(&v.name);
    out.push_str(": ");
    let _ = write!(out, "{}", v.ty.display(&schema.types));
    if let Some(d) = &v.default_literal {
        out.push_str(" = ");
        out.push_str(d);
    }
    write_deprecated(out, v.deprecation.as_deref());
}

fn write_args(out: &mut String, schema: &SchemaInner, args: &[InputValueDef], indent: &str) {
    if args.is_empty() {
        return;
    }
    if args.iter().all(|a| a.description.is_none()) {
        out.push('(');
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_input_value(out, schema, a);
        }
        out.push(')');
    } else {
        out.push_str("(\n");
        let inner = format!("{indent}  ");
        for a in args {
            write_description(out, a.description.as_deref(), &inner);
            out.push_str(&inner);
            write_input_value(out, schema, a);
            out.push('\n');
        }
        out.push_str(indent);
        out.push(')');
    }
}

fn write_implements(out: &mut String, schema: &SchemaInner, interfaces: &[super::TypeId]) {
    for (i, id) in interfaces.iter().enumerate() {
        out.push_str(if i == 0 { " implements " } else { " & " });
        out.push_str(schema.types.get(id.index()).map_or("?", |t| &t.name));
    }
}

fn write_type(out: &mut String, schema: &SchemaInner, ty: &TypeDef) {
    write_description(out, ty.description.as_deref(), "");
    match &ty.kind {
        TypeKind::Scalar(s) => {
            out.push_str("scalar ");
            out.push_str(&ty.name);
            if let Some(url) = &s.specified_by {
                out.push_str(" @specifiedBy(url: ");
                write_string(out, url);
                out.push(')');
            }
            out.push('\n');
        }
        TypeKind::Object { fields, interfaces }
        | TypeKind::Interface {
            fields, interfaces, ..
        } => {
            out.push_str(if matches!(ty.kind, TypeKind::Object { .. }) {
                "type "
            } else {
                "interface "
            });
            out.push_str(&ty.name);
            write_implements(out, schema, interfaces);
            out.push_str(" {\n");
            for f in &fields.fields {
                write_description(out, f.description.as_deref(), "  ");
                out.push_str("  ");
                out.push_str(&f.name);
                write_args(out, schema, &f.args, "  ");
                out.push_str(": ");
                let _ = write!(out, "{}", f.ty.display(&schema.types));
                write_deprecated(out, f.deprecation.as_deref());
                out.push('\n');
            }
            out.push_str("}\n");
        }
        TypeKind::Union { members, .. } => {
            out.push_str("union ");
            out.push_str(&ty.name);
            for (i, m) in members.iter().enumerate() {
                out.push_str(if i == 0 { " = " } else { " | " });
                out.push_str(schema.types.get(m.index()).map_or("?", |t| &t.name));
            }
            out.push('\n');
        }
        TypeKind::Enum { values } => {
            out.push_str("enum ");
            out.push_str(&ty.name);
            out.push_str(" {\n");
            for v in values {
                write_description(out, v.description.as_deref(), "  ");
                out.push_str("  ");
                out.push_str(&v.name);
                write_deprecated(out, v.deprecation.as_deref());
                out.push('\n');
            }
            out.push_str("}\n");
        }
        TypeKind::InputObject { fields, one_of } => {
            out.push_str("input ");
            out.push_str(&ty.name);
            if *one_of {
                out.push_str(" @oneOf");
            }
            out.push_str(" {\n");
            for f in fields {
                write_description(out, f.description.as_deref(), "  ");
                out.push_str("  ");
                write_input_value(out, schema, f);
                out.push('\n');
            }
            out.push_str("}\n");
        }
    }
}

/// The schema as SDL, in the order graphql-js's `printSchema` uses: schema definition (only
/// when the roots are not named `Query`, `Mutation`, `Subscription`), directive definitions,
/// then types in definition order; built-in scalars and directives are left out.
pub(crate) fn print_schema(schema: &SchemaInner) -> String {
    let mut blocks: Vec<String> = Vec::new();
    let name_of = |id: Option<super::TypeId>| {
        id.and_then(|id| schema.types.get(id.index()))
            .map(|t| t.name.as_str())
    };
    let query = name_of(Some(schema.query));
    let mutation = name_of(schema.mutation);
    let subscription = name_of(schema.subscription);
    let conventional = query.is_none_or(|n| n == "Query")
        && mutation.is_none_or(|n| n == "Mutation")
        && subscription.is_none_or(|n| n == "Subscription");
    if !conventional {
        let mut s = String::from("schema {\n");
        for (op, name) in [
            ("query", query),
            ("mutation", mutation),
            ("subscription", subscription),
        ] {
            if let Some(name) = name {
                let _ = writeln!(s, "  {op}: {name}");
            }
        }
        s.push_str("}\n");
        blocks.push(s);
    }
    for d in schema.directives.iter().filter(|d| !d.builtin) {
        let mut s = String::new();
        write_description(&mut s, d.description.as_deref(), "");
        s.push_str("directive @");
        s.push_str(&d.name);
        write_args(&mut s, schema, &d.args, "");
        if d.repeatable {
            s.push_str(" repeatable");
        }
        s.push_str(" on ");
        for (i, l) in d.locations.iter().enumerate() {
            if i > 0 {
                s.push_str(" | ");
            }
            s.push_str(l.as_str());
        }
        s.push('\n');
        blocks.push(s);
    }
    for ty in &schema.types {
        if ty.name.starts_with("__")
            || matches!(&ty.kind, TypeKind::Scalar(s) if s.builtin.is_some())
        {
            continue;
        }
        let mut s = String::new();
        write_type(&mut s, schema, ty);
        blocks.push(s);
    }
    blocks.join("\n")
}
