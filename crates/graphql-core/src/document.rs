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
        // The common documents are read by a faster reader that builds the same AST;
        // everything else, errors included, is graphql-parser's.
        if let Some(ast) = crate::parser::parse(source) {
            return Ok(Document { source, ast });
        }
        match graphql_parser::parse_query::<&'a str>(source) {
            Ok(ast) => Ok(Document { source, ast }),
            Err(e) => Err(syntax_error(source, &e.to_string())),
        }
    }

    /// Every type-system definition at the top level of `source`, each as the "Executable
    /// Definitions" error (spec 5.1.1). [`Document::parse`] reports only the first.
    pub fn non_executable_definitions(source: &str) -> Vec<GraphQLError> {
        non_executable_definitions(source)
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
    if let Some(e) = non_executable_definitions(source).into_iter().next() {
        return e;
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

/// Type-system definitions at the top level of a document (spec 5.1.1), found by a token
/// scan because graphql-parser's query grammar cannot read them.
pub(crate) fn non_executable_definitions(source: &str) -> Vec<GraphQLError> {
    use crate::lexer::{Tok, tokens};
    const KEYWORDS: [&str; 9] = [
        "type",
        "interface",
        "union",
        "enum",
        "input",
        "scalar",
        "directive",
        "schema",
        "extend",
    ];
    let toks = tokens(source);
    let mut depth = 0usize;
    let mut out = Vec::new();
    for (i, (tok, loc)) in toks.iter().enumerate() {
        match tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => depth = depth.saturating_sub(1),
            Tok::Name(word) if depth == 0 && KEYWORDS.contains(word) => {
                let previous = i.checked_sub(1).and_then(|p| toks.get(p)).map(|t| t.0);
                let continues = matches!(
                    previous,
                    Some(
                        Tok::Name(
                            "query" | "mutation" | "subscription" | "fragment" | "on" | "extend"
                        ) | Tok::Punct('@' | '$' | ':')
                    )
                );
                // A name right after a type-system keyword is that definition's name, and
                // `implements`/`=` lists name types, not definitions: only keywords that
                // start a definition count.
                let after_definition_word =
                    matches!(previous, Some(Tok::Name(w)) if KEYWORDS.contains(&w));
                if continues || after_definition_word {
                    continue;
                }
                let extends_schema =
                    *word == "extend" && matches!(toks.get(i + 1), Some((Tok::Name("schema"), _)));
                let j = if *word == "extend" { i + 2 } else { i + 1 };
                // As graphql-js words it: a schema definition or extension has no name.
                let message = match (*word, toks.get(j)) {
                    ("schema", _) => "The schema definition is not executable.".to_owned(),
                    _ if extends_schema => "The schema definition is not executable.".to_owned(),
                    (_, Some((Tok::Name(n), _))) => {
                        format!("The \"{n}\" definition is not executable.")
                    }
                    _ => format!("The \"{word}\" definition is not executable."),
                };
                out.push(GraphQLError::new(message, vec![*loc]));
            }
            _ => {}
        }
    }
    out
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
