//! graphql as a library: a small book library served with graphql-core. The schema is SDL
//! (`schema.graphql`), resolvers are registered per type and field, and `graphql` speaks
//! GraphQL over HTTP (GET and POST, `application/graphql-response+json` or
//! `application/json`, mutations refused over GET) and, on a WebSocket with the
//! `graphql-transport-ws` subprotocol, runs subscriptions (`bookAdded`) too. The page at the
//! root sends queries and mutations, runs subscriptions over the WebSocket (events shown as
//! they arrive) and explores the schema from introspection; `healthz` answers `ok`. `Book.author` is loaded
//! through a per-request DataLoader: a list of books costs one author lookup
//! (`{ authorBatches }` counts them). `@defer` and `@stream` are enabled: a client whose
//! `Accept` allows `multipart/mixed` gets the payloads as parts
//! (`multipart/mixed; boundary="-"; incrementalSpec=v0.2`, graphql-js 17's format; a client
//! whose `Accept` names only `deferSpec=20220824` gets that older format), others one
//! complete result.
//! `@cacheControl` hints in the SDL give each response a `Cache-Control` (`max-age=30,
//! public` for `{ books { title } }`, `no-store` for what has no hint), so a cache in front
//! (examples/reverse-proxy) serves repeated GET queries. `attachCover(bookId:, file:
//! Upload!)` takes a file as a multipart request (GraphQL multipart request specification):
//! at most 256 KiB, with an `Apollo-Require-Preflight` (or `GraphQL-Require-Preflight`,
//! `X-Apollo-Operation-Name`) header against cross-site requests.
//! GraphQL over Server-Sent Events (the `graphql-sse` protocol, both modes) runs on the same
//! endpoint: a request with `Accept: text/event-stream` gets its results (a subscription's
//! events, `@defer`/`@stream` payloads) as `next` events; `PUT` reserves a single-connection
//! stream that many operations share (see graphql-core's `SseStreams`).
//!
//! [`App`] holds the schema and the data and answers requests (it implements
//! [`serve::App`]; multipart parts are sent as each is ready), spawning one task per
//! upgraded WebSocket. It opens no socket. `src/main.rs` serves it (`cargo run -p graphql`:
//! page at `/`, endpoint at `/graphql`), and `examples/showcase`
//! mounts the same [`App`] under `/graphql` with [`Settings::base_path`] (page at
//! `/graphql/`, endpoint and WebSocket at `/graphql/graphql`: the page calls the relative
//! URL `graphql`, so it works under any prefix).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{AbortHandle, Abortable};
use graphql_core::{
    Context, DataLoader, EventStream, FieldError, FieldResult, GRAPHQL_TRANSPORT_WS, PersistedMode,
    PersistedQueries, Resolver, ScalarCoercion, Schema, SubscriptionSource, UploadLimits, WsAction,
    WsSession, accepts_multipart, incremental_format, is_multipart, multipart_part, operation_type,
    read_http_request, read_multipart_request, write_http_incremental, write_http_response,
};
use graphql_core::{
    HttpRejection, SseEvent, SseLimits, SseRequest, SseStreams, TEXT_EVENT_STREAM,
    read_sse_request, sse_request,
};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::convert::Infallible;
use tokio::sync::mpsc;
use ws_core::{
    CloseCode, Connection, HandshakeConfig, Limits, Message, Publication, RedisScaleOut, ScaleOut,
    WebSocket, accept, rejection_response,
};

const SDL: &str = include_str!("schema.graphql");
/// The page's own style, body and script; [`page`] puts it in the showcase's shared shell.
const PAGE: &str = include_str!("index.html");
/// The page's title: the feature, not the crate.
const PAGE_TITLE: &str = "GraphQL: queries, mutations, live subscriptions";

/// The page at the root: [`PAGE`] in the shell every showcase page shares (header with the
/// way back, style), self-contained (no CDN).
fn page() -> Bytes {
    Bytes::from(serve::page::document(PAGE_TITLE, PAGE))
}
/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
/// Most books the library holds: `addBook` needs no login, so it refuses past this.
const MAX_BOOKS: usize = 100;
/// Longest title `addBook` takes, in characters.
const MAX_TITLE: usize = 200;
/// Largest cover `attachCover` takes, in bytes.
const MAX_COVER: u64 = 256 * 1024;
/// Most bytes all covers may take together: past it, `attachCover` refuses new ones.
const MAX_COVERS_TOTAL: u64 = 4 * 1024 * 1024;
/// Most operations one WebSocket client may run at once.
const WS_OPERATIONS: usize = 20;
/// Responses of a WebSocket client's operations waiting to be sent: when full, the
/// operations wait (a subscription skips events it missed).
const WS_QUEUE: usize = 16;
/// The default of [`Settings::ws_send_timeout`].
pub const WS_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the close frame to a client that stopped reading may take to be written before
/// the TCP connection is dropped without it.
const WS_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The default of [`Settings::sse_keep_alive`]: as often as graphql-sse's own server.
pub const SSE_KEEP_ALIVE: Duration = Duration::from_secs(12);
/// Events of one event stream waiting to be sent: when full, its operations wait.
const SSE_QUEUE: usize = 16;

/// The body whole responses are built with.
type Body = Full<Bytes>;

/// Whole bodies, or the parts of a `multipart/mixed` response (`@defer`, `@stream`) sent as
/// each is ready; [`serve::App::handle`] boxes it.
type StreamingBody = UnsyncBoxBody<Bytes, Infallible>;

/// The library's data: authors and books, in memory.
#[derive(Debug)]
struct Library {
    authors: Vec<Value>,
    books: Mutex<Vec<Value>>,
    /// How many author batches were loaded (shown by `{ authorBatches }`).
    author_batches: AtomicUsize,
    /// New books, for the `bookAdded` subscription: this process's and, with
    /// [`Settings::events`], the other instances'.
    added: tokio::sync::broadcast::Sender<Value>,
    /// This process's new books for the other instances (with [`Settings::events`]).
    outbox: Option<mpsc::Sender<Value>>,
    /// Covers by book id (`attachCover`), at most [`MAX_COVER`] bytes each and
    /// [`MAX_COVERS_TOTAL`] bytes together.
    covers: Mutex<HashMap<String, Value>>,
}

