//! broker-live mounted at `/broker/`: the WebSocket takes the `/auth/` session, the landing
//! page's curl samples run as written, a message published on one instance reaches a
//! browser on another when they share Redis (`REDIS_URL`) or NATS (`NATS_URL`), and the page
//! in headless Chromium (`PEER_NODE_MODULES` with playwright-core, `CHROMIUM_PATH`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use serve::testing::run;
use support::{Chromium, Client, ReplyExt as _, Server, curl_samples, landing_row};
use tungstenite::Message;
use tungstenite::client::IntoClientRequest as _;

/// Signs `user` up at `/auth/`: the client then holds the session cookie.
fn sign_up(client: &mut Client, user: &str) {
    let csrf = client.get("/auth/").csrf();
    let reply = client.post_form(
        "/auth/signup",
        &[
            ("csrf", &csrf),
            ("username", user),
            ("password", "correct horse battery"),
        ],
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
}

/// The bridge's socket on `server` with `client`'s cookies, past its welcome.
fn socket(server: &Server, client: &Client) -> tungstenite::WebSocket<TcpStream> {
    let mut request = format!("ws://{}/broker/ws", server.addr)
        .into_client_request()
        .unwrap();
    let cookie: Vec<String> = client
        .cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let headers = request.headers_mut();
    headers.insert("origin", server.origin().parse().unwrap());
    headers.insert("cookie", cookie.join("; ").parse().unwrap());
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut socket, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(response.status(), 101);
    let welcome = read(&mut socket);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    socket
}

fn read(socket: &mut tungstenite::WebSocket<TcpStream>) -> Value {
    loop {
        if let Message::Text(text) = socket.read().unwrap() {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

fn ask(socket: &mut tungstenite::WebSocket<TcpStream>, frame: &Value) -> Value {
    socket.send(Message::text(frame.to_string())).unwrap();
    read(socket)
}

#[test]
fn the_socket_takes_the_auth_session_and_checks_the_allow_list() {
    let server = Server::start();
    let mut ada = server.client();
    // Before login: 401, and `/me` says where to log in.
    let me = ada.get("/broker/me");
    assert_eq!(me.status, 401, "{}", me.body);
    assert_eq!(me.json()["login_url"], "/auth/");
    sign_up(&mut ada, "ada");
    let me = ada.get("/broker/me");
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["user"], "ada");
    assert_eq!(me.json()["jobs_url"], "/jobs/jobs");

    let mut socket = socket(&server, &ada);
    let reply = ask(
        &mut socket,
        &json!({"type": "subscribe", "pattern": "users.ada.>"}),
    );
    assert_eq!(reply["type"], "subscribed", "{reply}");
    let reply = ask(
        &mut socket,
        &json!({"type": "publish", "subject": "users.ada.inbox", "data": {"hello": 1}}),
    );
    assert_eq!(reply["type"], "published", "{reply}");
    let message = read(&mut socket);
    assert_eq!(
        (&message["from"], &message["data"]),
        (&json!("ada"), &json!({"hello": 1}))
    );
    let refused = ask(
        &mut socket,
        &json!({"type": "subscribe", "pattern": "users.bob.>"}),
    );
    assert_eq!(refused["code"], "forbidden", "{refused}");
}

#[test]
fn the_landing_page_broker_samples_name_the_host_and_work_as_written() {
    let server = Server::start();
    let page = server.client().get("/");
    let row = landing_row(&page.body, "broker");
    assert!(row.contains(r#"class="status live">live"#), "{row}");
    assert!(row.contains(r#"<a href="/broker/">"#), "{row}");
    let samples = curl_samples(row);
    assert_eq!(samples.len(), 2, "{row}");
    let start = format!("curl -s http://{}/broker/", server.addr);
    for sample in &samples {
        assert!(sample.starts_with(&start), "{sample}");
    }
    let run = |sample: &str| run(Command::new("sh").arg("-c").arg(sample));
    let me: Value = serde_json::from_str(&run(&samples[0])).unwrap();
    assert_eq!(me["login_url"], "/auth/", "{me}");
    assert!(
        me["error"].as_str().unwrap().contains("not logged in"),
        "{me}"
    );
    assert_eq!(run(&samples[1]).trim(), "401");
}

/// Two instances on the shared engines: ada, logged in once (the session is in Redis),
/// subscribes on B and publishes on A.
fn crosses_instances(test: &str, env: &[(&str, &str)], engine: &str) {
    let Some(url) = serve::testing::peer("REDIS_URL") else {
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("showcase-test:{test}:{}:{nanos}:", std::process::id());
    let a = Server::start_shared(&url, &prefix, env);
    let b = Server::start_shared(&url, &prefix, env);
    let mut ada = a.client();
    sign_up(&mut ada, "ada");
    let row = landing_row(&a.client().get("/").body, "engine-broker").to_owned();
    assert!(row.contains(engine), "{row}");
    let mut on_b = socket(&b, &ada);
    let reply = ask(
        &mut on_b,
        &json!({"type": "subscribe", "pattern": "demo.>"}),
    );
    assert_eq!(reply["type"], "subscribed", "{reply}");
    let mut on_a = socket(&a, &ada);
    let reply = ask(
        &mut on_a,
        &json!({"type": "publish", "subject": "demo.across", "data": test}),
    );
    assert_eq!(reply["type"], "published", "{reply}");
    let message = read(&mut on_b);
    assert_eq!(message["subject"], "demo.across", "{message}");
    assert_eq!(message["data"], test);
    assert_eq!(message["id"], reply["id"]);
}

#[test]
fn a_message_published_on_one_instance_reaches_another_over_redis() {
    crosses_instances("broker-redis", &[], "Redis Streams");
}

#[test]
fn a_message_published_on_one_instance_reaches_another_over_nats() {
    let Some(nats) = serve::testing::peer("NATS_URL") else {
        return;
    };
    crosses_instances("broker-nats", &[("NATS_URL", &nats)], "NATS JetStream");
}

#[test]
fn chromium_publishes_from_the_page_and_sees_the_delivery_and_the_refusal() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let server = Server::start();
    chromium.run(
        "broker_browser.js",
        &server,
        &[
            "showcase-broker-row.png",
            "showcase-broker-logged-out.png",
            "showcase-broker-page.png",
            "showcase-broker-job.png",
        ],
    );
}
