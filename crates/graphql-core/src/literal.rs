//! GraphQL literals as text (spec section 2.9): default values in SDL and introspection, and
//! values quoted in error messages.

use std::fmt::Write as _;

use graphql_parser::query::{Text, Value as Literal};

/// Writes a GraphQL literal (as in a default value).
pub(crate) fn write_literal<'a, T: Text<'a>>(out: &mut String, literal: &Literal<'a, T>) {
    match literal {
        Literal::Variable(v) => {
            out.push('$');
            out.push_str(v.as_ref());
        }
        Literal::Int(n) => {
            let _ = write!(out, "{}", n.as_i64().unwrap_or(0));
        }
        Literal::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        Literal::String(s) => write_string(out, s),
        Literal::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Literal::Null => out.push_str("null"),
        Literal::Enum(e) => out.push_str(e.as_ref()),
        Literal::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(out, item);
            }
            out.push(']');
        }
        Literal::Object(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k.as_ref());
                out.push_str(": ");
                write_literal(out, v);
            }
            out.push('}');
        }
    }
}

/// A GraphQL string literal with the escapes the spec defines (section 2.9.4).
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
