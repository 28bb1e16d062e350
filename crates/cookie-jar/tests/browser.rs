//! A real browser: pages on 127.0.0.1 set cookies through our server side (plain, `__Host-`,
//! signed, removed with their path) and headless Chromium, driven by playwright-core
//! (tests/browser.cjs), shows what it stored and what it sends back.
//! Needs `PEER_NODE_MODULES` (with playwright-core) and `CHROMIUM_PATH`.
#![cfg(feature = "client")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use cookie_jar::{DeltaJar, Key, KeyRing, SetCookie};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Answers one HTTP/1.1 request (Connection: close) from our server-side primitives.
async fn handle(mut sock: TcpStream, ring: Arc<KeyRing>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let mut headers = HeaderMap::new();
    for l in lines.take_while(|l| !l.is_empty()) {
        if let Some((k, v)) = l.split_once(':')
            && let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.trim().as_bytes()),
                HeaderValue::from_str(v.trim()),
            )
        {
            headers.append(k, v);
        }
    }
    let mut jar = DeltaJar::from_headers(&headers);
    let (status, body) = match path.as_str() {
        "/set" => {
            jar.add(SetCookie::build("plain", "hello").finish().unwrap());
            jar.add(SetCookie::build("__Host-id", "abc").finish().unwrap());
            jar.add_signed(SetCookie::build("uid", "42").finish().unwrap(), &ring);
            jar.add(SetCookie::build("gone", "1").finish().unwrap());
            jar.add(
                SetCookie::build("scoped", "2")
                    .path("/scoped".to_owned())
                    .finish()
                    .unwrap(),
            );
            ("200 OK", "set".to_owned())
        }
        "/remove" => {
            jar.remove("gone").unwrap();
            jar.remove_with("scoped", Some("/scoped"), None).unwrap();
            ("200 OK", "removed".to_owned())
        }
        chips if chips.starts_with("/chips/set?v=") => {
            let value = chips.trim_start_matches("/chips/set?v=").to_owned();
            jar.add(
                SetCookie::build("p", value)
                    .path("/".to_owned())
                    .same_site(cookie_jar::SameSite::None)
                    .partitioned(true)
                    .finish()
                    .unwrap(),
            );
            ("200 OK", "set".to_owned())
        }
        "/chips/echo" => (
            "200 OK",
            headers
                .get("cookie")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
        ),
        frame if frame.starts_with("/chips/frame?") => (
            "200 OK",
            format!(
                "<iframe src=\"{}\"></iframe>",
                frame.trim_start_matches("/chips/frame?")
            ),
        ),
        "/echo" | "/scoped/echo" => {
            let raw = headers
                .get("cookie")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let uid = jar
                .get_signed("uid", &ring)
                .unwrap_or_else(|| "<absent>".to_owned());
            ("200 OK", format!("{raw}\n{uid}"))
        }
        _ => ("404 Not Found", String::new()),
    };
    let mut resp = HeaderMap::new();
    jar.write_to(&mut resp);
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n",
        if path.starts_with("/chips/frame") {
            "text/html"
        } else {
            "text/plain"
        },
        body.len()
    );
    for v in resp.get_all("set-cookie") {
        out.push_str(&format!("set-cookie: {}\r\n", v.to_str().unwrap()));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    let _ = sock.write_all(out.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// Serves [`handle`] on 127.0.0.1 and runs `tests/SCRIPT` in node with the port as its
/// argument; its standard output, or `None` (test skipped) without the browser peers.
async fn run_in_chromium(script: &str) -> Option<(u16, Vec<u8>)> {
    let Some(modules) = std::env::var_os("PEER_NODE_MODULES") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PEER_NODE_MODULES must be set under CI=true"
        );
        println!("skipped: PEER_NODE_MODULES is not set");
        return None;
    };
    let Some(chromium) = std::env::var_os("CHROMIUM_PATH") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CHROMIUM_PATH must be set under CI=true"
        );
        println!("skipped: CHROMIUM_PATH is not set");
        return None;
    };
    let ring = Arc::new(KeyRing::new(Key::generate()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(handle(sock, ring.clone()));
        }
    });
    let script = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(script)
            .arg(port.to_string())
            .env("NODE_PATH", &modules)
            .env("CHROMIUM_PATH", &chromium)
            .output(),
    )
    .await
    .expect("browser run timed out")
    .unwrap();
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((port, out.stdout))
}

