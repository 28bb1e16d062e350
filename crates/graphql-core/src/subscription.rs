//! Subscriptions (spec 6.2.3): a source stream per subscription root field, and a response
//! stream that executes the operation's selection set for every event.
//!
//! A source is registered with [`SchemaBuilder::subscription`](crate::SchemaBuilder); each
//! event it yields becomes the value of the root field, and the rest of the selection runs on
//! it with the same executor as queries.

use std::pin::Pin;

use futures_util::stream::{self, Stream, StreamExt};
use serde_json::{Map, Value};

use crate::document::Document;
use crate::execution::{Request, Response};
use crate::resolver::{Context, EventStream};
use crate::response::GraphQLError;
use crate::schema::Schema;
use crate::validation::OpKind;

/// A response stream: one [`Response`] per event (or one for a request error).
pub type ResponseStream = Pin<Box<dyn Stream<Item = Response> + Send>>;

fn single(response: Response) -> ResponseStream {
    Box::pin(stream::iter([response]))
}

impl Schema {
    /// Runs a subscription (spec 6.2.3): validates the request, resolves the root field's
    /// source stream, then executes the selection set once per event, as a stream of
    /// responses. A request error (or a query or mutation sent here) gives a stream of one
    /// response.
    pub fn subscribe(&self, request: Request, ctx: Context) -> ResponseStream {
        let schema = self.clone();
        // Everything up to the source stream borrows the document; it is done here, and
        // only owned values go into the stream.
        let (field, source_events) = match self.open_source(&request, &ctx) {
            Ok(found) => found,
            Err(response) => return single(response),
        };
        let events = source_events.then(move |event| {
            let schema = schema.clone();
            let ctx = ctx.clone();
            let mut request = request.clone();
            let field = field.clone();
            async move {
                match event {
                    Err(e) => Response {
                        data: Some("null".to_owned()),
                        errors: vec![GraphQLError {
                            message: e.message,
                            locations: vec![],
                            path: Some(vec![crate::PathSegment::Key(field.clone())]),
                            extensions: e.extensions,
                        }],
                        cache_policy: None,
                    },
                    Ok(value) => {
                        // The event is the root field's value: the root value carries it
                        // under the field's name, where the default resolver reads it.
                        let mut root = Map::new();
                        root.insert(field, value);
                        request.root_value = Value::Object(root);
                        schema.execute_without_validation(&request, &ctx).await
                    }
                }
            }
        });
        Box::pin(events)
    }

    /// CreateSourceEventStream (spec 6.2.3.1): the root field's name and its source.
    fn open_source(
        &self,
        request: &Request,
        ctx: &Context,
    ) -> Result<(String, EventStream), Response> {
        let schema = &*self.inner;
        schema
            .limits
            .check_source(&request.query)
            .map_err(Response::request_error)?;
        let document = Document::parse(&request.query).map_err(Response::request_error)?;
        // Variables coerced first, so that their defaults count in the limits.
        let coerced = crate::execution::get_operation(&document, request.operation_name.as_deref())
            .ok()
            .and_then(|op| crate::execution::coerce_variables(self, &op, &request.variables).ok());
        schema
            .limits
            .check_document_with(
                Some(schema),
                &document,
                coerced.as_ref().unwrap_or(&request.variables),
            )
            .map_err(Response::request_error)?;
        let errors = crate::validation::validate(self, &document);
        if !errors.is_empty() {
            return Err(Response {
                data: None,
                errors,
                cache_policy: None,
            });
        }
        let op = crate::execution::get_operation(&document, request.operation_name.as_deref())
            .map_err(Response::request_error)?;
        if op.kind != OpKind::Subscription {
            return Err(Response::request_error(GraphQLError::new(
                format!(
                    "subscribe runs subscriptions; this is a {} operation.",
                    op.kind.as_str()
                ),
                vec![],
            )));
        }
        let Some(root) = schema.subscription else {
            return Err(Response::request_error(GraphQLError::new(
                "The schema does not support subscription operations.",
                vec![],
            )));
        };
        let variables = crate::execution::coerce_variables(self, &op, &request.variables).map_err(
            |errors| Response {
                data: None,
                errors,
                cache_policy: None,
            },
        )?;
        let exec = crate::execution::Exec::new(schema, &document, variables, ctx);
        let plan = exec.collect(root, &[op.selection_set]);
        let Some(first) = plan.first() else {
            return Err(Response::request_error(GraphQLError::new(
                "The subscription selects no field.",
                vec![],
            )));
        };
        let args = first
            .args
            .clone()
            .map_err(|e| Response::request_error(GraphQLError::new(e, vec![])))?;
        let name = first.def.name.clone();
        let source = schema
            .subscription_sources
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| {
                Response::request_error(GraphQLError::new(
                    format!("No subscription source is registered for field \"{name}\"."),
                    vec![],
                ))
            })?;
        Ok((name, (source.0)(ctx, &args)))
    }
}
