//! Two showcase instances on one Redis (`REDIS_URL`; skipped without it, a failure under
//! `CI=true`), each its own process on its own loopback port, as behind a load balancer:
//! what one instance stores, the other reads. Every test uses a key prefix of its own
//! (`REDIS_PREFIX`), so tests and runs never meet on the shared Redis.

// Integration tests: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest, Sha256};
use support::{Client, OwnRedis, ReplyExt, Server};
use tungstenite::Message;
use tungstenite::client::IntoClientRequest;

/// The origin both instances name (as behind one proxy): the issuers and the allowed
/// origins are the same on both. Nothing needs to listen there.
const PUBLIC_ORIGIN: &str = "http://127.0.0.1:9";

/// Two instances sharing the Redis at `REDIS_URL` under a fresh prefix, and a SQLite file
/// for the REST API's rows; `None` when `REDIS_URL` is unset (the test is skipped).
fn pair(test: &str) -> Option<(Server, Server)> {
    let mut servers = instances(test, 2)?.into_iter();
    Some((servers.next()?, servers.next()?))
}

/// `count` instances as [`pair`] starts two.
fn instances(test: &str, count: usize) -> Option<Vec<Server>> {
    instances_with(test, count, &[])
}

/// [`instances`], each with `extra` in its environment as well.
fn instances_with(test: &str, count: usize, extra: &[(&str, &str)]) -> Option<Vec<Server>> {
    let url = serve::testing::peer("REDIS_URL")?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("showcase-test:{test}:{}:{nanos}:", std::process::id());
    let db = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "shared-{test}-{}-{nanos}.sqlite",
        std::process::id()
    ));
    let db = db.to_str().unwrap().to_owned();
    let mut env = vec![
        ("PUBLIC_ORIGIN", PUBLIC_ORIGIN),
        ("API_SQLITE_FILE", db.as_str()),
    ];
    env.extend_from_slice(extra);
    Some(
        (0..count)
            .map(|_| Server::start_shared(&url, &prefix, &env))
            .collect(),
    )
}

/// A browser whose requests now go to `server`, keeping its cookies.
fn moved(browser: &Client, server: &Server) -> Client {
    Client {
        addr: server.addr,
        cookies: browser.cookies.clone(),
    }
}

#[test]
fn the_landing_page_names_redis() {
    let Some((a, _b)) = pair("landing") else {
        return;
    };
    let page = a.client().get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(r#"<section id="engines">"#),
        "{}",
        page.body
    );
    let url = std::env::var("REDIS_URL").unwrap();
    let expected = format!(
        "<td class=\"engine\">Redis at {}</td>",
        url.rsplit('@')
            .next()
            .unwrap()
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
    );
    assert!(page.body.contains(&expected), "{expected} in {}", page.body);
    assert!(!page.body.contains("<td class=\"engine\">memory</td>"));

    // Without REDIS_URL, the embedded defaults, and the page says so.
    let alone = Server::start();
    let page = alone.client().get("/");
    assert!(
        page.body.contains("<td class=\"engine\">memory</td>"),
        "{}",
        page.body
    );
}