impl Library {
    fn new(outbox: Option<mpsc::Sender<Value>>) -> Self {
        Library {
            authors: vec![
                json!({"id": "1", "name": "Ursula K. Le Guin"}),
                json!({"id": "2", "name": "Frank Herbert"}),
            ],
            books: Mutex::new(vec![
                json!({"id": "1", "title": "A Wizard of Earthsea", "authorId": "1", "year": 1968}),
                json!({"id": "2", "title": "The Dispossessed", "authorId": "1", "year": 1974}),
            ]),
            author_batches: AtomicUsize::new(0),
            added: tokio::sync::broadcast::channel(64).0,
            outbox,
            covers: Mutex::new(HashMap::new()),
        }
    }

    fn books(&self) -> Vec<Value> {
        self.books.lock().map(|b| b.clone()).unwrap_or_default()
    }

    fn author(&self, id: &str) -> Option<Value> {
        self.authors.iter().find(|a| a["id"] == id).cloned()
    }
}

/// What each request carries: the library and a DataLoader of authors by id.
#[derive(Debug)]
struct RequestData {
    library: Arc<Library>,
    authors: DataLoader<String, Value>,
}

impl RequestData {
    fn new(library: Arc<Library>) -> Self {
        let source = Arc::clone(&library);
        let authors = DataLoader::new(move |ids: Vec<String>| {
            let source = Arc::clone(&source);
            async move {
                // One lookup for the whole batch (a database would get `WHERE id IN (...)`).
                source.author_batches.fetch_add(1, Ordering::Relaxed);
                Ok::<_, FieldError>(
                    ids.into_iter()
                        .filter_map(|id| source.author(&id).map(|a| (id, a)))
                        .collect::<HashMap<_, _>>(),
                )
            }
        });
        RequestData { library, authors }
    }
}

fn request_data(ctx: &Context) -> Result<&RequestData, FieldError> {
    ctx.data::<RequestData>()
        .ok_or_else(|| FieldError::new("no request data in the context"))
}

fn library(ctx: &Context) -> Result<&Library, FieldError> {
    request_data(ctx).map(|r| &*r.library)
}

/// The limits of multipart requests (`attachCover`): one cover of at most [`MAX_COVER`]
/// bytes (two files, so that a second is refused by the mutation's own logic rather than
/// silently dropped), and one of the preflight-forcing headers.
fn upload_limits() -> UploadLimits {
    UploadLimits {
        max_file_size: MAX_COVER,
        max_files: 2,
        max_total_size: 2 * MAX_COVER + 64 * 1024,
        max_operations_size: MAX_BODY as u64,
        ..UploadLimits::default()
    }
}

/// `attachCover`: keeps the file, bounded, as the book's cover.
fn attach_cover(ctx: &Context, args: &graphql_core::Args) -> FieldResult {
    let library = library(ctx)?;
    let id = args.get("bookId").and_then(Value::as_str).unwrap_or("");
    let Some(book) = library.books().into_iter().find(|b| b["id"] == id) else {
        return Err(FieldError::new(format!("no book with id {id}"))
            .with_extension("code", json!("NOT_FOUND")));
    };
    let Some(file) = args.get("file").and_then(|v| ctx.upload(v)) else {
        return Err(FieldError::new("the file is not part of this request")
            .with_extension("code", json!("BAD_USER_INPUT")));
    };
    let preview: String = String::from_utf8_lossy(&file.bytes)
        .chars()
        .take(64)
        .collect();
    let cover = json!({
        "filename": file.filename,
        "contentType": file.content_type,
        "size": file.bytes.len(),
        "preview": preview,
    });
    let mut covers = library
        .covers
        .lock()
        .map_err(|_| FieldError::new("the library is unavailable"))?;
    let size = |c: &Value| c["size"].as_u64().unwrap_or(0);
    let others: u64 = covers
        .iter()
        .filter(|(k, _)| k.as_str() != id)
        .map(|(_, c)| size(c))
        .sum();
    if others + file.bytes.len() as u64 > MAX_COVERS_TOTAL {
        return Err(FieldError::new("the covers take all the room there is")
            .with_extension("code", json!("LIMIT_EXCEEDED")));
    }
    // Only the description is kept: the preview shows what arrived, the bytes are dropped.
    covers.insert(id.to_owned(), cover);
    Ok(book)
}

