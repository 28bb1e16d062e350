//! Incremental delivery (`@defer` and `@stream`), in the response format of graphql-js 17
//! (17.0.0-alpha.9, the incremental delivery RFC): an initial payload with `data`,
//! `pending` and `hasNext: true`, then payloads with `pending`, `incremental` (`data` of
//! deferred fields, with a `subPath` below the fragment's `path`, or `items` of a stream)
//! and `completed` entries, the last with `hasNext: false`; or in the older format of
//! 2022-08-24 (`IncrementalFormat::Defer20220824`), which Apollo Client 3 reads.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use futures_util::Stream;
use serde_json::Value;

use super::executor::{DeferId, Exec, Record, Stop, StreamItems};
use super::{Request, Response};
use crate::resolver::Context;
use crate::response::{GraphQLError, PathSegment};
use crate::schema::Schema;

/// The response format of incremental delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IncrementalFormat {
    /// graphql-js 17 (17.0.0-alpha.9) and the incremental delivery RFC: `pending` entries
    /// with ids, `incremental` entries by id (`subPath` below the fragment, fields never
    /// sent twice), `completed`. Over HTTP: `multipart/mixed; incrementalSpec=v0.2`.
    #[default]
    GraphQL17,
    /// The format of 2022-08-24 (graphql-js 17.0.0-alpha.2, Apollo Router, Apollo Client
    /// 3): no `pending` or `completed`; each `incremental` entry carries its `path` (and
    /// `label`); a fragment or stream that fails as a whole is a `data: null` (or `items`)
    /// entry with its errors. Over HTTP: `multipart/mixed; deferSpec=20220824`.
    Defer20220824,
}

impl IncrementalFormat {
    /// The `Content-Type` of a `multipart/mixed` response in this format (boundary `-`).
    pub const fn content_type(self) -> &'static str {
        match self {
            IncrementalFormat::GraphQL17 => "multipart/mixed; boundary=\"-\"; incrementalSpec=v0.2",
            IncrementalFormat::Defer20220824 => {
                "multipart/mixed; boundary=\"-\"; deferSpec=20220824"
            }
        }
    }
}

/// One payload of an incrementally delivered response.
#[derive(Debug, Clone, PartialEq)]
pub struct IncrementalPayload {
    json: String,
    has_next: bool,
    whole: Option<Response>,
    format: IncrementalFormat,
}

impl IncrementalPayload {
    /// The format the payload is in.
    pub fn format(&self) -> IncrementalFormat {
        self.format
    }

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
    format: IncrementalFormat,
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
                        format: this.sink.format,
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
        self.execute_incremental_as(request, ctx, IncrementalFormat::GraphQL17)
    }

    /// [`Schema::execute_incremental`] with the payloads in `format` (over HTTP, as the
    /// client's `Accept` asks: [`incremental_format`](crate::incremental_format)).
    pub fn execute_incremental_as<'r>(
        &'r self,
        request: &'r Request,
        ctx: &'r Context,
        format: IncrementalFormat,
    ) -> IncrementalStream<'r> {
        let sink = Arc::new(Sink {
            format,
            ..Sink::default()
        });
        IncrementalStream {
            future: self.run(request, ctx, true, Some(Arc::clone(&sink))),
            sink,
            done: false,
        }
    }
}

/// Whether the value at `path` in `data` is an object (deferred fragment, fields) or a list
/// (stream): a parent that an error made null gets no later payloads.
fn present_at(data: &Value, path: &[PathSegment], list: bool) -> bool {
    let mut cur = data;
    for seg in path {
        let next = match seg {
            PathSegment::Key(k) => cur.get(k.as_str()),
            PathSegment::Index(i) => cur.get(*i),
        };
        match next {
            Some(v) => cur = v,
            None => return false,
        }
    }
    if list {
        cur.is_array()
    } else {
        cur.is_object()
    }
}

fn present(data: &Value, record: &Record<'_, '_>) -> bool {
    present_at(data, record.path(), matches!(record, Record::Stream { .. }))
}

