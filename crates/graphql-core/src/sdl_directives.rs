//! Known directives and their locations in SDL (type-system) documents, as graphql-js's
//! `validateSDL` checks them with `KnownDirectivesRule` (spec sections 3.13 and 5.7.1-5.7.2
//! applied to type-system definitions).

use std::collections::HashMap;

use graphql_parser::schema::{
    Definition, Directive, Field, InputValue, TypeDefinition, TypeExtension,
};

use crate::error::Location;
use crate::lexer::{Tok, tokens};
use crate::response::GraphQLError;
use crate::schema::Schema;

/// The built-in directives and where they may appear, for SDL checked without a schema.
const BUILTIN: &[(&str, &[&str])] = &[
    ("skip", &["FIELD", "FRAGMENT_SPREAD", "INLINE_FRAGMENT"]),
    ("include", &["FIELD", "FRAGMENT_SPREAD", "INLINE_FRAGMENT"]),
    (
        "deprecated",
        &[
            "FIELD_DEFINITION",
            "ARGUMENT_DEFINITION",
            "INPUT_FIELD_DEFINITION",
            "ENUM_VALUE",
        ],
    ),
    ("specifiedBy", &["SCALAR"]),
    ("oneOf", &["INPUT_OBJECT"]),
];

/// Checks every directive applied in the SDL document `source`: it must be defined (by
/// `schema`, which the document extends, by the built-ins when `schema` is `None`, or by a
/// `directive` definition in the document itself) and allowed at its location (`OBJECT`,
/// `FIELD_DEFINITION`, `ARGUMENT_DEFINITION`, `SCHEMA`, ...). Each problem is one error at
/// the directive's `@`, worded as graphql-js words it: `Unknown directive "@x".` and
/// `Directive "@x" may not be used on LOCATION.`
///
/// Only directives are checked here (the rest of SDL validation is done by
/// [`SchemaBuilder::finish`](crate::SchemaBuilder::finish)). `extend schema` is read even
/// though graphql-parser 0.4's grammar lacks it. `Err` is a syntax error.
///
/// ```
/// use graphql_core::{Schema, validate_sdl_directives};
///
/// let schema = Schema::build("type Query { a: String }").finish()?;
/// let errors = validate_sdl_directives(
///     Some(&schema),
///     "directive @tag on OBJECT\ntype A @tag { f: String @tag @deprecated }",
/// )
/// .unwrap();
/// assert_eq!(errors.len(), 1);
/// assert_eq!(errors[0].message, "Directive \"@tag\" may not be used on FIELD_DEFINITION.");
/// # Ok::<(), graphql_core::Error>(())
/// ```
pub fn validate_sdl_directives(
    schema: Option<&Schema>,
    source: &str,
) -> Result<Vec<GraphQLError>, GraphQLError> {
    let (text, extension_texts) = split_schema_extensions(source);
    let mut definitions = parse(&text)?;
    for ext in &extension_texts {
        definitions.extend(parse(ext)?);
    }
    let doc = graphql_parser::schema::Document { definitions };
    let mut known: HashMap<String, Vec<String>> = HashMap::new();
    match schema {
        Some(s) => {
            for d in s.directives() {
                known.insert(
                    d.name().to_owned(),
                    d.locations()
                        .iter()
                        .map(|l| l.as_str().to_owned())
                        .collect(),
                );
            }
        }
        None => {
            for (name, locations) in BUILTIN {
                known.insert(
                    (*name).to_owned(),
                    locations.iter().map(|l| (*l).to_owned()).collect(),
                );
            }
        }
    }
    for def in &doc.definitions {
        if let Definition::DirectiveDefinition(d) = def {
            known.insert(
                d.name.to_owned(),
                d.locations.iter().map(|l| l.as_str().to_owned()).collect(),
            );
        }
    }
    let mut c = Checker {
        known,
        errors: Vec::new(),
    };
    for def in &doc.definitions {
        match def {
            Definition::SchemaDefinition(s) => c.check(&s.directives, "SCHEMA"),
            Definition::TypeDefinition(t) => match t {
                TypeDefinition::Scalar(t) => c.check(&t.directives, "SCALAR"),
                TypeDefinition::Object(t) => {
                    c.check(&t.directives, "OBJECT");
                    c.fields(&t.fields);
                }
                TypeDefinition::Interface(t) => {
                    c.check(&t.directives, "INTERFACE");
                    c.fields(&t.fields);
                }
                TypeDefinition::Union(t) => c.check(&t.directives, "UNION"),
                TypeDefinition::Enum(t) => {
                    c.check(&t.directives, "ENUM");
                    for v in &t.values {
                        c.check(&v.directives, "ENUM_VALUE");
                    }
                }
                TypeDefinition::InputObject(t) => {
                    c.check(&t.directives, "INPUT_OBJECT");
                    c.input_fields(&t.fields);
                }
            },
            Definition::TypeExtension(t) => match t {
                TypeExtension::Scalar(t) => c.check(&t.directives, "SCALAR"),
                TypeExtension::Object(t) => {
                    c.check(&t.directives, "OBJECT");
                    c.fields(&t.fields);
                }
                TypeExtension::Interface(t) => {
                    c.check(&t.directives, "INTERFACE");
                    c.fields(&t.fields);
                }
                TypeExtension::Union(t) => c.check(&t.directives, "UNION"),
                TypeExtension::Enum(t) => {
                    c.check(&t.directives, "ENUM");
                    for v in &t.values {
                        c.check(&v.directives, "ENUM_VALUE");
                    }
                }
                TypeExtension::InputObject(t) => {
                    c.check(&t.directives, "INPUT_OBJECT");
                    c.input_fields(&t.fields);
                }
            },
            Definition::DirectiveDefinition(d) => {
                for a in &d.arguments {
                    c.check(&a.directives, "ARGUMENT_DEFINITION");
                }
            }
        }
    }
    Ok(c.errors)
}