#[test]
fn sessions_logout_throttling_and_tokens_are_shared() {
    let Some((a, b)) = pair("auth") else {
        return;
    };
    // Sign up on A: the session cookie works on B, and the name is taken on B too.
    let mut browser = a.client();
    let csrf = browser.get("/auth/").csrf();
    let signed_up = browser.post_form(
        "/auth/signup",
        &[
            ("csrf", &csrf),
            ("username", "grace"),
            ("password", "correct horse battery"),
        ],
    );
    assert_eq!(signed_up.status, 303, "{}", signed_up.body);
    let mut on_b = moved(&browser, &b);
    let mut other = b.client();
    let csrf = other.get("/auth/").csrf();
    let taken = other.post_form(
        "/auth/signup",
        &[
            ("csrf", &csrf),
            ("username", "grace"),
            ("password", "another long password"),
        ],
    );
    assert_eq!(taken.status, 409, "{}", taken.body);
    let home = on_b.get("/auth/");
    assert!(
        home.body.contains("Logged in as <b>grace</b>"),
        "{}",
        home.body
    );

    // The account made on A logs in on B, in another browser; that session works on A.
    let mut second = b.client();
    let csrf = second.get("/auth/").csrf();
    let logged_in = second.post_form(
        "/auth/login",
        &[
            ("csrf", &csrf),
            ("username", "grace"),
            ("password", "correct horse battery"),
        ],
    );
    assert_eq!(logged_in.status, 303, "{}", logged_in.body);
    assert!(
        moved(&second, &a)
            .get("/auth/")
            .body
            .contains("Logged in as <b>grace</b>")
    );

    // An API token issued by A verifies on B: the key set is shared.
    let csrf = home.csrf();
    let token = on_b.post_form("/auth/token", &[("csrf", &csrf)]);
    assert_eq!(token.status, 200, "{}", token.body);
    let from_b = token.json()["access_token"].as_str().unwrap().to_owned();
    let token = moved(&on_b, &a).post_form("/auth/token", &[("csrf", &csrf)]);
    let from_a = token.json()["access_token"].as_str().unwrap().to_owned();
    for (token, server) in [(&from_a, &b), (&from_b, &a)] {
        let me = server.client().send(
            "GET",
            "/auth/api/me",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        );
        assert_eq!(me.status, 200, "{}", me.body);
        assert_eq!(me.json()["user"], "grace");
    }
    assert_eq!(
        a.client().get("/auth/.well-known/jwks.json").body,
        b.client().get("/auth/.well-known/jwks.json").body
    );

    // Log out on B: the session ends on A too (the cookie as it was before is replayed).
    let before = moved(&on_b, &a);
    let logged_out = on_b.post_form("/auth/logout", &[("csrf", &csrf)]);
    assert_eq!(logged_out.status, 303);
    let mut replayed = before;
    let page = replayed.get("/auth/");
    assert!(!page.body.contains("Logged in"), "{}", page.body);
    assert!(page.body.contains("Log in"), "{}", page.body);

    // Failed logins count across instances: 5 wrong passwords (3 on A, 2 on B) for one
    // account from one address, and the 6th attempt is refused wherever it lands.
    let mut guesser = a.client();
    let csrf = guesser.get("/auth/").csrf();
    for attempt in 0..5 {
        let mut at = if attempt % 2 == 0 {
            moved(&guesser, &a)
        } else {
            moved(&guesser, &b)
        };
        let wrong = at.post_form(
            "/auth/login",
            &[
                ("csrf", &csrf),
                ("username", "grace"),
                ("password", "not the password at all"),
            ],
        );
        assert_eq!(wrong.status, 401, "attempt {attempt}: {}", wrong.body);
    }
    for server in [&b, &a] {
        let refused = moved(&guesser, server).post_form(
            "/auth/login",
            &[
                ("csrf", &csrf),
                ("username", "grace"),
                ("password", "correct horse battery"),
            ],
        );
        assert_eq!(refused.status, 429, "{}", refused.body);
        assert!(refused.header("retry-after").is_some());
    }
}

