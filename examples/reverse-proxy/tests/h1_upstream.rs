#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The lean HTTP/1.1 upstream client (src/h1_client.rs) against an origin that writes its
//! responses byte by byte: every framing of RFC 9112 section 6.3 (a chunked body with
//! extensions and a trailer section), the ones refused, interim responses, reason phrases,
//! and connection reuse (also after the origin closed an idle connection).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{client, get, start_proxy};
use http_body_util::{BodyExt as _, Full};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What the origin answers to a path, as raw bytes; `close` ends the connection after it.
fn script(path: &str, body: &[u8]) -> (Vec<u8>, bool) {
    let fixed = |s: &str| (s.as_bytes().to_vec(), false);
    match path {
        "/cl" => fixed("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"),
        "/cl-list" => fixed("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello"),
        "/cl-conflict" => {
            fixed("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!")
        }
        "/te-and-cl" => fixed(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        "/gzip-chunked" => fixed(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        "/chunked" => fixed(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n",
        ),
        "/trailer-announced" => fixed(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 5\r\n\r\n",
        ),
        "/bad-chunk" => {
            fixed("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
        }
        "/unknown-coding" => (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: x-custom\r\n\r\nas it came".to_vec(),
            true,
        ),
        "/until-close" => (b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec(), true),
        "/interim" => fixed(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        ),
        "/switching" => fixed("HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n"),
        "/reason" => fixed("HTTP/1.1 200 Fine Thanks\r\ncontent-length: 2\r\n\r\nok"),
        "/no-reason" => fixed("HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok"),
        "/no-content" => fixed("HTTP/1.1 204 No Content\r\n\r\n"),
        "/fields" => fixed(
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n\
             Keep-Alive: timeout=5\r\nX-Kept:  yes \r\nDate: Sun, 06 Dec 2026 18:00:00 GMT\r\n\
             Set-Cookie: b=2\r\ncontent-length: 2\r\n\r\nok",
        ),
        "/http10" => (
            b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
            true,
        ),
        "/obs-fold" => fixed("HTTP/1.1 200 OK\r\nx-a: b\r\n c\r\ncontent-length: 2\r\n\r\nok"),
        "/echo" => {
            let mut out =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
            out.extend_from_slice(body);
            (out, false)
        }
        _ => fixed("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
    }
}

struct Origin {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

/// An origin that reads each request (head, then a `Content-Length` or chunked body) and
/// answers from [`script`]; `HEAD` gets the head of the answer only. After `/idle-close` it
/// answers, then closes the connection 100 ms later without a word.
async fn start_origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream));
        }
    });
    Origin { addr, accepted }
}