fn build_schema() -> Result<Schema, graphql_core::Error> {
    Schema::build(SDL)
        .incremental_delivery(true)
        .scalar("Upload", ScalarCoercion::upload())
        .resolver(
            "Mutation",
            "attachCover",
            Resolver::sync(|ctx, _, args| attach_cover(ctx, args)),
        )
        .resolver(
            "Book",
            "cover",
            Resolver::sync(|ctx, parent, _| {
                let id = parent["id"].as_str().unwrap_or("");
                let covers = library(ctx)?
                    .covers
                    .lock()
                    .map_err(|_| FieldError::new("the library is unavailable"))?;
                Ok(covers.get(id).cloned().unwrap_or(Value::Null))
            }),
        )
        // The complexity count assumes the real sizes: two authors, books up to the cap
        // (`{ authors { books { author { books ... } } } }` then multiplies by 100 a level).
        .list_size("Query", "authors", 2)
        .list_size("Query", "books", MAX_BOOKS as u32)
        .list_size("Author", "books", MAX_BOOKS as u32)
        .resolver(
            "Query",
            "books",
            Resolver::sync(|ctx, _, _| Ok(Value::Array(library(ctx)?.books()))),
        )
        .resolver(
            "Query",
            "authors",
            Resolver::sync(|ctx, _, _| Ok(Value::Array(library(ctx)?.authors.clone()))),
        )
        // An asynchronous resolver: the kind a database lookup would use.
        .resolver(
            "Query",
            "book",
            Resolver::asynchronous(|input| {
                Box::pin(async move {
                    let id = input.args.get("id").and_then(Value::as_str).unwrap_or("");
                    tokio::task::yield_now().await;
                    let books = library(input.ctx)?.books();
                    FieldResult::Ok(
                        books
                            .into_iter()
                            .find(|b| b["id"] == id)
                            .unwrap_or(Value::Null),
                    )
                })
            }),
        )
        // A DataLoader-backed relation: the authors of every book in a list are fetched
        // with one batch call per request.
        .resolver(
            "Book",
            "author",
            Resolver::asynchronous(|input| {
                Box::pin(async move {
                    let id = input.parent["authorId"].as_str().unwrap_or("").to_owned();
                    let request = request_data(input.ctx)?;
                    FieldResult::Ok(request.authors.load(id).await?.unwrap_or(Value::Null))
                })
            }),
        )
        .resolver(
            "Author",
            "books",
            Resolver::sync(|ctx, parent, _| {
                let id = parent["id"].clone();
                Ok(Value::Array(
                    library(ctx)?
                        .books()
                        .into_iter()
                        .filter(|b| b["authorId"] == id)
                        .collect(),
                ))
            }),
        )
        .resolver(
            "Query",
            "authorBatches",
            Resolver::sync(|ctx, _, _| {
                Ok(json!(library(ctx)?.author_batches.load(Ordering::Relaxed)))
            }),
        )
        .resolver(
            "Mutation",
            "addBook",
            Resolver::sync(|ctx, _, args| {
                let library = library(ctx)?;
                let author = args.get("authorId").and_then(Value::as_str).unwrap_or("");
                if library.author(author).is_none() {
                    return Err(FieldError::new(format!("no author with id {author}"))
                        .with_extension("code", json!("NOT_FOUND")));
                }
                let title = args.get("title").and_then(Value::as_str).unwrap_or("");
                if title.chars().count() > MAX_TITLE {
                    return Err(FieldError::new(format!(
                        "the title is longer than {MAX_TITLE} characters"
                    ))
                    .with_extension("code", json!("BAD_USER_INPUT")));
                }
                let mut books = library
                    .books
                    .lock()
                    .map_err(|_| FieldError::new("the library is unavailable"))?;
                if books.len() >= MAX_BOOKS {
                    return Err(FieldError::new(format!(
                        "the library is full ({MAX_BOOKS} books)"
                    ))
                    .with_extension("code", json!("LIMIT_EXCEEDED")));
                }
                let book = json!({
                    "id": (books.len() + 1).to_string(),
                    "title": args.get("title").cloned().unwrap_or(Value::Null),
                    "authorId": author,
                    "year": args.get("year").cloned().unwrap_or(Value::Null),
                });
                books.push(book.clone());
                // Nobody listening is fine.
                let _ = library.added.send(book.clone());
                if let Some(outbox) = &library.outbox
                    && outbox.try_send(book.clone()).is_err()
                {
                    // Full (Redis slow or down for a while): the other instances miss it.
                    tracing::warn!("bookAdded event not shared with the other instances");
                }
                Ok(book)
            }),
        )
        .subscription(
            "bookAdded",
            SubscriptionSource::new(|ctx, _| {
                let Ok(library) = library(ctx) else {
                    return Box::pin(futures_util::stream::empty()) as EventStream;
                };
                let receiver = library.added.subscribe();
                Box::pin(futures_util::stream::unfold(
                    receiver,
                    |mut rx| async move {
                        loop {
                            match rx.recv().await {
                                Ok(book) => return Some((FieldResult::Ok(book), rx)),
                                // A slow subscriber skips what it missed.
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                    return None;
                                }
                            }
                        }
                    },
                ))
            }),
        )
        .finish()
}

/// How the server is mounted and whom its WebSocket lets in.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The path prefix: empty at the root, or `/graphql` (no trailing slash).
    pub base_path: String,
    /// The `Origin`s the subscription WebSocket accepts; empty accepts any (and none, as
    /// non-browser clients send), as the standalone server does.
    pub allowed_origins: Vec<String>,
    /// How long one message to a WebSocket client may take to be written (default
    /// [`WS_SEND_TIMEOUT`], 10 s). A client that leaves its messages unread past it stops
    /// the server's writes; the connection is then closed with code 1008 (policy violation,
    /// RFC 6455 section 7.4.1: graphql-transport-ws has no code of its own for it), written
    /// if the client's buffers still take it within a second, and its operations are stopped.
    pub ws_send_timeout: Duration,
    /// How often an idle event stream (GraphQL over SSE) gets a comment line (default
    /// [`SSE_KEEP_ALIVE`], 12 s), so that proxies keep it open and a client that went away
    /// is noticed when the write fails.
    pub sse_keep_alive: Duration,
    /// Bounds of the single-connection mode of GraphQL over SSE: streams reserved at once,
    /// operations per stream, how long a reservation waits to be opened.
    pub sse_limits: SseLimits,
    /// How subscription events reach the subscribers connected to other instances: `None`,
    /// this process only; otherwise every instance on the same [`Events`] publishes its
    /// `bookAdded` events there and delivers the others' to its own subscribers
    /// ([`App::run_events`] runs the exchange). Only the events travel: each instance keeps
    /// its own books.
    pub events: Option<Events>,
}

/// Where `bookAdded` events travel between instances.
#[derive(Debug, Clone)]
pub enum Events {
    /// Redis pub/sub: ws-core's [`RedisScaleOut`] (the chat's mechanism, on a prefix of its
    /// own), topic `bookAdded`. It subscribes again every second while Redis is away.
    Redis(RedisScaleOut),
    /// NATS core pub/sub (feature `nats`): one subject all instances publish on and
    /// subscribe to; each event carries its instance's id in the header
    /// [`ORIGIN_HEADER`], so an instance delivers only the others' (its own subscribers
    /// already have its events). The client reconnects and subscribes again by itself.
    /// Delivery is at most once, as with Redis pub/sub: an event published while the
    /// connection is down is lost, which suits live notifications.
    #[cfg(feature = "nats")]
    Nats(NatsEvents),
}

/// The header that names the instance a NATS event comes from.
#[cfg(feature = "nats")]
pub const ORIGIN_HEADER: &str = "Bk-Origin";

/// A NATS connection and the subject of `bookAdded` events ([`Events::Nats`]).
#[cfg(feature = "nats")]
#[derive(Debug, Clone)]
pub struct NatsEvents {
    client: async_nats::Client,
    subject: String,
}