#[test]
fn idempotency_keys_cookies_and_oauth_tokens_are_shared() {
    let Some((a, b)) = pair("api") else {
        return;
    };
    // An Idempotency-Key replayed on B returns A's stored response; nothing is created
    // twice.
    let user = json!({"name": "Ada", "email": "ada@example.com"});
    let key = [("Idempotency-Key", "shared-create-1")];
    let first = a.client().send_json("POST", "/api/users", &key, &user);
    assert_eq!(first.status, 201, "{}", first.body);
    let replay = b.client().send_json("POST", "/api/users", &key, &user);
    assert_eq!(replay.status, 201, "{}", replay.body);
    assert_eq!(replay.body, first.body);
    assert_eq!(replay.header("location"), first.header("location"));
    let listed = b.client().get("/api/users").json();
    let emails: Vec<&str> = listed["items"]
        .as_array()
        .or_else(|| listed.as_array())
        .unwrap_or_else(|| panic!("no list in {listed}"))
        .iter()
        .filter_map(|user| user["email"].as_str())
        .collect();
    assert_eq!(emails, ["ada@example.com"], "{listed}");
    // The same key with another body is refused on either instance.
    let other = json!({"name": "Bob", "email": "bob@example.com"});
    let reused = a.client().send_json("POST", "/api/users", &key, &other);
    assert_eq!(reused.status, 422, "{}", reused.body);

    // A signed cookie and a private one written by A read on B: one key ring.
    let mut browser = a.client();
    let page = browser.get("/cookies/");
    assert!(page.body.contains("<b id=visits>1</b>"), "{}", page.body);
    let kept = browser.post_form(
        "/cookies/note",
        &[("csrf", &page.csrf()), ("note", "kept on A")],
    );
    assert_eq!(kept.status, 303, "{}", kept.body);
    let on_b = moved(&browser, &b).get("/cookies/");
    assert!(on_b.body.contains("<b id=visits>2</b>"), "{}", on_b.body);
    assert!(
        on_b.body.contains("<b id=note>kept on A</b>"),
        "{}",
        on_b.body
    );
    // The shared ring is not rotated by one instance.
    let rotate = moved(&browser, &b).post_form("/cookies/rotate", &[("csrf", &on_b.csrf())]);
    assert_eq!(rotate.status, 409, "{}", rotate.body);

    // An OAuth access token issued by A's provider verifies on B's.
    let token = a.client().send(
        "POST",
        "/oauth/token",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            // demo-web:demo-web-secret-change-me
            (
                "Authorization",
                "Basic ZGVtby13ZWI6ZGVtby13ZWItc2VjcmV0LWNoYW5nZS1tZQ==",
            ),
        ],
        b"grant_type=client_credentials&scope=api",
    );
    assert_eq!(token.status, 200, "{}", token.body);
    let access = token.json()["access_token"].as_str().unwrap().to_owned();
    let me = b.client().send(
        "GET",
        "/oauth/api/me",
        &[("Authorization", &format!("Bearer {access}"))],
        b"",
    );
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["client_id"], "demo-web");
}

fn chat_socket(server: &Server, name: &str) -> tungstenite::WebSocket<TcpStream> {
    let mut request = format!("ws://{}/chat/ws?name={name}", server.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("origin", PUBLIC_ORIGIN.parse().unwrap());
    headers.insert("sec-websocket-protocol", "chat.v1".parse().unwrap());
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let (socket, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// The chat events that arrive within the socket's read timeout.
fn events(socket: &mut tungstenite::WebSocket<TcpStream>) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => out.push(serde_json::from_str(text.as_str()).unwrap()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return out;
            }
            Err(error) => panic!("chat socket failed: {error}"),
        }
    }
}

/// Says `text` in `room` from `from` until `to` receives it (the other instance's
/// subscription may still be starting), and returns the message as `to` got it.
fn said_across(
    from: &mut tungstenite::WebSocket<TcpStream>,
    to: &mut tungstenite::WebSocket<TcpStream>,
    room: &str,
    text: &str,
) -> serde_json::Value {
    for _ in 0..30 {
        from.send(Message::text(
            json!({"type": "say", "room": room, "text": text}).to_string(),
        ))
        .unwrap();
        let _ = events(from);
        if let Some(message) = events(to)
            .into_iter()
            .find(|event| event["type"] == "message" && event["text"] == text)
        {
            return message;
        }
    }
    panic!("{text:?} never crossed to the other instance");
}

