//! A fast path in front of graphql-parser: a hand-written recursive-descent reader of the
//! common executable documents that builds graphql-parser's own AST (the same types, the same
//! positions), without its parser-combinator machinery.
//!
//! It reads a subset of what graphql-parser accepts and, for that subset, builds exactly the
//! AST graphql-parser builds (a test compares the two on every document of the test suite
//! and on mutated ones). Anything outside the subset, and every syntax error, returns `None`,
//! and [`Document::parse`](crate::Document::parse) asks graphql-parser itself, so errors and
//! rare forms (block strings, escapes in strings, exponents, integers beyond 32 bits,
//! nesting deeper than 40 brackets) keep graphql-parser's exact behaviour.
//!
//! ```text
//! { hello }   ->   Document { definitions: [Operation(SelectionSet { items: [Field(hello)] })] }
//! ```
//!
//! Positions follow graphql-parser's tokenizer: a tab counts 8 columns, `\r` and a byte
//! order mark count none, a comment ends at `\r` or `\n` (each starts a new line), and an
//! inline fragment or fragment spread is placed at the token after `...`.

use std::collections::BTreeMap;

use graphql_parser::Pos;
use graphql_parser::query::{
    Definition, Directive, Document, Field, FragmentDefinition, FragmentSpread, InlineFragment,
    Mutation, Number, OperationDefinition, Query, Selection, SelectionSet, Subscription, Type,
    TypeCondition, Value, VariableDefinition,
};

/// graphql-parser refuses more than 50 open brackets; staying well under it leaves that
/// decision (and its error) to graphql-parser.
const MAX_DEPTH: usize = 40;

type Doc<'a> = Document<'a, &'a str>;
type Val<'a> = Value<'a, &'a str>;

/// The AST of `source`, or `None` when the fast path does not read it (then graphql-parser
/// decides).
pub(crate) fn parse(source: &str) -> Option<Doc<'_>> {
    let mut p = Parser {
        src: source,
        off: 0,
        pos: Pos { line: 1, column: 1 },
        depth: 0,
        tok: Tok::Eof,
        tok_pos: Pos { line: 1, column: 1 },
    };
    p.skip_ignored();
    p.lex()?;
    let mut definitions = Vec::new();
    while p.tok != Tok::Eof {
        definitions.push(p.definition()?);
    }
    if definitions.is_empty() {
        return None;
    }
    Some(Document { definitions })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    /// `{ } ( ) [ ] ! $ : = @`, and `.` for `...`.
    Punct(u8),
    Name(&'a str),
    Int(i32),
    Float(f64),
    /// A string without escapes: its text between the quotes.
    Str(&'a str),
    Eof,
}

struct Parser<'a> {
    src: &'a str,
    /// Where the text after the current token starts.
    off: usize,
    /// The position at `off`, counted as graphql-parser counts.
    pos: Pos,
    /// Open brackets.
    depth: usize,
    /// The current token and where it starts.
    tok: Tok<'a>,
    tok_pos: Pos,
}

