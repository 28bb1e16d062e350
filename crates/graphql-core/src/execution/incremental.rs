//! Incremental delivery (`@defer` and `@stream`), in the response format of graphql-js 17:
//! an initial payload with `data`, `pending` and `hasNext: true`, then payloads with
//! `pending`, `incremental` (`data` of a deferred fragment or `items` of a stream) and
//! `completed` entries, the last with `hasNext: false`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use futures_util::Stream;
use serde_json::Value;

use super::executor::{Exec, Record, Stop};
use super::{Request, Response};
use crate::resolver::Context;
use crate::response::{GraphQLError, PathSegment};
use crate::schema::Schema;

/// One payload of an incrementally delivered response.
#[derive(Debug, Clone, PartialEq)]
pub struct IncrementalPayload {
    json: String,
    has_next: bool,
    whole: Option<Response>,
}

impl IncrementalPayload {
    /// The payload as JSON text.
    pub fn to_json(&self) -> &str {
        &self.json
    }

    /// The payload parsed into a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }

    /// Whether more payloads follow.
    pub fn has_next(&self) -> bool {
        self.has_next
    }

    /// The whole result, when the response was not split (no `@defer` or `@stream` took
    /// effect, or a request error): then it is the only payload, without `hasNext`.
    pub fn complete_response(&self) -> Option<&Response> {
        self.whole.as_ref()
    }
}

/// Payloads produced by the execution, waiting for the stream's consumer.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    queue: Mutex<VecDeque<IncrementalPayload>>,
    started: AtomicBool,
}

impl Sink {
    fn push(&self, payload: IncrementalPayload) {
        self.started.store(true, Ordering::Relaxed);
        if let Ok(mut q) = self.queue.lock() {
            q.push_back(payload);
        }
    }

    fn pop(&self) -> Option<IncrementalPayload> {
        self.queue.lock().ok().and_then(|mut q| q.pop_front())
    }
}

/// The payloads of [`Schema::execute_incremental`], in order. Polling it drives the
/// execution: each payload is yielded as soon as it is ready.
pub struct IncrementalStream<'r> {
    future: Pin<Box<dyn Future<Output = Response> + Send + 'r>>,
    sink: Arc<Sink>,
    done: bool,
}

impl std::fmt::Debug for IncrementalStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncrementalStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Stream for IncrementalStream<'_> {
    type Item = IncrementalPayload;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(p) = this.sink.pop() {
            return Poll::Ready(Some(p));
        }
        if this.done {
            return Poll::Ready(None);
        }
        match this.future.as_mut().poll(cx) {
            Poll::Ready(response) => {
                this.done = true;
                if !this.sink.started.load(Ordering::Relaxed) {
                    return Poll::Ready(Some(IncrementalPayload {
                        json: response.to_json(),
                        has_next: false,
                        whole: Some(response),
                    }));
                }
                Poll::Ready(this.sink.pop())
            }
            Poll::Pending => match this.sink.pop() {
                Some(p) => Poll::Ready(Some(p)),
                None => Poll::Pending,
            },
        }
    }
}

impl Schema {
    /// Runs a request with incremental delivery: `@defer`red fragments and the items of
    /// `@stream`ed lists after `initialCount` come in later payloads (see
    /// [`SchemaBuilder::incremental_delivery`](crate::SchemaBuilder::incremental_delivery)).
    /// When nothing is deferred or streamed (or the schema does not enable it), the stream
    /// has one payload: the complete result, as [`Schema::execute`] gives it.
    pub fn execute_incremental<'r>(
        &'r self,
        request: &'r Request,
        ctx: &'r Context,
    ) -> IncrementalStream<'r> {
        let sink = Arc::new(Sink::default());
        IncrementalStream {
            future: self.run(request, ctx, true, Some(Arc::clone(&sink))),
            sink,
            done: false,
        }
    }
}

/// The value at `path` in `data`, when it is an object (deferred fragment) or a list
/// (stream): a parent that an error made null gets no later payloads.
fn present(data: &Value, record: &Record<'_, '_>) -> bool {
    let mut cur = data;
    for seg in record.path() {
        let next = match seg {
            PathSegment::Key(k) => cur.get(k.as_str()),
            PathSegment::Index(i) => cur.get(*i),
        };
        match next {
            Some(v) => cur = v,
            None => return false,
        }
    }
    match record {
        Record::Defer { .. } => cur.is_object(),
        Record::Stream { .. } => cur.is_array(),
    }
}

