//! Executing a request against a schema (spec section 6).

mod executor;
mod incremental;
mod request;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use graphql_parser::query::{Definition, Selection, SelectionSet};
use serde_json::{Map, Value};

pub use incremental::{IncrementalFormat, IncrementalPayload, IncrementalStream};
pub use request::{Request, Response};

use crate::cache_control::CachePolicy;
use crate::coerce::{coerce_input_value, coerce_literal};
use crate::document::Document;
use crate::document_cache::{CachedDocument, OwnedDocument};
use crate::error::Location;
use crate::resolver::Context;
use crate::response::GraphQLError;
use crate::schema::Schema;
use crate::validation::{Op, OpKind, op_of, validate};
pub(crate) use executor::Exec;
use executor::Stop;

impl Schema {
    /// Runs a request: limits, parsing, validation, operation selection, variable
    /// coercion, then execution (spec 6.1). Never panics on input; every problem is an error
    /// in the response.
    ///
    /// The future is boxed: it borrows graphql-parser's AST, whose `Text` impl for `&str`
    /// defeats the compiler's `Send` inference for an `async fn`'s opaque future; boxing
    /// as `dyn Future + Send` checks it where the lifetimes are known.
    pub fn execute<'r>(
        &'r self,
        request: &'r Request,
        ctx: &'r Context,
    ) -> Pin<Box<dyn Future<Output = Response> + Send + 'r>> {
        self.run(request, ctx, true, None)
    }

    /// Like [`Schema::execute`] but without validating the document: only for documents
    /// known to be valid (trusted documents, persisted queries validated when stored).
    /// Unknown fields are skipped and fragment cycles are cut, so an invalid document still
    /// cannot make execution loop or panic.
    pub fn execute_without_validation<'r>(
        &'r self,
        request: &'r Request,
        ctx: &'r Context,
    ) -> Pin<Box<dyn Future<Output = Response> + Send + 'r>> {
        self.run(request, ctx, false, None)
    }

    fn run<'r>(
        &'r self,
        request: &'r Request,
        ctx: &'r Context,
        validation: bool,
        sink: Option<Arc<incremental::Sink>>,
    ) -> Pin<Box<dyn Future<Output = Response> + Send + 'r>> {
        let future = self.run_checked(request, ctx, validation, sink);
        if !self.inner.cache_control {
            return future;
        }
        Box::pin(async move {
            let mut response = future.await;
            // A request that did not execute is not cacheable either.
            response.cache_policy.get_or_insert(CachePolicy::NO_STORE);
            response
        })
    }

    fn run_checked<'r>(
        &'r self,
        request: &'r Request,
        ctx: &'r Context,
        validation: bool,
        sink: Option<Arc<incremental::Sink>>,
    ) -> Pin<Box<dyn Future<Output = Response> + Send + 'r>> {
        Box::pin(async move {
            let schema = &*self.inner;
            let cache = &schema.documents;
            // A cached document passed the size and token limits, parsed, and passed the
            // other limits (with every variable value, when it has none) and, unless it
            // was stored by a run without validation, validation. The future borrows the
            // entry (an `Arc` held by this block), so an eviction meanwhile frees nothing
            // in use.
            if let Some(entry) = cache.get(&request.query) {
                let checks = Checks {
                    limits: !entry.variable_free,
                    validation: validation && !entry.is_validated(),
                };
                let (checked, future) = entry.document.with_dependent(|_, document| {
                    self.run_document(document, request, ctx, checks, sink)
                });
                if checks.validation && checked == Checked::Valid {
                    entry.mark_validated();
                }
                return future.await;
            }
            if let Err(e) = schema.limits.check_source(&request.query) {
                return Response::request_error(e);
            }
            let checks = Checks {
                limits: true,
                validation,
            };
            if cache.may_hold(&request.query) {
                let document = match OwnedDocument::parse(&request.query) {
                    Ok(d) => d,
                    Err(e) => return syntax_error_response(&request.query, e),
                };
                let entry = Arc::new(CachedDocument::new(document));
                let (checked, future) = entry.document.with_dependent(|_, document| {
                    self.run_document(document, request, ctx, checks, sink)
                });
                match checked {
                    Checked::Valid => {
                        entry.mark_validated();
                        cache.insert(Arc::clone(&entry));
                    }
                    Checked::NotValidated => cache.insert(Arc::clone(&entry)),
                    Checked::Failed => {}
                }
                return future.await;
            }
            let document = match Document::parse(&request.query) {
                Ok(d) => d,
                Err(e) => return syntax_error_response(&request.query, e),
            };
            let (_, future) = self.run_document(&document, request, ctx, checks, sink);
            future.await
        })
    }

    /// Runs a parsed document: the checks that are still to do (limits, validation), then
    /// operation selection, variable coercion and execution. The checks run before this
    /// returns, and their outcome comes back with the future that executes.
    fn run_document<'d, 'a>(
        &'d self,
        document: &'d Document<'a>,
        request: &'d Request,
        ctx: &'d Context,
        checks: Checks,
        sink: Option<Arc<incremental::Sink>>,
    ) -> (Checked, Pin<Box<dyn Future<Output = Response> + Send + 'd>>) {
        let (checked, prepared) = self.prepare(document, request, checks);
        let future: Pin<Box<dyn Future<Output = Response> + Send + 'd>> = match prepared {
            Ok(prepared) => Box::pin(self.execute_prepared(document, request, ctx, prepared, sink)),
            Err(response) => Box::pin(std::future::ready(response)),
        };
        (checked, future)
    }

    /// Everything before execution that can fail with a request error.
    fn prepare<'d, 'a>(
        &self,
        document: &'d Document<'a>,
        request: &Request,
        checks: Checks,
    ) -> (Checked, Result<Prepared<'d, 'a>, Response>) {
        let schema = &*self.inner;
        // The limits count list sizes from variables as execution will see them, so
        // they are coerced first (a default value applies); a request whose variables
        // do not coerce is measured with the raw values, and its errors are reported
        // after validation, as the spec orders them.
        let mut coerced = None;
        if checks.limits {
            coerced = get_operation(document, request.operation_name.as_deref())
                .ok()
                .and_then(|op| coerce_variables(self, &op, &request.variables).ok());
            if let Err(e) = schema.limits.check_document_with(
                Some(schema),
                document,
                coerced.as_ref().unwrap_or(&request.variables),
            ) {
                return (Checked::Failed, Err(Response::request_error(e)));
            }
        }
        let checked = if checks.validation {
            let errors = validate(self, document);
            if !errors.is_empty() {
                return (
                    Checked::Failed,
                    Err(Response {
                        data: None,
                        errors,
                        cache_policy: None,
                    }),
                );
            }
            Checked::Valid
        } else {
            Checked::NotValidated
        };
        if !schema.introspection_enabled
            && let Some(e) = introspection_used(document)
        {
            return (checked, Err(Response::request_error(e)));
        }
        let op = match get_operation(document, request.operation_name.as_deref()) {
            Ok(op) => op,
            Err(e) => return (checked, Err(Response::request_error(e))),
        };
        let variables = match coerced {
            Some(v) => v,
            None => match coerce_variables(self, &op, &request.variables) {
                Ok(v) => v,
                Err(errors) => {
                    return (
                        checked,
                        Err(Response {
                            data: None,
                            errors,
                            cache_policy: None,
                        }),
                    );
                }
            },
        };
        let root_type = match op.kind {
            OpKind::Query => Some(schema.query),
            OpKind::Mutation => schema.mutation,
            // A subscription's selection runs once against the root value, as
            // graphql-js's `execute` does; event streams are not implemented yet.
            OpKind::Subscription => schema.subscription,
        };
        let Some(root_type) = root_type else {
            return (
                checked,
                Err(Response::request_error(GraphQLError::new(
                    format!(
                        "The schema does not support {} operations.",
                        op.kind.as_str()
                    ),
                    vec![Location::from_pos(op.position)],
                ))),
            );
        };
        (
            checked,
            Ok(Prepared {
                op,
                variables,
                root_type,
            }),
        )
    }

    async fn execute_prepared<'d, 'a>(
        &'d self,
        document: &'d Document<'a>,
        request: &'d Request,
        ctx: &'d Context,
        prepared: Prepared<'d, 'a>,
        sink: Option<Arc<incremental::Sink>>,
    ) -> Response {
        let schema = &*self.inner;
        let Prepared {
            op,
            variables,
            root_type,
        } = prepared;
        let mut exec = Exec::new(schema, document, variables, ctx);
        exec.incremental = sink.is_some() && schema.incremental_delivery;
        let root = &request.root_value;
        let plan = Arc::new(exec.collect(root_type, &[op.selection_set]));
        let data = if op.kind != OpKind::Mutation {
            // The fast path: a query whose resolvers are all synchronous runs without a
            // single future.
            let mut out = Vec::with_capacity(256);
            let start = exec.mark();
            match exec.object_sync(&mut out, root_type, &plan, root, None) {
                Ok(()) => out,
                Err(Stop::Null) => b"null".to_vec(),
                Err(Stop::NeedsAsync(_)) => {
                    exec.reset(start);
                    exec.object_async(root_type, plan, root, None, false)
                        .await
                        .unwrap_or_else(|()| b"null".to_vec())
                }
            }
        } else {
            exec.object_async(root_type, plan, root, None, true)
                .await
                .unwrap_or_else(|()| b"null".to_vec())
        };
        if let Some(sink) = &sink {
            let errors = exec
                .errors
                .lock()
                .map(|mut e| std::mem::take(&mut *e))
                .unwrap_or_default();
            incremental::deliver(&exec, sink, data, errors).await;
            return Response {
                data: None,
                errors: Vec::new(),
                cache_policy: None,
            };
        }
        let errors = exec.errors.into_inner().unwrap_or_default();
        // Apollo Server's rules: only a query without errors may be cached.
        let cache_policy = exec.cache.as_ref().map(|acc| {
            if op.kind == OpKind::Query && errors.is_empty() {
                acc.policy()
            } else {
                CachePolicy::NO_STORE
            }
        });
        Response {
            data: Some(String::from_utf8(data).unwrap_or_else(|_| "null".to_owned())),
            errors,
            cache_policy,
        }
    }
}

