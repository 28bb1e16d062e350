//! Limits on a request, checked before validation and execution so that hostile documents
//! cost bounded time and memory: document size, tokens, depth, aliases and complexity.

use std::collections::HashMap;

use graphql_parser::query::{Definition, Selection, SelectionSet, Value};
use serde_json::Map;

use crate::document::{Ast, Document};
use crate::response::GraphQLError;
use crate::schema::SchemaInner;
use crate::schema::types::TypeId;
use crate::validation::duplicate_keys::count_tokens;

/// Limits on a request. The defaults suit a public API; raise them for trusted clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest document, in bytes (checked before parsing).
    pub max_document_bytes: usize,
    /// Most lexical tokens in a document (checked before parsing).
    pub max_tokens: usize,
    /// Deepest field nesting of an operation, fragments followed (root fields are depth 1).
    pub max_depth: usize,
    /// Most aliased fields in an operation, counting each fragment spread.
    pub max_aliases: usize,
    /// Highest complexity: each field costs its cost (1 unless `SchemaBuilder::cost` says
    /// otherwise) plus its sub-selection's cost times the integer value of its `first`,
    /// `last` or `limit` argument when it has one.
    pub max_complexity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_bytes: 64 * 1024,
            max_tokens: 10_000,
            max_depth: 24,
            max_aliases: 64,
            max_complexity: 10_000,
        }
    }
}

fn limit_error(message: String) -> GraphQLError {
    let mut e = GraphQLError::new(message, vec![]);
    let mut ext = Map::new();
    ext.insert("code".to_owned(), "LIMIT_EXCEEDED".into());
    e.extensions = Some(ext);
    e
}

impl Limits {
    /// No limits at all (for trusted, internal use).
    pub fn unlimited() -> Self {
        Limits {
            max_document_bytes: usize::MAX,
            max_tokens: usize::MAX,
            max_depth: usize::MAX,
            max_aliases: usize::MAX,
            max_complexity: usize::MAX,
        }
    }

    /// Size and token count of the text, before it is parsed.
    ///
    /// # Errors
    ///
    /// A request error naming the limit.
    pub fn check_source(&self, source: &str) -> Result<(), GraphQLError> {
        if source.len() > self.max_document_bytes {
            return Err(limit_error(format!(
                "The document is {} bytes, more than the limit of {}.",
                source.len(),
                self.max_document_bytes
            )));
        }
        if self.max_tokens != usize::MAX {
            let count = count_tokens(source);
            if count > self.max_tokens {
                return Err(limit_error(format!(
                    "The document has {count} tokens, more than the limit of {}.",
                    self.max_tokens
                )));
            }
        }
        Ok(())
    }

    /// Depth, aliases and complexity of every operation of a parsed document.
    ///
    /// # Errors
    ///
    /// A request error naming the first limit exceeded.
    pub fn check_document(
        &self,
        document: &Document<'_>,
        variables: &Map<String, serde_json::Value>,
    ) -> Result<(), GraphQLError> {
        self.check_document_with(None, document, variables)
    }