/// The records found since the last call whose place survived in `data`, their paths made
/// absolute with `prefix`.
fn take_records<'e, 'a>(
    exec: &Exec<'e, 'a>,
    data: &Value,
    prefix: &[PathSegment],
) -> Vec<Record<'e, 'a>> {
    let records = exec
        .records
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    records
        .into_iter()
        .filter(|r| present(data, r))
        .map(|mut r| {
            let mut path = prefix.to_vec();
            path.append(r.path_mut());
            *r.path_mut() = path;
            r
        })
        .collect()
}

fn take_errors(exec: &Exec<'_, '_>, prefix: &[PathSegment]) -> Vec<GraphQLError> {
    let mut errors = exec
        .errors
        .lock()
        .map(|mut e| std::mem::take(&mut *e))
        .unwrap_or_default();
    for e in &mut errors {
        if let Some(path) = &mut e.path {
            let mut full = prefix.to_vec();
            full.append(path);
            *path = full;
        }
    }
    errors
}

fn path_json(path: &[PathSegment]) -> Value {
    Value::Array(
        path.iter()
            .map(|p| match p {
                PathSegment::Key(k) => Value::String(k.clone()),
                PathSegment::Index(i) => Value::from(*i),
            })
            .collect(),
    )
}

fn errors_json(errors: &[GraphQLError]) -> String {
    Value::Array(errors.iter().map(GraphQLError::to_json).collect()).to_string()
}

/// Gives ids to new records, queues them, and returns their `pending` entries.
fn announce<'e, 'a>(
    next_id: &mut usize,
    records: Vec<Record<'e, 'a>>,
    queue: &mut VecDeque<(String, Record<'e, 'a>)>,
) -> Vec<Value> {
    let mut pending = Vec::new();
    for r in records {
        let id = next_id.to_string();
        *next_id += 1;
        let mut entry = serde_json::Map::new();
        entry.insert("id".to_owned(), Value::String(id.clone()));
        entry.insert("path".to_owned(), path_json(r.path()));
        if let Some(label) = r.label() {
            entry.insert("label".to_owned(), Value::String(label.to_owned()));
        }
        pending.push(Value::Object(entry));
        queue.push_back((id, r));
    }
    pending
}