#[tokio::test(flavor = "current_thread")]
async fn chromium_stores_and_returns_what_we_set() {
    let Some((_, out)) = run_in_chromium("browser.cjs").await else {
        return;
    };
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let names = |key: &str| -> Vec<String> {
        let mut n: Vec<String> = v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };

    // After /set the browser holds all five, each with our secure defaults.
    assert_eq!(
        names("afterSet"),
        ["__Host-id", "gone", "plain", "scoped", "uid"]
    );
    for c in v["afterSet"].as_array().unwrap() {
        assert_eq!(c["secure"], true, "{c}");
        assert_eq!(c["httpOnly"], true, "{c}");
        assert_eq!(c["sameSite"], "Lax", "{c}");
        assert_eq!(c["domain"], "127.0.0.1", "host-only: {c}");
        let want_path = if c["name"] == "scoped" {
            "/scoped"
        } else {
            "/"
        };
        assert_eq!(c["path"], want_path, "{c}");
    }
    assert!(
        v["scopedBefore"]
            .as_str()
            .unwrap()
            .starts_with("scoped=2; "),
        "{}",
        v["scopedBefore"]
    );

    // After /remove exactly the removed cookies are gone, including the one with its own path.
    assert_eq!(names("stored"), ["__Host-id", "plain", "uid"]);
    let echo = v["echo"].as_str().unwrap();
    let (header, uid) = echo.split_once('\n').unwrap();
    let mut pairs: Vec<&str> = header.split("; ").collect();
    pairs.sort_unstable();
    assert_eq!(pairs.len(), 3, "{header}");
    assert_eq!(pairs[0], "__Host-id=abc");
    assert_eq!(pairs[1], "plain=hello");
    assert!(
        pairs[2].starts_with("uid=") && pairs[2] != "uid=42",
        "the value is signed: {header}"
    );
    assert_eq!(uid, "42", "the server verifies what the browser returns");
    assert!(
        !v["scopedAfter"].as_str().unwrap().contains("scoped="),
        "{}",
        v["scopedAfter"]
    );

    // A value changed in the browser reads as absent.
    assert!(
        v["tampered"].as_str().unwrap().ends_with("\n<absent>"),
        "{}",
        v["tampered"]
    );
}

/// CHIPS against Chromium: an iframe from `127.0.0.1` under a `localhost` page gets a
/// `Partitioned` cookie; the same requests are replayed through our client store, and both
/// must send the same `Cookie` headers at every step (and those are checked too).
#[tokio::test(flavor = "current_thread")]
async fn chromium_partitions_cookies_as_our_store_does() {
    let Some((port, out)) = run_in_chromium("chips.cjs").await else {
        return;
    };
    let chromium_echoes: Vec<String> = serde_json::from_slice(&out).unwrap();

    // The same steps through our store (see chips.cjs): A is the localhost page, B the
    // 127.0.0.1 server that sets and echoes.
    let a = url::Url::parse(&format!("http://localhost:{port}/")).unwrap();
    let b = |path: &str| url::Url::parse(&format!("http://127.0.0.1:{port}{path}")).unwrap();
    let under_a = cookie_jar::RequestContext::cross_site().top_level_site(&a);
    let top_b = cookie_jar::RequestContext::same_site();
    let framed_under_b = cookie_jar::RequestContext::same_site()
        .top_level_navigation(false)
        .top_level_site(&b("/"));
    let now = time::OffsetDateTime::now_utc();
    let mut store = cookie_jar::CookieStore::new();
    let mut ours = Vec::new();
    let set = |store: &mut cookie_jar::CookieStore, value: &str, ctx| {
        let line = SetCookie::build("p", value.to_owned())
            .path("/".to_owned())
            .same_site(cookie_jar::SameSite::None)
            .partitioned(true)
            .finish()
            .unwrap()
            .to_string();
        assert_eq!(store.store(&b("/chips/set"), [line], ctx, now), 1);
    };
    let echo = |store: &cookie_jar::CookieStore, ctx| {
        store
            .cookie_header(&b("/chips/echo"), ctx, now)
            .map(|h| h.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    set(&mut store, "a", &under_a);
    ours.push(echo(&store, &under_a));
    ours.push(echo(&store, &top_b));
    ours.push(echo(&store, &framed_under_b));
    set(&mut store, "b", &top_b);
    ours.push(echo(&store, &top_b));
    ours.push(echo(&store, &under_a));

    assert_eq!(
        ours,
        ["p=a", "", "", "p=b", "p=a"],
        "our store's Cookie headers"
    );
    assert_eq!(chromium_echoes, ours, "Chromium and our store disagree");
}