#[cfg(feature = "nats")]
impl NatsEvents {
    /// Connects to the NATS server at `url` (`nats://host:port`); events go on `subject`
    /// (for example `showcase.graphql.bookAdded`: instances that should share events use
    /// the same subject). Fails when the server cannot be reached or the subject is not a
    /// plain subject (no wildcards, no empty tokens, no white space).
    pub async fn connect(url: &str, subject: &str) -> Result<Self, String> {
        let plain = !subject.is_empty()
            && subject.split('.').all(|token| {
                !token.is_empty()
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
            });
        if !plain {
            return Err(format!("{subject:?} is not a plain NATS subject"));
        }
        let client = async_nats::connect(url)
            .await
            .map_err(|error| error.to_string())?;
        Ok(NatsEvents {
            client,
            subject: subject.to_owned(),
        })
    }

    /// Publishes this process's events and delivers the others' until the process ends.
    async fn run(self, mut outbox: mpsc::Receiver<Value>, library: Arc<Library>) {
        use futures_util::StreamExt as _;
        let origin = instance_id();
        let NatsEvents { client, subject } = self;
        let publisher = client.clone();
        let (to, from) = (subject.clone(), origin.clone());
        let publish = async move {
            while let Some(book) = outbox.recv().await {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(ORIGIN_HEADER, from.as_str());
                let payload = Bytes::from(book.to_string());
                if let Err(error) = publisher
                    .publish_with_headers(to.clone(), headers, payload)
                    .await
                {
                    tracing::warn!(%error, "bookAdded event not shared with the other instances");
                }
            }
        };
        let deliver = async move {
            loop {
                match client.subscribe(subject.clone()).await {
                    Ok(mut subscriber) => {
                        while let Some(message) = subscriber.next().await {
                            let own = message
                                .headers
                                .as_ref()
                                .and_then(|headers| headers.get(ORIGIN_HEADER))
                                .is_some_and(|value| value.as_str() == origin);
                            if own {
                                continue;
                            }
                            // Another instance's event: to this process's subscribers only.
                            if let Ok(book) = serde_json::from_slice::<Value>(&message.payload) {
                                let _ = library.added.send(book);
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "GraphQL events from other instances are paused; subscribing again");
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        tokio::join!(publish, deliver);
    }
}

/// 16 random bytes in hex: this process's id among the instances (a clock and the process
/// id if the system's random source fails, which is unique enough for skipping echoes).
#[cfg(feature = "nats")]
fn instance_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        return format!("{nanos:x}-{:x}", std::process::id());
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            base_path: String::new(),
            allowed_origins: Vec::new(),
            ws_send_timeout: WS_SEND_TIMEOUT,
            sse_keep_alive: SSE_KEEP_ALIVE,
            sse_limits: SseLimits::default(),
            events: None,
        }
    }
}

/// The topic (the Redis channel after the prefix) of `bookAdded` events.
const BOOK_ADDED: &str = "bookAdded";
/// Events waiting to be published to the other instances.
const OUTBOX: usize = 256;

/// The schema, the data and the protocol settings: everything a request needs.
#[derive(Debug)]
pub struct App {
    base: String,
    /// The page at the root, rendered once.
    page: Bytes,
    schema: Schema,
    library: Arc<Library>,
    ws: HandshakeConfig,
    ws_send_timeout: Duration,
    /// Operations of WebSocket clients running now (see [`App::websocket_operations`]).
    ws_operations: Arc<AtomicUsize>,
    /// Automatic persisted queries: clients may send a hash instead of the text.
    persisted: PersistedQueries,
    /// The reserved and open streams of GraphQL over SSE's single-connection mode.
    sse: Mutex<SseStreams<SseStream, AbortHandle>>,
    sse_keep_alive: Duration,
    sse_reservation_ttl: Duration,
    /// Operations of GraphQL over SSE running now (see [`App::event_stream_operations`]).
    sse_operations: Arc<AtomicUsize>,
    /// Set when the server stops ([`serve::App::shutdown`]): WebSockets close with 1001
    /// and event streams end.
    shutting_down: tokio::sync::watch::Sender<bool>,
    /// Open graphql-transport-ws connections (see [`App::websocket_connections`]).
    ws_connections: Arc<AtomicUsize>,
    /// [`Settings::events`] and the events waiting for it, until [`App::run_events`].
    events: Mutex<Option<(Events, mpsc::Receiver<Value>)>>,
}

/// One single-connection stream: the sending end its operations write events to, and the
/// receiving end until an event-stream request takes it.
#[derive(Debug)]
struct SseStream {
    tx: mpsc::Sender<Bytes>,
    rx: Option<mpsc::Receiver<Bytes>>,
}

impl App {
    /// Builds the schema and the in-memory library; fails only if the schema is invalid.
    pub fn new(settings: Settings) -> Result<Self, String> {
        let schema = build_schema().map_err(|error| format!("the schema is invalid: {error}"))?;
        let mut ws = HandshakeConfig::default()
            .protocols([GRAPHQL_TRANSPORT_WS])
            .require_protocol(true);
        if !settings.allowed_origins.is_empty() {
            ws = ws.allow_origins(settings.allowed_origins);
        }
        let (outbox, events) = match settings.events {
            Some(bus) => {
                let (sender, receiver) = mpsc::channel(OUTBOX);
                (Some(sender), Some((bus, receiver)))
            }
            None => (None, None),
        };
        Ok(App {
            base: settings.base_path,
            page: page(),
            schema,
            library: Arc::new(Library::new(outbox)),
            ws,
            ws_send_timeout: settings.ws_send_timeout,
            ws_operations: Arc::new(AtomicUsize::new(0)),
            persisted: PersistedQueries::new(PersistedMode::Automatic, 1000),
            sse: Mutex::new(SseStreams::new(settings.sse_limits)),
            sse_keep_alive: settings.sse_keep_alive,
            sse_reservation_ttl: settings.sse_limits.reservation_ttl,
            sse_operations: Arc::new(AtomicUsize::new(0)),
            shutting_down: tokio::sync::watch::channel(false).0,
            ws_connections: Arc::new(AtomicUsize::new(0)),
            events: Mutex::new(events),
        })
    }

    /// With [`Settings::events`], exchanges `bookAdded` events with the other instances for
    /// as long as it runs: publishes this process's, and delivers theirs to this process's
    /// subscribers (subscribing again every second while Redis or NATS is away). Without it, or
    /// when called a second time, returns at once. Spawn it next to the server.
    pub async fn run_events(self: Arc<Self>) {
        let taken = self.events.lock().ok().and_then(|mut events| events.take());
        let Some((events, mut outbox)) = taken else {
            return;
        };
        // Without the `nats` feature Redis is the only variant.
        #[cfg_attr(not(feature = "nats"), allow(clippy::infallible_destructuring_match))]
        let bus = match events {
            Events::Redis(bus) => bus,
            #[cfg(feature = "nats")]
            Events::Nats(nats) => return nats.run(outbox, Arc::clone(&self.library)).await,
        };
        let publisher = bus.clone();
        let publish = async move {
            while let Some(book) = outbox.recv().await {
                let publication = Publication {
                    room: Arc::from(BOOK_ADDED),
                    message: Message::text(book.to_string()),
                };
                if let Err(error) = publisher.publish(&publication).await {
                    tracing::warn!(%error, "bookAdded event not shared with the other instances");
                }
            }
        };
        let library = Arc::clone(&self.library);
        let deliver = bus.relay(
            Duration::from_secs(1),
            move |publication| {
                if &*publication.room != BOOK_ADDED {
                    return;
                }
                let Message::Text(text) = publication.message else {
                    return;
                };
                // Another instance's event: to this process's subscribers only (nobody
                // listening is fine); never published again.
                if let Ok(book) = serde_json::from_str::<Value>(text.as_str()) {
                    let _ = library.added.send(book);
                }
            },
            |error| tracing::warn!(%error, "GraphQL events from other instances are paused; subscribing again"),
        );
        tokio::join!(publish, deliver);
    }

    /// How many operations of WebSocket clients are running now, over all connections
    /// (each connection runs at most 20): the operations of a closed connection are stopped.
    pub fn websocket_operations(&self) -> usize {
        self.ws_operations.load(Ordering::Relaxed)
    }

    /// How many graphql-transport-ws connections are open.
    pub fn websocket_connections(&self) -> usize {
        self.ws_connections.load(Ordering::Relaxed)
    }

    /// How many GraphQL over SSE operations are running now, in both modes: an operation
    /// whose client went away (its event stream closed) is stopped.
    pub fn event_stream_operations(&self) -> usize {
        self.sse_operations.load(Ordering::Relaxed)
    }

    /// How many single-connection event streams are reserved or open.
    pub fn event_streams(&self) -> usize {
        self.sse.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Drops the reservations not opened in time and stops their operations.
    fn expire_event_streams(&self) {
        let expired = match self.sse.lock() {
            Ok(mut sse) => sse.expire(Instant::now()),
            Err(_) => return,
        };
        for (_, operations) in expired {
            operations.iter().for_each(AbortHandle::abort);
        }
    }
}

impl serve::App for App {
    /// Answers one request: the page, `healthz`, or `graphql` (GraphQL over HTTP, or a
    /// `graphql-transport-ws` WebSocket handshake whose session then runs on a task of its
    /// own). A `multipart/mixed` response (a request whose `Accept` allows it, with
    /// `@defer` or `@stream` taking effect) is streamed: each part is sent as soon as it is
    /// ready. Paths outside [`Settings::base_path`] get 404.
    fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        request: http::Request<serve::Body>,
    ) -> serve::ResponseFuture {
        Box::pin(async move { handle_streaming(self, request).await.map(serve::boxed) })
    }

    /// The server stops: every graphql-transport-ws connection is closed with 1001 (going
    /// away, RFC 6455 section 7.4.1) after its operations are stopped, and every event stream
    /// ends (hyper's graceful shutdown waits for open responses).
    fn shutdown(&self) {
        self.shutting_down.send_replace(true);
    }

    /// Whether every WebSocket connection is closed.
    fn is_drained(&self) -> bool {
        self.websocket_connections() == 0
    }
}

/// Hands a `multipart/mixed` GraphQL request to [`stream_multipart`], anything else to
/// [`handle`].
async fn handle_streaming(
    app: Arc<App>,
    request: http::Request<serve::Body>,
) -> http::Response<StreamingBody> {
    let (parts, body) = request.into_parts();
    let endpoint = parts
        .uri
        .path()
        .strip_prefix(app.base.as_str())
        .is_some_and(|rest| rest == "/graphql");
    if endpoint
        && !parts.headers.contains_key(header::UPGRADE)
        && let Some(kind) = sse_request(&parts)
    {
        return handle_sse(app, parts, body, kind).await;
    }
    if !endpoint || parts.headers.contains_key(header::UPGRADE) || !accepts_multipart(&parts) {
        let request = http::Request::from_parts(parts, body);
        return handle(app, request).await.map(BodyExt::boxed_unsync);
    }
    stream_multipart(app, parts, body).await
}

fn plain(
    status: StatusCode,
    content_type: &'static str,
    body: &'static str,
) -> http::Response<Body> {
    let mut response = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

async fn handle(app: Arc<App>, request: http::Request<serve::Body>) -> http::Response<Body> {
    let path = request.uri().path();
    let Some(rest) = path.strip_prefix(app.base.as_str()) else {
        return plain(StatusCode::NOT_FOUND, "text/plain", "not found\n");
    };
    match (request.method(), rest) {
        // The mount point itself: the page's relative URLs need the trailing slash.
        (&Method::GET | &Method::HEAD, "") => {
            let mut location = format!("{}/", app.base);
            if let Some(query) = request.uri().query() {
                location.push('?');
                location.push_str(query);
            }
            let mut response = plain(StatusCode::PERMANENT_REDIRECT, "text/plain", "");
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            return response;
        }
        (&Method::GET, "/") => {
            return serve::page::html(StatusCode::OK, app.page.clone());
        }
        (&Method::GET, "/healthz") => return plain(StatusCode::OK, "text/plain", "ok\n"),
        (_, "/graphql") => {}
        _ => return plain(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
    if request.headers().contains_key(header::UPGRADE) {
        return upgrade(app, request);
    }
    let (parts, body) = request.into_parts();
    if parts.method == Method::POST && is_multipart(&parts) {
        return upload(app, parts, body).await;
    }
    let bytes = match Limited::new(body, MAX_BODY + 1).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "the body is too large\n",
            );
        }
    };
    let response = match read_http_request(&parts, &bytes, MAX_BODY) {
        Ok((mut request, format)) => {
            let extensions = request.extensions.clone();
            match app.persisted.apply(&mut request, extensions.as_ref()) {
                Ok(()) => {
                    let ctx = Context::new(RequestData::new(Arc::clone(&app.library)));
                    if accepts_multipart(&parts) {
                        // `@defer`/`@stream`: the payloads as `multipart/mixed` parts (a
                        // single result stays JSON). The body type is `Full`, so the parts
                        // are sent together once the last is ready (`handle_streaming`
                        // sends each as it comes).
                        use futures_util::StreamExt as _;
                        let payloads: Vec<_> = app
                            .schema
                            .execute_incremental_as(&request, &ctx, incremental_format(&parts))
                            .collect()
                            .await;
                        write_http_incremental(&payloads, format)
                    } else {
                        let response = app.schema.execute(&request, &ctx).await;
                        write_http_response(&response, format)
                    }
                }
                Err(error) => {
                    write_http_response(&graphql_core::Response::request_error(error), format)
                }
            }
        }
        Err(rejection) => rejection.into_response(),
    };
    response.map(|body| Full::new(Bytes::from(body)))
}

/// A multipart request (GraphQL multipart request specification): the body is read as it
/// arrives within [`upload_limits`], the files go to the resolvers through the context.
async fn upload(
    app: Arc<App>,
    parts: http::request::Parts,
    body: serve::Body,
) -> http::Response<Body> {
    use futures_util::StreamExt as _;
    let chunks = http_body_util::BodyStream::new(body).filter_map(|frame| async move {
        match frame {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(e)),
        }
    });
    let response = match read_multipart_request(&parts, chunks, &upload_limits()).await {
        Ok(read) => {
            let ctx =
                Context::new(RequestData::new(Arc::clone(&app.library))).with_uploads(read.uploads);
            let response = app.schema.execute(&read.request, &ctx).await;
            write_http_response(&response, read.format)
        }
        Err(rejection) => rejection.into_response(),
    };
    response.map(|body| Full::new(Bytes::from(body)))
}

/// GraphQL over HTTP for a client that reads `multipart/mixed`: the execution runs on a task
/// of its own and hands each payload over a channel to the response body.
async fn stream_multipart(
    app: Arc<App>,
    parts: http::request::Parts,
    body: serve::Body,
) -> http::Response<StreamingBody> {
    let whole = |response: http::Response<Vec<u8>>| {
        response.map(|body| Full::new(Bytes::from(body)).boxed_unsync())
    };
    let bytes = match Limited::new(body, MAX_BODY + 1).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "the body is too large\n",
            )
            .map(BodyExt::boxed_unsync);
        }
    };
    let (mut request, format) = match read_http_request(&parts, &bytes, MAX_BODY) {
        Ok(read) => read,
        Err(rejection) => return whole(rejection.into_response()),
    };
    let extensions = request.extensions.clone();
    if let Err(error) = app.persisted.apply(&mut request, extensions.as_ref()) {
        return whole(write_http_response(
            &graphql_core::Response::request_error(error),
            format,
        ));
    }
    let incremental = incremental_format(&parts);
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        use futures_util::StreamExt as _;
        let ctx = Context::new(RequestData::new(Arc::clone(&app.library)));
        let mut payloads = app
            .schema
            .execute_incremental_as(&request, &ctx, incremental);
        let Some(first) = payloads.next().await else {
            return;
        };
        let more = first.has_next();
        let part = Bytes::from(multipart_part(first.to_json(), true, !more));
        if first_tx.send((first, part)).is_err() || !more {
            return;
        }
        while let Some(payload) = payloads.next().await {
            let part = multipart_part(payload.to_json(), false, !payload.has_next());
            if tx.send(Bytes::from(part)).await.is_err() {
                // The client went away: stop executing.
                return;
            }
        }
    });
    let Ok((first, part)) = first_rx.await else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "execution stopped\n",
        )
        .map(BodyExt::boxed_unsync);
    };
    if first.complete_response().is_some() {
        // Nothing deferred or streamed: one ordinary result.
        return whole(write_http_incremental(&[first], format));
    }
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let frames = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok(Frame::data(part)) }),
        rest,
    );
    let mut response = http::Response::new(StreamBody::new(frames).boxed_unsync());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(incremental.content_type()),
    );
    response
}