impl<'a> Parser<'a> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    /// Skips what graphql-parser's tokenizer skips between tokens, counting as it counts.
    fn skip_ignored(&mut self) {
        while let Some(b) = self.byte(self.off) {
            match b {
                b'\r' => self.off += 1,
                b'\t' => {
                    self.pos.column += 8;
                    self.off += 1;
                }
                b'\n' => {
                    self.pos.column = 1;
                    self.pos.line += 1;
                    self.off += 1;
                }
                b' ' | b',' => {
                    self.pos.column += 1;
                    self.off += 1;
                }
                // U+FEFF, the byte order mark.
                0xEF if self
                    .src
                    .get(self.off..)
                    .is_some_and(|s| s.starts_with('\u{feff}')) =>
                {
                    self.off += 3;
                }
                b'#' => {
                    self.off += 1;
                    while let Some(c) = self.byte(self.off) {
                        self.off += 1;
                        if c == b'\r' || c == b'\n' {
                            self.pos.column = 1;
                            self.pos.line += 1;
                            break;
                        }
                    }
                }
                _ => break,
            }
        }
    }

    /// Reads the token at `off` into `tok` and moves past it and the ignored text after it.
    /// `None` for anything the fast path leaves to graphql-parser.
    fn lex(&mut self) -> Option<()> {
        self.tok_pos = self.pos;
        let start = self.off;
        let Some(b) = self.byte(start) else {
            self.tok = Tok::Eof;
            return Some(());
        };
        let (tok, len, columns) = match b {
            b'{' | b'(' | b'[' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return None;
                }
                (Tok::Punct(b), 1, 1)
            }
            b'}' | b')' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                (Tok::Punct(b), 1, 1)
            }
            b'!' | b'$' | b':' | b'=' | b'@' => (Tok::Punct(b), 1, 1),
            b'.' if self.src.get(start..).is_some_and(|s| s.starts_with("...")) => {
                (Tok::Punct(b'.'), 3, 3)
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                let rest = self.src.get(start..)?;
                let len = rest
                    .bytes()
                    .position(|c| !(c == b'_' || c.is_ascii_alphanumeric()))
                    .unwrap_or(rest.len());
                (Tok::Name(rest.get(..len)?), len, len)
            }
            b'-' | b'0'..=b'9' => {
                let rest = self.src.get(start..)?;
                // graphql-parser's number token runs to the next punctuator or separator.
                let len = rest
                    .bytes()
                    .position(|c| {
                        matches!(
                            c,
                            b' ' | b'\n'
                                | b'\r'
                                | b'\t'
                                | b','
                                | b'#'
                                | b'!'
                                | b'$'
                                | b':'
                                | b'='
                                | b'@'
                                | b'|'
                                | b'&'
                                | b'('
                                | b')'
                                | b'['
                                | b']'
                                | b'{'
                                | b'}'
                        )
                    })
                    .unwrap_or(rest.len());
                let text = rest.get(..len)?;
                (number(text)?, len, len)
            }
            b'"' => {
                let rest = self.src.get(start + 1..)?;
                if rest.starts_with("\"\"") {
                    return None;
                }
                let end = rest
                    .bytes()
                    .position(|c| matches!(c, b'"' | b'\\' | b'\n'))?;
                if rest.as_bytes().get(end) != Some(&b'"') {
                    return None;
                }
                let text = rest.get(..end)?;
                (Tok::Str(text), end + 2, text.chars().count() + 2)
            }
            _ => return None,
        };
        self.tok = tok;
        self.off = start + len;
        self.pos.column += columns;
        self.skip_ignored();
        Some(())
    }

    fn bump(&mut self) -> Option<()> {
        self.lex()
    }

    fn expect(&mut self, punct: u8) -> Option<()> {
        if self.tok == Tok::Punct(punct) {
            self.bump()
        } else {
            None
        }
    }

    fn name(&mut self) -> Option<&'a str> {
        match self.tok {
            Tok::Name(n) => {
                self.bump()?;
                Some(n)
            }
            _ => None,
        }
    }

    fn definition(&mut self) -> Option<Definition<'a, &'a str>> {
        let position = self.tok_pos;
        match self.tok {
            Tok::Punct(b'{') => Some(Definition::Operation(OperationDefinition::SelectionSet(
                self.selection_set()?,
            ))),
            Tok::Name("query") => {
                self.bump()?;
                let (name, variable_definitions, directives, selection_set) = self.operation()?;
                Some(Definition::Operation(OperationDefinition::Query(Query {
                    position,
                    name,
                    variable_definitions,
                    directives,
                    selection_set,
                })))
            }
            Tok::Name("mutation") => {
                self.bump()?;
                let (name, variable_definitions, directives, selection_set) = self.operation()?;
                Some(Definition::Operation(OperationDefinition::Mutation(
                    Mutation {
                        position,
                        name,
                        variable_definitions,
                        directives,
                        selection_set,
                    },
                )))
            }
            Tok::Name("subscription") => {
                self.bump()?;
                let (name, variable_definitions, directives, selection_set) = self.operation()?;
                Some(Definition::Operation(OperationDefinition::Subscription(
                    Subscription {
                        position,
                        name,
                        variable_definitions,
                        directives,
                        selection_set,
                    },
                )))
            }
            Tok::Name("fragment") => {
                self.bump()?;
                let name = self.name()?;
                if self.tok != Tok::Name("on") {
                    return None;
                }
                self.bump()?;
                let on = self.name()?;
                let directives = self.directives()?;
                let selection_set = self.selection_set()?;
                Some(Definition::Fragment(FragmentDefinition {
                    position,
                    name,
                    type_condition: TypeCondition::On(on),
                    directives,
                    selection_set,
                }))
            }
            _ => None,
        }
    }

    /// What follows `query`, `mutation` or `subscription`.
    #[allow(clippy::type_complexity)]
    fn operation(
        &mut self,
    ) -> Option<(
        Option<&'a str>,
        Vec<VariableDefinition<'a, &'a str>>,
        Vec<Directive<'a, &'a str>>,
        SelectionSet<'a, &'a str>,
    )> {
        let name = match self.tok {
            Tok::Name(n) => {
                self.bump()?;
                Some(n)
            }
            _ => None,
        };
        let mut variables = Vec::new();
        if self.tok == Tok::Punct(b'(') {
            self.bump()?;
            while self.tok == Tok::Punct(b'$') {
                let position = self.tok_pos;
                self.bump()?;
                let name = self.name()?;
                self.expect(b':')?;
                let var_type = self.ty()?;
                let default_value = if self.tok == Tok::Punct(b'=') {
                    self.bump()?;
                    Some(self.value(true)?)
                } else {
                    None
                };
                variables.push(VariableDefinition {
                    position,
                    name,
                    var_type,
                    default_value,
                });
            }
            if variables.is_empty() {
                return None;
            }
            self.expect(b')')?;
        }
        let directives = self.directives()?;
        let selection_set = self.selection_set()?;
        Some((name, variables, directives, selection_set))
    }

    fn ty(&mut self) -> Option<Type<'a, &'a str>> {
        let ty = match self.tok {
            Tok::Name(n) => {
                self.bump()?;
                Type::NamedType(n)
            }
            Tok::Punct(b'[') => {
                self.bump()?;
                let inner = self.ty()?;
                self.expect(b']')?;
                Type::ListType(Box::new(inner))
            }
            _ => return None,
        };
        if self.tok == Tok::Punct(b'!') {
            self.bump()?;
            return Some(Type::NonNullType(Box::new(ty)));
        }
        Some(ty)
    }

    fn directives(&mut self) -> Option<Vec<Directive<'a, &'a str>>> {
        let mut out = Vec::new();
        while self.tok == Tok::Punct(b'@') {
            let position = self.tok_pos;
            self.bump()?;
            let name = self.name()?;
            let arguments = self.arguments()?;
            out.push(Directive {
                position,
                name,
                arguments,
            });
        }
        Some(out)
    }

    fn arguments(&mut self) -> Option<Vec<(&'a str, Val<'a>)>> {
        let mut out = Vec::new();
        if self.tok != Tok::Punct(b'(') {
            return Some(out);
        }
        self.bump()?;
        while let Tok::Name(name) = self.tok {
            self.bump()?;
            self.expect(b':')?;
            out.push((name, self.value(false)?));
        }
        if out.is_empty() {
            return None;
        }
        self.expect(b')')?;
        Some(out)
    }

    /// A value; `constant`: no variables (a default value).
    fn value(&mut self, constant: bool) -> Option<Val<'a>> {
        let value = match self.tok {
            Tok::Name("true") => Value::Boolean(true),
            Tok::Name("false") => Value::Boolean(false),
            Tok::Name("null") => Value::Null,
            Tok::Name(n) => Value::Enum(n),
            Tok::Int(n) => Value::Int(Number::from(n)),
            Tok::Float(f) => Value::Float(f),
            Tok::Str(s) => Value::String(s.to_owned()),
            Tok::Punct(b'$') if !constant => {
                self.bump()?;
                return Some(Value::Variable(self.name()?));
            }
            Tok::Punct(b'[') => {
                self.bump()?;
                let mut items = Vec::new();
                while self.tok != Tok::Punct(b']') {
                    items.push(self.value(constant)?);
                }
                self.bump()?;
                return Some(Value::List(items));
            }
            Tok::Punct(b'{') => {
                self.bump()?;
                let mut fields = BTreeMap::new();
                while let Tok::Name(name) = self.tok {
                    self.bump()?;
                    self.expect(b':')?;
                    // A repeated name keeps its last value, as graphql-parser's map does.
                    fields.insert(name, self.value(constant)?);
                }
                self.expect(b'}')?;
                return Some(Value::Object(fields));
            }
            _ => return None,
        };
        self.bump()?;
        Some(value)
    }

    fn selection_set(&mut self) -> Option<SelectionSet<'a, &'a str>> {
        let start = self.tok_pos;
        self.expect(b'{')?;
        let mut items = Vec::new();
        loop {
            match self.tok {
                Tok::Name(_) => items.push(Selection::Field(self.field()?)),
                Tok::Punct(b'.') => items.push(self.fragment()?),
                Tok::Punct(b'}') if !items.is_empty() => break,
                _ => return None,
            }
        }
        let end = self.tok_pos;
        self.bump()?;
        Some(SelectionSet {
            span: (start, end),
            items,
        })
    }

    fn field(&mut self) -> Option<Field<'a, &'a str>> {
        let position = self.tok_pos;
        let first = self.name()?;
        let (alias, name) = if self.tok == Tok::Punct(b':') {
            self.bump()?;
            (Some(first), self.name()?)
        } else {
            (None, first)
        };
        let arguments = self.arguments()?;
        let directives = self.directives()?;
        let selection_set = if self.tok == Tok::Punct(b'{') {
            self.selection_set()?
        } else {
            SelectionSet {
                span: (position, position),
                items: Vec::new(),
            }
        };
        Some(Field {
            position,
            alias,
            name,
            arguments,
            directives,
            selection_set,
        })
    }

    /// After `...`: an inline fragment or a fragment spread, placed at the next token.
    fn fragment(&mut self) -> Option<Selection<'a, &'a str>> {
        self.bump()?;
        let position = self.tok_pos;
        let type_condition = match self.tok {
            Tok::Name("on") => {
                self.bump()?;
                Some(TypeCondition::On(self.name()?))
            }
            Tok::Name(fragment_name) => {
                self.bump()?;
                let directives = self.directives()?;
                return Some(Selection::FragmentSpread(FragmentSpread {
                    position,
                    fragment_name,
                    directives,
                }));
            }
            _ => None,
        };
        let directives = self.directives()?;
        let selection_set = self.selection_set()?;
        Some(Selection::InlineFragment(InlineFragment {
            position,
            type_condition,
            directives,
            selection_set,
        }))
    }
}