#[test]
fn chat_rooms_span_instances() {
    let Some((a, b)) = pair("chat") else {
        return;
    };
    let mut alice = chat_socket(&a, "alice");
    let mut bob = chat_socket(&b, "bob");
    for socket in [&mut alice, &mut bob] {
        socket
            .send(Message::text(
                json!({"type": "join", "room": "lobby"}).to_string(),
            ))
            .unwrap();
        let joined = events(socket);
        assert!(
            joined
                .iter()
                .any(|event| event["type"] == "presence" && event["joined"] == true),
            "{joined:?}"
        );
    }
    let heard = said_across(&mut alice, &mut bob, "lobby", "hello from A");
    assert_eq!(heard["name"], "alice");
    assert_eq!(heard["room"], "lobby");
    let heard = said_across(&mut bob, &mut alice, "lobby", "hello from B");
    assert_eq!(heard["name"], "bob");

    // A room nobody joined on B is not delivered there.
    alice
        .send(Message::text(
            json!({"type": "join", "room": "quiet"}).to_string(),
        ))
        .unwrap();
    alice
        .send(Message::text(
            json!({"type": "say", "room": "quiet", "text": "only A"}).to_string(),
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !events(&mut bob)
            .iter()
            .any(|event| event["text"] == "only A")
    );
}

/// Leaves `room` and joins it again; the member list the join answers with.
fn rejoin(socket: &mut tungstenite::WebSocket<TcpStream>, room: &str) -> Vec<serde_json::Value> {
    socket
        .send(Message::text(
            json!({"type": "leave", "room": room}).to_string(),
        ))
        .unwrap();
    socket
        .send(Message::text(
            json!({"type": "join", "room": room}).to_string(),
        ))
        .unwrap();
    let joined = events(socket);
    let presence = joined
        .iter()
        .find(|event| event["type"] == "presence" && event["members"].is_array())
        .unwrap_or_else(|| panic!("no member list in {joined:?}"));
    presence["members"].as_array().unwrap().clone()
}

fn names(members: &[serde_json::Value]) -> Vec<&str> {
    members
        .iter()
        .map(|member| member["name"].as_str().unwrap())
        .collect()
}

#[test]
fn chat_presence_is_the_union_and_a_killed_instance_leaves_it() {
    let Some((mut a, b)) = pair("presence") else {
        return;
    };
    let mut alice = chat_socket(&a, "alice");
    let mut bob = chat_socket(&b, "bob");
    let _ = rejoin(&mut alice, "lobby");
    // Each instance writes its members every 2 s and reads the others': within a few
    // heartbeats, bob's list (on B) names alice (on A), and the other way round.
    let started = Instant::now();
    let members = loop {
        let members = rejoin(&mut bob, "lobby");
        if names(&members).contains(&"alice") {
            break members;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "alice (on A) never listed on B: {members:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let listed = |name: &str| {
        members
            .iter()
            .find(|member| member["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(listed("alice")["remote"], true, "{members:?}");
    assert!(listed("bob")["remote"].is_null(), "{members:?}");
    assert_eq!(names(&members).len(), 2, "{members:?}");
    let started = Instant::now();
    loop {
        let members = rejoin(&mut alice, "lobby");
        if names(&members).contains(&"bob") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bob (on B) never listed on A: {members:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // SIGKILL A: it says goodbye to no one. Its snapshot expires 6 s after its last
    // heartbeat (at most 2 s before the kill), and B reads every 2 s: B announces alice as
    // left, live, within about 8 s (12 s allows for a loaded machine), once, and she leaves
    // B's list.
    let _ = events(&mut bob);
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = Instant::now();
    let (_, seen) = wait_for_event(
        &mut bob,
        |event| is_remote_presence(event, "alice", false),
        Duration::from_secs(12),
    );
    println!(
        "a killed instance's member was announced as left after {:?}",
        killed.elapsed()
    );
    assert!(
        !seen
            .iter()
            .any(|event| event["type"] == "presence" && event["name"] != "alice"),
        "{seen:?}"
    );
    // Two more sweeps of B: no second announcement.
    let later = events_for(&mut bob, Duration::from_secs(5));
    assert!(
        !later.iter().any(|event| event["type"] == "presence"),
        "{later:?}"
    );
    loop {
        let members = rejoin(&mut bob, "lobby");
        if !names(&members).contains(&"alice") {
            assert_eq!(names(&members), ["bob"], "{members:?}");
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(12),
            "alice still listed {:?} after her instance was killed: {members:?}",
            killed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    println!(
        "a killed instance's member left the list after {:?}",
        killed.elapsed()
    );
}

/// A `graphql-transport-ws` connection to `server`, acknowledged, subscribed to
/// `bookAdded` as operation `1`.
fn book_subscription(server: &Server) -> tungstenite::WebSocket<TcpStream> {
    let mut request = format!("ws://{}/graphql/graphql", server.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("origin", PUBLIC_ORIGIN.parse().unwrap());
    headers.insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let (mut socket, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(response.status(), 101);
    socket
        .send(Message::text(
            json!({"type": "connection_init"}).to_string(),
        ))
        .unwrap();
    let acked = events(&mut socket);
    assert!(
        acked.iter().any(|event| event["type"] == "connection_ack"),
        "{acked:?}"
    );
    socket
        .send(Message::text(
            json!({"id": "1", "type": "subscribe",
                   "payload": {"query": "subscription { bookAdded { title } }"}})
            .to_string(),
        ))
        .unwrap();
    socket
}

/// Adds a book through `server`'s GraphQL endpoint.
fn add_book(server: &Server, title: &str) {
    let added = server.client().send_json(
        "POST",
        "/graphql/graphql",
        &[("Accept", "application/graphql-response+json")],
        &json!({"query": "mutation($t: String!) { addBook(title: $t, authorId: \"1\") { id title } }",
                "variables": {"t": title}}),
    );
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(
        added.json()["data"]["addBook"]["title"],
        title,
        "{}",
        added.body
    );
}

/// The titles of the `bookAdded` events that arrive within the socket's read timeout.
fn books_added(socket: &mut tungstenite::WebSocket<TcpStream>) -> Vec<String> {
    events(socket)
        .into_iter()
        .filter(|event| event["type"] == "next" && event["id"] == "1")
        .filter_map(|event| {
            event["payload"]["data"]["bookAdded"]["title"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn a_graphql_subscription_on_one_instance_gets_the_other_instances_events() {
    let Some((a, b)) = pair("graphql") else {
        return;
    };
    book_events_cross(&a, &b);
}

#[test]
fn with_nats_graphql_events_cross_the_instances_over_nats() {
    // The instances share Redis (their key prefix names the NATS subject) and NATS.
    let Some(nats) = serve::testing::peer("NATS_URL") else {
        return;
    };
    let Some(servers) = instances_with("graphql-nats", 2, &[("NATS_URL", nats.as_str())]) else {
        return;
    };
    let (a, b) = (&servers[0], &servers[1]);
    let landing = a.client().get("/");
    assert!(
        landing
            .body
            .contains("<td class=\"engine\">NATS at 127.0.0.1:4222 (core pub/sub)</td>"),
        "{}",
        landing.body
    );
    book_events_cross(a, b);
}

/// A `bookAdded` event of A reaches the subscribers on A and B once each, and one of B
/// likewise.
fn book_events_cross(a: &Server, b: &Server) {
    let mut on_b = book_subscription(b);
    let mut on_a = book_subscription(a);
    // The mutation on A reaches the subscriber on B, and A's own subscriber once (the
    // instances' Redis subscriptions and A's subscribe may still be starting: a few tries,
    // each with a title of its own, until both subscribers see one).
    let mut crossed = None;
    for attempt in 0..30 {
        let title = format!("Made on A {attempt}");
        add_book(a, &title);
        let on_b_titles = books_added(&mut on_b);
        let on_a_titles = books_added(&mut on_a);
        if on_b_titles.contains(&title) && on_a_titles.contains(&title) {
            assert_eq!(
                on_a_titles.iter().filter(|seen| **seen == title).count(),
                1,
                "{on_a_titles:?}"
            );
            crossed = Some(title);
            break;
        }
    }
    let title = crossed.expect("no bookAdded event of A reached the subscribers on A and B");
    // A's own subscriber does not get it a second time, back from Redis.
    std::thread::sleep(Duration::from_millis(300));
    let later = books_added(&mut on_a);
    assert!(!later.contains(&title), "{later:?}");
    // And the other way round, once each.
    add_book(b, "Made on B");
    std::thread::sleep(Duration::from_millis(300));
    let mut on_a_titles = books_added(&mut on_a);
    on_a_titles.retain(|seen| seen == "Made on B");
    assert_eq!(on_a_titles, ["Made on B"]);
    let mut on_b_titles = books_added(&mut on_b);
    on_b_titles.retain(|seen| seen == "Made on B");
    assert_eq!(on_b_titles, ["Made on B"]);
}

#[test]
fn requests_that_need_redis_get_a_clean_503_while_it_is_down() {
    // The machine's Redis is not touched: this test starts and stops its own.
    if serve::testing::peer("REDIS_URL").is_none() {
        return;
    }
    let mut redis = OwnRedis::start(None);
    let url = redis.url();
    let server = Server::start_shared(&url, "down:", &[("PUBLIC_ORIGIN", PUBLIC_ORIGIN)]);
    let mut browser = server.client();
    let csrf = browser.get("/auth/").csrf();
    let signed_up = browser.post_form(
        "/auth/signup",
        &[
            ("csrf", &csrf),
            ("username", "kim"),
            ("password", "correct horse battery"),
        ],
    );
    assert_eq!(signed_up.status, 303, "{}", signed_up.body);

    redis.kill();

    let user = json!({"name": "Ada", "email": "ada@example.com"});
    let created = server.client().send_json(
        "POST",
        "/api/users",
        &[("Idempotency-Key", "down-1")],
        &user,
    );
    assert_eq!(created.status, 503, "{}", created.body);
    assert_eq!(
        created.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(created.json()["status"], 503);
    let home = browser.get("/auth/");
    assert_eq!(home.status, 503, "{}", home.body);
    assert!(home.header("retry-after").is_some());
    let token = server.client().send(
        "POST",
        "/oauth/token",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            (
                "Authorization",
                "Basic ZGVtby13ZWI6ZGVtby13ZWItc2VjcmV0LWNoYW5nZS1tZQ==",
            ),
        ],
        b"grant_type=client_credentials&scope=api",
    );
    // The grant is stored: RFC 6749's `temporarily_unavailable`, 503.
    assert_eq!(token.status, 503, "{}", token.body);
    assert_eq!(token.json()["error"], "temporarily_unavailable");
    for body in [&created.body, &home.body, &token.body] {
        assert!(
            !body.contains("os error") && !body.contains("refused"),
            "a Redis error leaked: {body}"
        );
    }
    // Without a session nothing needs Redis: the pages still answer.
    assert_eq!(server.client().get("/auth/").status, 200);
    assert_eq!(server.client().get("/healthz").status, 200);
}

/// The showcase's provider's token endpoint, as the public client `demo-app` (no secret:
/// its `client_id` is in the form), on `server`.
fn token(server: &Server, fields: &[(&str, &str)]) -> support::Reply {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("client_id", "demo-app");
    form.extend_pairs(fields);
    server.client().send(
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.finish().as_bytes(),
    )
}

#[test]
fn the_oauth_flow_spans_instances() {
    let Some((a, b)) = pair("oauth") else {
        return;
    };
    // The client `demo-app` (public, PKCE) with the redirect URI the showcase registers
    // for its own oauth-login client, under the shared public origin. PKCE S256 (RFC 7636
    // section 4.2) computed here: BASE64URL(SHA-256(verifier)), no padding.
    let redirect_uri = format!("{PUBLIC_ORIGIN}/oauth-login/callback");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let verifier = format!("spans-instances-verifier-{nanos:0>40}");
    assert!((43..=128).contains(&verifier.len()));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = format!("state-{nanos}");
    let authorize = format!(
        "/oauth/authorize?{}",
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", "demo-app"),
                ("redirect_uri", &redirect_uri),
                ("scope", "profile"),
                ("state", &state),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .finish()
    );

    // The authorization request, the login and the consent, all on A.
    let mut browser = a.client();
    let login_page = browser.get(&authorize);
    assert_eq!(login_page.status, 200, "{}", login_page.body);
    let pending = login_page
        .hidden("authorize")
        .expect("the request in the login form");
    let logged_in = browser.post_form(
        "/oauth/login",
        &[
            ("csrf", &login_page.csrf()),
            ("authorize", &pending),
            ("username", "alice"),
            ("password", "wonderland-rabbit"),
        ],
    );
    assert_eq!(logged_in.status, 303, "{}", logged_in.body);
    assert_eq!(logged_in.header("location"), Some("/oauth/consent"));
    let consent = browser.get("/oauth/consent");
    assert!(
        consent.body.contains("<b>demo-app</b> asks for"),
        "{}",
        consent.body
    );
    let allowed = browser.post_form(
        "/oauth/consent",
        &[("csrf", &consent.csrf()), ("decision", "allow")],
    );
    assert_eq!(allowed.status, 303, "{}", allowed.body);
    let callback = allowed.header("location").unwrap();
    let query = callback
        .strip_prefix(&format!("{redirect_uri}?"))
        .unwrap_or_else(|| panic!("not a redirect to the callback: {callback}"));
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(params.get("state"), Some(&state), "{callback}");
    assert_eq!(
        params.get("iss").map(String::as_str),
        Some(&*format!("{PUBLIC_ORIGIN}/oauth")),
        "{callback}"
    );
    let code = &params["code"];

    // The token request on B: B finds the code A stored, and checks A's PKCE challenge.
    let issued = token(
        &b,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert_eq!(issued.header("cache-control"), Some("no-store"));
    let issued = issued.json();
    assert_eq!(issued["token_type"], "Bearer", "{issued}");
    let access = issued["access_token"].as_str().unwrap();
    let old_refresh = issued["refresh_token"].as_str().unwrap().to_owned();
    let me = a.client().send(
        "GET",
        "/oauth/api/me",
        &[("Authorization", &format!("Bearer {access}"))],
        b"",
    );
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["sub"], "alice");
    assert_eq!(me.json()["client_id"], "demo-app");

    // Rotation on A: a new refresh token for the old one.
    let rotated = token(
        &a,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &old_refresh),
        ],
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_refresh = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, old_refresh);

    // The old one replayed on B is seen as reused (RFC 9700 section 4.14.2)...
    let replayed = token(
        &b,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &old_refresh),
        ],
    );
    assert_eq!(replayed.status, 400, "{}", replayed.body);
    assert_eq!(
        replayed.json()["error"],
        "invalid_grant",
        "{}",
        replayed.body
    );
    assert!(
        replayed.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "refused as reused, not as unknown: {}",
        replayed.body
    );
    // ... and the whole family is revoked: A's rotated token is refused too, on A.
    let after = token(
        &a,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &new_refresh),
        ],
    );
    assert_eq!(after.status, 400, "{}", after.body);
    assert_eq!(after.json()["error"], "invalid_grant", "{}", after.body);
}

#[test]
fn the_proxy_rate_limit_is_shared() {
    let Some((a, b)) = pair("ratelimit") else {
        return;
    };
    // 5 a minute per client (both instances see 127.0.0.1): one budget for the two.
    for (n, remaining) in (0..5).rev().enumerate() {
        let server = if n % 2 == 0 { &a } else { &b };
        let reply = server.client().get("/proxy/origin/limited");
        assert_eq!(reply.status, 200, "request {n}: {reply:?}");
        assert_eq!(
            reply.header("ratelimit-remaining"),
            Some(&*remaining.to_string()),
            "request {n}"
        );
    }
    for server in [&b, &a] {
        let limited = server.client().get("/proxy/origin/limited");
        assert_eq!(limited.status, 429, "{limited:?}");
        assert!(limited.header("retry-after").is_some());
    }
}

/// Whether `event` is a presence event of a member of another instance.
fn is_remote_presence(event: &serde_json::Value, name: &str, joined: bool) -> bool {
    event["type"] == "presence"
        && event["remote"] == true
        && event["name"] == name
        && event["joined"] == joined
        && event["id"] == format!("remote:{name}")
}

/// Reads chat events until one matches `wanted`, within `bound` (else the test fails):
/// that event, and every event read before it.
fn wait_for_event(
    socket: &mut tungstenite::WebSocket<TcpStream>,
    wanted: impl Fn(&serde_json::Value) -> bool,
    bound: Duration,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        // One message at a time: what follows the awaited event stays for the next read.
        match socket.read() {
            Ok(Message::Text(text)) => {
                let event: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                if wanted(&event) {
                    return (event, seen);
                }
                seen.push(event);
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(error) => panic!("chat socket failed: {error}"),
        }
        assert!(
            started.elapsed() < bound,
            "the awaited chat event did not come within {bound:?}; seen: {seen:?}"
        );
    }
}

/// Every chat event that arrives within `within`.
fn events_for(
    socket: &mut tungstenite::WebSocket<TcpStream>,
    within: Duration,
) -> Vec<serde_json::Value> {
    let started = Instant::now();
    let mut out = Vec::new();
    while started.elapsed() < within {
        out.extend(events(socket));
    }
    out
}

fn join(socket: &mut tungstenite::WebSocket<TcpStream>, room: &str) {
    socket
        .send(Message::text(
            json!({"type": "join", "room": room}).to_string(),
        ))
        .unwrap();
}

/// Three instances: a member's joins and leaves on one reach the others' members live,
/// once; a name connected on two instances (two tabs) leaves when its last connection
/// does; an instance stopped gracefully (SIGTERM) takes its members along at once, not
/// after the presence's 6 s expiry.
#[cfg(unix)]
#[test]
fn chat_joins_and_leaves_cross_instances_live_once() {
    let Some(servers) = instances("live-presence", 3) else {
        return;
    };
    let [a, b, mut c] = <[Server; 3]>::try_from(servers).ok().unwrap();
    let mut alice = chat_socket(&a, "alice");
    join(&mut alice, "lobby");
    let _ = wait_for_event(
        &mut alice,
        |event| event["type"] == "presence" && event["members"].is_array(),
        Duration::from_secs(5),
    );

    // bob joins on B: alice (on A) hears it, live or at the latest with B's first
    // heartbeat (2 s), exactly once.
    let mut bob_b = chat_socket(&b, "bob");
    join(&mut bob_b, "lobby");
    let (joined, _) = wait_for_event(
        &mut alice,
        |event| is_remote_presence(event, "bob", true),
        Duration::from_secs(10),
    );
    assert_eq!(joined["room"], "lobby");
    // bob's second tab lands on C: alice already has bob, nothing new for her. erin
    // joins on C after him; C announces in order, so once alice hears erin, A knows of
    // bob's tab on C.
    let mut bob_c = chat_socket(&c, "bob");
    join(&mut bob_c, "lobby");
    let _ = wait_for_event(
        &mut bob_c,
        |event| event["type"] == "presence" && event["members"].is_array(),
        Duration::from_secs(5),
    );
    let mut erin = chat_socket(&c, "erin");
    join(&mut erin, "lobby");
    let (_, before) = wait_for_event(
        &mut alice,
        |event| is_remote_presence(event, "erin", true),
        Duration::from_secs(10),
    );
    assert!(
        !before.iter().any(|event| event["type"] == "presence"),
        "bob's second tab was announced: {before:?}"
    );
    // The tab on B leaves; then carol joins on B. B announces in order, so once alice
    // hears carol, she has heard all B said about bob: bob is still there (on C).
    bob_b
        .send(Message::text(
            json!({"type": "leave", "room": "lobby"}).to_string(),
        ))
        .unwrap();
    let mut carol = chat_socket(&b, "carol");
    join(&mut carol, "lobby");
    let (_, before) = wait_for_event(
        &mut alice,
        |event| is_remote_presence(event, "carol", true),
        Duration::from_secs(10),
    );
    assert!(
        !before.iter().any(|event| event["type"] == "presence"),
        "bob was announced again, or as left while his tab on C is in the room: {before:?}"
    );
    // A member list taken on A now names bob once and carol, as members elsewhere.
    let mut dave = chat_socket(&a, "dave");
    join(&mut dave, "lobby");
    let (list, _) = wait_for_event(
        &mut dave,
        |event| event["type"] == "presence" && event["members"].is_array(),
        Duration::from_secs(5),
    );
    let mut listed = names(list["members"].as_array().unwrap());
    listed.sort_unstable();
    assert_eq!(listed, ["alice", "bob", "carol", "dave", "erin"], "{list}");
    let _ = wait_for_event(
        &mut alice,
        |event| event["type"] == "presence" && event["name"] == "dave",
        Duration::from_secs(5),
    );

    // C stops gracefully: bob's last connection goes with it, and erin. C removes its members from
    // the shared presence and tells the others as it starts to drain, so alice hears bob
    // leave well before the 6 s expiry could have removed him (at the earliest 4 s after
    // the stop, its last heartbeat having been up to 2 s before).
    let stopped = Instant::now();
    let signal = std::process::Command::new("kill")
        .args(["-TERM", &c.child.id().to_string()])
        .status()
        .unwrap();
    assert!(signal.success());
    let mut left = Vec::new();
    while left.len() < 2 {
        let (event, before) = wait_for_event(
            &mut alice,
            |event| event["type"] == "presence",
            Duration::from_secs(4).saturating_sub(stopped.elapsed()),
        );
        assert!(
            is_remote_presence(&event, "bob", false) || is_remote_presence(&event, "erin", false),
            "{event} (after {before:?})"
        );
        left.push(event["name"].as_str().unwrap().to_owned());
    }
    println!(
        "a gracefully stopped instance's members were announced as left after {:?}",
        stopped.elapsed()
    );
    left.sort();
    assert_eq!(left, ["bob", "erin"]);
    let status = c.wait(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    // carol leaves B live, once; nothing else is announced, over two more sweeps.
    carol
        .send(Message::text(
            json!({"type": "leave", "room": "lobby"}).to_string(),
        ))
        .unwrap();
    let _ = wait_for_event(
        &mut alice,
        |event| is_remote_presence(event, "carol", false),
        Duration::from_secs(10),
    );
    let later = events_for(&mut alice, Duration::from_secs(5));
    assert!(
        !later.iter().any(|event| event["type"] == "presence"),
        "{later:?}"
    );
}