/// Which checks a request still needs before execution.
#[derive(Debug, Clone, Copy)]
struct Checks {
    /// Depth, aliases and complexity (variables may change them).
    limits: bool,
    validation: bool,
}

/// How the checks went, for the document cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    /// The limits and validation passed.
    Valid,
    /// The limits passed (or were not checked); validation did not run.
    NotValidated,
    /// A limit or validation failed: the document is not cached.
    Failed,
}

/// A request ready to execute.
struct Prepared<'d, 'a> {
    op: Op<'d, 'a>,
    variables: Map<String, Value>,
    root_type: crate::types::TypeId,
}

/// The response to a document that does not parse: every type-system definition when it
/// has some (spec 5.1.1), else the syntax error.
fn syntax_error_response(source: &str, error: GraphQLError) -> Response {
    let all = Document::non_executable_definitions(source);
    if all.is_empty() {
        return Response::request_error(error);
    }
    Response {
        data: None,
        errors: all,
        cache_policy: None,
    }
}

/// GetOperation (spec 6.1).
pub(crate) fn get_operation<'d, 'a>(
    document: &'d Document<'a>,
    name: Option<&str>,
) -> Result<Op<'d, 'a>, GraphQLError> {
    let mut ops = document.ast.definitions.iter().filter_map(|d| match d {
        Definition::Operation(op) => Some(op_of(op)),
        Definition::Fragment(_) => None,
    });
    match name {
        Some(name) => ops.find(|op| op.name == Some(name)).ok_or_else(|| {
            GraphQLError::new(format!("Unknown operation named \"{name}\"."), vec![])
        }),
        None => {
            let first = ops
                .next()
                .ok_or_else(|| GraphQLError::new("Must provide an operation.", vec![]))?;
            if ops.next().is_some() {
                return Err(GraphQLError::new(
                    "Must provide operation name if query contains multiple operations.",
                    vec![],
                ));
            }
            Ok(first)
        }
    }
}

