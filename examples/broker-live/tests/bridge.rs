//! The bridge over real TCP and WebSocket, in process on the embedded broker: subscribe
//! and publish, refusals by the allow-list, no socket without a session, and a browser
//! that stops reading cut off by the slow-consumer policy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_live::{App, Authenticator, Settings};
use http::HeaderMap;
use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::client::IntoClientRequest as _;
use ws_core::{CloseCode, HubConfig, SlowConsumer};

/// A test login: the cookie `user=NAME` is NAME's session (auth-login's real cookie is
/// used by the showcase's browser test).
struct CookieUser;

impl Authenticator for CookieUser {
    fn user<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + 'a>> {
        let user = headers
            .get(http::header::COOKIE)
            .and_then(|value| value.to_str().ok())
            .and_then(|cookie| cookie.strip_prefix("user="))
            .map(str::to_owned);
        Box::pin(std::future::ready(Ok(user)))
    }
}

struct Bridge {
    addr: SocketAddr,
    app: Arc<App>,
}

impl Bridge {
    /// The bridge on its own runtime and thread, for the rest of the test process.
    fn start(hub: Option<HubConfig>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
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
                let addr = server.local_addr();
                let mut settings = Settings::new(Arc::new(CookieUser));
                settings.allowed_origins = vec![format!("http://{addr}")];
                if let Some(hub) = hub {
                    settings.hub = hub;
                }
                let app = Arc::new(App::new(settings).await.unwrap());
                tokio::spawn(Arc::clone(&app).run());
                tx.send((addr, Arc::clone(&app))).unwrap();
                let _ = server.serve_until(app, std::future::pending()).await;
            });
        });
        let (addr, app) = rx.recv().unwrap();
        Self { addr, app }
    }

    fn try_socket(
        &self,
        user: Option<&str>,
        origin: &str,
    ) -> Result<tungstenite::WebSocket<TcpStream>, tungstenite::Error> {
        let mut request = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        let headers = request.headers_mut();
        headers.insert("origin", origin.parse().unwrap());
        if let Some(user) = user {
            headers.insert("cookie", format!("user={user}").parse().unwrap());
        }
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        match tungstenite::client(request, stream) {
            Ok((socket, _)) => Ok(socket),
            Err(tungstenite::HandshakeError::Failure(error)) => Err(error),
            Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("a blocking handshake"),
        }
    }

    /// A logged-in socket, past its welcome.
    fn socket(&self, user: &str) -> tungstenite::WebSocket<TcpStream> {
        let mut socket = self
            .try_socket(Some(user), &format!("http://{}", self.addr))
            .unwrap();
        let welcome = read(&mut socket);
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["user"], user);
        socket
    }
}

fn send(socket: &mut tungstenite::WebSocket<TcpStream>, frame: &Value) {
    socket.send(Message::text(frame.to_string())).unwrap();
}

