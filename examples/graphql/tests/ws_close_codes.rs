#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! graphql-transport-ws close codes over a real WebSocket to the example (raw frames with
//! tungstenite as the client).

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use serve::testing::Process;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

fn start() -> Process {
    Process::start(env!("CARGO_BIN_EXE_graphql"))
}

fn connect(server: &Process, protocol: &str) -> Result<WebSocket<TcpStream>, tungstenite::Error> {
    let mut request = format!("ws://{}/graphql", server.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    tungstenite::client::client(request, stream)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => panic!("interrupted"),
        })
}

/// Sends the messages, then reads until the server closes; returns the close code.
fn close_code_after(server: &Process, messages: &[&str]) -> u16 {
    let mut ws = connect(server, "graphql-transport-ws").unwrap();
    for m in messages {
        ws.send(Message::text(*m)).unwrap();
    }
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => return u16::from(frame.code),
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

const INIT: &str = r#"{"type":"connection_init"}"#;
const SUB: &str =
    r#"{"id":"1","type":"subscribe","payload":{"query":"subscription { bookAdded { title } }"}}"#;

#[test]
fn every_close_code_over_the_wire() {
    let server = start();
    assert_eq!(close_code_after(&server, &[INIT, "{not json"]), 4400);
    assert_eq!(close_code_after(&server, &[SUB]), 4401);
    assert_eq!(close_code_after(&server, &[INIT, SUB, SUB]), 4409);
    assert_eq!(close_code_after(&server, &[INIT, INIT]), 4429);
    // No connection_init within 3 s.
    assert_eq!(close_code_after(&server, &[]), 4408);
    // A client without the subprotocol is refused at the handshake (HTTP 400): the
    // graphql-ws library's 4406 case never reaches the protocol.
    assert!(connect(&server, "graphql-ws").is_err());
    // The state machine's 4403 and 4406 are covered in crates/graphql-core/tests/transport_ws.rs.
}

/// Issue 14, finding 7: 300 `subscribe` messages from a client that never reads grew the
/// server's memory linearly. At most 20 operations run per connection; past that each
/// `subscribe` is answered with an `error` message and not started.
#[test]
fn operations_per_connection_are_capped() {
    let server = start();
    let mut ws = connect(&server, "graphql-transport-ws").unwrap();
    ws.send(Message::text(INIT)).unwrap();
    for id in 0..25 {
        let sub = format!(
            r#"{{"id":"{id}","type":"subscribe","payload":{{"query":"subscription {{ bookAdded {{ title }} }}"}}}}"#
        );
        ws.send(Message::text(sub)).unwrap();
    }
    let mut refused = Vec::new();
    while refused.len() < 5 {
        match ws.read().unwrap() {
            Message::Text(text) => {
                let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                match v["type"].as_str().unwrap() {
                    "connection_ack" => {}
                    "error" => {
                        assert_eq!(v["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
                        refused.push(v["id"].as_str().unwrap().to_owned());
                    }
                    other => panic!("unexpected {other}: {v}"),
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(refused, ["20", "21", "22", "23", "24"]);
}

/// A client socket whose receive buffer is small (set before connecting, so the window the
/// server sees is small too): a few kilobytes unread stop the server's writes.
fn connect_with_small_window(addr: std::net::SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(addr).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// Issue 14, finding 7: a client that subscribes and then never reads. The server's writes
/// stop when the client's window and the server's socket buffer are full; once one message
/// cannot be written within `Settings::ws_send_timeout` the connection is closed (1008 if
/// the close frame gets through, which it usually cannot) and its operations are stopped.
/// Meanwhile at most 20 operations run and the rest of the requests are never answered.
#[test]
fn a_consumer_that_never_reads_is_closed() {
    let send_timeout = Duration::from_millis(500);
    let app = Arc::new(
        graphql::App::new(graphql::Settings {
            ws_send_timeout: send_timeout,
            ..graphql::Settings::default()
        })
        .unwrap(),
    );
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let served = Arc::clone(&app);
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
            let _ = server.serve_until(served, std::future::pending()).await;
        });
    });
    let addr = addr_rx.recv().unwrap();

    let stream = connect_with_small_window(addr);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tungstenite::client::client(request, stream)
        .map_err(|_| "handshake failed")
        .unwrap();
    ws.send(Message::text(INIT)).unwrap();
    assert!(
        matches!(ws.read().unwrap(), Message::Text(t) if t.as_str().contains("connection_ack"))
    );

    // Each answer is eight copies of the schema's introspection (tens of kilobytes); 300
    // of them are far more than the buffers between the server and this client hold. The
    // requests are paced so that, while the server can still write, each one finishes
    // before the next (rather than being refused by the cap of 20 operations).
    const REQUESTS: usize = 300;
    let introspection = "__schema { types { name description fields { name description \
                 args { name description type { name kind ofType { name kind } } } \
                 type { name kind ofType { name kind ofType { name kind } } } } } }";
    let query = format!(
        "{{ {} }}",
        (0..8)
            .map(|i| format!("s{i}: {introspection}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    // The most operations running at once, sampled from the first request on: on a loaded
    // machine the server can stall, time out and stop them all while requests are still
    // being sent, so sampling only afterwards could see none.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let app = Arc::clone(&app);
        let sampling = Arc::clone(&sampling);
        std::thread::spawn(move || {
            let mut most = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(app.websocket_operations());
                std::thread::sleep(Duration::from_millis(1));
            }
            most
        })
    };
    for id in 0..REQUESTS {
        std::thread::sleep(Duration::from_millis(2));
        let subscribe = serde_json::json!({
            "id": id.to_string(),
            "type": "subscribe",
            "payload": { "query": &query },
        });
        // The server stops reading too once it cannot write: stop at the first refusal.
        if ws.send(Message::text(subscribe.to_string())).is_err() {
            break;
        }
    }

    // Never reading: the writes stall within milliseconds, so the server must have given
    // up within the timeout plus the second it allows the close frame (and a margin for a
    // loaded machine), never running more than its 20 operations meanwhile.
    std::thread::sleep(send_timeout + Duration::from_millis(2500));
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let most = sampler.join().unwrap();
    assert!(most > 0, "no operation ever ran");
    assert!(most <= 20, "{most} operations ran at once");
    assert_eq!(
        app.websocket_operations(),
        0,
        "the connection's operations were not stopped"
    );

    // Now read what was delivered: the stream must end (close frame, EOF or reset), not
    // stall on a live connection, and well before every request was answered.
    let mut answered = 0;
    let ended = loop {
        match ws.read() {
            Ok(Message::Text(text)) => {
                if text.as_str().contains(r#""type":"next""#) {
                    answered += 1;
                }
            }
            Ok(Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 1008);
                break "close frame";
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the connection is still open after {answered} answers")
            }
            Err(_) => break "connection dropped",
        }
    };
    assert!(
        answered < REQUESTS,
        "all {answered} answers were written ({ended}): the buffers never filled"
    );
}