fn take_all_records<'e, 'a>(exec: &Exec<'e, 'a>) -> Vec<Record<'e, 'a>> {
    exec.records
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default()
}

fn with_prefix<'e, 'a>(mut r: Record<'e, 'a>, prefix: &[PathSegment]) -> Record<'e, 'a> {
    let mut path = prefix.to_vec();
    path.append(r.path_mut());
    *r.path_mut() = path;
    r
}

/// The records found since the last call whose place survived in `data`, their paths made
/// absolute with `prefix`.
fn take_records<'e, 'a>(
    exec: &Exec<'e, 'a>,
    data: &Value,
    prefix: &[PathSegment],
) -> Vec<Record<'e, 'a>> {
    take_all_records(exec)
        .into_iter()
        .filter(|r| present(data, r))
        .map(|r| with_prefix(r, prefix))
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

fn path_json(path: &[PathSegment]) -> String {
    Value::Array(
        path.iter()
            .map(|p| match p {
                PathSegment::Key(k) => Value::String(k.clone()),
                PathSegment::Index(i) => Value::from(*i),
            })
            .collect(),
    )
    .to_string()
}

fn errors_json(errors: &[GraphQLError]) -> String {
    Value::Array(errors.iter().map(GraphQLError::to_json).collect()).to_string()
}

fn label_json(label: &str) -> String {
    Value::String(label.to_owned()).to_string()
}

/// Polls a future once, without waiting: `Some` when it is already complete.
fn ready_now<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = TaskContext::from_waker(waker);
    match Pin::new(future).poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// The state of a deferred fragment.
#[derive(Debug)]
enum State {
    /// Waiting for the fragment it is nested in; `Some(errors)` when it already failed.
    Unreleased(Option<Vec<GraphQLError>>),
    /// Announced (`pending`), with this id.
    Pending(usize),
    /// Completed, or left out (it had nothing of its own to send).
    Done,
    /// Completed with errors, or never to come (its parent failed).
    Failed,
}

/// A deferred fragment: a `@defer` on the object at `path`.
struct Fragment {
    /// When it was found (fragments and streams are announced in the order found).
    seq: usize,
    usage: DeferId,
    parent_usage: Option<DeferId>,
    label: Option<String>,
    path: Vec<PathSegment>,
    state: State,
    /// Its field groups (indices into `Delivery::groups`), and how many have not run.
    groups: Vec<usize>,
    unfinished: usize,
}

/// One group of deferred fields (one defer set, on one object) and its result.
struct Group<'e, 'a> {
    path: Vec<PathSegment>,
    work: Option<Record<'e, 'a>>,
    /// The fragments it belongs to (indices into `Delivery::fragments`).
    fragments: Vec<usize>,
    /// `data` and errors, once run without a null propagating out of it.
    result: Option<(String, Vec<GraphQLError>)>,
    /// Streams found in it (with when), announced with it.
    streams: Vec<(usize, Record<'e, 'a>)>,
    sent: bool,
}

/// What is left to run.
enum Work<'e, 'a> {
    Group(usize),
    Stream(usize, Record<'e, 'a>),
}

/// The parts of the payload being built.
#[derive(Default)]
struct Parts {
    pending: Vec<String>,
    incremental: Vec<String>,
    completed: Vec<String>,
}

impl Parts {
    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.incremental.is_empty() && self.completed.is_empty()
    }
}

/// Where an announced fragment or stream is, for the 2022-08-24 format (which repeats
/// paths and labels instead of ids).
struct Announced {
    path: Vec<PathSegment>,
    label: Option<String>,
    stream: bool,
}

/// The incremental publisher: which fragments are pending, what is left to run, and the
/// payload being built.
struct Delivery<'x, 'e, 'a> {
    exec: &'x Exec<'e, 'a>,
    sink: &'x Sink,
    format: IncrementalFormat,
    fragments: Vec<Fragment>,
    groups: Vec<Group<'e, 'a>>,
    /// What is left to run, with when it was found: run in that order.
    queue: Vec<(usize, Work<'e, 'a>)>,
    announced: Vec<Announced>,
    parts: Parts,
    /// How many fragments and streams were found so far.
    seq: usize,
    /// Streams to announce with the payload being built, with when they were found.
    waiting: Vec<(usize, Record<'e, 'a>)>,
}