struct Checker {
    known: HashMap<String, Vec<String>>,
    errors: Vec<GraphQLError>,
}

impl Checker {
    fn check<'a>(&mut self, directives: &[Directive<'a, &'a str>], location: &str) {
        for d in directives {
            match self.known.get(d.name) {
                None => self.errors.push(GraphQLError::new(
                    format!("Unknown directive \"@{}\".", d.name),
                    vec![Location::from_pos(d.position)],
                )),
                Some(allowed) if !allowed.iter().any(|l| l == location) => {
                    self.errors.push(GraphQLError::new(
                        format!("Directive \"@{}\" may not be used on {location}.", d.name),
                        vec![Location::from_pos(d.position)],
                    ));
                }
                Some(_) => {}
            }
        }
    }

    fn fields<'a>(&mut self, fields: &[Field<'a, &'a str>]) {
        for f in fields {
            for a in &f.arguments {
                self.check(&a.directives, "ARGUMENT_DEFINITION");
            }
            self.check(&f.directives, "FIELD_DEFINITION");
        }
    }

    fn input_fields<'a>(&mut self, fields: &[InputValue<'a, &'a str>]) {
        for f in fields {
            self.check(&f.directives, "INPUT_FIELD_DEFINITION");
        }
    }
}

/// The definitions of an SDL text; `Err` is a syntax error.
fn parse(t: &str) -> Result<Vec<Definition<'_, &str>>, GraphQLError> {
    graphql_parser::parse_schema::<&str>(t)
        .map(|d| d.definitions)
        .map_err(|e| GraphQLError::new(format!("Syntax Error: {e}"), Vec::new()))
}

/// Splits `source` for graphql-parser 0.4, whose grammar lacks `extend schema`: the main
/// text with every top-level `extend schema ...` blanked out, and for each of them a text
/// with only that extension, rewritten as a schema definition (`extend` blanked, an
/// operation-type body added at the end when it has none). Everything else is replaced by
/// spaces with newlines kept, so positions are unchanged in every text.
fn split_schema_extensions(source: &str) -> (String, Vec<String>) {
    let toks = tokens(source);
    let mut line_starts = vec![0usize];
    line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |loc: &Location| -> Option<usize> {
        let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
        let column = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        line_starts.get(line)?.checked_add(column)
    };
    let mut spans = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some((tok, loc)) = toks.get(i) {
        match tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => depth = depth.saturating_sub(1),
            Tok::Name("extend")
                if depth == 0 && matches!(toks.get(i + 1), Some((Tok::Name("schema"), _))) =>
            {
                // Directives (`@name`, optional arguments), then an optional `{ ... }`.
                let mut j = i + 2;
                let mut has_body = false;
                loop {
                    match toks.get(j) {
                        Some((Tok::Punct('@'), _)) => {
                            j += 2;
                            if matches!(toks.get(j), Some((Tok::Punct('('), _))) {
                                j = after_group(&toks, j);
                            }
                        }
                        Some((Tok::Punct('{'), _)) => {
                            has_body = true;
                            j = after_group(&toks, j);
                            break;
                        }
                        _ => break,
                    }
                }
                let end = toks
                    .get(j)
                    .and_then(|(_, l)| offset(l))
                    .unwrap_or(source.len());
                if let Some(start) = offset(loc) {
                    spans.push((start, end, has_body));
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let blank = |text: &str| -> String {
        text.chars()
            .map(|c| if c == '\n' || c == '\r' { c } else { ' ' })
            .collect()
    };
    let mut main = String::with_capacity(source.len());
    let mut extensions = Vec::new();
    let mut at = 0;
    for &(start, end, has_body) in &spans {
        let (Some(before), Some(span), Some(rest)) = (
            source.get(at..start),
            source.get(start..end),
            source.get(end..),
        ) else {
            continue;
        };
        main.push_str(before);
        main.push_str(&blank(span));
        at = end;
        let mut ext = blank(source.get(..start).unwrap_or(""));
        ext.push_str("      ");
        ext.push_str(span.get(6..).unwrap_or(""));
        if !has_body {
            ext.push_str(" { query: Query }");
        }
        ext.push_str(&blank(rest));
        extensions.push(ext);
    }
    main.push_str(source.get(at..).unwrap_or(""));
    (main, extensions)
}

/// The index after the bracket group opening at `open`.
fn after_group(toks: &[(Tok<'_>, Location)], open: usize) -> usize {
    let mut depth = 0usize;
    let mut j = open;
    while let Some((tok, _)) = toks.get(j) {
        j += 1;
        match tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    j
}
