#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! graphql-transport-ws close codes over a real WebSocket to the example (raw frames with
//! tungstenite as the client).

use std::net::TcpStream;
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
