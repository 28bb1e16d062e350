//! graphql: a small library served with graphql-core on hyper. The schema is SDL
//! (`schema.graphql`), resolvers are registered per type and field, and `/graphql` speaks
//! GraphQL over HTTP (GET and POST, `application/graphql-response+json` or
//! `application/json`, mutations refused over GET). `/` is a page to send queries from a
//! browser; `/healthz` answers `ok`. `Book.author` is loaded through a per-request
//! DataLoader: a list of books costs one author lookup (`{ authorBatches }` counts them).
//!
//! Run with: `cargo run -p graphql`, then open <http://127.0.0.1:8080/>.
//!
//! Try:
//!
//! ```text
//! curl -s 'http://127.0.0.1:8080/graphql?query=%7Bbooks%7Btitle%20author%7Bname%7D%7D%7D'
//! curl -s http://127.0.0.1:8080/graphql -H 'content-type: application/json' \
//!      -H 'accept: application/graphql-response+json' \
//!      -d '{"query":"mutation($t: String!) { addBook(title: $t, authorId: \"1\") { id title } }","variables":{"t":"Dune"}}'
//! curl -si 'http://127.0.0.1:8080/graphql?query=mutation%7BaddBook(title:%22x%22,authorId:%221%22)%7Bid%7D%7D'  # 405
//! ```
//!
//! Environment: `PORT` (default 8080; `0` picks a free port), `BIND` (default `127.0.0.1`).
//! The first line on stdout is always `listening on http://ADDR`. Ctrl-C stops the server.
//!
//! Subscriptions: a WebSocket on `/graphql` with the `graphql-transport-ws` subprotocol
//! (the npm `graphql-ws` client's protocol), e.g. `subscription { bookAdded { title } }`,
//! then add a book with the mutation above.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use graphql_core::{
    Context, DataLoader, EventStream, FieldError, FieldResult, GRAPHQL_TRANSPORT_WS, PersistedMode,
    PersistedQueries, Resolver, Schema, SubscriptionSource, WsAction, WsSession, operation_type,
    read_http_request, write_http_response,
};
use http::{Method, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use ws_core::{
    CloseCode, Connection, HandshakeConfig, Limits, Message, WebSocket, accept, rejection_response,
};

const SDL: &str = include_str!("schema.graphql");
const PAGE: &str = include_str!("index.html");
/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

type Body = Full<Bytes>;

/// The library's data: authors and books, in memory.
#[derive(Debug)]
struct Library {
    authors: Vec<Value>,
    books: Mutex<Vec<Value>>,
    /// How many author batches were loaded (shown by `{ authorBatches }`).
    author_batches: AtomicUsize,
    /// New books, for the `bookAdded` subscription.
    added: tokio::sync::broadcast::Sender<Value>,
}

impl Library {
    fn new() -> Self {
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

fn build_schema() -> Result<Schema, graphql_core::Error> {
    Schema::build(SDL)
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
                let mut books = library
                    .books
                    .lock()
                    .map_err(|_| FieldError::new("the library is unavailable"))?;
                let book = json!({
                    "id": (books.len() + 1).to_string(),
                    "title": args.get("title").cloned().unwrap_or(Value::Null),
                    "authorId": author,
                    "year": args.get("year").cloned().unwrap_or(Value::Null),
                });
                books.push(book.clone());
                // Nobody listening is fine.
                let _ = library.added.send(book.clone());
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

fn main() -> ExitCode {
    let addr = match addr_from_env() {
        Ok(addr) => addr,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let schema = match build_schema() {
        Ok(schema) => schema,
        Err(error) => {
            eprintln!("error: the schema is invalid: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let app = Arc::new(App {
        schema,
        library: Arc::new(Library::new()),
        ws: HandshakeConfig::default()
            .protocols([GRAPHQL_TRANSPORT_WS])
            .require_protocol(true),
        persisted: PersistedQueries::new(PersistedMode::Automatic, 1000),
    });
    match runtime.block_on(serve(addr, app)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn addr_from_env() -> Result<SocketAddr, String> {
    let ip = match std::env::var("BIND") {
        Ok(bind) => bind
            .parse::<IpAddr>()
            .map_err(|_| format!("BIND={bind:?} is not an IP address (try 127.0.0.1)"))?,
        Err(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| format!("PORT={port:?} is not a port number (0 to 65535)"))?,
        Err(_) => 8080,
    };
    Ok(SocketAddr::new(ip, port))
}

#[derive(Debug)]
struct App {
    schema: Schema,
    library: Arc<Library>,
    ws: HandshakeConfig,
    /// Automatic persisted queries: clients may send a hash instead of the text.
    persisted: PersistedQueries,
}

async fn serve(addr: SocketAddr, app: Arc<App>) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| format!("cannot listen on {addr}: {error} (PORT=0 picks a free port)"))?;
    let local = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on http://{local}");
        let _ = stdout.flush();
    }
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let app = Arc::clone(&app);
                let service = service_fn(move |request| handle(Arc::clone(&app), request));
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
            _ = &mut ctrl_c => return Ok(()),
        }
    }
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

async fn handle(
    app: Arc<App>,
    request: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let path = request.uri().path();
    match (request.method(), path) {
        (&Method::GET, "/") => return Ok(plain(StatusCode::OK, "text/html; charset=utf-8", PAGE)),
        (&Method::GET, "/healthz") => return Ok(plain(StatusCode::OK, "text/plain", "ok\n")),
        (_, "/graphql") => {}
        _ => return Ok(plain(StatusCode::NOT_FOUND, "text/plain", "not found\n")),
    }
    if request.headers().contains_key(header::UPGRADE) {
        return Ok(upgrade(app, request));
    }
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, MAX_BODY + 1).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "the body is too large\n",
            ));
        }
    };
    let response = match read_http_request(&parts, &bytes, MAX_BODY) {
        Ok((mut request, format)) => {
            let extensions = request.extensions.clone();
            match app.persisted.apply(&mut request, extensions.as_ref()) {
                Ok(()) => {
                    let ctx = Context::new(RequestData::new(Arc::clone(&app.library)));
                    let response = app.schema.execute(&request, &ctx).await;
                    write_http_response(&response, format)
                }
                Err(error) => {
                    write_http_response(&graphql_core::Response::request_error(error), format)
                }
            }
        }
        Err(rejection) => rejection.into_response(),
    };
    Ok(response.map(|body| Full::new(Bytes::from(body))))
}

/// Answers a WebSocket handshake on `/graphql` (subprotocol `graphql-transport-ws`) and runs
/// the protocol on the upgraded connection.
fn upgrade(app: Arc<App>, request: http::Request<Incoming>) -> http::Response<Body> {
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
    let mut session = WsSession::new(Instant::now(), Duration::from_secs(3));
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Option<graphql_core::Response>)>();
    let mut running: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
    loop {
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
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
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
                    let _ = ws.flush().await;
                    while let Some(Ok(_)) = ws.next_message().await {}
                    for task in running.values() {
                        task.abort();
                    }
                    return;
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
    tx: mpsc::UnboundedSender<(String, Option<graphql_core::Response>)>,
) {
    let ctx = Context::new(RequestData::new(Arc::clone(&app.library)));
    if operation_type(&request.query, request.operation_name.as_deref()) == Some("subscription") {
        let mut stream = app.schema.subscribe(request, ctx);
        while let Some(response) = futures_util::StreamExt::next(&mut stream).await {
            if tx.send((id.clone(), Some(response))).is_err() {
                return;
            }
        }
    } else {
        let response = app.schema.execute(&request, &ctx).await;
        let _ = tx.send((id.clone(), Some(response)));
    }
    let _ = tx.send((id, None));
}