/// Answers a WebSocket handshake on `graphql` (subprotocol `graphql-transport-ws`) and runs
/// the protocol on the upgraded connection.
fn upgrade(app: Arc<App>, request: http::Request<serve::Body>) -> http::Response<Body> {
    let (parts, body) = request.into_parts();
    let accepted = match accept(&parts, &app.ws) {
        Ok(accepted) => accepted,
        Err(error) => return rejection_response(&error).map(|text| Full::new(Bytes::from(text))),
    };
    let request = http::Request::from_parts(parts, body);
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(request).await {
            let ws = WebSocket::new(
                TokioIo::new(upgraded),
                Connection::new(Limits::default(), None),
            );
            graphql_ws(app, ws).await;
        }
    });
    accepted.response.map(|()| Full::new(Bytes::new()))
}

/// One graphql-transport-ws connection: `WsSession` decides, this loop does the IO and
/// runs each operation as a task whose responses come back through a channel.
async fn graphql_ws<S>(app: Arc<App>, mut ws: WebSocket<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut session =
        WsSession::new(Instant::now(), Duration::from_secs(3)).max_operations(WS_OPERATIONS);
    // Bounded: a client that does not read makes its operations wait, not memory grow.
    let (tx, mut rx) = mpsc::channel::<(String, Option<graphql_core::Response>)>(WS_QUEUE);
    let mut running: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
    let _open = OperationGuard::new(&app.ws_connections);
    let mut shutting_down = app.shutting_down.subscribe();
    'connection: loop {
        let deadline = session.poll_timeout();
        let actions = tokio::select! {
            _ = shutting_down.wait_for(|&down| down) => {
                for task in running.values() {
                    task.abort();
                }
                vec![WsAction::Close(1001, "server shutting down".to_owned())]
            }
            message = ws.next_message() => match message {
                Some(Ok(Message::Text(text))) => session.handle_text(text.as_str(), Instant::now()),
                Some(Ok(Message::Binary(_))) => session.handle_text("binary", Instant::now()),
                Some(Ok(_)) => Vec::new(),
                Some(Err(_)) | None => break,
            },
            Some((id, response)) = rx.recv() => match response {
                Some(response) => session.next(&id, &response),
                None => {
                    running.remove(&id);
                    session.complete(&id)
                }
            },
            () = sleep_until(deadline) => session.handle_timeout(Instant::now()),
        };
        for action in actions {
            match action {
                WsAction::Send(text) => {
                    // A client that leaves its messages unread past the timeout is closed
                    // with 1008 (its operations are stopped below).
                    let sent =
                        tokio::time::timeout(app.ws_send_timeout, ws.send(Message::text(text)));
                    match sent.await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break 'connection,
                        Err(_elapsed) => {
                            // Best effort: the client does not read, so the frame waits
                            // behind the unsent bytes and is usually never seen.
                            let _ = ws.start_close(CloseCode::Policy, "the client does not read");
                            let _ = tokio::time::timeout(WS_CLOSE_GRACE, ws.flush()).await;
                            break 'connection;
                        }
                    }
                }
                WsAction::Subscribe { id, request } => {
                    let task = tokio::spawn(run_operation(
                        Arc::clone(&app),
                        id.clone(),
                        *request,
                        tx.clone(),
                    ));
                    running.insert(id, task.abort_handle());
                }
                WsAction::Cancel { id } => {
                    if let Some(task) = running.remove(&id) {
                        task.abort();
                    }
                }
                WsAction::Close(code, reason) => {
                    let _ = ws.start_close(CloseCode::from(code), &reason);
                    let _ = tokio::time::timeout(app.ws_send_timeout, async {
                        let _ = ws.flush().await;
                        while let Some(Ok(_)) = ws.next_message().await {}
                    })
                    .await;
                    break 'connection;
                }
            }
        }
    }
    for task in running.values() {
        task.abort();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Runs one operation of a WebSocket client: a subscription's stream, or a single result.
async fn run_operation(
    app: Arc<App>,
    id: String,
    request: graphql_core::Request,
    tx: mpsc::Sender<(String, Option<graphql_core::Response>)>,
) {
    let _running = OperationGuard::new(&app.ws_operations);
    let ctx = Context::new(RequestData::new(Arc::clone(&app.library)));
    if operation_type(&request.query, request.operation_name.as_deref()) == Some("subscription") {
        let mut stream = app.schema.subscribe(request, ctx);
        while let Some(response) = futures_util::StreamExt::next(&mut stream).await {
            if tx.send((id.clone(), Some(response))).await.is_err() {
                return;
            }
        }
    } else {
        let response = app.schema.execute(&request, &ctx).await;
        let _ = tx.send((id.clone(), Some(response))).await;
    }
    let _ = tx.send((id, None)).await;
}

/// Counts one running WebSocket operation until it ends or is aborted (dropped).
struct OperationGuard(Arc<AtomicUsize>);

impl OperationGuard {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        OperationGuard(Arc::clone(count))
    }
}