async fn serve(mut stream: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0_u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        buf.drain(..head_end);
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or_default().to_owned();
        let path = words.next().unwrap_or_default().to_owned();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        let chunked = head.contains("transfer-encoding: chunked");
        let body = if chunked {
            // Read to the last chunk; the test's chunked bodies are small.
            loop {
                if let Some(i) = buf.windows(5).position(|w| w == b"0\r\n\r\n") {
                    break buf.drain(..i + 5).collect::<Vec<u8>>();
                }
                let mut chunk = [0_u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        } else {
            while buf.len() < length {
                let mut chunk = [0_u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            buf.drain(..length).collect()
        };
        let (mut answer, close) = if path == "/idle-close" {
            script("/cl", &body)
        } else {
            script(&path, &body)
        };
        if method == "head"
            && let Some(i) = answer.windows(4).position(|w| w == b"\r\n\r\n")
        {
            answer.truncate(i + 4);
        }
        if stream.write_all(&answer).await.is_err() || close {
            return;
        }
        if path == "/idle-close" {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
    }
}

fn config(origin: SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false
# One worker: every client connection shares one idle list, so the origin's connection
# count says how often a connection was reused.
workers = 1

[[pools]]
name = "app"
upstreams = [{{ address = "{origin}" }}]
max_retries = 0

[[routes]]
pool = "app"
"#
    )
}

/// Sends raw bytes to the proxy and reads its answer until `done` holds for it.
async fn raw(proxy: SocketAddr, request: &str, done: impl Fn(&str) -> bool) -> String {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0_u8; 4096];
    while !done(&String::from_utf8_lossy(&seen)) {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn response_framings_are_read_as_rfc_9112_says() {
    let origin = start_origin().await;
    let proxy = start_proxy(&config(origin.addr));
    let client = client();
    let base = format!("http://{}", proxy.addr);
    for (path, body) in [
        ("/cl", "hello"),
        ("/cl-list", "hello"),
        ("/chunked", "hello world"),
        ("/until-close", "until the end"),
        ("/unknown-coding", "as it came"),
        ("/interim", "ok"),
        ("/http10", "ok"),
        ("/echo", ""),
    ] {
        let (status, _, got) = get(&client, &format!("{base}{path}")).await.unwrap();
        assert_eq!((status, got.as_str()), (200, body), "{path}");
    }
    let (status, _, got) = get(&client, &format!("{base}/no-content")).await.unwrap();
    assert_eq!((status, got.as_str()), (204, ""));
    // Ambiguous or unknown framing, obsolete line folding and an unasked-for 101 are
    // refused: a 502, not a guess.
    for path in [
        "/cl-conflict",
        "/te-and-cl",
        "/gzip-chunked",
        "/obs-fold",
        "/switching",
    ] {
        let (status, _, _) = get(&client, &format!("{base}{path}")).await.unwrap();
        assert_eq!(status, 502, "{path}");
    }
    // A chunked body that breaks off mid-way is not passed on as if it were whole.
    assert!(get(&client, &format!("{base}/bad-chunk")).await.is_err());
}

#[tokio::test]
async fn reason_phrases_and_head_pass_through() {
    let origin = start_origin().await;
    let proxy = start_proxy(&config(origin.addr));
    let answer = raw(proxy.addr, "GET /reason HTTP/1.1\r\nhost: x\r\n\r\n", |s| {
        s.ends_with("ok")
    })
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200 Fine Thanks\r\n"),
        "{answer}"
    );
    let answer = raw(
        proxy.addr,
        "GET /no-reason HTTP/1.1\r\nhost: x\r\n\r\n",
        |s| s.ends_with("ok"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    // HEAD: the length of the body it would have had, and no body; the connection to the
    // origin is reused after it.
    let answer = raw(
        proxy.addr,
        "HEAD /cl HTTP/1.1\r\nhost: x\r\n\r\nGET /cl HTTP/1.1\r\nhost: x\r\n\r\n",
        |s| s.ends_with("hello"),
    )
    .await;
    assert_eq!(
        answer.matches("content-length: 5\r\n").count(),
        2,
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
}

/// A plain `GET` from the lean HTTP/1.1 server takes the member's fields as lines, a `HEAD`
/// through the `HeaderMap`: both leave out the hop-by-hop fields and those `Connection`
/// names, keep repeated fields, and add no second `Date`.
#[tokio::test]
async fn fields_pass_as_lines_or_through_the_map_alike() {
    let origin = start_origin().await;
    let proxy = start_proxy(&config(origin.addr));
    let mut heads = Vec::new();
    for method in ["GET", "HEAD"] {
        let answer = raw(
            proxy.addr,
            &format!("{method} /fields HTTP/1.1\r\nhost: x\r\n\r\n"),
            |s| s.contains("\r\n\r\n") && (method == "HEAD" || s.ends_with("ok")),
        )
        .await;
        let (head, _) = answer.split_once("\r\n\r\n").unwrap();
        let mut fields: Vec<String> = head
            .lines()
            .skip(1)
            .map(|line| {
                let (name, value) = line.split_once(": ").unwrap();
                format!("{}: {value}", name.to_ascii_lowercase())
            })
            .collect();
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n"),
            "{method}: {answer}"
        );
        // Lines keep the member's spelling of a name; the map's are lower case.
        let spelled = if method == "GET" { "X-Kept" } else { "x-kept" };
        assert!(
            head.contains(&format!("\r\n{spelled}: yes")),
            "{method}: {answer}"
        );
        // Repeated fields in the order they came.
        let cookies: Vec<&String> = fields
            .iter()
            .filter(|f| f.starts_with("set-cookie"))
            .collect();
        assert_eq!(cookies, ["set-cookie: a=1", "set-cookie: b=2"], "{method}");
        fields.sort();
        heads.push(fields);
    }
    assert_eq!(
        heads[0],
        [
            "content-length: 2",
            "date: Sun, 06 Dec 2026 18:00:00 GMT",
            "set-cookie: a=1",
            "set-cookie: b=2",
            "x-kept: yes",
        ]
    );
    assert_eq!(heads[0], heads[1]);
}

#[tokio::test]
async fn announced_trailer_fields_reach_an_http_1_1_client() {
    let origin = start_origin().await;
    let proxy = start_proxy(&config(origin.addr));
    let ends = |s: &str| s.contains("\r\n0\r\n") && s.ends_with("\r\n\r\n");
    // `Trailer` is end to end (RFC 9110 section 6.6.2): the proxy keeps it, and with it the
    // server side sends the trailer section it announces.
    let answer = raw(
        proxy.addr,
        "GET /trailer-announced HTTP/1.1\r\nhost: x\r\nte: trailers\r\n\r\n",
        ends,
    )
    .await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("\r\ntrailer: x-sum"), "{answer}");
    assert!(head.contains("\r\ntransfer-encoding: chunked"), "{answer}");
    assert!(body.ends_with("\r\n0\r\nx-sum: 5\r\n\r\n"), "{answer}");
    // Trailer fields the head does not announce are not sent.
    let answer = raw(
        proxy.addr,
        "GET /chunked HTTP/1.1\r\nhost: x\r\nte: trailers\r\n\r\n",
        ends,
    )
    .await;
    assert!(answer.ends_with("\r\n0\r\n\r\n"), "{answer}");
    assert!(!answer.contains("x-sum"), "{answer}");
}

#[tokio::test]
async fn connections_are_reused_and_stale_ones_are_not() {
    let origin = start_origin().await;
    let proxy = start_proxy(&config(origin.addr));
    let client = client();
    let base = format!("http://{}", proxy.addr);
    for _ in 0..5 {
        assert_eq!(
            get(&client, &format!("{base}/cl")).await.unwrap().2,
            "hello"
        );
    }
    let (status, _, _) = get(&client, &format!("{base}/no-content")).await.unwrap();
    assert_eq!(status, 204);
    assert_eq!(
        get(&client, &format!("{base}/cl")).await.unwrap().2,
        "hello"
    );
    assert_eq!(
        origin.accepted.load(Ordering::SeqCst),
        1,
        "keep-alive responses should share one upstream connection"
    );
    // The origin closes the connection while it idles in the pool: the next request, a
    // POST without a body (sent by the lean client, and never sent twice), goes out on a
    // new connection at once.
    assert_eq!(
        get(&client, &format!("{base}/idle-close")).await.unwrap().2,
        "hello"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let request = hyper::Request::post(format!("{base}/cl"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(origin.accepted.load(Ordering::SeqCst), 2);
    // A response that ends with the connection (HTTP/1.0 without keep-alive) is not
    // followed by a reuse of it.
    assert_eq!(
        get(&client, &format!("{base}/http10")).await.unwrap().2,
        "ok"
    );
    assert_eq!(
        get(&client, &format!("{base}/cl")).await.unwrap().2,
        "hello"
    );
    assert_eq!(origin.accepted.load(Ordering::SeqCst), 3);
    // A POST without an idempotency key is streamed (hyper's client, its own connection).
    let request = hyper::Request::post(format!("{base}/echo"))
        .body(Full::new(Bytes::from_static(b"posted")))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"posted");
    assert_eq!(origin.accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn streamed_and_buffered_bodies_share_the_pool() {
    let origin = start_origin().await;
    let proxy = start_proxy(&config(origin.addr));
    // A chunked POST is streamed (hyper's client), the GET after it goes the lean way; both
    // are answered on the same client connection.
    let answer = raw(
        proxy.addr,
        "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /cl HTTP/1.1\r\nhost: x\r\n\r\n",
        |s| s.ends_with("hello"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("3\r\nabc\r\n0\r\n\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
}
