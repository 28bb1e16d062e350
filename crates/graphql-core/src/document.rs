//! Parsing an executable document (spec section 2) with graphql-parser.

use graphql_parser::query::{self as q};

use crate::error::Location;
use crate::response::GraphQLError;

/// The AST of a parsed executable document, borrowing the source text.
pub type Ast<'a> = q::Document<'a, &'a str>;

/// A parsed executable document: the source text and graphql-parser's AST borrowing it.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    pub(crate) source: &'a str,
    pub(crate) ast: Ast<'a>,
}

impl<'a> Document<'a> {
    /// Parses a document.
    ///
    /// # Errors
    ///
    /// A syntax error with its location. A document holding type-system definitions (which
    /// graphql-parser's query grammar cannot read) is reported as the "Executable
    /// Definitions" validation error (spec 5.1.1) instead of a bare syntax error.
    /// graphql-parser refuses nesting beyond 50 brackets (`(`, `[`, `{` counted together),
    /// which bounds recursion: such documents get a syntax error, never a stack overflow.
    pub fn parse(source: &'a str) -> Result<Self, GraphQLError> {
        match graphql_parser::parse_query::<&'a str>(source) {
            Ok(ast) => Ok(Document { source, ast }),
            Err(e) => Err(syntax_error(source, &e.to_string())),
        }
    }

    /// The source text.
    pub fn source(&self) -> &'a str {
        self.source
    }

    /// graphql-parser's AST.
    pub fn ast(&self) -> &Ast<'a> {
        &self.ast
    }
}

fn syntax_error(source: &str, message: &str) -> GraphQLError {
    // A document graphql-parser reads as SDL has type-system definitions in it.
    if let Ok(sdl) = graphql_parser::parse_schema::<&str>(source) {
        use graphql_parser::schema::Definition as D;
        if let Some(def) = sdl.definitions.first() {
            let (what, pos) = match def {
                D::SchemaDefinition(s) => ("schema".to_owned(), s.position),
                D::TypeDefinition(t) => type_definition_name(t),
                D::TypeExtension(t) => type_extension_name(t),
                D::DirectiveDefinition(d) => (format!("@{}", d.name), d.position),
            };
            return GraphQLError::new(
                format!("The \"{what}\" definition is not executable."),
                vec![Location::from_pos(pos)],
            );
        }
    }
    let location = parse_error_location(message);
    let detail = message
        .split_once('\n')
        .map_or(message, |(_, rest)| rest)
        .trim()
        .replace('\n', "; ");
    GraphQLError::new(
        format!("Syntax Error: {detail}"),
        location.into_iter().collect(),
    )
}

fn type_definition_name<'x>(
    t: &graphql_parser::schema::TypeDefinition<'x, &'x str>,
) -> (String, graphql_parser::Pos) {
    use graphql_parser::schema::TypeDefinition as T;
    match t {
        T::Scalar(t) => (t.name.to_owned(), t.position),
        T::Object(t) => (t.name.to_owned(), t.position),
        T::Interface(t) => (t.name.to_owned(), t.position),
        T::Union(t) => (t.name.to_owned(), t.position),
        T::Enum(t) => (t.name.to_owned(), t.position),
        T::InputObject(t) => (t.name.to_owned(), t.position),
    }
}

fn type_extension_name<'x>(
    t: &graphql_parser::schema::TypeExtension<'x, &'x str>,
) -> (String, graphql_parser::Pos) {
    use graphql_parser::schema::TypeExtension as T;
    match t {
        T::Scalar(t) => (t.name.to_owned(), t.position),
        T::Object(t) => (t.name.to_owned(), t.position),
        T::Interface(t) => (t.name.to_owned(), t.position),
        T::Union(t) => (t.name.to_owned(), t.position),
        T::Enum(t) => (t.name.to_owned(), t.position),
        T::InputObject(t) => (t.name.to_owned(), t.position),
    }
}

/// graphql-parser's messages read "query parse error: Parse error at L:C\n...".
fn parse_error_location(message: &str) -> Option<Location> {
    let rest = message.split_once(" at ")?.1;
    let head = rest.split(|c: char| c.is_whitespace()).next()?;
    let (line, column) = head.split_once(':')?;
    Some(Location {
        line: line.parse().ok()?,
        column: column.parse().ok()?,
    })
}