impl Drop for OperationGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A whole response as the streaming body type.
fn whole(response: http::Response<Vec<u8>>) -> http::Response<StreamingBody> {
    response.map(|body| Full::new(Bytes::from(body)).boxed_unsync())
}

/// Reads a GraphQL request of GraphQL over SSE from the body (bounded).
async fn read_sse_body(
    parts: &http::request::Parts,
    body: serve::Body,
) -> Result<graphql_core::Request, http::Response<StreamingBody>> {
    let Ok(collected) = Limited::new(body, MAX_BODY + 1).collect().await else {
        return Err(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            "the body is too large\n",
        )
        .map(BodyExt::boxed_unsync));
    };
    read_sse_request(parts, &collected.to_bytes(), MAX_BODY)
        .map_err(|rejection| whole(rejection.into_response()))
}

/// GraphQL over Server-Sent Events (the `graphql-sse` protocol): graphql-core's
/// [`sse_request`] says what the request is and [`SseStreams`] keeps the single-connection
/// reservations; this runs the operations as tasks and streams their events.
async fn handle_sse(
    app: Arc<App>,
    parts: http::request::Parts,
    body: serve::Body,
    kind: Result<SseRequest, HttpRejection>,
) -> http::Response<StreamingBody> {
    let kind = match kind {
        Ok(kind) => kind,
        Err(rejection) => return whole(rejection.into_response()),
    };
    let now = Instant::now();
    match kind {
        SseRequest::Reserve { token } => {
            let mut random = [0u8; 16];
            if getrandom::fill(&mut random).is_err() {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "no randomness for a token\n",
                )
                .map(BodyExt::boxed_unsync);
            }
            // Reservations not opened in time are dropped with their operations here
            // rather than in `reserve`, which would drop the handles without stopping them.
            app.expire_event_streams();
            let (tx, rx) = mpsc::channel(SSE_QUEUE);
            let stream = SseStream { tx, rx: Some(rx) };
            let reserved = match app.sse.lock() {
                Ok(mut sse) => sse.reserve(random, token.as_deref(), stream, now),
                Err(_) => return whole(poisoned()),
            };
            match reserved {
                Ok(token) => {
                    let later = Arc::clone(&app);
                    tokio::spawn(async move {
                        tokio::time::sleep(later.sse_reservation_ttl).await;
                        later.expire_event_streams();
                    });
                    let mut response = http::Response::new(
                        Full::new(Bytes::from(token.into_bytes())).boxed_unsync(),
                    );
                    *response.status_mut() = StatusCode::CREATED;
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    response
                }
                Err(rejection) => whole(rejection.into_response()),
            }
        }
        SseRequest::OpenStream { token } => {
            let opened = match app.sse.lock() {
                Ok(mut sse) => sse.open(&token, now).map(|stream| stream.rx.take()),
                Err(_) => return whole(poisoned()),
            };
            match opened {
                Ok(Some(rx)) => {
                    let guard = StreamGuard::Stream(Arc::clone(&app), token);
                    event_stream(&app, rx, guard)
                }
                Ok(None) => whole(poisoned()),
                Err(rejection) => whole(rejection.into_response()),
            }
        }
        SseRequest::Distinct => {
            let mut request = match read_sse_body(&parts, body).await {
                Ok(request) => request,
                Err(response) => return response,
            };
            let (tx, rx) = mpsc::channel(SSE_QUEUE);
            let extensions = request.extensions.clone();
            if let Err(error) = app.persisted.apply(&mut request, extensions.as_ref()) {
                // Request errors are events too: the client reads the stream either way.
                let response = graphql_core::Response::request_error(error).to_json();
                let _ = tx.try_send(Bytes::from(
                    SseEvent::Next {
                        id: None,
                        payload: &response,
                    }
                    .encode(),
                ));
                let _ = tx.try_send(Bytes::from(SseEvent::Complete { id: None }.encode()));
                drop(tx);
                return event_stream(&app, rx, StreamGuard::Done);
            }
            let (abort, registration) = AbortHandle::new_pair();
            tokio::spawn(Abortable::new(
                run_sse_operation(Arc::clone(&app), None, request, tx),
                registration,
            ));
            event_stream(&app, rx, StreamGuard::Task(abort))
        }
        SseRequest::Operation { token } => {
            let mut request = match read_sse_body(&parts, body).await {
                Ok(request) => request,
                Err(response) => return response,
            };
            let id = match graphql_core::operation_id(&request) {
                Ok(id) => id,
                Err(rejection) => return whole(rejection.into_response()),
            };
            let extensions = request.extensions.clone();
            if let Err(error) = app.persisted.apply(&mut request, extensions.as_ref()) {
                return whole(write_http_response(
                    &graphql_core::Response::request_error(error),
                    graphql_core::ResponseFormat::GraphQLResponseJson,
                ));
            }
            let (abort, registration) = AbortHandle::new_pair();
            let started = match app.sse.lock() {
                Ok(mut sse) => sse
                    .start_operation(&token, &id, abort, Instant::now())
                    .map(|stream| stream.tx.clone()),
                Err(_) => return whole(poisoned()),
            };
            let tx = match started {
                Ok(tx) => tx,
                Err(rejection) => return whole(rejection.into_response()),
            };
            tokio::spawn(Abortable::new(
                run_sse_operation(Arc::clone(&app), Some((token, id)), request, tx),
                registration,
            ));
            let mut response = http::Response::new(Full::new(Bytes::new()).boxed_unsync());
            *response.status_mut() = StatusCode::ACCEPTED;
            response
        }
        SseRequest::Stop {
            token,
            operation_id,
        } => {
            let stopped = match app.sse.lock() {
                Ok(mut sse) => sse.stop_operation(&token, &operation_id, now),
                Err(_) => return whole(poisoned()),
            };
            match stopped {
                Ok(operation) => {
                    operation.abort();
                    http::Response::new(Full::new(Bytes::new()).boxed_unsync())
                }
                Err(rejection) => whole(rejection.into_response()),
            }
        }
    }
}

