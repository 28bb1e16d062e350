//! Known directives and their locations in SDL (type-system) documents, as graphql-js's
//! `validateSDL` checks them with `KnownDirectivesRule` (spec sections 3.13 and 5.7.1-5.7.2
//! applied to type-system definitions).

use std::collections::HashMap;

use graphql_parser::schema::{
    Definition, Directive, Field, InputValue, TypeDefinition, TypeExtension,
};

use crate::error::Location;
use crate::lexer::split_schema_extensions;
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