/// The next text frame.
fn read(socket: &mut tungstenite::WebSocket<TcpStream>) -> Value {
    loop {
        if let Message::Text(text) = socket.read().unwrap() {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// Sends a frame and returns the reply to it (deliveries before it are skipped).
fn ask(socket: &mut tungstenite::WebSocket<TcpStream>, frame: &Value) -> Value {
    send(socket, frame);
    loop {
        let reply = read(socket);
        if reply["type"] != "message" {
            return reply;
        }
    }
}

fn subscribe(socket: &mut tungstenite::WebSocket<TcpStream>, pattern: &str) {
    let reply = ask(socket, &json!({"type": "subscribe", "pattern": pattern}));
    assert_eq!(reply, json!({"type": "subscribed", "pattern": pattern}));
}

#[test]
fn publishes_reach_the_subscribers_whose_pattern_matches() {
    let bridge = Bridge::start(None);
    let mut alice = bridge.socket("alice");
    let mut bob = bridge.socket("bob");
    let mut carol = bridge.socket("carol");
    subscribe(&mut alice, "demo.>");
    subscribe(&mut bob, "demo.*");
    subscribe(&mut bob, "users.bob.>");
    subscribe(&mut carol, "demo.other");

    let published = ask(
        &mut alice,
        &json!({"type": "publish", "subject": "demo.news", "data": {"n": 1}}),
    );
    assert_eq!(published["type"], "published", "{published}");
    let id = published["id"].as_str().unwrap().to_owned();
    for (socket, pattern) in [(&mut alice, "demo.>"), (&mut bob, "demo.*")] {
        let message = read(socket);
        assert_eq!(message["type"], "message", "{message}");
        assert_eq!(message["subject"], "demo.news");
        assert_eq!(message["pattern"], pattern);
        assert_eq!(message["from"], "alice");
        assert_eq!(message["id"], id.as_str());
        assert_eq!(message["data"], json!({"n": 1}));
    }

    // Anyone may write to bob's inbox; only bob reads it. Carol's pattern matched
    // neither message: the first thing she reads is her own second delivery.
    let reply = ask(
        &mut carol,
        &json!({"type": "publish", "subject": "users.bob.inbox", "data": "hi bob"}),
    );
    assert_eq!(reply["type"], "published", "{reply}");
    let inbox = read(&mut bob);
    assert_eq!(
        (&inbox["subject"], &inbox["from"], &inbox["data"]),
        (&json!("users.bob.inbox"), &json!("carol"), &json!("hi bob"))
    );
    ask(
        &mut carol,
        &json!({"type": "publish", "subject": "demo.other", "data": 2}),
    );
    let mine = read(&mut carol);
    assert_eq!(mine["subject"], "demo.other", "{mine}");

    // Unsubscribed: no more deliveries (the next thing alice reads is her own reply).
    let reply = ask(
        &mut alice,
        &json!({"type": "unsubscribe", "pattern": "demo.>"}),
    );
    assert_eq!(reply["type"], "unsubscribed");
    ask(
        &mut bob,
        &json!({"type": "publish", "subject": "demo.x", "data": 3}),
    );
    let reply = ask(
        &mut alice,
        &json!({"type": "subscribe", "pattern": "demo.y"}),
    );
    assert_eq!(reply["type"], "subscribed", "{reply}");
    assert_eq!(bridge.app.occupancy().0, 3);
}

#[test]
fn frames_outside_the_allow_list_are_refused_with_a_reason_and_the_socket_stays() {
    let bridge = Bridge::start(None);
    let mut alice = bridge.socket("alice");
    let refused = ask(
        &mut alice,
        &json!({"type": "publish", "subject": "admin.shutdown", "data": 1}),
    );
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "forbidden");
    assert_eq!(refused["subject"], "admin.shutdown");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("may not publish to “admin.shutdown”"),
        "{refused}"
    );
    // Another user's inbox, or a wider pattern than allowed.
    for pattern in ["users.bob.>", "users.*.inbox", ">"] {
        let refused = ask(
            &mut alice,
            &json!({"type": "subscribe", "pattern": pattern}),
        );
        assert_eq!(refused["code"], "forbidden", "{pattern}: {refused}");
    }
    let invalid = ask(
        &mut alice,
        &json!({"type": "subscribe", "pattern": "demo..x"}),
    );
    assert_eq!(invalid["code"], "invalid-subject", "{invalid}");
    let invalid = ask(
        &mut alice,
        &json!({"type": "publish", "subject": "demo.*", "data": 1}),
    );
    assert_eq!(invalid["code"], "invalid-subject", "{invalid}");
    send(&mut alice, &json!("not a frame"));
    let bad = read(&mut alice);
    assert_eq!(bad["code"], "bad-frame", "{bad}");

    // Nothing refused was delivered, and the connection still works.
    subscribe(&mut alice, "users.alice.>");
    ask(
        &mut alice,
        &json!({"type": "publish", "subject": "users.alice.inbox", "data": "note"}),
    );
    let message = read(&mut alice);
    assert_eq!(message["data"], "note", "{message}");

    // The subscription limit (16 by default) is a refusal too.
    for n in 0..15 {
        subscribe(&mut alice, &format!("demo.n{n}"));
    }
    let refused = ask(
        &mut alice,
        &json!({"type": "subscribe", "pattern": "demo.more"}),
    );
    assert_eq!(refused["code"], "too-many-subscriptions", "{refused}");
}

#[test]
fn no_socket_without_a_session_or_from_another_origin() {
    let bridge = Bridge::start(None);
    let own = format!("http://{}", bridge.addr);
    match bridge.try_socket(None, &own) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    match bridge.try_socket(Some("alice"), "http://evil.example") {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    assert_eq!(bridge.app.occupancy().0, 0);
    // `/me` says so too, with where to log in.
    let reply = serve::testing::send(bridge.addr, "GET", "/me", &[], b"");
    assert_eq!(reply.status, 401);
    let me: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(me["login_url"], "/auth/");
    assert!(me["error"].as_str().unwrap().contains("not logged in"));
    let reply = serve::testing::send(bridge.addr, "GET", "/me", &[("Cookie", "user=alice")], b"");
    assert_eq!(reply.status, 200);
    let me: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(me["user"], "alice");
    assert_eq!(me["subscribe"], json!(["demo.>", "users.alice.>"]));
    assert_eq!(me["broker"], "embedded");
}

#[test]
fn a_browser_that_stops_reading_is_cut_off_by_the_slow_consumer_policy() {
    let bridge = Bridge::start(Some(HubConfig {
        queue_messages: 16,
        queue_bytes: 128 * 1024,
        slow_consumer: SlowConsumer::Disconnect(CloseCode::Again),
        ..HubConfig::default()
    }));
    let mut slow = bridge.socket("slow");
    subscribe(&mut slow, "demo.>");
    let mut fast = bridge.socket("fast");
    assert_eq!(bridge.app.occupancy().0, 2);
    // `slow` reads nothing from now on; `fast` publishes 12 KB messages and reads its
    // replies. The socket buffers fill, then the hub's queue for `slow`, and then the
    // policy closes `slow`: nothing grows without bound.
    let data = "x".repeat(12 * 1024);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    while bridge.app.occupancy().0 == 2 {
        assert!(
            Instant::now() < deadline,
            "slow was never cut off ({sent} sent)"
        );
        let reply = ask(
            &mut fast,
            &json!({"type": "publish", "subject": "demo.flood", "data": data}),
        );
        assert_eq!(reply["type"], "published", "{reply}");
        sent += 1;
    }
    // `fast` is still served; `slow` finds the close (1013) after what was buffered.
    let reply = ask(
        &mut fast,
        &json!({"type": "subscribe", "pattern": "demo.ok"}),
    );
    assert_eq!(reply["type"], "subscribed");
    // What was in the socket's buffers arrives, then the end: a close frame with 1013, or
    // the connection ends before the close frame is read (seen once: a reset after 345
    // messages; why is not found yet, see the report).
    let mut received = 0;
    let code = loop {
        match slow.read() {
            Ok(Message::Text(_)) => received += 1,
            Ok(Message::Close(frame)) => break frame.map(|frame| frame.code),
            Ok(_) => {}
            Err(_) => break None,
        }
    };
    if let Some(code) = code {
        assert_eq!(code, CloseCode::Again, "after {received} of {sent}");
    }
    assert!(
        received < sent,
        "{received} of {sent} delivered: nothing was dropped"
    );
    assert_eq!(bridge.app.occupancy().0, 1);
}