fn poisoned() -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(b"internal error\n".to_vec());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// What an event stream's body stops or releases when it is dropped: when the client goes
/// away, hyper drops the body, and with it the operation (distinct mode) or the stream and
/// all of its operations (single-connection mode).
enum StreamGuard {
    /// Nothing runs for it.
    Done,
    /// The one operation of a distinct-mode stream.
    Task(AbortHandle),
    /// A single-connection stream, by token.
    Stream(Arc<App>, String),
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        match self {
            StreamGuard::Done => {}
            StreamGuard::Task(task) => task.abort(),
            StreamGuard::Stream(app, token) => {
                let closed = app.sse.lock().ok().and_then(|mut sse| sse.close(token));
                if let Some((_, operations)) = closed {
                    operations.iter().for_each(AbortHandle::abort);
                }
            }
        }
    }
}

/// A `text/event-stream` response: a comment line at once (some clients wait for the
/// first bytes) and after each [`Settings::sse_keep_alive`] without events, then the events
/// from `rx` until every sender is gone or the server shuts down.
fn event_stream(
    app: &App,
    rx: mpsc::Receiver<Bytes>,
    guard: StreamGuard,
) -> http::Response<StreamingBody> {
    let keep_alive = app.sse_keep_alive;
    let shutting_down = app.shutting_down.subscribe();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let first = futures_util::stream::once(async {
        Ok::<_, Infallible>(Frame::data(Bytes::from(SseEvent::KeepAlive.encode())))
    });
    let events = futures_util::stream::unfold(
        (rx, ticks, guard, shutting_down),
        |(mut rx, mut ticks, guard, mut shutting_down)| async move {
            let bytes = tokio::select! {
                biased;
                event = rx.recv() => {
                    ticks.reset();
                    event?
                }
                _ = shutting_down.wait_for(|&down| down) => return None,
                _ = ticks.tick() => Bytes::from(SseEvent::KeepAlive.encode()),
            };
            let state = (rx, ticks, guard, shutting_down);
            Some((Ok::<_, Infallible>(Frame::data(bytes)), state))
        },
    );
    let frames = futures_util::StreamExt::chain(first, events);
    let mut response = http::Response::new(StreamBody::new(frames).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(TEXT_EVENT_STREAM),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies that buffer responses (nginx) would hold the events back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Runs one operation of GraphQL over SSE and writes its events: `next` for each result
/// (a subscription's events, the payloads of `@defer`/`@stream`, or a single result), then
/// `complete`. `single` is the stream's token and the operation id in the single-connection
/// mode. Dropped (aborted) when the client stops it or goes away.
async fn run_sse_operation(
    app: Arc<App>,
    single: Option<(String, String)>,
    request: graphql_core::Request,
    tx: mpsc::Sender<Bytes>,
) {
    use futures_util::StreamExt as _;
    let _running = OperationGuard::new(&app.sse_operations);
    let id = single.as_ref().map(|(_, id)| id.as_str());
    let next = |payload: &str| Bytes::from(SseEvent::Next { id, payload }.encode());
    let ctx = Context::new(RequestData::new(Arc::clone(&app.library)));
    if operation_type(&request.query, request.operation_name.as_deref()) == Some("subscription") {
        let mut stream = app.schema.subscribe(request, ctx);
        while let Some(response) = stream.next().await {
            if tx.send(next(&response.to_json())).await.is_err() {
                return;
            }
        }
    } else {
        let mut payloads = app.schema.execute_incremental(&request, &ctx);
        while let Some(payload) = payloads.next().await {
            if tx.send(next(payload.to_json())).await.is_err() {
                return;
            }
        }
    }
    let _ = tx
        .send(Bytes::from(SseEvent::Complete { id }.encode()))
        .await;
    if let Some((token, id)) = &single
        && let Ok(mut sse) = app.sse.lock()
    {
        sse.finish_operation(token, id);
    }
}
