//! The limits analysis: a request's document measured against [`Limits`] before it is
//! validated and executed, so that hostile documents cost bounded time and memory: size and
//! tokens before parsing, then depth, aliases and complexity of every operation.

use std::collections::HashMap;

use graphql_parser::query::{Definition, Field, Selection, SelectionSet, Value};
use serde_json::Map;

use crate::document::{Ast, Document};
use crate::lexer::count_tokens;
use crate::limits::{Limits, limit_error};
use crate::response::GraphQLError;
use crate::schema::SchemaInner;
use crate::types::{FieldDef, TypeId};

impl Limits {
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
            defaults: &[],
            assumed_list_size: self.assumed_list_size.max(1),
            memo: HashMap::new(),
        };
        for def in &document.ast.definitions {
            if let Definition::Operation(op) = def {
                let op = super::op_of(op);
                // A variable the request leaves out takes its default (finding: the default
                // escaped the multiplier when only the raw variables were read).
                m.defaults = op.variables;
                m.memo.clear();
                let root = schema.and_then(|s| match op.kind {
                    super::OpKind::Query => Some(s.query),
                    super::OpKind::Mutation => s.mutation,
                    super::OpKind::Subscription => s.subscription,
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
    /// The current operation's variable definitions, for the defaults of variables the
    /// request leaves out.
    defaults: &'d [graphql_parser::query::VariableDefinition<'a, &'a str>],
    assumed_list_size: usize,
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
                    let multiplier = self.multiplier(f, def);
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

    /// How many times a field's sub-selection counts: its `first`/`last`/`limit` argument
    /// (literal, variable or default), else the assumed size of a list, else 1.
    fn multiplier(&self, f: &Field<'a, &'a str>, def: Option<&FieldDef>) -> usize {
        const SIZE_ARGS: [&str; 3] = ["first", "last", "limit"];
        let given = f
            .arguments
            .iter()
            .find(|(n, _)| SIZE_ARGS.contains(n))
            .and_then(|(_, v)| match v {
                Value::Int(n) => n.as_i64(),
                Value::Variable(name) => match self.variables.get(*name) {
                    Some(v) => v.as_i64(),
                    None => self
                        .defaults
                        .iter()
                        .find(|d| d.name == *name)
                        .and_then(|d| match &d.default_value {
                            Some(Value::Int(n)) => n.as_i64(),
                            _ => None,
                        }),
                },
                _ => None,
            });
        let size = given.or_else(|| {
            // The argument left out (or given as a variable without a value): its default.
            let def = def?;
            def.args
                .iter()
                .filter(|a| SIZE_ARGS.contains(&a.name.as_str()))
                .find_map(|a| a.default_value.as_ref().and_then(serde_json::Value::as_i64))
        });
        match size {
            Some(n) => usize::try_from(n).unwrap_or(0).max(1),
            None => match def {
                Some(d) if d.ty.nullable().is_list() => match d.list_size {
                    Some(n) => usize::try_from(n).unwrap_or(usize::MAX).max(1),
                    None => self.assumed_list_size,
                },
                _ => 1,
            },
        }
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