impl<'x, 'e: 'x, 'a: 'x> Delivery<'x, 'e, 'a> {
    /// Gives an id to a fragment or stream at `path` and adds its `pending` entry.
    fn announce(&mut self, path: &[PathSegment], label: Option<&str>, stream: bool) -> usize {
        let id = self.announced.len();
        let mut entry = format!("{{\"id\":\"{id}\",\"path\":{}", path_json(path));
        if let Some(label) = label {
            entry.push_str(",\"label\":");
            entry.push_str(&label_json(label));
        }
        entry.push('}');
        self.parts.pending.push(entry);
        self.announced.push(Announced {
            path: path.to_vec(),
            label: label.map(str::to_owned),
            stream,
        });
        id
    }

    /// The fragment of `usage` that the object at `path` is in (the nearest).
    fn fragment_of(&self, usage: DeferId, path: &[PathSegment]) -> Option<usize> {
        self.fragments
            .iter()
            .enumerate()
            .filter(|(_, f)| f.usage == usage && path.starts_with(&f.path))
            .max_by_key(|(_, f)| f.path.len())
            .map(|(i, _)| i)
    }

    /// Takes in the records an execution found (paths absolute): fragments and field
    /// groups are registered, streams handed back to be announced with the payload that
    /// carries the data they are in.
    fn register(&mut self, records: Vec<Record<'e, 'a>>) -> Vec<(usize, Record<'e, 'a>)> {
        let mut streams = Vec::new();
        let mut groups = Vec::new();
        for r in records {
            self.seq += 1;
            match r {
                Record::Fragment { usage, path } => {
                    if self
                        .fragments
                        .iter()
                        .any(|f| f.usage == usage && f.path == path)
                    {
                        continue;
                    }
                    let Some(u) = self.exec.defer(usage) else {
                        continue;
                    };
                    self.fragments.push(Fragment {
                        seq: self.seq,
                        usage,
                        parent_usage: u.parent,
                        label: u.label,
                        path,
                        state: State::Unreleased(None),
                        groups: Vec::new(),
                        unfinished: 0,
                    });
                }
                Record::Group { .. } => groups.push((self.seq, r)),
                Record::Stream { .. } => streams.push((self.seq, r)),
            }
        }
        for (seq, r) in groups {
            let Record::Group { path, plan, .. } = &r else {
                continue;
            };
            let mut fragments: Vec<usize> = plan
                .set
                .iter()
                .filter_map(|u| self.fragment_of(*u, path))
                .collect();
            fragments.dedup();
            let alive = fragments.iter().any(|f| {
                self.fragments
                    .get(*f)
                    .is_some_and(|f| matches!(f.state, State::Unreleased(None) | State::Pending(_)))
            });
            if !alive {
                continue;
            }
            let index = self.groups.len();
            for f in &fragments {
                if let Some(f) = self.fragments.get_mut(*f) {
                    f.groups.push(index);
                    f.unfinished += 1;
                }
            }
            self.groups.push(Group {
                path: path.clone(),
                work: Some(r),
                fragments,
                result: None,
                streams: Vec::new(),
                sent: false,
            });
            self.queue.push((seq, Work::Group(index)));
        }
        streams
    }