/// CoerceVariableValues (spec 6.1.2).
pub(crate) fn coerce_variables(
    schema: &Schema,
    op: &Op<'_, '_>,
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<GraphQLError>> {
    let types = &schema.inner.types;
    let mut out = Map::new();
    let mut errors = Vec::new();
    for def in op.variables {
        let loc = vec![Location::from_pos(def.position)];
        let Some(ty) = type_ref(schema, &def.var_type) else {
            continue;
        };
        match given.get(def.name) {
            None => {
                if let Some(default) = &def.default_value {
                    match coerce_literal(types, &ty, default, None) {
                        Ok(v) => {
                            out.insert(def.name.to_owned(), v);
                        }
                        Err(e) => errors.push(GraphQLError::new(
                            format!(
                                "Variable \"${}\" has an invalid default value: {e}",
                                def.name
                            ),
                            loc,
                        )),
                    }
                } else if ty.is_non_null() {
                    errors.push(GraphQLError::new(
                        format!(
                            "Variable \"${}\" of required type \"{}\" was not provided.",
                            def.name,
                            ty.display(types)
                        ),
                        loc,
                    ));
                }
            }
            Some(value) => match coerce_input_value(types, &ty, value) {
                Ok(v) => {
                    out.insert(def.name.to_owned(), v);
                }
                Err(e) => {
                    let message = if value.is_null() && ty.is_non_null() {
                        format!(
                            "Variable \"${}\" of non-null type \"{}\" must not be null.",
                            def.name,
                            ty.display(types)
                        )
                    } else {
                        format!(
                            "Variable \"${}\" got invalid value {}; {e}",
                            def.name,
                            short(value)
                        )
                    };
                    errors.push(GraphQLError::new(message, loc));
                }
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn short(value: &Value) -> String {
    let s = value.to_string();
    if s.len() <= 80 {
        return s;
    }
    let mut end = 80;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", s.get(..end).unwrap_or(""))
}

fn type_ref<'x>(
    schema: &Schema,
    ty: &graphql_parser::query::Type<'x, &'x str>,
) -> Option<crate::types::TypeRef> {
    use crate::types::TypeRef;
    use graphql_parser::query::Type as T;
    Some(match ty {
        T::NamedType(n) => TypeRef::Named(schema.type_id(n)?),
        T::ListType(inner) => TypeRef::List(Box::new(type_ref(schema, inner)?)),
        T::NonNullType(inner) => TypeRef::NonNull(Box::new(type_ref(schema, inner)?)),
    })
}

/// The first `__schema` or `__type` field of the document, as the error refusing it.
fn introspection_used(document: &Document<'_>) -> Option<GraphQLError> {
    fn walk<'x>(set: &SelectionSet<'x, &'x str>) -> Option<(String, graphql_parser::Pos)> {
        for sel in &set.items {
            match sel {
                Selection::Field(f) => {
                    if f.name == "__schema" || f.name == "__type" {
                        return Some((f.name.to_owned(), f.position));
                    }
                    if let Some(found) = walk(&f.selection_set) {
                        return Some(found);
                    }
                }
                Selection::InlineFragment(i) => {
                    if let Some(found) = walk(&i.selection_set) {
                        return Some(found);
                    }
                }
                Selection::FragmentSpread(_) => {}
            }
        }
        None
    }
    for def in &document.ast.definitions {
        let set = match def {
            Definition::Operation(op) => op_of(op).selection_set,
            Definition::Fragment(f) => &f.selection_set,
        };
        if let Some((name, pos)) = walk(set) {
            return Some(GraphQLError::new(
                format!(
                    "GraphQL introspection has been disabled, but the requested query contained the field \"{name}\"."
                ),
                vec![Location::from_pos(pos)],
            ));
        }
    }
    None
}
