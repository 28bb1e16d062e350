//! Every mounted capability over real HTTP against the showcase binary: the landing page's
//! links, auth-core sign-up/login/JWT, rest-core CRUD with ETags, a ws-core chat exchange,
//! the OAuth login round trip against the showcase's own provider, cookie-jar cookies,
//! graphql-core queries, a mutation and a subscription under `/graphql`, and the
//! proxy-core reverse proxy under `/proxy` (cache, compression, forwarding headers, rate
//! limit, metrics).

// Integration tests: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use support::{ReplyExt as _, Server};
use tungstenite::Message;
use tungstenite::client::IntoClientRequest;

/// Every `href` of a page, in order.
fn links(html: &str) -> Vec<String> {
    html.split(r#"href=""#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn every_link_on_the_landing_page_answers() {
    let server = Server::start();
    let mut browser = server.client();
    let page = browser.get("/");
    assert_eq!(page.status, 200);
    let hrefs = links(&page.body);
    for expected in [
        "/auth/",
        "/auth/.well-known/jwks.json",
        "/oauth-login/",
        "/oauth/",
        "/.well-known/oauth-authorization-server/oauth",
        "/oauth/.well-known/jwks.json",
        "/api/",
        "/api/users",
        "/api/posts",
        "/api/openapi.json",
        "/chat/",
        "/cookies/",
        "/graphql/",
        "/graphql/graphql?query=%7Bbooks%7Btitle%20author%7Bname%7D%7D%7D",
        "/healthz",
        "/proxy/",
        "/proxy/origin/cached",
        "/proxy/origin/headers",
        "/proxy/api/users",
        "/proxy/metrics",
        "/soap/soap?wsdl",
        "/jobs/",
        "/jobs/jobs",
        "/jobs/jobs/dead",
        "/broker/",
    ] {
        assert!(
            hrefs.iter().any(|href| href == expected),
            "{expected} not linked"
        );
    }
    for href in &hrefs {
        assert!(href.starts_with('/'), "{href} leaves the showcase");
        let reply = browser.get(href);
        assert!(
            (200..400).contains(&reply.status),
            "{href} answered {}",
            reply.status
        );
    }
    for id in [
        "auth", "oauth", "rest", "chat", "cookies", "graphql", "proxy", "soap", "jobs", "broker",
    ] {
        let row_start = page.body.find(&format!(r#"<tr id="{id}">"#)).unwrap();
        let row = &page.body[row_start..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(row.contains(r#"class="status live">live"#), "{row}");
    }
}

#[test]
fn exact_mount_paths_redirect_to_the_page() {
    let server = Server::start();
    let mut browser = server.client();
    for prefix in [
        "/api",
        "/proxy",
        "/auth",
        "/chat",
        "/oauth",
        "/oauth-login",
        "/cookies",
        "/graphql",
        "/jobs",
        "/broker",
    ] {
        let reply = browser.get(prefix);
        assert_eq!(reply.status, 308, "{prefix}");
        assert_eq!(reply.header("location"), Some(&*format!("{prefix}/")));
    }
    // Not a prefix match: /authx is nobody's.
    assert_eq!(browser.get("/authx").status, 404);
}

#[test]
fn auth_sign_up_log_in_and_call_the_jwt_api() {
    let server = Server::start();
    let mut browser = server.client();

    let page = browser.get("/auth/");
    assert_eq!(page.status, 200);
    // The login form's CSRF token is in a signed cookie; no session is stored before login
    // (issue 14, finding 10).
    let cookies = page.all("set-cookie");
    assert!(
        cookies
            .iter()
            .any(|cookie| cookie.starts_with("__Host-auth-session-csrf=")),
        "{:?}",
        page.headers
    );
    assert!(
        !cookies
            .iter()
            .any(|cookie| cookie.starts_with("__Host-auth-session=")),
        "{:?}",
        page.headers
    );
    assert!(page.body.contains(r#"action="/auth/signup""#));
    let csrf = page.csrf();

    // No CSRF token: refused.
    let forged = browser.post_form(
        "/auth/signup",
        &[("username", "mallory"), ("password", "long enough")],
    );
    assert_eq!(forged.status, 403);

    let signed_up = browser.post_form(
        "/auth/signup",
        &[
            ("csrf", &csrf),
            ("username", "ada"),
            ("password", "correct horse battery"),
        ],
    );
    assert_eq!(signed_up.status, 303, "{}", signed_up.body);
    assert_eq!(signed_up.header("location"), Some("/auth/"));
    let home = browser.get("/auth/");
    assert!(
        home.body.contains("Logged in as <b>ada</b>"),
        "{}",
        home.body
    );

    let csrf = home.csrf();
    let token = browser.post_form("/auth/token", &[("csrf", &csrf)]);
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(token.header("cache-control"), Some("no-store"));
    let access_token = token.json()["access_token"].as_str().unwrap().to_owned();

    let mut api = server.client();
    let bearer = format!("Bearer {access_token}");
    let me = api.send("GET", "/auth/api/me", &[("Authorization", &bearer)], b"");
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["user"], "ada");
    let anonymous = api.get("/auth/api/me");
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    let mut forged_token = access_token.clone();
    forged_token.pop();
    forged_token.push(if access_token.ends_with('A') {
        'B'
    } else {
        'A'
    });
    let forged = api.send(
        "GET",
        "/auth/api/me",
        &[("Authorization", &format!("Bearer {forged_token}"))],
        b"",
    );
    assert_eq!(forged.status, 401);
    let jwks = api.get("/auth/.well-known/jwks.json").json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);

    // Log out, then log in again: a wrong password is 401, the right one a session.
    let logged_out = browser.post_form("/auth/logout", &[("csrf", &csrf)]);
    assert_eq!(logged_out.status, 303);
    let page = browser.get("/auth/");
    assert!(page.body.contains("Log in"), "{}", page.body);
    let csrf = page.csrf();
    let wrong = browser.post_form(
        "/auth/login",
        &[
            ("csrf", &csrf),
            ("username", "ada"),
            ("password", "wrong password"),
        ],
    );
    assert_eq!(wrong.status, 401);
    let right = browser.post_form(
        "/auth/login",
        &[
            ("csrf", &csrf),
            ("username", "ada"),
            ("password", "correct horse battery"),
        ],
    );
    assert_eq!(right.status, 303, "{}", right.body);
    assert!(
        browser
            .get("/auth/")
            .body
            .contains("Logged in as <b>ada</b>")
    );
}

#[test]
fn rest_create_read_with_etags_and_if_match() {
    let server = Server::start();
    let mut client = server.client();

    let created = client.send_json(
        "POST",
        "/api/users",
        &[("Idempotency-Key", "create-ada-1")],
        &json!({"name": "Ada", "email": "ada@example.com"}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let location = created.header("location").unwrap().to_owned();
    assert!(location.starts_with("/api/users/"), "{location}");
    assert_eq!(created.header("etag"), Some(r#""v1""#));

    // The same key and payload replay the first answer instead of creating again.
    let replayed = client.send_json(
        "POST",
        "/api/users",
        &[("Idempotency-Key", "create-ada-1")],
        &json!({"name": "Ada", "email": "ada@example.com"}),
    );
    assert_eq!(replayed.status, 201);
    assert_eq!(replayed.header("location"), Some(&*location));

    let read = client.get(&location);
    assert_eq!(read.status, 200);
    assert_eq!(read.header("etag"), Some(r#""v1""#));
    assert_eq!(read.json()["name"], "Ada");
    let unchanged = client.send("GET", &location, &[("If-None-Match", r#""v1""#)], b"");
    assert_eq!(unchanged.status, 304);

    let replacement = json!({"name": "Ada L.", "email": "ada@example.com"});
    let unconditional = client.send_json("PUT", &location, &[], &replacement);
    assert_eq!(unconditional.status, 428);
    assert_eq!(
        unconditional.header("content-type"),
        Some("application/problem+json")
    );
    let replaced = client.send_json("PUT", &location, &[("If-Match", r#""v1""#)], &replacement);
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(replaced.header("etag"), Some(r#""v2""#));
    let stale = client.send_json("PUT", &location, &[("If-Match", r#""v1""#)], &replacement);
    assert_eq!(stale.status, 412);
    assert_eq!(client.get(&location).json()["name"], "Ada L.");

    let post = client.send_json(
        "POST",
        &format!("{location}/posts"),
        &[],
        &json!({"title": "Hello", "body": "First post"}),
    );
    assert_eq!(post.status, 201, "{}", post.body);
    assert!(post.header("location").unwrap().starts_with("/api/posts/"));

    // A second user, so that a one-item page has a next page under the prefix.
    let second = client.send_json(
        "POST",
        "/api/users",
        &[],
        &json!({"name": "Grace", "email": "grace@example.com"}),
    );
    assert_eq!(second.status, 201);
    let page = client.get("/api/users?limit=1");
    assert_eq!(page.status, 200);
    assert!(
        page.header("link")
            .unwrap()
            .starts_with("</api/users?limit=1&cursor="),
        "{:?}",
        page.header("link")
    );

    let document = client.get("/api/openapi.json").json();
    assert_eq!(document["servers"][0]["url"], "/api");
    assert!(document["paths"]["/users/{id}"].is_object());

    // CORS: the showcase's own origin is the allowed one.
    let origin = server.origin();
    let preflight = client.send(
        "OPTIONS",
        "/api/users",
        &[
            ("Origin", &origin),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert!((200..300).contains(&preflight.status), "{preflight:?}");
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(&*origin)
    );
}

fn chat_socket(server: &Server, name: &str) -> tungstenite::WebSocket<TcpStream> {
    let mut request = format!("ws://{}/chat/ws?name={name}", server.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("origin", server.origin().parse().unwrap());
    headers.insert("sec-websocket-protocol", "chat.v1".parse().unwrap());
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (socket, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// Reads chat events until one matches.
fn wait_for(
    socket: &mut tungstenite::WebSocket<TcpStream>,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..50 {
        if let Message::Text(text) = socket.read().unwrap() {
            let event: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            if matches(&event) {
                return event;
            }
        }
    }
    panic!("the expected chat event never came");
}

#[test]
fn chat_messages_and_presence_over_websocket() {
    let server = Server::start();
    // The page opens its socket next to itself, so under /chat/ it reaches /chat/ws.
    let page = server.client().get("/chat/");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(r#"new URL("ws?name=""#),
        "the chat page must use a relative socket URL"
    );
    let mut alice = chat_socket(&server, "alice");
    let mut bob = chat_socket(&server, "bob");
    assert_eq!(
        wait_for(&mut alice, |e| e["type"] == "welcome")["name"],
        "alice"
    );
    wait_for(&mut bob, |e| e["type"] == "welcome");

    alice
        .send(Message::text(
            json!({"type": "join", "room": "lobby"}).to_string(),
        ))
        .unwrap();
    wait_for(&mut alice, |e| {
        e["type"] == "presence" && e["name"] == "alice"
    });
    bob.send(Message::text(
        json!({"type": "join", "room": "lobby"}).to_string(),
    ))
    .unwrap();
    // Bob gets the member list with his own join; alice only the change (issue 14, 15:
    // the list for every member on every join was quadratic).
    let own = wait_for(&mut bob, |e| {
        e["type"] == "presence" && e["name"] == "bob" && e["joined"] == true
    });
    assert_eq!(own["members"].as_array().unwrap().len(), 2);
    let presence = wait_for(&mut alice, |e| {
        e["type"] == "presence" && e["name"] == "bob" && e["joined"] == true
    });
    assert!(presence.get("members").is_none(), "{presence}");

    bob.send(Message::text(
        json!({"type": "say", "room": "lobby", "text": "hello from bob"}).to_string(),
    ))
    .unwrap();
    let said = wait_for(&mut alice, |e| e["type"] == "message");
    assert_eq!(said["name"], "bob");
    assert_eq!(said["text"], "hello from bob");
    assert_eq!(said["room"], "lobby");

    bob.close(None).unwrap();
    let left = wait_for(&mut alice, |e| {
        e["type"] == "presence" && e["joined"] == false
    });
    assert_eq!(left["name"], "bob");
}

/// Sends a raw handshake and returns the response head.
fn handshake_head(server: &Server, origin: &str, extra: &str) -> String {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /chat/ws?name=carol HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat.v1\r\nOrigin: {origin}\r\n{extra}\r\n",
        server.addr
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

#[test]
fn chat_negotiates_deflate_and_refuses_foreign_origins() {
    let server = Server::start();
    let head = handshake_head(
        &server,
        &server.origin(),
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-extensions: permessage-deflate"),
        "{head}"
    );
    assert!(head.contains("sec-websocket-protocol: chat.v1"), "{head}");

    let foreign = handshake_head(&server, "https://evil.example", "");
    assert!(foreign.starts_with("http/1.1 403"), "{foreign}");
}

#[test]
fn oauth_login_round_trip_against_the_showcase_provider() {
    let server = Server::start();
    let origin = server.origin();
    // One browser: the client app's and the provider's sessions share the origin's jar.
    let mut browser = server.client();

    let home = browser.get("/oauth-login/");
    assert!(
        home.body.contains(r#"href="/oauth-login/login""#),
        "{}",
        home.body
    );
    let start = browser.get("/oauth-login/login");
    assert_eq!(start.status, 303, "{}", start.body);
    let authorize = start.location_path(&origin);
    assert!(authorize.starts_with("/oauth/authorize?"), "{authorize}");
    assert!(authorize.contains("code_challenge_method=S256"));

    let login_page = browser.get(&authorize);
    assert_eq!(login_page.status, 200, "{}", login_page.body);
    assert!(login_page.body.contains(r#"action="/oauth/login""#));
    let csrf = login_page.csrf();
    // The pending request rides in the login form: nothing is stored before the login.
    let pending = login_page
        .hidden("authorize")
        .expect("the request in the form");
    let logged_in = browser.post_form(
        "/oauth/login",
        &[
            ("csrf", &csrf),
            ("authorize", &pending),
            ("username", "alice"),
            ("password", "wonderland-rabbit"),
        ],
    );
    assert_eq!(logged_in.status, 303, "{}", logged_in.body);
    assert_eq!(logged_in.header("location"), Some("/oauth/consent"));

    let consent = browser.get("/oauth/consent");
    assert_eq!(consent.status, 200);
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
    let callback = allowed.location_path(&origin);
    assert!(
        callback.starts_with("/oauth-login/callback?code="),
        "{callback}"
    );
    assert!(
        callback.contains("&iss="),
        "RFC 9207 iss missing: {callback}"
    );

    let finished = browser.get(&callback);
    assert_eq!(finished.status, 303, "{}", finished.body);
    assert_eq!(finished.header("location"), Some("/oauth-login/"));
    let home = browser.get("/oauth-login/");
    assert!(
        home.body
            .contains("Logged in as <b>alice</b> via backend-kit provider"),
        "{}",
        home.body
    );
    assert!(home.body.contains("refreshed 0 times"));
    // The provider is an OpenID Provider at its mounted issuer: the ID token and UserInfo.
    assert!(
        home.body
            .contains("OpenID Connect: you are <b>Alice Liddell &lt;alice@example.org&gt;</b>"),
        "{}",
        home.body
    );

    // The callback is one use only.
    assert_eq!(browser.get(&callback).status, 400);

    let csrf = home.csrf();
    let refreshed = browser.post_form("/oauth-login/refresh", &[("csrf", &csrf)]);
    assert_eq!(refreshed.status, 303, "{}", refreshed.body);
    assert!(
        browser
            .get("/oauth-login/")
            .body
            .contains("refreshed 1 times")
    );

    let logged_out = browser.post_form("/oauth-login/logout", &[("csrf", &csrf)]);
    assert_eq!(logged_out.status, 303);
    assert!(
        browser
            .get("/oauth-login/")
            .body
            .contains("Log in with backend-kit provider")
    );

    // The metadata names the mounted issuer and its endpoints below it.
    let metadata = browser
        .get("/.well-known/oauth-authorization-server/oauth")
        .json();
    assert_eq!(metadata["issuer"], format!("{origin}/oauth"));
    assert_eq!(metadata["token_endpoint"], format!("{origin}/oauth/token"));
}

#[test]
fn cookies_signed_private_and_rotated() {
    let server = Server::start();
    let mut browser = server.client();

    let first = browser.get("/cookies/");
    assert_eq!(first.status, 200);
    assert!(first.body.contains("<b id=visits>1</b>"), "{}", first.body);
    let signed = browser.cookies["showcase-visits"].clone();
    assert!(
        signed.ends_with('1'),
        "signed values stay readable: {signed}"
    );
    assert!(browser.get("/cookies/").body.contains("<b id=visits>2</b>"));

    // A changed signed value is ignored, and the count starts over.
    let value = browser.cookies["showcase-visits"].clone();
    assert!(value.ends_with('2'), "{value}");
    let forged = format!("{}9", &value[..value.len() - 1]);
    browser.cookies.insert("showcase-visits".to_owned(), forged);
    let tampered = browser.get("/cookies/");
    assert!(
        tampered.body.contains("<b id=visits>1</b>"),
        "{}",
        tampered.body
    );
    assert!(tampered.body.contains("did not verify"));

    // A private note: the browser holds ciphertext only. The form carries its CSRF token.
    let csrf = tampered.csrf();
    let kept = browser.post_form(
        "/cookies/note",
        &[("csrf", &csrf), ("note", "meet at noon")],
    );
    assert_eq!(kept.status, 303);
    assert_eq!(kept.header("location"), Some("/cookies/"));
    let sealed = browser.cookies["showcase-note"].clone();
    assert!(!sealed.contains("noon"), "{sealed}");
    let page = browser.get("/cookies/");
    assert!(
        page.body.contains("<b id=note>meet at noon</b>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<b id=visits>2</b>"));

    // After a rotation the old cookies still read, and the signed one is re-signed.
    assert_eq!(
        browser
            .post_form("/cookies/rotate", &[("csrf", &csrf)])
            .status,
        303
    );
    let rotated = browser.get("/cookies/");
    assert!(
        rotated.body.contains("<b id=visits>3</b>"),
        "{}",
        rotated.body
    );
    assert!(rotated.body.contains("re-signed"), "{}", rotated.body);
    assert!(rotated.body.contains("<b id=note>meet at noon</b>"));

    assert_eq!(browser.get("/cookies/nothing-here").status, 404);
}

#[cfg(unix)]
#[test]
fn sigterm_closes_chat_sockets_with_1001_and_exits_0() {
    let mut server = Server::start();
    let mut alice = chat_socket(&server, "alice");
    wait_for(&mut alice, |e| e["type"] == "welcome");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let code = loop {
        match alice.read() {
            Ok(Message::Close(Some(frame))) => break u16::from(frame.code),
            Ok(_) => {}
            Err(error) => panic!("no close frame before {error}"),
        }
    };
    assert_eq!(code, 1001);
    let status = server.wait(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}

const GRAPHQL_ACCEPT: (&str, &str) = ("Accept", "application/graphql-response+json");

/// A `graphql-transport-ws` socket to `/graphql/graphql`, acknowledged.
fn graphql_socket(server: &Server) -> tungstenite::WebSocket<TcpStream> {
    let mut request = format!("ws://{}/graphql/graphql", server.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("origin", server.origin().parse().unwrap());
    headers.insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut socket, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    socket
        .send(Message::text(
            json!({"type": "connection_init"}).to_string(),
        ))
        .unwrap();
    assert_eq!(read_json(&mut socket), json!({"type": "connection_ack"}));
    socket
}

/// The next text message as JSON.
fn read_json(socket: &mut tungstenite::WebSocket<TcpStream>) -> serde_json::Value {
    loop {
        match socket.read().unwrap() {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// GraphQL over Server-Sent Events (graphql-sse) under the prefix: one distinct-mode
/// query, and the single-connection mode's reservation and its errors.
#[test]
fn graphql_over_server_sent_events_under_the_prefix() {
    let server = Server::start();
    let mut browser = server.client();
    let reply = browser.send(
        "POST",
        "/graphql/graphql",
        &[
            ("accept", "text/event-stream"),
            ("content-type", "application/json"),
        ],
        br#"{"query":"{ book(id: \"1\") { title } }"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert!(
        reply.body.ends_with(
            "event: next\ndata: {\"data\":{\"book\":{\"title\":\"A Wizard of Earthsea\"}}}\n\n\
             event: complete\ndata: \n\n"
        ),
        "{}",
        reply.body
    );
    let reserved = browser.send("PUT", "/graphql/graphql", &[], b"");
    assert_eq!(reserved.status, 201, "{}", reserved.body);
    let token = reserved.body.clone();
    let stop = browser.send(
        "DELETE",
        "/graphql/graphql?operationId=nope",
        &[("x-graphql-event-stream-token", &token)],
        b"",
    );
    assert_eq!(stop.status, 404, "{}", stop.body);
}

#[test]
fn graphql_query_mutation_and_subscription_under_the_prefix() {
    let server = Server::start();
    let mut browser = server.client();

    // The page calls the endpoint by a relative URL, so under /graphql/ it reaches
    // /graphql/graphql.
    let page = browser.get("/graphql/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"fetch("graphql""#), "{}", page.body);
    assert!(!page.body.contains(r#"fetch("/"#), "{}", page.body);

    // A query over GET, the authors through the DataLoader.
    let query = browser.send(
        "GET",
        "/graphql/graphql?query=%7Bbooks%7Btitle%20author%7Bname%7D%7D%7D",
        &[GRAPHQL_ACCEPT],
        b"",
    );
    assert_eq!(query.status, 200, "{}", query.body);
    assert!(
        query
            .header("content-type")
            .unwrap()
            .starts_with("application/graphql-response+json")
    );
    assert_eq!(
        query.json()["data"]["books"][0],
        json!({"title": "A Wizard of Earthsea", "author": {"name": "Ursula K. Le Guin"}})
    );
    // Mutations are refused over GET.
    let refused = browser.send(
        "GET",
        "/graphql/graphql?query=mutation%7BaddBook(title:%22x%22,authorId:%221%22)%7Bid%7D%7D",
        &[GRAPHQL_ACCEPT],
        b"",
    );
    assert_eq!(refused.status, 405, "{}", refused.body);
    // The standalone server's paths are not the showcase's.
    assert_eq!(browser.get("/graphql/nothing").status, 404);

    // A subscription over the WebSocket, then a mutation over POST that it sees.
    let mut socket = graphql_socket(&server);
    socket
        .send(Message::text(
            json!({"id": "1", "type": "subscribe",
                   "payload": {"query": "subscription { bookAdded { title author { name } } }"}})
            .to_string(),
        ))
        .unwrap();
    // The subscription starts on its own task: add books until its first event arrives.
    socket
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut added = Vec::new();
    let event = loop {
        assert!(added.len() < 30, "no subscription event after {added:?}");
        let title = format!("Dune {}", added.len());
        let mutation = browser.send_json(
            "POST",
            "/graphql/graphql",
            &[GRAPHQL_ACCEPT],
            &json!({
                "query": "mutation($t: String!) { addBook(title: $t, authorId: \"2\") { id title } }",
                "variables": {"t": title},
            }),
        );
        assert_eq!(mutation.status, 200, "{}", mutation.body);
        let book = &mutation.json()["data"]["addBook"];
        assert_eq!(book["title"], json!(title), "{}", mutation.body);
        assert!(book["id"].as_str().is_some_and(|id| !id.is_empty()));
        added.push(title);
        match socket.read() {
            Ok(Message::Text(text)) => {
                break serde_json::from_str::<serde_json::Value>(text.as_str()).unwrap();
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(error) => panic!("{error}"),
        }
    };
    socket
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(event["id"], "1", "{event}");
    let seen = event["payload"]["data"]["bookAdded"]["title"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(added.contains(&seen), "{seen} not among {added:?}");
    assert_eq!(
        event["payload"]["data"]["bookAdded"]["author"]["name"],
        "Frank Herbert"
    );

    // The client completes the subscription; a query over the same socket answers with
    // next then complete, and a later mutation reaches nobody.
    socket
        .send(Message::text(
            json!({"id": "1", "type": "complete"}).to_string(),
        ))
        .unwrap();
    socket
        .send(Message::text(
            json!({"id": "2", "type": "subscribe",
                   "payload": {"query": "{ books { title } }"}})
            .to_string(),
        ))
        .unwrap();
    let mut next = read_json(&mut socket);
    // Events of subscription 1 already in flight before the complete may still arrive.
    while next["id"] == "1" {
        assert_eq!(next["type"], "next", "{next}");
        next = read_json(&mut socket);
    }
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], "2", "{next}");
    let titles: Vec<&str> = next["payload"]["data"]["books"]
        .as_array()
        .unwrap()
        .iter()
        .map(|book| book["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&seen.as_str()), "{titles:?}");
    assert_eq!(
        read_json(&mut socket),
        json!({"id": "2", "type": "complete"})
    );
    let late = browser.send_json(
        "POST",
        "/graphql/graphql",
        &[GRAPHQL_ACCEPT],
        &json!({"query": "mutation { addBook(title: \"Late\", authorId: \"1\") { id } }"}),
    );
    assert_eq!(late.status, 200, "{}", late.body);
    socket
        .send(Message::text(json!({"type": "ping"}).to_string()))
        .unwrap();
    assert_eq!(read_json(&mut socket), json!({"type": "pong"}));

    // Another origin cannot open the socket.
    let mut foreign = format!("ws://{}/graphql/graphql", server.addr)
        .into_client_request()
        .unwrap();
    foreign
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    foreign.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let stream = TcpStream::connect(server.addr).unwrap();
    match tungstenite::client(foreign, stream) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("a foreign origin was let in: {:?}", other.map(|(_, r)| r)),
    }
}

/// The value of the Prometheus sample `name` (with its labels) in `metrics`.
#[test]
fn graphql_defer_and_stream_parts_are_streamed_under_the_prefix() {
    let server = Server::start();
    let mut browser = server.client();
    let query = json!({"query": r#"{ books @stream(initialCount: 1) { title } book(id: "1") { id ... @defer(label: "more") { year author { name } } } }"#}).to_string();
    let reply = browser.send(
        "POST",
        "/graphql/graphql",
        &[
            ("Content-Type", "application/json"),
            (
                "Accept",
                "multipart/mixed;deferSpec=20220824, application/json",
            ),
        ],
        query.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("multipart/mixed"),
        "{reply:?}"
    );
    // Sent part by part as each is ready (chunked), not collected into one sized body.
    assert_eq!(
        reply.header("transfer-encoding"),
        Some("chunked"),
        "{reply:?}"
    );
    assert_eq!(reply.header("content-length"), None, "{reply:?}");
    assert!(reply.body.starts_with("\r\n---\r\n"), "{}", reply.body);
    assert!(reply.body.ends_with("\r\n-----\r\n"), "{}", reply.body);
    assert!(reply.body.contains(r#""hasNext":false"#), "{}", reply.body);
    assert!(reply.body.contains("The Dispossessed"), "{}", reply.body);
}

fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn proxy_caches_compresses_forwards_limits_and_counts() {
    let server = Server::start();
    let mut browser = server.client();

    // RFC 9111: the origin says max-age=60; the second GET is answered by the cache, with
    // Age, and the body the origin generated once.
    let first = browser.get("/proxy/origin/cached");
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("x-cache"), Some("MISS"), "{first:?}");
    assert!(first.body.contains("time number 1\n"), "{}", first.body);
    let second = browser.get("/proxy/origin/cached");
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-cache"), Some("HIT"), "{second:?}");
    let age: u64 = second.header("age").expect("Age on a hit").parse().unwrap();
    assert!(age <= 60, "{age}");
    assert_eq!(second.body, first.body);

    // Compression negotiated from Accept-Encoding, on the cached entry too.
    for (asked, coding) in [("br", "br"), ("gzip", "gzip"), ("gzip;q=0, br", "br")] {
        let reply = browser.send(
            "GET",
            "/proxy/origin/cached",
            &[("Accept-Encoding", asked)],
            b"",
        );
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-encoding"),
            Some(coding),
            "{asked}: {reply:?}"
        );
        assert!(
            reply
                .all("vary")
                .iter()
                .any(|v| v.to_ascii_lowercase().contains("accept-encoding")),
            "{reply:?}"
        );
        // Streamed: chunked, so the compressed size is what arrived, not a Content-Length.
        let length = reply.bytes.len();
        assert!(length < first.body.len(), "{length} not smaller");
    }
    let identity = browser.send(
        "GET",
        "/proxy/origin/cached",
        &[("Accept-Encoding", "identity")],
        b"",
    );
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.body, first.body);

    // Forwarding headers as the upstream received them (RFC 7239, RFC 9110 section 7.6.3).
    let seen = browser.get("/proxy/origin/headers").json();
    let forwarded = seen["forwarded"].as_str().expect("Forwarded upstream");
    assert!(forwarded.contains("for=127.0.0.1"), "{forwarded}");
    assert!(forwarded.contains("proto=http"), "{forwarded}");
    assert_eq!(seen["via"], "1.1 showcase-proxy");
    // Without the proxy there is no such header.
    let direct = browser.get("/origin/headers").json();
    assert!(direct.get("via").is_none(), "{direct}");

    // rest-api answers through the proxy too.
    let users = browser.get("/proxy/api/users");
    assert_eq!(users.status, 200, "{users:?}");
    assert!(users.json()["items"].is_array());

    // GCRA: 5 requests a minute with a burst of 5, then 429 with RateLimit headers.
    for remaining in (0..5).rev() {
        let reply = browser.get("/proxy/origin/limited");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("ratelimit-limit"), Some("5"));
        assert_eq!(
            reply.header("ratelimit-remaining"),
            Some(&*remaining.to_string())
        );
    }
    let limited = browser.get("/proxy/origin/limited");
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Other routes have their own (no) limit.
    assert_eq!(browser.get("/proxy/origin/headers").status, 200);

    // Nothing routes back into the proxy itself.
    assert_eq!(browser.get("/proxy/proxy/origin/cached").status, 404);

    // The metrics count what happened above: 2 cache + 4 encodings + 1 headers + 1 users
    // + 5 limited + 1 headers = 14 2xx answers before this one, the 429 and the 404 as 4xx, one rate-limited request, both pool
    // members listed.
    let metrics = browser.get("/proxy/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain"),
        "{metrics:?}"
    );
    let body = &metrics.body;
    assert_eq!(
        sample(body, r#"proxy_requests_total{class="2xx"}"#),
        14,
        "{body}"
    );
    assert_eq!(
        sample(body, r#"proxy_requests_total{class="4xx"}"#),
        2,
        "{body}"
    );
    assert_eq!(sample(body, "proxy_rate_limited_total"), 1, "{body}");
    let port = server.addr.port();
    for member in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        assert!(
            body.contains(&format!(
                r#"proxy_upstream_in_flight{{pool="showcase",upstream="{member}"}}"#
            )),
            "{member} not listed: {body}"
        );
    }
    assert!(sample(body, "proxy_cache_bytes") > 0, "{body}");
}
