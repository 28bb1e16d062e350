#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! GraphQL over Server-Sent Events (the graphql-sse protocol) over raw HTTP/1.1: the
//! distinct-connections mode, the single-connection mode's status codes and conflicts, and
//! (in process, to read the app's counters) that nothing keeps running once a client goes
//! away or a reservation expires. The npm graphql-sse client runs in tests/peers.rs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve::testing::{Process, send};

const SSE: (&str, &str) = ("accept", "text/event-stream");
const JSON_CT: (&str, &str) = ("content-type", "application/json");
const TOKEN: &str = "x-graphql-event-stream-token";

/// The example alone: without `REDIS_URL` and `NATS_URL`, so that the `bookAdded` events of the servers
/// other tests run at the same time (which would share them through Redis) never reach it.
fn start() -> Process {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_graphql"));
    command.env_remove("REDIS_URL").env_remove("NATS_URL");
    Process::spawn(command)
}

/// The events of a whole event-stream body: (event, data) pairs; comments are skipped.
fn events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|block| !block.is_empty() && !block.starts_with(':'))
        .map(|block| {
            let mut event = String::new();
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push(d);
                } else if line == "data:" {
                    data.push("");
                }
            }
            (event, data.join("\n"))
        })
        .collect()
}

/// An open response read as it comes.
struct Stream {
    socket: TcpStream,
    seen: Vec<u8>,
}