/// Sends the initial payload, then one payload per deferred fragment or stream, in the
/// order they were found (breadth first).
pub(crate) fn deliver<'x, 'e: 'x, 'a: 'x>(
    exec: &'x Exec<'e, 'a>,
    sink: &'x Sink,
    data: Vec<u8>,
    errors: Vec<GraphQLError>,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'x>> {
    Box::pin(async move {
        let data = String::from_utf8(data).unwrap_or_else(|_| "null".to_owned());
        let parsed: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        let records = take_records(exec, &parsed, &[]);
        if records.is_empty() {
            let response = Response {
                data: Some(data),
                errors,
                cache_policy: None,
            };
            sink.push(IncrementalPayload {
                json: response.to_json(),
                has_next: false,
                whole: Some(response),
            });
            return;
        }
        let mut next_id = 0;
        let mut queue = VecDeque::new();
        let pending = announce(&mut next_id, records, &mut queue);
        let mut json = String::from("{");
        if !errors.is_empty() {
            json.push_str("\"errors\":");
            json.push_str(&errors_json(&errors));
            json.push(',');
        }
        json.push_str("\"data\":");
        json.push_str(&data);
        json.push_str(",\"pending\":");
        json.push_str(&Value::Array(pending).to_string());
        json.push_str(",\"hasNext\":true}");
        sink.push(IncrementalPayload {
            json,
            has_next: true,
            whole: None,
        });

        while let Some((id, record)) = queue.pop_front() {
            let mut incremental = String::new();
            let completed;
            let mut pending = Vec::new();
            let prefix = record.path().to_vec();
            match &record {
                Record::Defer { object, parent, .. } => {
                    let object = *object;
                    let plan = Arc::new(record.defer_plan(exec));
                    if plan.is_empty() && !plan.has_deferred() {
                        // Every field was already sent with the parent.
                        completed = format!("{{\"id\":\"{id}\"}}");
                        push_payload(sink, &queue, pending, incremental, completed);
                        continue;
                    }
                    let mut out = Vec::with_capacity(128);
                    let result = match exec.object_sync(&mut out, object, &plan, parent, None) {
                        Ok(()) => Ok(out),
                        Err(Stop::Null) => Err(()),
                        Err(Stop::NeedsAsync(_)) => {
                            if let Ok(mut e) = exec.errors.lock() {
                                e.clear();
                            }
                            exec.object_async(object, plan, parent, None, false).await
                        }
                    };
                    match result {
                        Ok(bytes) => {
                            let text = String::from_utf8(bytes).unwrap_or_else(|_| "{}".to_owned());
                            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                            let nested = take_records(exec, &value, &prefix);
                            let errors = take_errors(exec, &prefix);
                            pending = announce(&mut next_id, nested, &mut queue);
                            incremental = format!("{{\"id\":\"{id}\",\"data\":{text}");
                            if !errors.is_empty() {
                                incremental.push_str(",\"errors\":");
                                incremental.push_str(&errors_json(&errors));
                            }
                            incremental.push('}');
                            completed = format!("{{\"id\":\"{id}\"}}");
                        }
                        Err(()) => {
                            let _ = take_records(exec, &Value::Null, &prefix);
                            let errors = take_errors(exec, &prefix);
                            completed =
                                format!("{{\"id\":\"{id}\",\"errors\":{}}}", errors_json(&errors));
                        }
                    }
                }
                Record::Stream {
                    item,
                    items,
                    failed: item_errors,
                    start,
                    ..
                } => {
                    let start = *start;
                    let Some(pf) = record.stream_field() else {
                        continue;
                    };
                    let mut done = Vec::with_capacity(items.len());
                    let mut failed = false;
                    for (i, v) in items.iter().enumerate() {
                        let error = super::executor::item_error(item_errors, start + i);
                        match exec.complete_item(item, &pf, v, error, start + i).await {
                            Ok(bytes) => done.push(bytes),
                            Err(()) if !item.is_non_null() => done.push(b"null".to_vec()),
                            Err(()) => {
                                failed = true;
                                break;
                            }
                        }
                    }
                    if failed {
                        let _ = take_records(exec, &Value::Null, &prefix);
                        let errors = take_errors(exec, &prefix);
                        completed =
                            format!("{{\"id\":\"{id}\",\"errors\":{}}}", errors_json(&errors));
                    } else {
                        let mut text = String::from("[");
                        for (i, b) in done.iter().enumerate() {
                            if i > 0 {
                                text.push(',');
                            }
                            text.push_str(std::str::from_utf8(b).unwrap_or("null"));
                        }
                        text.push(']');
                        // Paths of records inside items are relative to the list: index from
                        // `start`, so the parsed items are placed after `start` nulls.
                        let mut list = vec![Value::Null; start];
                        if let Ok(Value::Array(parsed)) = serde_json::from_str::<Value>(&text) {
                            list.extend(parsed);
                        }
                        let nested = take_records(exec, &Value::Array(list), &prefix);
                        let errors = take_errors(exec, &prefix);
                        pending = announce(&mut next_id, nested, &mut queue);
                        incremental = format!("{{\"id\":\"{id}\",\"items\":{text}");
                        if !errors.is_empty() {
                            incremental.push_str(",\"errors\":");
                            incremental.push_str(&errors_json(&errors));
                        }
                        incremental.push('}');
                        completed = format!("{{\"id\":\"{id}\"}}");
                    }
                }
            }
            push_payload(sink, &queue, pending, incremental, completed);
        }
    })
}

/// Sends one subsequent payload.
fn push_payload(
    sink: &Sink,
    queue: &VecDeque<(String, Record<'_, '_>)>,
    pending: Vec<Value>,
    incremental: String,
    completed: String,
) {
    let has_next = !queue.is_empty();
    let mut json = String::from("{");
    if !pending.is_empty() {
        json.push_str("\"pending\":");
        json.push_str(&Value::Array(pending).to_string());
        json.push(',');
    }
    if !incremental.is_empty() {
        json.push_str("\"incremental\":[");
        json.push_str(&incremental);
        json.push_str("],");
    }
    json.push_str("\"completed\":[");
    json.push_str(&completed);
    json.push_str("],\"hasNext\":");
    json.push_str(if has_next { "true" } else { "false" });
    json.push('}');
    sink.push(IncrementalPayload {
        json,
        has_next,
        whole: None,
    });
}