/// A number token: `-?(0|[1-9][0-9]*)` as a 32-bit `Int`, or that with `.` and digits as a
/// `Float`; anything else (exponents, larger integers, malformed numbers) is left to
/// graphql-parser.
fn number(text: &str) -> Option<Tok<'_>> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let int_ok = !int.is_empty()
        && int.bytes().all(|c| c.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'));
    if !int_ok {
        return None;
    }
    match frac {
        None => text.parse::<i32>().ok().map(Tok::Int),
        Some(frac) if !frac.is_empty() && frac.bytes().all(|c| c.is_ascii_digit()) => {
            text.parse::<f64>().ok().map(Tok::Float)
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::parse;

    /// The fast path reads `source` exactly as graphql-parser does, or leaves it to it.
    pub(crate) fn agrees(source: &str) -> bool {
        match parse(source) {
            None => false,
            Some(ours) => {
                let theirs = graphql_parser::parse_query::<&str>(source).unwrap_or_else(|e| {
                    panic!("fast path accepted {source:?}; graphql-parser: {e}")
                });
                assert_eq!(ours, theirs, "{source:?}");
                true
            }
        }
    }

    const DOCUMENTS: &[&str] = &[
        "{ hello }",
        "{a}",
        "query { a b c }",
        "query Q($x: Int = 3, $y: [String!]! = [\"a\" \"b\"], $z: In = {a: 1, b: [true, null, E]}) @d(a: $x) { f(a: $x, b: -12, c: 1.5, d: -0.25, e: \"é text\") @skip(if: $y) { g: h i } }",
        "mutation M { do(x: {k: {l: [1 2 [3]]}}) { ok } }\nsubscription S { tick }",
        "fragment F on T @d { a ...G ... on U { b } ... @include(if: true) { c } ... { d } }\n{ ...F }",
        "# comment\n{\r\n\ta # trailing\r\n\t\tb\n}",
        "\u{feff}{ a, b,, c }",
        "query  { a(o: {b: 1, b: 2}) }",
        "{ on fragment query mutation subscription true false null }",
        "fragment on on on { a }",
        "{ a(x: -0) b(x: 0) c(x: 2147483647) d(x: -2147483648) e(x: 0.0) }",
        "{ items { a b c d e } }",
    ];

    const LEFT_TO_GRAPHQL_PARSER: &[&str] = &[
        "",
        "{}",
        "{ a(x: 1e5) }",
        "{ a(x: 2147483648) }",
        "{ a(x: \"\\n\") }",
        "{ a(x: \"\"\"block\"\"\") }",
        "{ a(x: 01) }",
        "{ a(x: 1.) }",
        "query ($x: Int @d) { a }",
        "{ a(x: $v) } extra",
        "type Query { a: Int }",
        "{ a ... }",
        "{ a(x: \"unterminated\n\") }",
        "query Q() { a }",
        "{ a() }",
        "{ a | b }",
        "{ a . b }",
        "query ($x: Int = $y) { a }",
    ];

    #[test]
    fn agrees_with_graphql_parser() {
        for doc in DOCUMENTS {
            assert!(agrees(doc), "the fast path did not read {doc:?}");
        }
        for doc in LEFT_TO_GRAPHQL_PARSER {
            assert!(parse(doc).is_none(), "{doc:?}");
        }
        // Deep nesting is left to graphql-parser's own limit.
        let deep = format!("{}a{}", "{ a ".repeat(45), " }".repeat(45));
        assert!(parse(&deep).is_none());
        let fine = format!("{}a{}", "{ a ".repeat(30), " }".repeat(30));
        assert!(agrees(&fine));
    }

    /// The documents of graphql-js's validation tests (tests/data): every one the fast
    /// path reads, it reads as graphql-parser does.
    #[test]
    fn graphql_js_documents_agree() {
        let data: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/graphql-js-validation.json")).unwrap();
        let cases = data["cases"].as_array().unwrap();
        let read = cases
            .iter()
            .filter(|case| agrees(case["document"].as_str().unwrap()))
            .count();
        assert!(read * 10 > cases.len() * 9, "{read} of {}", cases.len());
    }

    /// Mutations of the documents above (bytes replaced, removed, doubled, tokens inserted):
    /// whatever the fast path accepts, graphql-parser accepts with the same AST.
    #[test]
    fn mutated_documents_agree_or_fall_back() {
        const PIECES: &[&str] = &[
            "{", "}", "(", ")", "[", "]", ":", "$", "@", "!", "=", "...", " ", "\n", "\t", ",",
            "#", "\"", "\r", "-", "0", "1", ".", "e", "on", "a", "é", "\\", "query",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let base = DOCUMENTS[next(DOCUMENTS.len())];
            let mut doc: Vec<char> = base.chars().collect();
            for _ in 0..1 + next(3) {
                let at = next(doc.len() + 1);
                match next(3) {
                    0 if at < doc.len() => {
                        doc.remove(at);
                    }
                    1 if at < doc.len() => {
                        let c = doc[at];
                        doc.insert(at, c);
                    }
                    _ => {
                        for (i, c) in PIECES[next(PIECES.len())].chars().enumerate() {
                            doc.insert(at + i, c);
                        }
                    }
                }
            }
            let doc: String = doc.into_iter().collect();
            if agrees(&doc) {
                accepted += 1;
            }
        }
        // Enough mutants stay valid for the comparison to mean something.
        assert!(accepted > 1_000, "{accepted}");
    }
}