    /// Like [`Limits::check_document`], with each field's cost from the schema
    /// (`SchemaBuilder::cost`; 1 by default).
    pub(crate) fn check_document_with(
        &self,
        schema: Option<&SchemaInner>,
        document: &Document<'_>,
        variables: &Map<String, serde_json::Value>,
    ) -> Result<(), GraphQLError> {
        let mut m = Measure {
            ast: &document.ast,
            schema,
            variables,
            memo: HashMap::new(),
        };
        for def in &document.ast.definitions {
            if let Definition::Operation(op) = def {
                let op = crate::validation::op_of(op);
                let root = schema.and_then(|s| match op.kind {
                    crate::validation::OpKind::Query => Some(s.query),
                    crate::validation::OpKind::Mutation => s.mutation,
                    crate::validation::OpKind::Subscription => s.subscription,
                });
                let cost = m.set(root, op.selection_set);
                if cost.depth > self.max_depth {
                    return Err(limit_error(format!(
                        "The query is nested {} levels deep, more than the limit of {}.",
                        cost.depth, self.max_depth
                    )));
                }
                if cost.aliases > self.max_aliases {
                    return Err(limit_error(format!(
                        "The query uses {} aliases, more than the limit of {}.",
                        cost.aliases, self.max_aliases
                    )));
                }
                if cost.complexity > self.max_complexity {
                    return Err(limit_error(format!(
                        "The query has complexity {}, more than the limit of {}.",
                        cost.complexity, self.max_complexity
                    )));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    depth: usize,
    aliases: usize,
    complexity: usize,
}

struct Measure<'d, 'a> {
    ast: &'d Ast<'a>,
    schema: Option<&'d SchemaInner>,
    variables: &'d Map<String, serde_json::Value>,
    /// Cost of each fragment, computed once; `None` while being computed (a cycle, which
    /// validation reports; it costs nothing more here).
    memo: HashMap<&'a str, Option<Cost>>,
}

impl<'d, 'a> Measure<'d, 'a> {
    fn type_named(&self, name: &str) -> Option<TypeId> {
        self.schema.and_then(|s| s.type_index.get(name).copied())
    }

    fn set(&mut self, parent: Option<TypeId>, set: &'d SelectionSet<'a, &'a str>) -> Cost {
        let mut total = Cost::default();
        for sel in &set.items {
            match sel {
                Selection::Field(f) => {
                    let def = match (self.schema, parent) {
                        (Some(s), Some(p)) => s.field(p, f.name),
                        _ => None,
                    };
                    let own = def.map_or(1, |d| usize::try_from(d.cost).unwrap_or(usize::MAX));
                    let child = self.set(def.map(|d| d.ty.named()), &f.selection_set);
                    let multiplier = f
                        .arguments
                        .iter()
                        .find(|(n, _)| matches!(*n, "first" | "last" | "limit"))
                        .and_then(|(_, v)| match v {
                            Value::Int(n) => n.as_i64(),
                            Value::Variable(name) => self
                                .variables
                                .get(*name)
                                .and_then(serde_json::Value::as_i64),
                            _ => None,
                        })
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(1)
                        .max(1);
                    total.depth = total.depth.max(child.depth.saturating_add(1));
                    total.aliases = total
                        .aliases
                        .saturating_add(usize::from(f.alias.is_some()))
                        .saturating_add(child.aliases.saturating_mul(multiplier));
                    total.complexity = total
                        .complexity
                        .saturating_add(own)
                        .saturating_add(child.complexity.saturating_mul(multiplier));
                }
                Selection::InlineFragment(i) => {
                    let ty = match &i.type_condition {
                        Some(graphql_parser::query::TypeCondition::On(on)) => self.type_named(on),
                        None => parent,
                    };
                    let c = self.set(ty, &i.selection_set);
                    total = add(total, c);
                }
                Selection::FragmentSpread(s) => {
                    let c = self.fragment(s.fragment_name);
                    total = add(total, c);
                }
            }
        }
        total
    }

    fn fragment(&mut self, name: &'a str) -> Cost {
        match self.memo.get(name) {
            Some(Some(c)) => return *c,
            Some(None) => return Cost::default(),
            None => {}
        }
        self.memo.insert(name, None);
        let ast = self.ast;
        let frag = ast.definitions.iter().find_map(|d| match d {
            Definition::Fragment(f) if f.name == name => Some(f),
            _ => None,
        });
        let cost = frag
            .map(|f| {
                let graphql_parser::query::TypeCondition::On(on) = &f.type_condition;
                let ty = self.type_named(on);
                self.set(ty, &f.selection_set)
            })
            .unwrap_or_default();
        self.memo.insert(name, Some(cost));
        cost
    }
}

fn add(a: Cost, b: Cost) -> Cost {
    Cost {
        depth: a.depth.max(b.depth),
        aliases: a.aliases.saturating_add(b.aliases),
        complexity: a.complexity.saturating_add(b.complexity),
    }
}