    /// Announces the waiting streams found before `seq`, and queues them.
    fn start_streams(&mut self, before: usize) {
        let waiting = std::mem::take(&mut self.waiting);
        let (now, later): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|(at, _)| *at < before);
        self.waiting = later;
        for (seq, s) in now {
            let label = match &s {
                Record::Stream { label, .. } => label.clone(),
                _ => None,
            };
            let id = self.announce(s.path(), label.as_deref(), true);
            self.queue.push((seq, Work::Stream(id, s)));
        }
    }

    /// Releases the fragments whose parent completed (left out when they have nothing of
    /// their own) and completes the pending ones whose groups all ran, until nothing
    /// changes.
    fn settle(&mut self) {
        loop {
            let mut changed = false;
            for i in 0..self.fragments.len() {
                let Some(f) = self.fragments.get(i) else {
                    continue;
                };
                match &f.state {
                    State::Unreleased(_) => {
                        let parent = f
                            .parent_usage
                            .and_then(|u| self.fragment_of(u, &f.path))
                            .and_then(|p| self.fragments.get(p))
                            .map(|p| &p.state);
                        match parent {
                            None | Some(State::Done) => {
                                self.release(i);
                                changed = true;
                            }
                            Some(State::Failed) => {
                                if let Some(f) = self.fragments.get_mut(i) {
                                    f.state = State::Failed;
                                }
                                changed = true;
                            }
                            Some(_) => {}
                        }
                    }
                    State::Pending(_) if f.unfinished == 0 => {
                        self.complete(i);
                        changed = true;
                    }
                    _ => {}
                }
            }
            if !changed {
                break;
            }
        }
        self.start_streams(usize::MAX);
    }

    fn release(&mut self, i: usize) {
        let Some(f) = self.fragments.get_mut(i) else {
            return;
        };
        let State::Unreleased(failure) = std::mem::replace(&mut f.state, State::Done) else {
            return;
        };
        if f.groups.is_empty() && failure.is_none() {
            // Nothing of its own: never announced (graphql-js leaves such a fragment out).
            return;
        }
        let (path, label, seq) = (f.path.clone(), f.label.clone(), f.seq);
        // Streams found before it are announced before it.
        self.start_streams(seq);
        let id = self.announce(&path, label.as_deref(), false);
        match failure {
            Some(errors) => {
                self.fail_entry(id, &errors);
                if let Some(f) = self.fragments.get_mut(i) {
                    f.state = State::Failed;
                }
            }
            None => {
                if let Some(f) = self.fragments.get_mut(i) {
                    f.state = State::Pending(id);
                }
            }
        }
    }

    /// Sends the results of a fragment's groups not sent yet, each under the id of the
    /// nearest pending fragment it belongs to (with `subPath` below it), then `completed`.
    fn complete(&mut self, i: usize) {
        let Some(State::Pending(id)) = self.fragments.get(i).map(|f| &f.state) else {
            return;
        };
        let id = *id;
        let groups = self
            .fragments
            .get(i)
            .map(|f| f.groups.clone())
            .unwrap_or_default();
        for g in groups {
            let Some(group) = self.groups.get(g) else {
                continue;
            };
            if group.sent {
                continue;
            }
            let Some((data, errors)) = &group.result else {
                continue;
            };
            let best = group
                .fragments
                .iter()
                .filter_map(|f| self.fragments.get(*f))
                .filter_map(|f| match f.state {
                    State::Pending(id) => Some((id, f.path.len())),
                    _ => None,
                })
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
            let (best, depth) = best.unwrap_or((id, group.path.len()));
            let sub_path = group.path.get(depth..).unwrap_or_default().to_vec();
            let entry = self.data_entry(best, data, &sub_path, errors);
            self.parts.incremental.push(entry);
            let streams = self
                .groups
                .get_mut(g)
                .map(|g| {
                    g.sent = true;
                    std::mem::take(&mut g.streams)
                })
                .unwrap_or_default();
            self.waiting.extend(streams);
        }
        if self.format == IncrementalFormat::GraphQL17 {
            self.parts.completed.push(format!("{{\"id\":\"{id}\"}}"));
        }
        if let Some(f) = self.fragments.get_mut(i) {
            f.state = State::Done;
        }
    }

    fn data_entry(
        &self,
        id: usize,
        data: &str,
        sub_path: &[PathSegment],
        errors: &[GraphQLError],
    ) -> String {
        let mut entry = match self.format {
            IncrementalFormat::GraphQL17 => {
                let mut e = format!("{{\"id\":\"{id}\",\"data\":{data}");
                if !sub_path.is_empty() {
                    e.push_str(",\"subPath\":");
                    e.push_str(&path_json(sub_path));
                }
                e
            }
            IncrementalFormat::Defer20220824 => {
                let mut path = self
                    .announced
                    .get(id)
                    .map(|a| a.path.clone())
                    .unwrap_or_default();
                path.extend_from_slice(sub_path);
                let mut e = format!("{{\"data\":{data},\"path\":{}", path_json(&path));
                if let Some(label) = self.announced.get(id).and_then(|a| a.label.as_deref()) {
                    e.push_str(",\"label\":");
                    e.push_str(&label_json(label));
                }
                e
            }
        };
        if !errors.is_empty() {
            entry.push_str(",\"errors\":");
            entry.push_str(&errors_json(errors));
        }
        entry.push('}');
        entry
    }

    fn items_entry(&self, id: usize, items: &str, first: usize, errors: &[GraphQLError]) -> String {
        let mut entry = match self.format {
            IncrementalFormat::GraphQL17 => format!("{{\"id\":\"{id}\",\"items\":{items}"),
            IncrementalFormat::Defer20220824 => {
                let mut path = self
                    .announced
                    .get(id)
                    .map(|a| a.path.clone())
                    .unwrap_or_default();
                path.push(PathSegment::Index(first));
                let mut e = format!("{{\"items\":{items},\"path\":{}", path_json(&path));
                if let Some(label) = self.announced.get(id).and_then(|a| a.label.as_deref()) {
                    e.push_str(",\"label\":");
                    e.push_str(&label_json(label));
                }
                e
            }
        };
        if !errors.is_empty() {
            entry.push_str(",\"errors\":");
            entry.push_str(&errors_json(errors));
        }
        entry.push('}');
        entry
    }

    /// The end of a fragment or stream that failed as a whole: `completed` with the errors
    /// (graphql-js 17), or a null `data` with them (2022-08-24).
    fn fail_entry(&mut self, id: usize, errors: &[GraphQLError]) {
        match self.format {
            IncrementalFormat::GraphQL17 => self.parts.completed.push(format!(
                "{{\"id\":\"{id}\",\"errors\":{}}}",
                errors_json(errors)
            )),
            IncrementalFormat::Defer20220824 => {
                let stream = self.announced.get(id).is_some_and(|a| a.stream);
                let mut entry = self.data_entry(id, "null", &[], errors);
                if stream {
                    entry = entry.replacen("{\"data\":null", "{\"items\":null", 1);
                }
                self.parts.incremental.push(entry);
            }
        }
    }

    /// Sends the payload built so far (if any, or if it is the last); `more` when the
    /// work running now has more to send.
    fn flush(&mut self, more: bool) {
        let has_next = more || !self.queue.is_empty();
        if self.parts.is_empty() && has_next {
            return;
        }
        let parts = std::mem::take(&mut self.parts);
        let mut json = String::from("{");
        if self.format == IncrementalFormat::GraphQL17 && !parts.pending.is_empty() {
            json.push_str("\"pending\":[");
            json.push_str(&parts.pending.join(","));
            json.push_str("],");
        }
        if !parts.incremental.is_empty() {
            json.push_str("\"incremental\":[");
            json.push_str(&parts.incremental.join(","));
            json.push_str("],");
        }
        if self.format == IncrementalFormat::GraphQL17 && !parts.completed.is_empty() {
            json.push_str("\"completed\":[");
            json.push_str(&parts.completed.join(","));
            json.push_str("],");
        }
        json.push_str("\"hasNext\":");
        json.push_str(if has_next { "true" } else { "false" });
        json.push('}');
        self.sink.push(IncrementalPayload {
            json,
            has_next,
            whole: None,
            format: self.format,
        });
    }

    /// Runs one group of deferred fields on its object.
    async fn run_group(&mut self, g: usize) {
        let Some(group) = self.groups.get_mut(g) else {
            return;
        };
        let Some(Record::Group {
            path,
            object,
            parent,
            plan,
        }) = group.work.take()
        else {
            return;
        };
        let fragments = group.fragments.clone();
        let alive = fragments.iter().any(|f| {
            self.fragments
                .get(*f)
                .is_some_and(|f| matches!(f.state, State::Unreleased(None) | State::Pending(_)))
        });
        let result = if alive {
            let exec = self.exec;
            let mut out = Vec::with_capacity(128);
            let mark = exec.mark();
            match exec.object_sync(&mut out, object, &plan, &parent, None) {
                Ok(()) => Ok(out),
                Err(Stop::Null) => Err(()),
                Err(Stop::NeedsAsync(_)) => {
                    exec.reset(mark);
                    exec.object_async(object, Arc::clone(&plan), &parent, None, false)
                        .await
                }
            }
        } else {
            Err(())
        };
        match result {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).unwrap_or_else(|_| "{}".to_owned());
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let nested = take_records(self.exec, &value, &path);
                let errors = take_errors(self.exec, &path);
                let streams = self.register(nested);
                if let Some(group) = self.groups.get_mut(g) {
                    group.result = Some((text, errors));
                    group.streams = streams;
                }
            }
            Err(()) => {
                let _ = take_all_records(self.exec);
                let errors = take_errors(self.exec, &path);
                if alive {
                    for f in &fragments {
                        let Some(state) = self.fragments.get(*f).map(|f| &f.state) else {
                            continue;
                        };
                        match state {
                            State::Pending(id) => {
                                let id = *id;
                                self.fail_entry(id, &errors);
                                if let Some(f) = self.fragments.get_mut(*f) {
                                    f.state = State::Failed;
                                }
                            }
                            State::Unreleased(None) => {
                                if let Some(f) = self.fragments.get_mut(*f) {
                                    f.state = State::Unreleased(Some(errors.clone()));
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        for f in &fragments {
            if let Some(f) = self.fragments.get_mut(*f) {
                f.unfinished = f.unfinished.saturating_sub(1);
            }
        }
        self.settle();
        self.flush(false);
    }

    /// Sends a stream's items: those ready together in one payload, each item that has to
    /// wait (an async resolver below it, or the next item of an item stream) as soon as it
    /// is complete.
    async fn run_stream(&mut self, id: usize, record: Record<'e, 'a>) {
        let Some(pf) = record.stream_field() else {
            return;
        };
        let Record::Stream {
            item,
            items,
            start,
            path,
            ..
        } = record
        else {
            return;
        };
        let exec = self.exec;
        let (resolved, failed, mut source) = match items {
            StreamItems::Resolved(items, failed) => (items, failed, None),
            StreamItems::Source(source) => (Vec::new(), Vec::new(), source.into_inner().ok()),
        };
        let mut batch: Vec<String> = Vec::new();
        let mut batch_errors: Vec<GraphQLError> = Vec::new();
        let mut first = start;
        let mut index = start;
        loop {
            // The next item: from the list, or from the source (waiting for it, after
            // sending what is ready).
            let (value, error) = match &mut source {
                None => match resolved.get(index - start) {
                    Some(v) => (
                        std::borrow::Cow::Borrowed(v),
                        super::executor::item_error(&failed, index).cloned(),
                    ),
                    None => break,
                },
                Some(source) => {
                    use futures_util::StreamExt;
                    let mut next = source.next();
                    let next = match ready_now(&mut next) {
                        Some(n) => n,
                        None => {
                            self.send_items(id, &mut batch, &mut batch_errors, first);
                            first = index;
                            next.await
                        }
                    };
                    match next {
                        None => break,
                        Some(Ok(v)) => (std::borrow::Cow::Owned(v), None),
                        Some(Err(e)) => (std::borrow::Cow::Owned(Value::Null), Some(e)),
                    }
                }
            };
            let completed = {
                let mut future = exec.complete_item(&item, &pf, &value, error.as_ref(), index);
                match ready_now(&mut future) {
                    Some(c) => c,
                    None => {
                        self.send_items(id, &mut batch, &mut batch_errors, first);
                        first = index;
                        future.await
                    }
                }
            };
            match completed {
                Ok(bytes) => {
                    let text = String::from_utf8(bytes).unwrap_or_else(|_| "null".to_owned());
                    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    // Records inside the item: their paths start at its index.
                    let nested: Vec<_> = take_all_records(exec)
                        .into_iter()
                        .filter(|r| {
                            let p = r.path();
                            p.first() == Some(&PathSegment::Index(index))
                                && present_at(
                                    &parsed,
                                    p.get(1..).unwrap_or_default(),
                                    matches!(r, Record::Stream { .. }),
                                )
                        })
                        .map(|r| with_prefix(r, &path))
                        .collect();
                    batch.push(text);
                    batch_errors.extend(take_errors(exec, &path));
                    let streams = self.register(nested);
                    self.waiting.extend(streams);
                }
                Err(()) if !item.is_non_null() => {
                    let _ = take_all_records(exec);
                    batch.push("null".to_owned());
                    batch_errors.extend(take_errors(exec, &path));
                }
                Err(()) => {
                    // A non-null item failed: the stream ends with its error.
                    let _ = take_all_records(exec);
                    let errors = take_errors(exec, &path);
                    self.add_items(id, &mut batch, &mut batch_errors, first);
                    self.fail_entry(id, &errors);
                    self.settle();
                    self.flush(false);
                    return;
                }
            }
            index += 1;
        }
        self.add_items(id, &mut batch, &mut batch_errors, first);
        if self.format == IncrementalFormat::GraphQL17 {
            self.parts.completed.push(format!("{{\"id\":\"{id}\"}}"));
        }
        self.settle();
        self.flush(false);
    }

    /// Adds a stream's items so far to the payload.
    fn add_items(
        &mut self,
        id: usize,
        batch: &mut Vec<String>,
        errors: &mut Vec<GraphQLError>,
        first: usize,
    ) {
        if batch.is_empty() {
            return;
        }
        let items = format!("[{}]", batch.join(","));
        let entry = self.items_entry(id, &items, first, errors);
        self.parts.incremental.push(entry);
        batch.clear();
        errors.clear();
    }

    /// Sends a stream's items so far before waiting for the next one.
    fn send_items(
        &mut self,
        id: usize,
        batch: &mut Vec<String>,
        errors: &mut Vec<GraphQLError>,
        first: usize,
    ) {
        if batch.is_empty() {
            return;
        }
        self.add_items(id, batch, errors, first);
        self.settle();
        // The stream itself is still running: more follows.
        self.flush(true);
    }
}

/// Sends the initial payload, then the later ones: deferred field groups and streams run
/// one after another in the order found, a payload going out whenever a fragment
/// completes or stream items are ready.
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
        let format = sink.format;
        let mut d = Delivery {
            exec,
            sink,
            format,
            fragments: Vec::new(),
            groups: Vec::new(),
            queue: Vec::new(),
            announced: Vec::new(),
            parts: Parts::default(),
            seq: 0,
            waiting: Vec::new(),
        };
        let streams = d.register(records);
        d.waiting.extend(streams);
        d.settle();
        if d.parts.pending.is_empty() && d.queue.is_empty() {
            let response = Response {
                data: Some(data),
                errors,
                cache_policy: None,
            };
            sink.push(IncrementalPayload {
                json: response.to_json(),
                has_next: false,
                whole: Some(response),
                format,
            });
            return;
        }
        let mut json = String::from("{");
        if !errors.is_empty() {
            json.push_str("\"errors\":");
            json.push_str(&errors_json(&errors));
            json.push(',');
        }
        json.push_str("\"data\":");
        json.push_str(&data);
        let pending = std::mem::take(&mut d.parts.pending);
        if format == IncrementalFormat::GraphQL17 {
            json.push_str(",\"pending\":[");
            json.push_str(&pending.join(","));
            json.push(']');
        }
        json.push_str(",\"hasNext\":true}");
        sink.push(IncrementalPayload {
            json,
            has_next: true,
            whole: None,
            format,
        });
        while let Some(next) = d
            .queue
            .iter()
            .enumerate()
            .min_by_key(|(_, (seq, _))| *seq)
            .map(|(i, _)| i)
        {
            let (_, work) = d.queue.swap_remove(next);
            match work {
                Work::Group(g) => d.run_group(g).await,
                Work::Stream(id, record) => d.run_stream(id, record).await,
            }
        }
        if !d.parts.is_empty() {
            d.flush(false);
        }
    })
}
