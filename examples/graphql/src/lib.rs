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
//! (`multipart/mixed; boundary="-"; deferSpec=20220824`), others one complete result.
//! `@cacheControl` hints in the SDL give each response a `Cache-Control` (`max-age=30,
//! public` for `{ books { title } }`, `no-store` for what has no hint), so a cache in front
//! (examples/reverse-proxy) serves repeated GET queries. `attachCover(bookId:, file:
//! Upload!)` takes a file as a multipart request (GraphQL multipart request specification):
//! at most 256 KiB, with an `Apollo-Require-Preflight` (or `GraphQL-Require-Preflight`,
//! `X-Apollo-Operation-Name`) header against cross-site requests.
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
use graphql_core::{
    Context, DataLoader, EventStream, FieldError, FieldResult, GRAPHQL_TRANSPORT_WS, PersistedMode,
    PersistedQueries, Resolver, ScalarCoercion, Schema, SubscriptionSource, UploadLimits, WsAction,
    WsSession, accepts_multipart, is_multipart, multipart_part, operation_type, read_http_request,
    read_multipart_request, write_http_incremental, write_http_response,
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
    /// How subscription events reach the subscribers connected to other instances: `None`,
    /// this process only; with Redis pub/sub (ws-core's [`RedisScaleOut`], the chat's
    /// mechanism, on a prefix of its own), every instance on the same Redis and prefix
    /// publishes its `bookAdded` events on the topic `bookAdded` and delivers the others'
    /// to its own subscribers ([`App::run_events`] runs the exchange). Only the events
    /// travel: each instance keeps its own books.
    pub events: Option<RedisScaleOut>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            base_path: String::new(),
            allowed_origins: Vec::new(),
            ws_send_timeout: WS_SEND_TIMEOUT,
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
    /// [`Settings::events`] and the events waiting for it, until [`App::run_events`].
    events: Mutex<Option<(RedisScaleOut, mpsc::Receiver<Value>)>>,
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
            events: Mutex::new(events),
        })
    }

    /// With [`Settings::events`], exchanges `bookAdded` events with the other instances for
    /// as long as it runs: publishes this process's, and delivers theirs to this process's
    /// subscribers (subscribing again every second while Redis is away). Without it, or
    /// when called a second time, returns at once. Spawn it next to the server.
    pub async fn run_events(self: Arc<Self>) {
        let taken = self.events.lock().ok().and_then(|mut events| events.take());
        let Some((bus, mut outbox)) = taken else {
            return;
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
                            .execute_incremental(&request, &ctx)
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
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        use futures_util::StreamExt as _;
        let ctx = Context::new(RequestData::new(Arc::clone(&app.library)));
        let mut payloads = app.schema.execute_incremental(&request, &ctx);
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
        HeaderValue::from_static(graphql_core::MULTIPART_MIXED),
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
    'connection: loop {
        let deadline = session.poll_timeout();
        let actions = tokio::select! {
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