impl Stream {
    fn open(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Self {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        socket.write_all(head.as_bytes()).unwrap();
        Stream {
            socket,
            seen: Vec::new(),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Reads until `pattern` has been seen (anywhere so far), for at most 10 s.
    fn wait_for(&mut self, pattern: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while !self.text().contains(pattern) {
            assert!(
                Instant::now() < deadline,
                "no {pattern:?} in {:?}",
                self.text()
            );
            match self.socket.read(&mut buf) {
                Ok(0) => panic!("closed before {pattern:?}: {:?}", self.text()),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        self.text()
    }
}

#[test]
fn distinct_connections_stream_results_then_complete() {
    let server = start();
    let query = json!({"query": "{ book(id: \"1\") { title } }"}).to_string();
    let reply = server.send("POST", "/graphql", &[SSE, JSON_CT], query.as_bytes());
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(reply.header("cache-control"), Some("no-cache"));
    assert!(reply.body.starts_with(":\n\n"), "{:?}", reply.body);
    assert_eq!(
        events(&reply.body),
        [
            (
                "next".to_owned(),
                r#"{"data":{"book":{"title":"A Wizard of Earthsea"}}}"#.to_owned()
            ),
            ("complete".to_owned(), String::new()),
        ]
    );

    // GET works too; validation errors are events, not a 400 (the protocol's rule).
    let reply = server.get_with("/graphql?query=%7B%20nope%20%7D", &[SSE]);
    assert_eq!(reply.status, 200);
    let got = events(&reply.body);
    assert_eq!(got.len(), 2, "{got:?}");
    let next: Value = serde_json::from_str(&got[0].1).unwrap();
    assert!(
        next["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nope")
    );
    assert_eq!(got[1].0, "complete");

    // @defer and @stream: every payload is a `next` event, in order.
    let query = json!({"query": r#"{ books @stream(initialCount: 1) { title } book(id: "1") { id ... @defer { year } } }"#}).to_string();
    let reply = server.send("POST", "/graphql", &[SSE, JSON_CT], query.as_bytes());
    let got = events(&reply.body);
    let kinds: Vec<&str> = got.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(kinds, ["next", "next", "next", "complete"]);
    let has_next: Vec<Value> = got[..3]
        .iter()
        .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap()["hasNext"].clone())
        .collect();
    assert_eq!(has_next, [json!(true), json!(true), json!(false)]);
    // A field already sent is not sent again: the deferred sub-field comes with `subPath`.
    let query = json!({"query": r#"{ book(id: "1") { author { name } ... @defer { author { name id } } } }"#}).to_string();
    let reply = server.send("POST", "/graphql", &[SSE, JSON_CT], query.as_bytes());
    let got = events(&reply.body);
    let payloads: Vec<Value> = got
        .iter()
        .filter(|(e, _)| e == "next")
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(
        payloads,
        [
            json!({"data": {"book": {"author": {"name": "Ursula K. Le Guin"}}},
                   "pending": [{"id": "0", "path": ["book"]}], "hasNext": true}),
            json!({"incremental": [{"id": "0", "data": {"id": "1"}, "subPath": ["author"]}],
                   "completed": [{"id": "0"}], "hasNext": false}),
        ]
    );

    // Not a GraphQL request at all: a plain HTTP error.
    let reply = server.send("POST", "/graphql", &[SSE, JSON_CT], b"{not json");
    assert_eq!(reply.status, 400);
    // A mutation over GET stays refused.
    let reply = server.get_with(
        "/graphql?query=mutation%7BaddBook(title:%22x%22,authorId:%221%22)%7Bid%7D%7D",
        &[SSE],
    );
    assert_eq!(reply.status, 405);
}

#[test]
fn distinct_connection_subscription_receives_events() {
    let server = start();
    let mut stream = Stream::open(
        server.addr,
        "GET",
        &format!(
            "/graphql?query={}",
            "subscription%20%7B%20bookAdded%20%7B%20title%20%7D%20%7D"
        ),
        &[SSE],
    );
    stream.wait_for(":\n\n");
    // The subscription starts on a task of its own: add books until it sees one.
    add_books_until(&server, &mut stream, "bookAdded");
    for title in ["One", "Two"] {
        let m = json!({"query": format!("mutation {{ addBook(title: \"{title}\", authorId: \"1\") {{ id }} }}")});
        let reply = server.send("POST", "/graphql", &[JSON_CT], m.to_string().as_bytes());
        assert_eq!(reply.status, 200);
    }
    let text = stream.wait_for(r#"{"data":{"bookAdded":{"title":"Two"}}}"#);
    let one = text
        .find(r#"{"data":{"bookAdded":{"title":"One"}}}"#)
        .unwrap();
    let two = text
        .find(r#"{"data":{"bookAdded":{"title":"Two"}}}"#)
        .unwrap();
    assert!(one < two);
    assert!(!text.contains("event: complete"));
}

#[test]
fn single_connection_status_codes_and_conflicts() {
    let server = start();
    let reserved = server.send("PUT", "/graphql", &[], b"");
    assert_eq!(reserved.status, 201);
    assert_eq!(
        reserved.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let token = reserved.body.clone();
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    // A second PUT with the registered token: 409.
    assert_eq!(
        server
            .send("PUT", "/graphql", &[(TOKEN, &token)], b"")
            .status,
        409
    );
    // Wrong token: 404 for the stream, an operation and a stop.
    assert_eq!(server.get_with("/graphql?token=0123", &[SSE]).status, 404);
    let op = |id: &str, query: &str| {
        json!({"query": query, "extensions": {"operationId": id}}).to_string()
    };
    let sub = op("s1", "subscription { bookAdded { title } }");
    assert_eq!(
        server
            .send(
                "POST",
                "/graphql",
                &[(TOKEN, "wrong"), JSON_CT],
                sub.as_bytes()
            )
            .status,
        404
    );
    assert_eq!(
        server
            .send(
                "DELETE",
                "/graphql?operationId=s1",
                &[(TOKEN, "wrong")],
                b""
            )
            .status,
        404
    );
    // DELETE without a token or without an operation id.
    assert_eq!(
        server
            .send("DELETE", "/graphql?operationId=s1", &[], b"")
            .status,
        404
    );
    assert_eq!(
        server
            .send("DELETE", "/graphql", &[(TOKEN, &token)], b"")
            .status,
        400
    );

    // The stream, by query parameter (as EventSource sends it); a second one: 409.
    let mut stream = Stream::open(
        server.addr,
        "GET",
        &format!("/graphql?token={token}"),
        &[SSE],
    );
    stream.wait_for("text/event-stream");
    let second = server.get_with(&format!("/graphql?token={token}"), &[SSE]);
    assert_eq!(second.status, 409);
    assert!(
        second.body.contains("Stream already open"),
        "{}",
        second.body
    );

    // An operation without an id: 400; with one: 202; the same id while it runs: 409.
    let no_id = json!({"query": "{ books { id } }"}).to_string();
    assert_eq!(
        server
            .send(
                "POST",
                "/graphql",
                &[(TOKEN, &token), JSON_CT],
                no_id.as_bytes()
            )
            .status,
        400
    );
    let accepted = server.send(
        "POST",
        "/graphql",
        &[(TOKEN, &token), JSON_CT],
        sub.as_bytes(),
    );
    assert_eq!(accepted.status, 202);
    assert_eq!(
        server
            .send(
                "POST",
                "/graphql",
                &[(TOKEN, &token), JSON_CT],
                sub.as_bytes()
            )
            .status,
        409
    );
    add_books_until(
        &server,
        &mut stream,
        r#"data: {"id":"s1","payload":{"data":{"bookAdded":{"title":"Sse"#,
    );

    // Unknown operation id: 404; stopping s1: 200, then it is unknown.
    let stop = |id: &str| {
        server
            .send(
                "DELETE",
                &format!("/graphql?operationId={id}"),
                &[(TOKEN, &token)],
                b"",
            )
            .status
    };
    assert_eq!(stop("nope"), 404);
    assert_eq!(stop("s1"), 200);
    assert_eq!(stop("s1"), 404);

    // A query: its result and its completion carry its id.
    let query = op("q1", "{ book(id: \"2\") { title } }");
    assert_eq!(
        server
            .send(
                "POST",
                "/graphql",
                &[(TOKEN, &token), JSON_CT],
                query.as_bytes()
            )
            .status,
        202
    );
    let text = stream.wait_for(r#"data: {"id":"q1"}"#);
    assert!(
        text.contains(
            r#"data: {"id":"q1","payload":{"data":{"book":{"title":"The Dispossessed"}}}}"#
        ),
        "{text}"
    );
    // The id may be reused once its operation is over.
    assert_eq!(
        server
            .send(
                "POST",
                "/graphql",
                &[(TOKEN, &token), JSON_CT],
                query.as_bytes()
            )
            .status,
        202
    );
}

/// Adds books ("Sse 0", "Sse 1", ...) until `pattern` shows on the stream.
fn add_books_until(server: &Process, stream: &mut Stream, pattern: &str) {
    for n in 0..50 {
        let m = json!({"query": format!("mutation {{ addBook(title: \"Sse {n}\", authorId: \"1\") {{ id }} }}")});
        let reply = server.send("POST", "/graphql", &[JSON_CT], m.to_string().as_bytes());
        assert_eq!(reply.status, 200, "{}", reply.body);
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if stream.text().contains(pattern) {
                return;
            }
            if let Ok(n) = stream.socket.read(&mut buf) {
                assert!(n > 0, "closed: {:?}", stream.text());
                stream.seen.extend_from_slice(&buf[..n]);
            }
        }
    }
    panic!("no {pattern:?} in {:?}", stream.text());
}

trait GetWith {
    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> serve::testing::Reply;
}

impl GetWith for Process {
    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> serve::testing::Reply {
        send(self.addr, "GET", path, headers, b"")
    }
}

/// Serves an [`graphql::App`] in this process, to read its counters.
fn serve_in_process(settings: graphql::Settings) -> (Arc<graphql::App>, SocketAddr) {
    let app = Arc::new(graphql::App::new(settings).unwrap());
    let (addr, _done) = serve_until(Arc::clone(&app), std::future::pending());
    (app, addr)
}

/// Serves `app` on its own runtime until `stop` completes; the receiver gets the instant
/// the server's drain ended.
fn serve_until(
    app: Arc<graphql::App>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> (SocketAddr, std::sync::mpsc::Receiver<Instant>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let server = serve::Server::bind_addr("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            addr_tx.send(server.local_addr()).unwrap();
            let _ = server.serve_until(app, stop).await;
            let _ = done_tx.send(Instant::now());
        });
    });
    (addr_rx.recv().unwrap(), done_rx)
}

fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn clients_that_go_away_leave_nothing_running() {
    let (app, addr) = serve_in_process(graphql::Settings {
        sse_keep_alive: Duration::from_millis(100),
        sse_limits: graphql_core::SseLimits {
            max_streams: 3,
            max_operations: 5,
            reservation_ttl: Duration::from_millis(800),
        },
        ..graphql::Settings::default()
    });
    let subscription = "/graphql?query=subscription%20%7B%20bookAdded%20%7B%20title%20%7D%20%7D";

    // Distinct mode: a subscription with no events; keep-alive comments flow; the client
    // leaves; the operation stops.
    let mut stream = Stream::open(addr, "GET", subscription, &[SSE]);
    // Three comment lines, one chunk each (the first at once, then one per 100 ms).
    stream.wait_for("3\r\n:\n\n\r\n3\r\n:\n\n\r\n3\r\n:\n\n\r\n");
    assert_eq!(app.event_stream_operations(), 1);
    drop(stream);
    eventually("the distinct subscription still runs", || {
        app.event_stream_operations() == 0
    });

    // Single connection: the stream closes, its operations stop and the reservation goes.
    let token = send(addr, "PUT", "/graphql", &[], b"").body;
    let mut stream = Stream::open(addr, "GET", "/graphql", &[SSE, (TOKEN, &token)]);
    stream.wait_for(":\n\n");
    for id in ["a", "b"] {
        let op = json!({"query": "subscription { bookAdded { title } }", "extensions": {"operationId": id}});
        let reply = send(
            addr,
            "POST",
            "/graphql",
            &[(TOKEN, &token), JSON_CT],
            op.to_string().as_bytes(),
        );
        assert_eq!(reply.status, 202);
    }
    eventually("two operations", || app.event_stream_operations() == 2);
    assert_eq!(app.event_streams(), 1);
    drop(stream);
    eventually("the stream's operations still run", || {
        app.event_stream_operations() == 0 && app.event_streams() == 0
    });

    // A reservation never opened expires with its operation.
    let token = send(addr, "PUT", "/graphql", &[], b"").body;
    let op = json!({"query": "subscription { bookAdded { title } }", "extensions": {"operationId": "x"}});
    let reply = send(
        addr,
        "POST",
        "/graphql",
        &[(TOKEN, &token), JSON_CT],
        op.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 202);
    eventually("one operation", || app.event_stream_operations() == 1);
    eventually("the reservation did not expire", || {
        app.event_stream_operations() == 0 && app.event_streams() == 0
    });
    assert_eq!(
        send(addr, "GET", "/graphql", &[SSE, (TOKEN, &token)], b"").status,
        404
    );

    // Too many reservations: 503 past three.
    for _ in 0..3 {
        assert_eq!(send(addr, "PUT", "/graphql", &[], b"").status, 201);
    }
    let refused = send(addr, "PUT", "/graphql", &[], b"");
    assert_eq!(refused.status, 503);
    assert!(
        refused.body.contains("Too many event streams"),
        "{}",
        refused.body
    );
    // They expire unopened, and there is room again.
    eventually("the reservations did not expire", || {
        app.event_streams() == 0
    });
    assert_eq!(send(addr, "PUT", "/graphql", &[], b"").status, 201);
}

/// Issue 21's last point: when the server stops, a graphql-transport-ws connection is
/// closed with 1001 (its subscription stopped) and an event stream ends, so the server's
/// drain finishes well within its grace period.
#[test]
fn shutdown_closes_websockets_with_1001_and_ends_event_streams() {
    use tungstenite::Message;
    use tungstenite::client::IntoClientRequest;

    let app = Arc::new(graphql::App::new(graphql::Settings::default()).unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr, done_rx) = serve_until(Arc::clone(&app), async {
        let _ = stop_rx.await;
    });

    let socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tungstenite::client::client(request, socket)
        .map_err(|_| "handshake failed")
        .unwrap();
    ws.send(Message::text(r#"{"type":"connection_init"}"#))
        .unwrap();
    assert!(
        matches!(ws.read().unwrap(), Message::Text(t) if t.as_str().contains("connection_ack"))
    );
    ws.send(Message::text(
        r#"{"id":"1","type":"subscribe","payload":{"query":"subscription { bookAdded { title } }"}}"#,
    ))
    .unwrap();
    eventually("the subscription runs", || app.websocket_operations() == 1);
    assert_eq!(app.websocket_connections(), 1);

    let subscription = "/graphql?query=subscription%20%7B%20bookAdded%20%7B%20title%20%7D%20%7D";
    let mut stream = Stream::open(addr, "GET", subscription, &[SSE]);
    stream.wait_for(":\n\n");

    let stopped = Instant::now();
    stop_tx.send(()).unwrap();
    let code = loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => break u16::from(frame.code),
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(code, 1001);
    // The reply to the close frame, which the server waits for.
    let _ = ws.flush();
    // The event stream's chunked body ends (the last chunk), then the connection closes.
    stream.wait_for("\r\n0\r\n\r\n");
    let done = done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        done - stopped < Duration::from_secs(5),
        "{:?}",
        done - stopped
    );
    assert_eq!(app.websocket_operations(), 0);
    assert_eq!(app.websocket_connections(), 0);
    eventually("the event stream's operation still runs", || {
        app.event_stream_operations() == 0
    });
}
